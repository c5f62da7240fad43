"""deploy/Dockerfile, read statically (no Docker engine here): what a regression would break first.

Pinned bases, a non-root user in every target, training images that can import torch with the
malloc settings the worker expects, and Triton images holding every module the python model imports
(derived from services/serving/triton_model.py and the modelio.py copied beside it, with `ast`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.training.models.runtime import MALLOC_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
TARGETS = ("api", "training-cpu", "training-cuda", "triton-cpu", "triton-gpu")
TRAINING = ("training-cpu", "training-cuda")
TRITON = {
    "triton-cpu": "deploy/triton-requirements-cpu.txt",
    "triton-gpu": "deploy/triton-requirements-gpu.txt",
}
# Files Triton's python model loads: model.py and the modelio.py written beside it (services/serving/triton.py).
MODEL_SOURCES = (ROOT / "services/serving/triton_model.py", ROOT / "services/common/modelio.py")
# Provided by Triton's python backend itself, or copied into the version folder.
BACKEND_MODULES = {"triton_python_backend_utils", "modelio"}
DIGEST = re.compile(r"^[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    """One FROM … AS name section of the Dockerfile."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            found = re.match(r"^(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)$", rest, re.IGNORECASE)
            assert found, f"every FROM names its stage: {line}"
            stages.append(Stage(found.group(1), found.group(2)))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


ARGS, STAGES = parse(DOCKERFILE.read_text())
BY_NAME = {stage.name: stage for stage in STAGES}


def resolve(base: str) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: ARGS[m.group(1) or m.group(2)], base)


def chain(target: str) -> list[Stage]:
    """The target's stage and the stages it builds on, base first."""
    stages = [BY_NAME[target]]
    while stages[0].base in BY_NAME:
        stages.insert(0, BY_NAME[stages[0].base])
    return stages


