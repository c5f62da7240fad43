"""The Kubernetes launcher of distributed training: an Indexed Job of N torchrun pods per attempt.

Plain HTTPS to the API server with the pod's service-account token (re-read for every request, as
bound tokens rotate) and CA; no client library. For attempt `n` of queue job `id` the claimer creates

- Job `cl-train-<id>-<n>`: completionMode Indexed, completions = parallelism = N, backoffLimit 0 (a
  failed or evicted pod fails the Job, and the queue retries the attempt), activeDeadlineSeconds
  from the training budget, ttlSecondsAfterFinished, labels `customlabels.io/training-job: <id>`,
  owned by the claimer's pod when it knows it (CUSTOMLABELS_POD_NAME / CUSTOMLABELS_POD_UID from the
  downward API), so a deleted claimer takes its ranks with it. Each pod runs
  `python -m torch.distributed.run --nnodes=N --nproc_per_node=1 --node_rank=$(JOB_COMPLETION_INDEX)
  --master_addr=<job>-0.<service> --master_port=29500 -m services.training.ddp --job <prefix>`;
- a headless Service of the same name (publishNotReadyAddresses, owned by the Job) that gives pod 0 its
  DNS name for the rendezvous.

The pods copy the claimer's own container (image, env, envFrom, resources, securityContext, volume
mounts of emptyDirs) and its pod's nodeSelector, tolerations, securityContext and imagePullSecrets, so
the overlay that sets up the worker (CPU or GPU nodes) sets up its ranks too;
CUSTOMLABELS_TRAINING_KUBE_IMAGE and CUSTOMLABELS_TRAINING_KUBE_RESOURCES (JSON) override. The claimer
polls the Job every CUSTOMLABELS_TRAINING_RANK_POLL_S: Complete → the fit goes on; Failed, a failed
pod, or the Job gone (deleted by hand, its node drained) → the attempt fails with the pods' reasons.
Before launching, every Job and Service labelled with the job id is deleted: what a claimer that died
left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.config import ConfigError, env_number
from services.common.jobs import JobRow
from services.training.distributed import Outcome

log = logging.getLogger("customlabels.training.kube")

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
JOB_LABEL = "customlabels.io/training-job"
# part-of: the namespace's egress policies (DNS, Postgres, the object store) apply to the ranks too;
# component: k8s/components/distributed-training lets rank pods reach each other on any port.
COMPONENT_LABELS = {
    "app.kubernetes.io/part-of": "customlabels",
    "app.kubernetes.io/component": "training-rank",
}
RENDEZVOUS_PORT = 29500
DEFAULT_RESOURCES = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "12Gi"}}
SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class KubeError(RuntimeError):
    """The API server refused a request (or could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class KubeSettings:
    """Where the API server is and what the rank pods look like (module doc; README lists the names)."""

    api: str
    namespace: str
    token_file: str | None
    ca_file: str | None
    image: str | None
    resources: dict[str, Any] | None
    pod_name: str | None
    pod_uid: str | None
    container: str
    ttl_s: int
    env_from: tuple[tuple[str, str], ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KubeSettings:
        """In-cluster defaults (KUBERNETES_SERVICE_HOST, the service-account files), each overridable."""
        api = env.get("CUSTOMLABELS_TRAINING_KUBE_API", "").strip()
        if not api:
            host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ConfigError(
                    "CUSTOMLABELS_TRAINING_LAUNCHER=kubernetes needs KUBERNETES_SERVICE_HOST"
                    " (in a pod) or CUSTOMLABELS_TRAINING_KUBE_API"
                )
            api = f"https://{host}:{port}"
        namespace = env.get("CUSTOMLABELS_TRAINING_KUBE_NAMESPACE", "").strip()
        if not namespace:
            try:
                with open(f"{SA_DIR}/namespace") as fh:
                    namespace = fh.read().strip()
            except OSError:
                raise ConfigError("CUSTOMLABELS_TRAINING_KUBE_NAMESPACE is required outside a pod") from None
        resources = env.get("CUSTOMLABELS_TRAINING_KUBE_RESOURCES", "").strip()
        env_from = []
        for item in filter(None, env.get("CUSTOMLABELS_TRAINING_KUBE_ENV_FROM", "").split(",")):
            kind, _, name = item.strip().partition("/")
            if kind not in ("configmap", "secret") or not name:
                raise ConfigError(
                    "CUSTOMLABELS_TRAINING_KUBE_ENV_FROM items are configmap/NAME or secret/NAME"
                )
            env_from.append((kind, name))
        return cls(
            api=api.rstrip("/"),
            namespace=namespace,
            token_file=env.get("CUSTOMLABELS_TRAINING_KUBE_TOKEN_FILE", f"{SA_DIR}/token") or None,
            ca_file=env.get("CUSTOMLABELS_TRAINING_KUBE_CA_FILE", f"{SA_DIR}/ca.crt") or None,
            image=env.get("CUSTOMLABELS_TRAINING_KUBE_IMAGE", "").strip() or None,
            resources=json.loads(resources) if resources else None,
            pod_name=env.get("CUSTOMLABELS_POD_NAME", "").strip() or None,
            pod_uid=env.get("CUSTOMLABELS_POD_UID", "").strip() or None,
            container=env.get("CUSTOMLABELS_TRAINING_KUBE_CONTAINER", "worker"),
            ttl_s=int(env_number(env, "CUSTOMLABELS_TRAINING_KUBE_TTL_S", 3600)),
            env_from=tuple(env_from),
        )


class KubeClient:
    """JSON over HTTPS to the API server, authenticated with the service-account token."""

    def __init__(self, settings: KubeSettings, timeout_s: float = 15.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._ssl: ssl.SSLContext | None = None
        if settings.api.startswith("https:"):
            self._ssl = ssl.create_default_context(
                cafile=settings.ca_file if settings.ca_file and os.path.exists(settings.ca_file) else None
            )

    def request(
        self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None
    ) -> Any:
        """The decoded JSON answer; KubeError with the status on any refusal."""
        url = self.settings.api + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ssl) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("message", detail)
            raise KubeError(exc.code, detail[:300]) from None
        except OSError as exc:
            raise KubeError(0, f"cannot reach the Kubernetes API: {exc}") from None
        return json.loads(raw) if raw else {}

    def _token(self) -> str:
        path = self.settings.token_file
        if not path or not os.path.exists(path):
            return ""
        with open(path) as fh:
            return fh.read().strip()

    def ns(self, group: str, resource: str, name: str = "") -> str:
        """The path of a namespaced resource: group "" is the core API."""
        base = "/api/v1" if not group else f"/apis/{group}"
        return f"{base}/namespaces/{self.settings.namespace}/{resource}" + (f"/{name}" if name else "")

    def delete(self, group: str, resource: str, name: str) -> None:
        """Deletes with background propagation (a Job's pods go too); a missing object is fine."""
        try:
            self.request("DELETE", self.ns(group, resource, name), {"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status != 404:
                raise


class KubeGroup:
    """The ranks of one attempt: a Job and its Service."""

    def __init__(self, client: KubeClient, name: str, world: int, api_patience_s: float = 120.0) -> None:
        self.client = client
        self.name = name
        self.world = world
        self.api_patience_s = api_patience_s
        self._unreachable_since: float | None = None
        self._ended = False

    def poll(self) -> Outcome | None:
        """See RankGroup: the Job's conditions and failed pods; a vanished Job is a failure."""
        try:
            job = self.client.request("GET", self.client.ns("batch/v1", "jobs", self.name))
        except KubeError as exc:
            if exc.status == 404:
                return Outcome(False, f"the Kubernetes Job {self.name} was deleted")
            # The API server restarting must not fail a training; a long outage must not hang it.
            now = time.monotonic()
            self._unreachable_since = self._unreachable_since or now
            if now - self._unreachable_since >= self.api_patience_s:
                return Outcome(False, f"the Kubernetes API did not answer ({exc})")
            log.warning("polling the rank Job failed", extra={"job": self.name, "error": str(exc)})
            return None
        self._unreachable_since = None
        status = job.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in conditions and int(status.get("succeeded") or 0) >= self.world:
            return Outcome(True)
        failed = conditions.get("Failed") or conditions.get("FailureTarget")
        if failed or int(status.get("failed") or 0) > 0:
            why = f"{failed.get('reason', '')}: {failed.get('message', '')}".strip(": ") if failed else ""
            pods = self._failed_pods()
            parts = [p for p in (why, pods) if p]
            return Outcome(
                False,
                f"the Kubernetes Job {self.name} failed" + (f" ({'; '.join(parts)})" if parts else ""),
            )
        return None

    def _failed_pods(self) -> str:
        try:
            pods = self.client.request(
                "GET", self.client.ns("", "pods"), query={"labelSelector": f"job-name={self.name}"}
            )
        except KubeError:
            return ""
        out = []
        for pod in pods.get("items") or []:
            status = pod.get("status") or {}
            if status.get("phase") != "Failed":
                continue
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            rank = annotations.get("batch.kubernetes.io/job-completion-index", "?")
            reason = status.get("reason") or ""
            for cs in status.get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated") or {}
                if term:
                    reason = f"{term.get('reason') or reason or 'Error'}, exit code {term.get('exitCode')}"
            out.append(f"rank {rank}: {reason or 'failed'}")
        return "; ".join(sorted(out))

    def abort(self) -> None:
        """See RankGroup: deletes the Job (its pods) and the Service."""
        if self._ended:
            return
        self._ended = True
        for group, resource in (("batch/v1", "jobs"), ("", "services")):
            try:
                self.client.delete(group, resource, self.name)
            except KubeError as exc:
                # ttlSecondsAfterFinished and the owner references clean up what this could not.
                log.warning("could not delete a rank object", extra={"object": self.name, "error": str(exc)})

    def finished(self) -> None:
        """See RankGroup: a finished Job is deleted at once (the TTL only backs this up)."""
        self.abort()


class KubernetesLauncher:
    """Launcher of ranks as a Kubernetes Indexed Job (module doc)."""

    def __init__(
        self, settings: KubeSettings, client: KubeClient | None = None, poll_patience_s: float = 120.0
    ) -> None:
        self.settings = settings
        self.client = client or KubeClient(settings)
        self.poll_patience_s = poll_patience_s

    def cleanup(self, job_id: int) -> None:
        """Deletes every Job and Service of `job_id` (labelled): what a claimer that died left running."""
        selector = {"labelSelector": f"{JOB_LABEL}={job_id}"}
        for group, resource in (("batch/v1", "jobs"), ("", "services")):
            found = self.client.request("GET", self.client.ns(group, resource), query=selector)
            for item in found.get("items") or []:
                name = item["metadata"]["name"]
                log.warning("deleting what an earlier claim left", extra={"kind": resource, "object": name})
                self.client.delete(group, resource, name)

    def launch(self, job: JobRow, prefix: str, world: int, deadline_s: float) -> KubeGroup:
        """Creates the Job, then its headless Service (owned by the Job)."""
        name = f"cl-train-{job.id}-{job.attempts}"
        pod = self._own_pod()
        created = self.client.request(
            "POST", self.client.ns("batch/v1", "jobs"), self.job(job, name, prefix, world, deadline_s, pod)
        )
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": created["metadata"]["uid"],
            "blockOwnerDeletion": False,
        }
        self.client.request("POST", self.client.ns("", "services"), self.service(job, name, owner))
        log.info("rank Job created", extra={"job_id": job.id, "object": name, "world_size": world})
        return KubeGroup(self.client, name, world, self.poll_patience_s)

    def _own_pod(self) -> dict[str, Any] | None:
        if not self.settings.pod_name:
            return None
        try:
            return self.client.request("GET", self.client.ns("", "pods", self.settings.pod_name))
        except KubeError as exc:
            log.warning("cannot read the worker's own pod; ranks use the defaults", extra={"error": str(exc)})
            return None

    def labels(self, job: JobRow) -> dict[str, str]:
        """The labels of everything made for `job` (cleanup selects on JOB_LABEL)."""
        return {**COMPONENT_LABELS, JOB_LABEL: str(job.id)}

    def service(self, job: JobRow, name: str, owner: dict[str, Any]) -> dict[str, Any]:
        """The headless Service that gives rank 0's pod a DNS name before it is ready."""
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": self.labels(job), "ownerReferences": [owner]},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {"job-name": name},
                "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
            },
        }

    def job(
        self, job: JobRow, name: str, prefix: str, world: int, deadline_s: float, pod: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The Indexed Job of `world` torchrun pods (module doc)."""
        spec = (pod or {}).get("spec") or {}
        mine = next(
            (c for c in spec.get("containers") or [] if c.get("name") == self.settings.container),
            (spec.get("containers") or [{}])[0],
        )
        image = self.settings.image or mine.get("image")
        if not image:
            raise ConfigError("CUSTOMLABELS_TRAINING_KUBE_IMAGE is required when the worker's pod is unknown")
        env = [e for e in mine.get("env") or [] if not e.get("name", "").startswith(("CUSTOMLABELS_POD_",))]
        env = [e for e in env if e.get("name") not in ("CUSTOMLABELS_TRAINING_WORKER_MODE", "HOME")]
        env.append({"name": "HOME", "value": "/tmp"})
        env_from = list(mine.get("envFrom") or [])
        for kind, ref in self.settings.env_from:
            key = "configMapRef" if kind == "configmap" else "secretRef"
            env_from.append({key: {"name": ref}})
        volumes = [
            {"name": "tmp", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        ]
        container = {
            "name": "rank",
            "image": image,
            "imagePullPolicy": mine.get("imagePullPolicy", "IfNotPresent"),
            "command": [
                "python",
                "-m",
                "torch.distributed.run",
                f"--nnodes={world}",
                "--nproc_per_node=1",
                "--node_rank=$(JOB_COMPLETION_INDEX)",
                f"--master_addr={name}-0.{name}",
                f"--master_port={RENDEZVOUS_PORT}",
                "--max_restarts=0",
                "-m",
                "services.training.ddp",
                "--job",
                prefix,
            ],
            "env": env,
            "envFrom": env_from,
            "ports": [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}],
            "resources": self.settings.resources or mine.get("resources") or DEFAULT_RESOURCES,
            "securityContext": mine.get("securityContext") or SECURITY_CONTEXT,
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
        }
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "subdomain": name,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": spec.get("securityContext")
            or {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
            "containers": [container],
            "volumes": volumes,
        }
        for key in ("nodeSelector", "tolerations", "imagePullSecrets", "priorityClassName"):
            if spec.get(key):
                pod_spec[key] = spec[key]
        metadata: dict[str, Any] = {"name": name, "labels": self.labels(job)}
        uid = ((pod or {}).get("metadata") or {}).get("uid") or self.settings.pod_uid
        if pod is not None and uid:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.settings.pod_name,
                    "uid": uid,
                    "blockOwnerDeletion": False,
                }
            ]
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": {
                "completionMode": "Indexed",
                "completions": world,
                "parallelism": world,
                "backoffLimit": 0,
                "activeDeadlineSeconds": max(60, int(deadline_s)),
                "ttlSecondsAfterFinished": self.settings.ttl_s,
                "template": {"metadata": {"labels": self.labels(job)}, "spec": pod_spec},
            },
        }
