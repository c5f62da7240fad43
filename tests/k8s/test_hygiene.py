"""The production rules every rendered workload must follow (README, "Deployment"), on every overlay
and component as `make k8s-check` renders them: a new Deployment, Job or ScaledJob that forgets a
securityContext, limits, a probe, its PodDisruptionBudget or autoscaler fails here. The last tests
prove the validator behind `make k8s-check` rejects bad objects."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator

import pytest

from scripts import k8s_check

HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
OUR_IMAGES = re.compile(
    r"^ghcr\.io/customlabels/(api|training-cpu|training-cuda|triton-cpu|triton-gpu):[\w.-]+$"
)
SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIALS|DATABASE_URL)", re.IGNORECASE)
EXPOSED_APPS = {"edge", "console"}
# Pods that the operators manage (their own namespaces reach them) and Triton's metrics port.
OPERATOR_POD_LABELS = {"cnpg.io/cluster", "v1.min.io/tenant"}
METRICS_PORTS = {8002}


@pytest.fixture(scope="module")
def renders() -> list[k8s_check.Render]:
    """Every overlay and component, rendered once for the module."""
    rendered = k8s_check.render_all()
    assert not [r.errors for r in rendered if r.errors], "kustomize failed"
    return rendered


def pod_templates(obj: dict) -> Iterator[dict]:
    """The pod template(s) of a workload object."""
    kind, spec = obj.get("kind"), obj.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield spec["template"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]
    elif kind == "ScaledJob":
        yield spec["jobTargetRef"]["template"]


def workloads(renders: list[k8s_check.Render]) -> Iterator[tuple[str, dict, dict]]:
    """(render name, object, pod template) for every workload of every render."""
    for render in renders:
        for obj in render.objects:
            for template in pod_templates(obj):
                yield render.name, obj, template


def containers(template: dict) -> Iterator[dict]:
    """Init containers and containers of a pod template."""
    yield from template["spec"].get("initContainers", [])
    yield from template["spec"]["containers"]


def where(render: str, obj: dict, container: dict | None = None) -> str:
    """A readable location for assertion messages."""
    return f"{render}: {k8s_check.label(obj)}" + (f" container {container['name']}" if container else "")


def test_every_render_is_valid(renders: list[k8s_check.Render]) -> None:
    for render in renders:
        assert k8s_check.validate_objects(render.objects) == [], render.name


def test_every_overlay_and_component_is_rendered(renders: list[k8s_check.Render]) -> None:
    names = {r.name for r in renders}
    assert {"overlays/cpu", "overlays/gpu"} <= names
    for component in k8s_check.components():
        assert f"{k8s_check.BASE_OVERLAY}+components/{component}" in names
    assert {"cloudnative-pg", "minio-tenant"} <= set(k8s_check.components())


def test_every_container_is_hardened(renders: list[k8s_check.Render]) -> None:
    for render, obj, template in workloads(renders):
        for c in containers(template):
            security = c.get("securityContext", {})
            for key, value in HARDENED.items():
                assert security.get(key) == value, f"{where(render, obj, c)}: securityContext.{key}"


def test_no_pod_mounts_a_token_unless_it_needs_the_api(renders: list[k8s_check.Render]) -> None:
    for render, obj, template in workloads(renders):
        needs_api = template["metadata"].get("labels", {}).get("customlabels.io/kubernetes-api") == "true"
        if not needs_api:
            assert template["spec"].get("automountServiceAccountToken") is False, where(render, obj)


def test_every_container_has_requests_and_limits(renders: list[k8s_check.Render]) -> None:
    for render, obj, template in workloads(renders):
        for c in containers(template):
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(part, {}), f"{where(render, obj, c)}: {part}.{resource}"


def test_long_running_containers_have_probes(renders: list[k8s_check.Render]) -> None:
    for render, obj, template in workloads(renders):
        if obj["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        spec = template["spec"]
        sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
        for c in spec["containers"] + sidecars:
            assert "livenessProbe" in c, f"{where(render, obj, c)}: no liveness probe"
            if c.get("ports"):
                assert "readinessProbe" in c, (
                    f"{where(render, obj, c)}: serves a port without readiness probe"
                )
            if any(p["containerPort"] == 50051 for p in c.get("ports", [])):
                for probe in ("readinessProbe", "livenessProbe"):
                    assert c[probe].get("grpc") == {"port": 50051}, (
                        f"{where(render, obj, c)}: {probe} not gRPC"
                    )


def test_triton_runs_beside_every_serving_container(renders: list[k8s_check.Render]) -> None:
    for render in renders:
        serving = next(o for o in render.objects if k8s_check.label(o) == "Deployment/serving")
        spec = serving["spec"]["template"]["spec"]
        triton = next(c for c in spec["initContainers"] if c["name"] == "triton")
        assert triton["restartPolicy"] == "Always"
        assert "--model-control-mode=explicit" in triton["args"]
        assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert "startupProbe" in triton
        assert {"name": "metrics", "containerPort": 8002} in triton["ports"]
        env = {e["name"]: e for e in triton["env"]}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
        gpu = render.name.startswith(("overlays/gpu", "gpu+"))
        assert triton["image"].startswith(
            "ghcr.io/customlabels/triton-gpu" if gpu else "ghcr.io/customlabels/triton-cpu"
        )
        assert ("nvidia.com/gpu" in triton["resources"]["limits"]) == gpu
        config = next(o for o in render.objects if k8s_check.label(o) == "ConfigMap/customlabels")
        assert config["data"]["CUSTOMLABELS_TRITON_DEVICE"] == ("gpu" if gpu else "cpu")
        assert config["data"]["CUSTOMLABELS_TRITON_GRPC_ADDR"] == "127.0.0.1:8001"


def test_images_are_ours_or_pinned(renders: list[k8s_check.Render]) -> None:
    for render, obj, template in workloads(renders):
        for c in containers(template):
            image = c["image"]
            pinned = "@sha256:" in image or (
                ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            )
            assert OUR_IMAGES.match(image) or pinned, f"{where(render, obj, c)}: image {image}"
    for render in renders:
        for obj in render.objects:
            if obj["kind"] == "Tenant":
                assert re.search(r":RELEASE\.[\dT-]+Z", obj["spec"]["image"]), obj["spec"]["image"]


def test_no_secret_values_in_manifests(renders: list[k8s_check.Render]) -> None:
    for render in renders:
        assert not [o for o in render.objects if o["kind"] == "Secret"], render.name
        assert "change-me" not in repr(render.objects).lower(), render.name
    for render, obj, template in workloads(renders):
        for c in containers(template):
            for env in c.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env, f"{where(render, obj, c)}: {env['name']} is a literal"


def selects(selector: dict, labels: dict) -> bool:
    """Whether a matchLabels selector picks pods with `labels`."""
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_every_deployment_has_a_pdb_and_every_service_an_hpa(renders: list[k8s_check.Render]) -> None:
    for render in renders:
        pdbs = [o for o in render.objects if o["kind"] == "PodDisruptionBudget"]
        hpas = {
            o["spec"]["scaleTargetRef"]["name"]
            for o in render.objects
            if o["kind"] == "HorizontalPodAutoscaler"
        }
        for obj in render.objects:
            if obj["kind"] != "Deployment":
                continue
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert any(selects(p["spec"]["selector"], labels) for p in pdbs), (
                f"{render.name}: {k8s_check.label(obj)} PDB"
            )
            serves = any(c.get("ports") for c in obj["spec"]["template"]["spec"]["containers"])
            if serves:
                assert obj["metadata"]["name"] in hpas, f"{render.name}: {k8s_check.label(obj)} has no HPA"
                assert "replicas" not in obj["spec"], f"{render.name}: {k8s_check.label(obj)} fights its HPA"
                assert obj["spec"]["template"]["spec"].get("topologySpreadConstraints"), k8s_check.label(obj)
    assert {"project", "dataset", "training", "serving", "edge", "console"} <= hpas


def test_grpc_services_have_headless_twins(renders: list[k8s_check.Render]) -> None:
    for render in renders:
        services = {o["metadata"]["name"]: o for o in render.objects if o["kind"] == "Service"}
        config = next(o for o in render.objects if k8s_check.label(o) == "ConfigMap/customlabels")
        namespace = config["metadata"]["namespace"]
        for name in ("project", "dataset", "training", "serving"):
            assert services[f"{name}-headless"]["spec"]["clusterIP"] == "None"
            assert services[name]["spec"].get("clusterIP") != "None"
            addr = config["data"][f"CUSTOMLABELS_{name.upper()}_ADDR"]
            assert addr == f"dns:///{name}-headless.{namespace}.svc.cluster.local:50051"


def test_grace_period_covers_the_shutdown_grace(renders: list[k8s_check.Render]) -> None:
    for render in renders:
        config = next(o for o in render.objects if k8s_check.label(o) == "ConfigMap/customlabels")
        grace = float(config["data"]["CUSTOMLABELS_SHUTDOWN_GRACE_S"])
        for _, obj, template in workloads([render]):
            assert template["spec"].get("terminationGracePeriodSeconds", 30) > grace, where(render.name, obj)


def test_only_edge_and_console_are_reachable_from_outside(renders: list[k8s_check.Render]) -> None:
    for render in renders:
        policies = [o for o in render.objects if o["kind"] == "NetworkPolicy"]
        assert any(
            p["spec"]["podSelector"] == {}
            and p["spec"]["policyTypes"] == ["Ingress"]
            and not p["spec"].get("ingress")
            for p in policies
        ), f"{render.name}: no default deny"
        for policy in policies:
            selected = policy["spec"]["podSelector"].get("matchLabels", {})
            for rule in policy["spec"].get("ingress", []):
                sources = rule.get("from")
                external = not sources or any("namespaceSelector" in s or "ipBlock" in s for s in sources)
                if not external or selected.get("app") in EXPOSED_APPS:
                    continue
                ports = {p.get("port") for p in rule.get("ports", [])}
                scoped = bool(sources) and all("namespaceSelector" in s for s in sources)
                operator_pods = bool(OPERATOR_POD_LABELS & set(selected))
                assert scoped and (ports <= METRICS_PORTS or operator_pods), (
                    f"{render.name}: NetworkPolicy/{policy['metadata']['name']} opens {selected} to other namespaces"
                )


def test_gpu_overlay_schedules_gpu_work_on_gpu_nodes(renders: list[k8s_check.Render]) -> None:
    gpu = next(r for r in renders if r.name == "overlays/gpu")
    for name in ("serving", "training-worker"):
        obj = next(o for o in gpu.objects if k8s_check.label(o) == f"Deployment/{name}")
        spec = obj["spec"]["template"]["spec"]
        assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    worker = next(o for o in gpu.objects if k8s_check.label(o) == "Deployment/training-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("ghcr.io/customlabels/training-cuda:")
    assert {"name": "CUSTOMLABELS_TRAINING_DEVICE", "value": "cuda"} in container["env"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_training_jobs_run_where_and_as_the_workers_would(renders: list[k8s_check.Render]) -> None:
    """With every component on the GPU overlay, KEDA's Jobs are GPU workers with the operators' URLs
    and the launcher's service account (the ScaledJob copies the worker Deployment)."""
    everything = next(r for r in renders if r.name == "gpu+all components").objects
    job = next(o for o in everything if o["kind"] == "ScaledJob")["spec"]["jobTargetRef"]["template"]
    spec, container = job["spec"], job["spec"]["containers"][0]
    assert container["image"].startswith("ghcr.io/customlabels/training-cuda:")
    assert container["command"][-1] == "--once"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert spec["restartPolicy"] == "Never"
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"].endswith("-app")
    assert env["CUSTOMLABELS_TRAINING_LAUNCHER"]["value"] == "kubernetes"
    assert spec["serviceAccountName"] == "training-launcher"
    assert job["metadata"]["labels"]["customlabels.io/kubernetes-api"] == "true"
    worker = next(o for o in everything if k8s_check.label(o) == "Deployment/training-worker")
    assert worker["spec"]["replicas"] == 0


