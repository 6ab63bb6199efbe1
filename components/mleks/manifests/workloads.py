"""Pieces shared by the workloads: training jobs, inference services and notebooks.

All plain functions and models: field types for names, namespaces and
environment variables; image choice (a DLC through the catalog, or any image
by reference); GPU placement, resources and ``/dev/shm``; pod and container
security contexts; the objects of a long-running server (labels, metadata,
Service, container, pod); namespaces with Pod Security labels; and the
annotations that tell ``pulumi up`` how long to wait.  What a node can give
pods is in :mod:`mleks.manifests.node_capacity`, S3 access in
:mod:`mleks.infra.s3_access`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, model_validator

from mleks.catalogs import dlc as dlc_catalog
from mleks.catalogs.dlc import OWN_IMAGE_ADVICE
from mleks.catalogs.gpu import EFA_RESOURCE, NVIDIA_GPU_RESOURCE, InstanceType
from mleks.catalogs.node_daemonsets import DaemonSetLoad
from mleks.errors import ConfigError, ConfigWarning
from mleks.manifests.k8s_objects import KubeObject
from mleks.manifests.node_capacity import SERVING, share_requests
from mleks.manifests.quantity import cpu_text, memory_text, parse_quantity
from mleks.validation.schema import Model, VersionText
from mleks.vocabulary import GPU_TOLERATION, ROLE_LABEL

# DNS-1035 label (a Service name must be one), kept short so that derived
# names (``<name>-token``, ``<name>-internal``, IAM role names) stay in limits.
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "mleks"}

# Annotations the Pulumi Kubernetes provider reads to decide how long to wait
# for a resource to become ready, or whether to wait at all.
TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds"
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"


def check_name(value: str) -> str:
    """A workload name: a DNS-1035 label of at most 30 characters."""
    if not _NAME.match(value):
        raise ConfigError("", value, "1-30 lowercase letters, digits and dashes, starting with a letter and not ending with a dash", "not a valid name")
    return value


def check_namespace(value: str) -> str:
    """A namespace name (DNS-1123 label), not one of the system namespaces."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ConfigError("", value, "a DNS label: lowercase letters, digits and dashes, at most 63", "not a namespace name")
    if value in ("kube-system", "kube-public", "kube-node-lease"):
        raise ConfigError("", value, "a namespace of your own, e.g. serving or notebooks", "a system namespace")
    return value


