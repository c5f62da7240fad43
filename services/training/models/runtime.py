"""Process-level settings that decide how fast PyTorch runs on a small CPU machine.

glibc malloc: with its default thresholds every large activation tensor is an mmap/munmap pair
(page faults and zeroing on each batch), and freed heap is trimmed back to the OS right away.
On this 2-core machine a 32-image batch of Lite0 at 224 px took 33–47 ms per image that way and
11–13 ms with both thresholds raised to 4 GiB. glibc reads these variables once, when the process
starts, so they must be in the environment of the process (the worker's launcher, the Dockerfile,
`env` in k8s); setting os.environ or calling mallopt() from inside Python came out measurably worse
(25–32 ms). `malloc_env()` returns them and `malloc_tuned()` says whether this process has them.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger("customlabels.training.models")

# 4 GiB: above any single activation tensor a training batch allocates here.
_THRESHOLD = str(4 << 30)
MALLOC_ENV: dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": _THRESHOLD, "MALLOC_TRIM_THRESHOLD_": _THRESHOLD}


def malloc_env() -> dict[str, str]:
    """Environment variables to set before starting a training or inference process."""
    return dict(MALLOC_ENV)


def malloc_tuned() -> bool:
    """Whether this process was started with the malloc thresholds raised (see module doc)."""
    return all(name in os.environ for name in MALLOC_ENV)


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset / cgroup cpusets, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0))


def configure_torch(threads: int | None = None) -> int:
    """Sets PyTorch's intra-op threads and returns the count: `threads`, else OMP_NUM_THREADS, else
    the usable CPUs shared among torchrun's processes on this machine (LOCAL_WORLD_SIZE).

    Warns once per call when the malloc thresholds are missing, because training then runs
    about three times slower and nothing else would say why.
    """
    count = (
        threads
        or int(os.environ.get("OMP_NUM_THREADS") or 0)
        or max(1, usable_cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    )
    torch.set_num_threads(count)
    if not malloc_tuned():
        log.warning(
            "malloc thresholds not set; start the process with %s for ~3x faster CPU training",
            " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()),
        )
    return count


def training_device() -> str:
    """Where training runs: CUSTOMLABELS_TRAINING_DEVICE (cpu, cuda, cuda:N), else CUDA when present."""
    wanted = os.environ.get("CUSTOMLABELS_TRAINING_DEVICE", "").strip()
    if wanted:
        return wanted
    if not torch.cuda.is_available():
        return "cpu"
    # torchrun's LOCAL_RANK: one GPU per process on a multi-GPU node.
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work (CUDA runs asynchronously), so a measured time is real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