def test_components_wire_the_operators_outputs(renders: list[k8s_check.Render]) -> None:
    by_name = {r.name: r for r in renders}
    cnpg = by_name["cpu+components/cloudnative-pg"].objects
    cluster = next(o for o in cnpg if o["kind"] == "Cluster")
    assert cluster["spec"]["instances"] == 3
    secret = f"{cluster['metadata']['name']}-app"
    training = next(o for o in cnpg if k8s_check.label(o) == "Deployment/training")
    env = {e["name"]: e for e in training["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "uri"}
    minio = by_name["cpu+components/minio-tenant"].objects
    config = next(o for o in minio if k8s_check.label(o) == "ConfigMap/customlabels")
    assert config["data"]["CUSTOMLABELS_S3_ENDPOINT"] == "http://minio:80"
    assert not [o for r in renders for o in r.objects if o["kind"] == "StatefulSet"]


# The validator bites: objects built here, broken on purpose.


@pytest.fixture(scope="module")
def deployment(renders: list[k8s_check.Render]) -> dict:
    """A valid rendered Deployment to break."""
    return next(o for o in renders[0].objects if k8s_check.label(o) == "Deployment/project")


def test_validator_rejects_an_unknown_field(deployment: dict) -> None:
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    assert any("securityContxt" in e for e in k8s_check.validate_objects([bad]))


def test_validator_rejects_a_wrong_type(deployment: dict) -> None:
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "thirty"
    assert k8s_check.validate_objects([bad])


def test_validator_rejects_bad_custom_resources(renders: list[k8s_check.Render]) -> None:
    by_name = {r.name: r for r in renders}
    cluster = next(o for o in by_name["cpu+components/cloudnative-pg"].objects if o["kind"] == "Cluster")
    unknown = copy.deepcopy(cluster)
    unknown["spec"]["storage"]["sise"] = "1Gi"
    wrong = copy.deepcopy(cluster)
    wrong["spec"]["instances"] = "three"
    tenant = next(o for o in by_name["cpu+components/minio-tenant"].objects if o["kind"] == "Tenant")
    bad_tenant = copy.deepcopy(tenant)
    bad_tenant["spec"]["pools"][0]["containerSecurityContext"]["runAsUsr"] = 1
    scaled_job = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": "x"},
        "spec": {
            "jobTargetRef": {
                "template": {"spec": {"containers": [{"name": "w", "image": "w", "comand": []}]}}
            },
            "triggers": [{"type": "postgresql", "metadata": {}}],
        },
    }
    assert any("sise" in e for e in k8s_check.validate_objects([unknown]))
    assert any("instances" in e for e in k8s_check.validate_objects([wrong]))
    assert any("runAsUsr" in e for e in k8s_check.validate_objects([bad_tenant]))
    assert any("comand" in e for e in k8s_check.validate_objects([scaled_job]))


def test_validator_fails_unknown_kinds_and_secrets() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    assert any("no schema" in e for e in k8s_check.validate_objects([unknown]))
    assert any("Secret in the render" in e for e in k8s_check.validate_objects([secret]))