def check_env(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not _ENV_NAME.match(key):
            raise ConfigError(f"{key}", key, "an environment variable name such as HF_HOME", "not a valid name")
    return value


WorkloadName = Annotated[str, AfterValidator(check_name)]
"""A config field holding a workload name (see :func:`check_name`)."""

WorkloadNamespace = Annotated[str, AfterValidator(check_namespace)]
"""A config field holding a workload's namespace (see :func:`check_namespace`)."""

EnvVars = Annotated[dict[str, str], AfterValidator(check_env)]
"""A config field holding plain environment variables (see :func:`check_env`)."""


def check_shared_memory(shared_memory: str, memory: str | None) -> None:
    """``/dev/shm`` is memory-backed and counts against the pod's memory limit, so it must be smaller."""
    if memory is not None and parse_quantity(shared_memory) >= parse_quantity(memory):
        raise ConfigError("sharedMemory", shared_memory, f"less than memory ({memory}); /dev/shm counts against it", "as large as the memory limit")


# -- images -------------------------------------------------------------------


class DlcImageArgs(Model):
    """An AWS Deep Learning Container, resolved for the region and the node group's GPUs."""

    framework: str = "pytorch"
    """``pytorch`` or ``tensorflow``.  Default: pytorch."""

    version: VersionText
    """Framework version, ``X.Y`` (newest patch) or ``X.Y.Z``.  No PyTorch *inference* DLC is newer than 2.6."""

    python: VersionText | None = None
    """Python selector such as ``py312`` or ``3.12``.  Default: any."""

    cuda: VersionText | None = None
    """CUDA selector such as ``cu124`` or ``12.4``.  Default: any."""


class ImageArgs(Model):
    """The container image: exactly one of ``uri`` or ``dlc``."""

    uri: str | None = None
    """Any image reference: vLLM, Triton, your own build.  Pin a tag or digest."""

    dlc: DlcImageArgs | None = None
    """An AWS Deep Learning Container, resolved through the DLC catalog."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageArgs:
        if (self.uri is None) == (self.dlc is None):
            raise ConfigError(
                "",
                {"uri": self.uri, "dlc": self.dlc.model_dump(exclude_none=True) if self.dlc else None},
                "exactly one of uri (any image, e.g. vllm/vllm-openai:v0.11.0) or dlc ({framework, version})",
                "both given" if self.uri else "neither given",
            )
        return self


_DLC_KEYS = {"version": "version", "python": "python", "cuda": "cuda", "framework": "framework"}


@dataclass(frozen=True)
class PytorchInferenceFacts:
    newest_version: str
    end_of_patch: str | None


def pytorch_inference_facts() -> PytorchInferenceFacts:
    """The newest PyTorch inference DLC for EKS in the catalog, and its end of patch."""
    newest = dlc_catalog.latest_version("pytorch", job_type="inference")
    eops = [i.end_of_patch for i in dlc_catalog.images() if i.repository == "pytorch-inference" and i.version == newest and i.end_of_patch]
    return PytorchInferenceFacts(newest, str(max(eops)) if eops else None)


def pytorch_inference_note() -> str:
    facts = pytorch_inference_facts()
    eop = f", and its end of patch ({facts.end_of_patch}) has passed" if facts.end_of_patch else ""
    return (
        f"no PyTorch inference DLC is newer than {facts.newest_version}{eop}; for a current PyTorch, set image.uri to a"
        " server image you trust (vllm/vllm-openai, nvcr.io/nvidia/tritonserver, or your own build)"
    )


def resolve_image(
    image: ImageArgs,
    *,
    region: str,
    job_type: str,
    instance_types: list[InstanceType],
) -> dlc_catalog.ResolvedImage:
    """The image to run; errors are keyed ``image.uri`` or ``image.dlc.<key>``."""
    if image.uri is not None:
        try:
            # framework/version are ignored when image_override is given.
            resolved = dlc_catalog.resolve_dlc_image("pytorch", "", region=region, image_override=image.uri)
        except ConfigError as err:
            raise ConfigError("image.uri", err.value, err.accepted, err.problem) from None
        return dataclasses.replace(resolved, warnings=tuple(w.rekeyed("image.uri") for w in resolved.warnings))
    assert image.dlc is not None
    dlc = image.dlc
    gpu = any(t.is_nvidia_gpu for t in instance_types)
    try:
        resolved = dlc_catalog.resolve_dlc_image(
            dlc.framework,
            dlc.version,
            region=region,
            accelerator="gpu" if gpu else "cpu",
            python=dlc.python,
            cuda=dlc.cuda,
            job_type=job_type,
            instance_types=instance_types,
        )
    except ConfigError as err:
        key = _dlc_key(err.key)
        accepted = err.accepted
        if dlc.framework == "pytorch" and job_type == "inference":
            accepted = f"{accepted}. Note: {pytorch_inference_note()}"
        else:
            accepted = f"{accepted}; or set image.uri to any image you trust"
        raise ConfigError(key, err.value, accepted, err.problem) from None
    warnings = (ConfigWarning(_dlc_key(w.key), w.value, w.message.replace(OWN_IMAGE_ADVICE, f"{OWN_IMAGE_ADVICE} (image.uri)")) for w in resolved.warnings)
    return dataclasses.replace(resolved, warnings=tuple(warnings))


def _dlc_key(catalog_key: str) -> str:
    """The user's key for a key of :func:`dlc_catalog.resolve_dlc_image`."""
    return f"image.dlc.{_DLC_KEYS[catalog_key]}" if catalog_key in _DLC_KEYS else "image.dlc"


# -- GPU placement and requests ----------------------------------------------------


def placement(selector: dict[str, str], gpus: int) -> dict[str, Any]:
    """nodeSelector and tolerations for a pod of ``gpus`` GPUs on the group ``selector`` picks.

    ``selector`` is a group's :attr:`~mleks.gpu_node_group.GpuNodeGroupArgs.selector`: its
    role and the ``mleks.io/node-group`` label only its nodes carry.  nodeSelector (not
    affinity) because Escalator counts a pod towards the group whose label the pod selects
    by nodeSelector or required affinity only; the toleration is for the ``nvidia.com/gpu``
    taint every GPU node carries.  A pod without GPUs goes to the untainted system nodes.
    """
    if gpus == 0:
        return {"nodeSelector": {ROLE_LABEL: "system"}}
    return {"nodeSelector": dict(selector), "tolerations": [dict(GPU_TOLERATION)]}


def proportional_requests(instance: InstanceType, gpus: int, daemonsets: DaemonSetLoad) -> tuple[str, str]:
    """Default CPU and memory requests of a long-running pod with ``gpus`` of ``instance``'s
    GPUs: 75% of their share of what a node can give pods (see :mod:`mleks.manifests.node_capacity`)."""
    cpu, memory = share_requests(instance, gpus, SERVING, daemonsets)
    return cpu_text(cpu), memory_text(memory)


def resources(cpu: str, memory: str, gpus: int, efa_devices: int = 0, *, guaranteed: bool = False) -> dict[str, Any]:
    """Requests and limits.  Memory limit = request: no overcommit, no surprise
    OOM kill from a neighbour, and a runaway training pod is OOM-killed (a
    counted failure) instead of pressuring the node into evicting it (ignored,
    retried forever).  CPU limit only when ``guaranteed``: a training pod gets
    the Guaranteed QoS class (every request equals its limit), so the node
    evicts it last and the kubelet's static CPU manager may pin its cores;
    throttling a model server or a notebook buys nothing.  GPUs and EFA
    devices, extended resources, must have request = limit."""
    extended = {NVIDIA_GPU_RESOURCE: str(gpus)} if gpus else {}
    if efa_devices:
        extended[EFA_RESOURCE] = str(efa_devices)
    limits = {"cpu": cpu, "memory": memory, **extended} if guaranteed else {"memory": memory, **extended}
    return {"requests": {"cpu": cpu, "memory": memory, **extended}, "limits": limits}


def shared_memory_volume(size: str) -> dict[str, Any]:
    """A memory-backed ``/dev/shm``: PyTorch data loaders and NCCL need more than the runtime's 64 MiB."""
    return {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}}


