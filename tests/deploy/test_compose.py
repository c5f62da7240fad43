"""deploy/compose.yaml and deploy/compose.gpu.yaml, read statically (no Docker engine here).

Valid against the compose specification, every long-running service with a healthcheck, start-up
ordered on health, ports on loopback only, secrets only from the untracked env file, and the GPU
override reserving NVIDIA devices.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_images import BY_NAME, DIGEST

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
GPU = ROOT / "deploy" / "compose.gpu.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "customlabels.env.example"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIALS", re.IGNORECASE)
SECRET_VALUE = re.compile(r"://[^/\s:@]+:[^/\s@]+@")  # user:password@ in a URL
GRPC_SERVICES = ("project", "dataset", "training", "serving")
EXPECTED = {*GRPC_SERVICES, "postgres", "minio", "triton", "training-worker", "edge", "console"}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


BASE = load(COMPOSE)
SERVICES: dict[str, dict[str, Any]] = BASE["services"]
OVERRIDE: dict[str, dict[str, Any]] = load(GPU)["services"]


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def env_example() -> dict[str, str]:
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_both_files_validate_against_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
            str(GPU),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_stack_is_there() -> None:
    assert set(SERVICES) >= EXPECTED


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    service = SERVICES[name]
    if one_shot(service):
        return
    test = service.get("healthcheck", {}).get("test")
    assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_grpc_services_are_probed_through_the_health_service(name: str) -> None:
    test = SERVICES[name]["healthcheck"]["test"]
    port = SERVICES[name]["environment"]["CUSTOMLABELS_LISTEN_ADDR"].rsplit(":", 1)[1]
    assert test == ["CMD", "python", "-m", "services.common.healthcheck", f"127.0.0.1:{port}"]


def test_triton_is_ready_only_when_its_ready_endpoint_says_so() -> None:
    assert "/v2/health/ready" in " ".join(SERVICES["triton"]["healthcheck"]["test"])
    assert "--model-control-mode=explicit" in SERVICES["triton"]["command"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_start_up_waits_for_health_not_only_for_start(name: str) -> None:
    depends = SERVICES[name].get("depends_on", {})
    assert isinstance(depends, dict), f"{name}: depends_on as a list only orders start-up"
    for dependency, rule in depends.items():
        wanted = "service_completed_successfully" if one_shot(SERVICES[dependency]) else "service_healthy"
        assert rule.get("condition") == wanted, f"{name} -> {dependency}: condition must be {wanted}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_published_port_binds_loopback(name: str) -> None:
    for port in SERVICES[name].get("ports", []):
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port} is not on 127.0.0.1"


@pytest.mark.parametrize(("name", "service"), [*SERVICES.items(), *OVERRIDE.items()])
def test_no_secret_is_written_in_the_compose_files(name: str, service: dict[str, Any]) -> None:
    for key, value in (service.get("environment") or {}).items():
        assert not SECRET_NAME.search(key), f"{name}: {key} must come from the env file"
        assert not SECRET_VALUE.search(str(value)), f"{name}: {key} carries credentials"


@pytest.mark.parametrize("name", sorted(EXPECTED - {"postgres"}))
def test_services_read_their_secrets_from_the_untracked_env_file(name: str) -> None:
    assert SERVICES[name].get("env_file") == ["customlabels.env"]


def test_the_env_example_holds_only_placeholders_for_secrets() -> None:
    example = env_example()
    # An access key's id is a user name, not a secret.
    secrets = {
        k: v
        for k, v in example.items()
        if (SECRET_NAME.search(k) and not re.search(r"ACCESS_KEY(_ID)?$", k)) or k == "DATABASE_URL"
    }
    assert secrets
    for key, value in secrets.items():
        assert re.search(r"@[A-Z0-9_]+@", value), f"{key} in the example must be a @PLACEHOLDER@"
    # What must agree is generated from one placeholder.
    assert (
        example["DATABASE_URL"] == "postgresql://customlabels:@POSTGRES_PASSWORD@@postgres:5432/customlabels"
    )
    assert example["CUSTOMLABELS_S3_SECRET_KEY"] == example["AWS_SECRET_ACCESS_KEY"]
    assert example["CUSTOMLABELS_S3_ACCESS_KEY"] == example["AWS_ACCESS_KEY_ID"]


def test_every_variable_the_compose_shells_read_is_in_the_env_example() -> None:
    used = set(re.findall(r"\$\$\{?(\w+)", COMPOSE.read_text()))
    assert used, "the one-shot and Postgres' healthcheck read variables"
    assert used <= set(env_example()), sorted(used - set(env_example()))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_built_here_or_pinned_by_digest(name: str) -> None:
    service = SERVICES[name]
    if "build" in service:
        target = service["build"]["target"]
        assert target in BY_NAME, f"{name}: no Dockerfile target {target}"
        assert service["image"] == f"ghcr.io/customlabels/{target}:0.1.0"
    else:
        assert DIGEST.match(service["image"]), f"{name}: {service['image']} is not pinned by digest"


def test_the_training_worker_runs_on_the_training_image() -> None:
    worker = SERVICES["training-worker"]
    assert worker["build"]["target"] == "training-cpu"
    assert worker["command"] == ["python", "-m", "services.training.worker"]


@pytest.mark.parametrize(("name", "target"), [("triton", "triton-gpu"), ("training-worker", "training-cuda")])
def test_the_gpu_override_reserves_nvidia_gpus(name: str, target: str) -> None:
    service = OVERRIDE[name]
    assert service["build"]["target"] == target and target in BY_NAME
    assert service["image"] == f"ghcr.io/customlabels/{target}:0.1.0"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_the_gpu_override_runs_models_and_training_on_the_gpu() -> None:
    assert OVERRIDE["serving"]["environment"]["CUSTOMLABELS_TRITON_DEVICE"] == "gpu"
    assert OVERRIDE["training-worker"]["environment"]["CUSTOMLABELS_TRAINING_DEVICE"] == "cuda"
    assert set(OVERRIDE) <= set(SERVICES), "the override only changes services the base defines"