def env_of(target: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for stage in chain(target):
        for args in stage.all("ENV"):
            env.update(dict(item.split("=", 1) for item in args.split()))
    return env


def runs_of(target: str) -> str:
    return "\n".join(run for stage in chain(target) for run in stage.all("RUN"))


def pyproject_pins() -> dict[str, str]:
    """`name==version` pins of the project's dependencies and train extra, by canonical name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in [*project["dependencies"], *project["optional-dependencies"]["train"]]:
        req = Requirement(line)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins[canonicalize_name(req.name)] = exact[0]
    return pins


def requirements(path: str) -> dict[str, Requirement]:
    lines = (ROOT / path).read_text().splitlines()
    reqs = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {canonicalize_name(r.name): r for r in reqs}


def model_imports() -> set[str]:
    """Top-level modules the Triton python model imports, anywhere in its files (initialize imports lazily)."""
    found: set[str] = set()
    for source in MODEL_SOURCES:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__"}


def test_every_target_exists() -> None:
    assert set(TARGETS) <= set(BY_NAME)


def test_every_base_image_is_pinned_by_digest() -> None:
    for stage in STAGES:
        if stage.base in BY_NAME:
            continue
        image = resolve(stage.base)
        assert DIGEST.match(image), f"stage {stage.name}: {image} is not image:tag@sha256:<digest>"
    for name, value in ARGS.items():
        if name.endswith("_IMAGE"):
            assert DIGEST.match(value), f"ARG {name}={value} is not pinned by digest"


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_runs_as_uid_10001(target: str) -> None:
    users = [user for stage in chain(target) for user in stage.all("USER")]
    assert users, f"{target} never sets USER"
    assert users[-1] == "10001:10001", f"{target} ends as {users[-1]}"
    assert re.search(r"useradd --uid 10001 --gid 10001", runs_of(target)), f"{target} does not create 10001"


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_writes_no_bytecode_and_homes_in_tmp(target: str) -> None:
    env = env_of(target)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("HOME") == "/tmp"


def test_api_image_carries_the_console_and_listens_on_all_interfaces() -> None:
    stage = BY_NAME["api"]
    assert any(copy.startswith("--from=web ") for copy in stage.all("COPY"))
    assert env_of("api")["CUSTOMLABELS_LISTEN_ADDR"] == "0.0.0.0:50051"
    assert "customlabels-*.whl" in runs_of("api")


@pytest.mark.parametrize("target", TRAINING)
def test_training_images_install_torch_and_the_train_extra(target: str) -> None:
    runs = runs_of(target)
    assert "torch==${TORCH_VERSION}" in runs
    assert ARGS["TORCH_VERSION"] == pyproject_pins()["torch"], "the image's torch is the train extra's torch"
    assert re.search(r"customlabels-\*\.whl\)\[train\]", runs), f"{target} does not install .[train]"
    assert json_cmd(BY_NAME[target]) == ["python", "-m", "services.training.worker"]


def test_cpu_training_takes_torch_from_the_cpu_wheel_index_and_cuda_from_pypi() -> None:
    assert ARGS["TORCH_CPU_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert "--index-url ${TORCH_CPU_INDEX} torch==${TORCH_VERSION}" in runs_of("training-cpu")
    assert "--index-url" not in runs_of("training-cuda"), "PyPI's default torch is the CUDA build"


@pytest.mark.parametrize("target", TRAINING)
def test_training_images_start_workers_with_the_malloc_settings(target: str) -> None:
    env = env_of(target)
    for name, value in MALLOC_ENV.items():
        assert env.get(name) == value, (
            f"{target}: {name} must be {value} (services/training/models/runtime.py)"
        )


def json_cmd(stage: Stage) -> list[str]:
    (cmd,) = stage.all("CMD")[-1:]
    return ast.literal_eval(cmd)  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", sorted(TRITON))
def test_triton_images_build_on_nvidia_tritonserver(target: str) -> None:
    base = resolve(chain(target)[0].base)
    assert base.startswith("nvcr.io/nvidia/tritonserver:") and "-py3@" in base
    assert any(TRITON[target] in copy for copy in BY_NAME[target].all("COPY"))
    assert "python3 -m pip install -r /tmp/requirements.txt" in runs_of(target)


def test_the_python_model_imports_what_the_test_expects() -> None:
    # Guards the derivation itself: if it found nothing, the coverage test below would pass vacuously.
    assert {"numpy", "onnxruntime", "PIL"} <= model_imports()


@pytest.mark.parametrize("target", sorted(TRITON))
def test_triton_images_install_every_module_the_python_model_imports(target: str) -> None:
    reqs = requirements(TRITON[target])
    providers = importlib.metadata.packages_distributions()
    for module in sorted(model_imports() - BACKEND_MODULES):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists, f"{module} is imported by the python model but not installed in .venv"
        # A CUDA build ships the same module under `<name>-gpu` (onnxruntime-gpu).
        wanted = dists | {f"{d}-gpu" for d in dists}
        assert wanted & set(reqs), (
            f"{target}: nothing in {TRITON[target]} provides {module} ({sorted(dists)})"
        )


@pytest.mark.parametrize("target", sorted(TRITON))
def test_triton_requirements_are_pinned_and_keep_numpy_1(target: str) -> None:
    reqs = requirements(TRITON[target])
    for name, req in reqs.items():
        assert [s.operator for s in req.specifier] == ["=="], f"{name} is not pinned with =="
    (numpy_version,) = (s.version for s in reqs["numpy"].specifier)
    assert int(numpy_version.split(".")[0]) < 2, "the python model and the services run numpy 1.x"


def test_triton_cpu_runs_the_versions_the_services_and_evaluation_run() -> None:
    pins = pyproject_pins()
    for name, req in requirements(TRITON["triton-cpu"]).items():
        (version,) = (s.version for s in req.specifier)
        if name in pins:
            assert version == pins[name], f"{name}: Triton {version}, pyproject.toml {pins[name]}"
    (numpy_version,) = (s.version for s in requirements(TRITON["triton-cpu"])["numpy"].specifier)
    assert importlib.metadata.version("numpy") == numpy_version


def test_the_python_model_imports_are_importable_here() -> None:
    for module in sorted(model_imports() - BACKEND_MODULES):
        importlib.import_module(module)


def test_build_context_keeps_secrets_and_local_builds_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in ("deploy/customlabels.env", ".venv", ".git", "gen", ".data"):
        assert entry in ignored, f".dockerignore must exclude {entry}"
    assert "deploy/customlabels.env" in (ROOT / ".gitignore").read_text().split()