# -- security ------------------------------------------------------------------------


def pod_security_context(run_as_user: int | None, run_as_group: int | None, fs_group: int | None) -> dict[str, Any]:
    """Pod-level context.  Sets a user only when one is given: DLC images and most
    model servers (vLLM, Triton) run as root, and a uid they were not built for
    breaks them."""
    ctx: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if run_as_user is not None:
        ctx["runAsUser"] = run_as_user
        ctx["runAsNonRoot"] = run_as_user != 0
    if run_as_group is not None:
        ctx["runAsGroup"] = run_as_group
    if fs_group is not None:
        ctx["fsGroup"] = fs_group
        # A home directory of many small files would be re-chowned on every start otherwise.
        ctx["fsGroupChangePolicy"] = "OnRootMismatch"
    return ctx


def container_security_context(non_root: bool, *, read_only_root: bool = False, add: Sequence[str] = ()) -> dict[str, Any]:
    """Every capability dropped and no privilege escalation, whoever the process runs as.

    A root process without capabilities can still write what root owns (DLC
    images keep everything under root-owned paths and ``TEMP=/tmp``); what it
    loses is the power to bypass file permissions, change owners, load
    modules or open raw sockets, which no workload here needs.  ``add`` names
    capabilities a feature needs back; each caller says why.
    """
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"], **({"add": sorted(add)} if add else {})},
    }
    if non_root:
        ctx["runAsNonRoot"] = True
    return ctx


TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "8Gi"}}
"""``/tmp`` for a container with a read-only root filesystem."""

TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}


def runs_as_non_root(run_as_user: int | None) -> bool:
    return run_as_user is not None and run_as_user != 0


# -- objects -----------------------------------------------------------------------


