"""The Kubernetes launcher of distributed training against a FAKE Kubernetes API server
(tests/training/fake_kube.py: a threaded HTTP server implementing the Job/Service/Pod endpoints the
launcher calls; no cluster, no scheduler). The test plays the Job controller and the kubelet: it runs
each pod's command (torchrun with the Job's rendezvous arguments, the master address pointed at
127.0.0.1 since there is no cluster DNS) as local processes, then writes the Job's status; or marks
the Job failed, or deletes it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from customlabels.training.v1 import training_service_pb2 as tr

from services.common.config import Config
from services.common.jobs import JobRow
from services.training import distributed, kube
from tests.training.fake_kube import FakeKube
from tests.training.test_distributed import project_with_data, settle_watching, worker
from tests.training.test_worker import train

ROOT = Path(__file__).resolve().parents[2]

WORKER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "training-worker-abc", "uid": "pod-uid-1234", "labels": {"app": "training-worker"}},
    "spec": {
        "nodeSelector": {"customlabels.io/pool": "training"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [
            {
                "name": "worker",
                "image": "ghcr.io/customlabels/training-cpu:0.1.0",
                "envFrom": [
                    {"configMapRef": {"name": "customlabels"}},
                    {"secretRef": {"name": "customlabels"}},
                ],
                "env": [
                    {
                        "name": "CUSTOMLABELS_POD_NAME",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    },
                    {"name": "MALLOC_TRIM_THRESHOLD_", "value": "1073741824"},
                ],
                "resources": {
                    "requests": {"cpu": "1", "memory": "2Gi"},
                    "limits": {"cpu": "2", "memory": "4Gi"},
                },
                "securityContext": kube.SECURITY_CONTEXT,
            }
        ],
    },
}


@pytest.fixture
def fake(tmp_path) -> Iterator[FakeKube]:
    server = FakeKube(token="sa-token-xyz").start()
    server.add_pod(WORKER_POD)
    (tmp_path / "token").write_text("sa-token-xyz\n")
    yield server
    server.stop()


def kube_env(fake: FakeKube, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "CUSTOMLABELS_TRAINING_WORLD_SIZE": "2",
        "CUSTOMLABELS_TRAINING_LAUNCHER": "kubernetes",
        "CUSTOMLABELS_TRAINING_KUBE_API": fake.url,
        "CUSTOMLABELS_TRAINING_KUBE_NAMESPACE": fake.namespace,
        "CUSTOMLABELS_TRAINING_KUBE_TOKEN_FILE": str(tmp_path / "token"),
        "CUSTOMLABELS_TRAINING_KUBE_CA_FILE": "",
        "CUSTOMLABELS_POD_NAME": "training-worker-abc",
        **extra,
    }


def run_pods(job: dict[str, Any], env: dict[str, str], logs: Path) -> list[int]:
    """The kubelet's part: each index's container command, as local processes; their exit codes."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    port = distributed.free_port()
    procs = []
    for index in range(job["spec"]["completions"]):
        command = []
        for arg in container["command"]:
            arg = arg.replace("$(JOB_COMPLETION_INDEX)", str(index))
            if arg.startswith("--master_addr="):
                arg = "--master_addr=127.0.0.1"
            elif arg.startswith("--master_port="):
                arg = f"--master_port={port}"
            command.append(arg)
        assert command[0] == "python"
        values = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        with open(logs / f"pod{index}.log", "wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, *command[1:]],
                    cwd=ROOT,
                    env={**env, **values, "HOME": str(logs), "JOB_COMPLETION_INDEX": str(index)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    return [proc.wait(600) for proc in procs]


def test_a_version_trains_through_an_indexed_job(stack, database_url, fake, tmp_path):
    project = project_with_data(stack, "kube")
    config = Config.from_env("training", {**stack.env, "DATABASE_URL": database_url})
    # What the pods get from envFrom (the customlabels ConfigMap and Secret) in a cluster.
    pod_env = distributed.rank_env(config, {"OMP_NUM_THREADS": "1"})
    seen: dict[str, Any] = {}

    def kubelet() -> None:
        job = fake.wait_for_job()
        seen["job"] = job
        codes = run_pods(job, pod_env, tmp_path)
        seen["codes"] = codes
        name = job["metadata"]["name"]
        if all(code == 0 for code in codes):
            fake.set_job_status(
                name, {"succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}]}
            )
        else:
            fake.set_job_status(name, {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]})

    thread = threading.Thread(target=kubelet, daemon=True)
    thread.start()
    with worker(stack, database_url, **kube_env(fake, tmp_path)):
        arn = train(stack, project, "indexed")
        desc, _ = settle_watching(stack, project, "indexed")
    thread.join(10)
    logs = "".join(p.read_text(errors="replace")[-1500:] for p in sorted(tmp_path.glob("pod*.log")))
    assert seen.get("codes") == [0, 0], logs
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_COMPLETED, desc.status_message

    job, name = seen["job"], seen["job"]["metadata"]["name"]
    assert name.startswith("cl-train-") and name.endswith("-1")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (
        "Indexed",
        2,
        2,
        0,
    )
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] == 3600
    job_id = job["metadata"]["labels"][kube.JOB_LABEL]
    assert spec["template"]["metadata"]["labels"][kube.JOB_LABEL] == job_id
    # Owned by the claimer's pod: deleting the worker's pod deletes its ranks.
    assert job["metadata"]["ownerReferences"][0]["uid"] == "pod-uid-1234"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["subdomain"] == name
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == WORKER_POD["spec"]["nodeSelector"]
    assert pod["tolerations"] == WORKER_POD["spec"]["tolerations"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/customlabels/training-cpu:0.1.0"
    command = container["command"]
    assert command[:3] == ["python", "-m", "torch.distributed.run"]
    for arg in (
        "--nnodes=2",
        "--nproc_per_node=1",
        "--node_rank=$(JOB_COMPLETION_INDEX)",
        f"--master_addr={name}-0.{name}",
        "--master_port=29500",
    ):
        assert arg in command
    assert command[command.index("-m", 3) + 1 :][:2] == ["services.training.ddp", "--job"]
    assert container["envFrom"] == WORKER_POD["spec"]["containers"][0]["envFrom"]
    env_names = {e["name"] for e in container["env"]}
    assert "CUSTOMLABELS_POD_NAME" not in env_names and {"HOME", "MALLOC_TRIM_THRESHOLD_"} <= env_names
    assert container["resources"] == WORKER_POD["spec"]["containers"][0]["resources"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["capabilities"] == {"drop": ["ALL"]} and not security["allowPrivilegeEscalation"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/dev/shm"}

    (service_call,) = fake.calls("POST", "/services")
    service = service_call.body
    assert service["metadata"]["name"] == name
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    assert service["spec"]["selector"] == {"job-name": name}
    assert service["metadata"]["ownerReferences"][0]["kind"] == "Job"
    # Every call carried the service-account token; the finished Job was deleted with its pods.
    assert all(r.authorization == "Bearer sa-token-xyz" for r in fake.requests)
    (delete,) = fake.calls("DELETE", f"/jobs/{name}")
    assert delete.body == {"propagationPolicy": "Background"}
    assert not fake.objects["jobs"]
    artifact = stack.training.GetModelArtifact(tr.GetModelArtifactRequest(project_version_arn=arn))
    assert artifact.onnx_model.name


def test_a_failed_job_is_retried_then_fails_the_version_with_the_pods_reason(
    stack, database_url, fake, tmp_path
):
    project = project_with_data(stack, "kubefail")
    names: list[str] = []
    stop = threading.Event()

    def controller() -> None:
        # Each attempt's Job: rank 1's pod is OOM-killed, so the Job controller fails the Job.
        while not stop.is_set():
            with fake.lock:
                created = list(fake.objects["jobs"])
            for name in created:
                if name in names:
                    continue
                names.append(name)
                fake.add_pod(
                    {
                        "metadata": {
                            "name": f"{name}-1-x",
                            "labels": {"job-name": name},
                            "annotations": {"batch.kubernetes.io/job-completion-index": "1"},
                        },
                        "status": {
                            "phase": "Failed",
                            "containerStatuses": [
                                {
                                    "name": "rank",
                                    "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                                }
                            ],
                        },
                    }
                )
                fake.set_job_status(
                    name,
                    {
                        "failed": 1,
                        "conditions": [
                            {
                                "type": "Failed",
                                "status": "True",
                                "reason": "BackoffLimitExceeded",
                                "message": "Job has reached the specified backoff limit",
                            }
                        ],
                    },
                )
            stop.wait(0.05)

    thread = threading.Thread(target=controller, daemon=True)
    thread.start()
    try:
        with worker(
            stack, database_url, CUSTOMLABELS_TRAINING_JOB_MAX_ATTEMPTS="2", **kube_env(fake, tmp_path)
        ):
            train(stack, project, "oom")
            desc, _ = settle_watching(stack, project, "oom", timeout=120)
    finally:
        stop.set()
        thread.join(5)
    assert desc.status == tr.PROJECT_VERSION_STATUS_TRAINING_FAILED
    assert (
        "BackoffLimitExceeded" in desc.status_message
        and "rank 1: OOMKilled, exit code 137" in desc.status_message
    )
    # Two attempts, each its own Job; both deleted once they had failed.
    assert [n.rsplit("-", 1)[1] for n in names] == ["1", "2"]
    assert not fake.objects["jobs"] and not fake.objects["services"]


def launcher(fake: FakeKube, tmp_path: Path) -> kube.KubernetesLauncher:
    env = kube_env(fake, tmp_path, CUSTOMLABELS_POD_NAME="", CUSTOMLABELS_TRAINING_KUBE_IMAGE="img:1")
    return kube.KubernetesLauncher(kube.KubeSettings.from_env(env), poll_patience_s=0.0)


def test_a_deleted_job_or_a_lost_api_server_fails_the_attempt(fake, tmp_path):
    ranks = launcher(fake, tmp_path)
    group = ranks.launch(JobRow(41, 7, "train", {}, 1), "versions/7/distributed/job-41-attempt-1", 2, 600)
    assert group.poll() is None
    fake.set_job_status("cl-train-41-1", {"active": 2})
    assert group.poll() is None
    fake.delete_job("cl-train-41-1")
    outcome = group.poll()
    assert outcome is not None and not outcome.ok and "cl-train-41-1 was deleted" in outcome.message
    # Without a known pod there is no owner reference: the labels are what finds the objects again.
    (created,) = fake.calls("POST", "/jobs")
    assert "ownerReferences" not in created.body["metadata"]
    assert created.body["spec"]["template"]["spec"]["containers"][0]["image"] == "img:1"

    other = ranks.launch(JobRow(42, 8, "train", {}, 1), "versions/8/distributed/job-42-attempt-1", 2, 600)
    fake.stop()
    outcome = other.poll()
    assert outcome is not None and not outcome.ok and "did not answer" in outcome.message


def test_what_a_dead_claimer_left_is_deleted_before_the_next_launch(fake, tmp_path):
    ranks = launcher(fake, tmp_path)
    ranks.launch(JobRow(51, 9, "train", {}, 1), "p/job-51-attempt-1", 2, 600)
    ranks.launch(JobRow(52, 10, "train", {}, 1), "p/job-52-attempt-1", 2, 600)
    assert set(fake.objects["jobs"]) == {"cl-train-51-1", "cl-train-52-1"}
    # The claimer of job 51 died; its lease expired and the next claim cleans up by label first.
    ranks.cleanup(51)
    assert set(fake.objects["jobs"]) == {"cl-train-52-1"}
    assert set(fake.objects["services"]) == {"cl-train-52-1"}
    lists = fake.calls("GET", "/jobs")
    assert lists[-1].query == {"labelSelector": f"{kube.JOB_LABEL}=51"}
    ranks.launch(JobRow(51, 9, "train", {}, 2), "p/job-51-attempt-2", 2, 600)
    assert set(fake.objects["jobs"]) == {"cl-train-51-2", "cl-train-52-1"}