class Workload(Protocol):
    """What the shared renderers read from an InferenceServiceArgs or a JupyterNotebookArgs."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def gpus(self) -> int: ...
    @property
    def command(self) -> list[str] | None: ...
    @property
    def args(self) -> list[str]: ...
    @property
    def run_as_user(self) -> int | None: ...
    @property
    def run_as_group(self) -> int | None: ...
    @property
    def fs_group(self) -> int | None: ...
    @property
    def read_only_root_filesystem(self) -> bool: ...


def workload_labels(name: str, component: str) -> dict[str, str]:
    """The labels that select a workload's pods (and so never change)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def object_meta(workload: Workload, labels: dict[str, str], *, name: str | None = None, annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metadata of one of the workload's objects: in its namespace, its labels plus :data:`MANAGED_BY`."""
    meta: dict[str, Any] = {"name": name or workload.name, "namespace": workload.namespace, "labels": {**labels, **MANAGED_BY}}
    if annotations:
        meta["annotations"] = annotations
    return meta


def cluster_ip_service(workload: Workload, labels: dict[str, str], port: int) -> KubeObject:
    """The in-cluster Service in front of the pods' ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(workload, labels),
        "spec": {"type": "ClusterIP", "selector": labels, "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]},
    }


def serving_port_only(workload: Workload, labels: dict[str, str], port: int) -> KubeObject:
    """Ingress to the pods on their serving port only.

    Model servers open more than they serve: TorchServe's management API
    (8081) registers models from a URL, which is code execution, and a
    ClusterIP Service does not stop other pods reaching a pod IP directly.
    This policy admits any source, but only on ``port`` (probes and an
    internal NLB use that port too).  EKS enforces it through the VPC CNI's
    network policy agent, which MLCluster turns on.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(workload, labels),
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": port, "protocol": "TCP"}]}],
        },
    }


def http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": failures}


def server_container(
    workload: Workload,
    *,
    name: str,
    image: str,
    port: int,
    env: list[dict[str, Any]],
    requests: tuple[str, str],
    probes: dict[str, dict[str, Any]],
    volume_mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The main container of a long-running workload: an HTTP server on ``port``,
    with its resources, probes and the security context its user allows."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "resources": resources(*requests, workload.gpus),
        **probes,
        "securityContext": container_security_context(runs_as_non_root(workload.run_as_user), read_only_root=workload.read_only_root_filesystem),
        "volumeMounts": [*volume_mounts, *([TMP_MOUNT] if workload.read_only_root_filesystem else [])],
    }
    if workload.command is not None:
        container["command"] = list(workload.command)
    if workload.args:
        container["args"] = list(workload.args)
    return container


def pod_spec(workload: Workload, selector: dict[str, str], containers: list[dict[str, Any]], volumes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The pod of a long-running workload: its own service account, no Service
    environment variables, GPU placement (:func:`placement`) and its security context."""
    return {
        "serviceAccountName": workload.name,
        **extra,
        "enableServiceLinks": False,
        **placement(selector, workload.gpus),
        "securityContext": pod_security_context(workload.run_as_user, workload.run_as_group, workload.fs_group),
        "containers": containers,
        "volumes": [*volumes, *([TMP_VOLUME] if workload.read_only_root_filesystem else [])],
    }


def namespace_object(name: str, *, restricted: bool, readiness_gates: bool = False) -> dict[str, Any]:
    """A namespace with Pod Security Admission labels.

    ``restricted`` when every workload in it runs as non-root, else
    ``baseline`` (which still forbids privileged pods and host access).  The
    ``warn``/``audit`` level is always ``restricted``, so ``kubectl apply``
    shows what a root image gives up.  ``readiness_gates`` turns on the AWS
    Load Balancer Controller's pod readiness gates, so a rolling update waits
    for the NLB to send traffic to the new pod.
    """
    level = "restricted" if restricted else "baseline"
    labels = {
        **MANAGED_BY,
        "kubernetes.io/metadata.name": name,
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    if readiness_gates:
        labels["elbv2.k8s.aws/pod-readiness-gate-inject"] = "enabled"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def await_annotations(timeout_seconds: int, skip_await: bool) -> dict[str, str]:
    """How long ``pulumi up`` waits for the workload to be ready, or not at all."""
    if skip_await:
        return {SKIP_AWAIT_ANNOTATION: "true"}
    return {TIMEOUT_ANNOTATION: str(timeout_seconds)}


def probe_failure_threshold(timeout_seconds: int, period_seconds: int) -> int:
    return max(1, math.ceil(timeout_seconds / period_seconds))
