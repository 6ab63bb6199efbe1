"""Pieces shared by the long-running workloads (InferenceService, JupyterNotebook).

All plain functions and models: image choice (a DLC through the catalog, or
any image by reference), GPU placement and the CPU/memory requests that go
with a GPU share, pod and container security contexts, the S3 read policy for
model artifacts, namespaces with Pod Security labels, and the annotations
that tell ``pulumi up`` how long to wait.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import model_validator

from components import dlc_catalog
from components.errors import ConfigError
from components.gpu_catalog import NVIDIA_GPU_RESOURCE, InstanceType
from components.ml_cluster import ROLE_LABEL
from components.nvidia_device_plugin import GPU_TOLERATION
from components.quantity import GIB, parse_quantity
from components.schema import Model

# DNS-1035 label (a Service name must be one), kept short so that derived
# names (``<name>-token``, ``<name>-internal``, IAM role names) stay in limits.
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "mleks"}

# Annotations the Pulumi Kubernetes provider reads to decide how long to wait
# for a resource to become ready, or whether to wait at all.
TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds"
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"

# Share of a node's CPU and memory a pod asks for per GPU it takes.  Why 75%:
# * Escalator (train groups) counts only CPU and memory requests, never GPUs,
#   and adds a node when requests exceed 70% of capacity (its default
#   scale_up_threshold_percent).  A node whose GPUs are all taken therefore
#   has to read above 70%, or the next GPU pod waits forever.
# * The pod must still fit beside the DaemonSets (kube-proxy, VPC CNI, device
#   plugins, EBS CSI node) on the smallest 4-vCPU GPU types: 75% of 4 vCPU
#   leaves ~1 vCPU for them and the kubelet's reservation.
REQUEST_SHARE = Decimal("0.75")


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


# -- images -------------------------------------------------------------------


class DlcImageArgs(Model):
    """An AWS Deep Learning Container, resolved for the region and the node group's GPUs."""

    framework: str = "pytorch"
    """``pytorch`` or ``tensorflow``.  Default: pytorch."""

    version: str
    """Framework version, ``X.Y`` (newest patch) or ``X.Y.Z``.  No PyTorch *inference* DLC is newer than 2.6."""

    python: str | None = None
    """Python selector such as ``py312`` or ``3.12``.  Default: any."""

    cuda: str | None = None
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
            return dlc_catalog.resolve_dlc_image("pytorch", "", region=region, image_override=image.uri)
        except ConfigError as err:
            raise ConfigError("image.uri", err.value, err.accepted, err.problem) from None
    assert image.dlc is not None
    dlc = image.dlc
    gpu = any(t.is_nvidia_gpu for t in instance_types)
    try:
        return dlc_catalog.resolve_dlc_image(
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
        key = f"image.dlc.{_DLC_KEYS[err.key]}" if err.key in _DLC_KEYS else "image.dlc"
        accepted = err.accepted
        if dlc.framework == "pytorch" and job_type == "inference":
            accepted = f"{accepted}. Note: {pytorch_inference_note()}"
        else:
            accepted = f"{accepted}; or set image.uri to any image you trust"
        raise ConfigError(key, err.value, accepted, err.problem) from None


# -- GPU placement and requests ----------------------------------------------------


def placement(role: str, gpus: int) -> dict[str, Any]:
    """nodeSelector and tolerations for a pod of ``gpus`` GPUs on the ``role`` group.

    nodeSelector (not affinity) because Escalator matches pods to its group by
    ``nodeSelector[role]`` or required affinity only; the toleration is for
    the ``nvidia.com/gpu`` taint every GPU node carries.  A pod without GPUs
    goes to the untainted system nodes.
    """
    if gpus == 0:
        return {"nodeSelector": {ROLE_LABEL: "system"}}
    return {"nodeSelector": {ROLE_LABEL: role}, "tolerations": [dict(GPU_TOLERATION)]}


def _millicores(cores: Decimal) -> str:
    m = int(cores * 1000) // 100 * 100
    return f"{m // 1000}" if m % 1000 == 0 else f"{m}m"


def _mebibytes(size: Decimal) -> str:
    mi = int(size / (1024 * 1024)) // 256 * 256
    return f"{mi // 1024}Gi" if mi % 1024 == 0 else f"{mi}Mi"


def proportional_requests(instance: InstanceType, gpus: int) -> tuple[str, str]:
    """CPU and memory requests for ``gpus`` of ``instance``'s GPUs: 75% of their share.

    Rounded down to 100m and 256Mi so the numbers stay readable.
    """
    share = Decimal(gpus) / Decimal(instance.accelerator_count) * REQUEST_SHARE
    cpu = Decimal(instance.vcpu) * share
    memory = Decimal(str(instance.memory_gib)) * GIB * share
    return _millicores(cpu), _mebibytes(memory)


def gpu_count_error(key: str, gpus: int, group_key: str, instance: InstanceType) -> ConfigError | None:
    """An error if ``gpus`` do not fit on one node of the group's smallest type."""
    if gpus <= instance.accelerator_count:
        return None
    return ConfigError(
        key,
        gpus,
        f"at most {instance.accelerator_count}, the GPUs of {instance.instance_type} (the smallest type in {group_key})",
        f"no node of the group has {gpus} GPUs, so the pod would never be scheduled",
    )


def fit_errors(prefix: str, cpu: str | None, memory: str | None, instance: InstanceType, group_key: str) -> list[ConfigError]:
    """Errors for explicit CPU/memory requests larger than the smallest node."""
    errors = []
    if cpu is not None and parse_quantity(cpu) > instance.vcpu:
        errors.append(
            ConfigError(
                f"{prefix}.cpu",
                cpu,
                f"less than {instance.vcpu} (the vCPUs of {instance.instance_type}, the smallest type in {group_key})",
                "larger than any node",
            )
        )
    if memory is not None and parse_quantity(memory) > Decimal(str(instance.memory_gib)) * GIB:
        errors.append(
            ConfigError(
                f"{prefix}.memory",
                memory,
                f"less than {instance.memory_gib}Gi (the memory of {instance.instance_type}, the smallest type in {group_key})",
                "larger than any node",
            )
        )
    return errors


def resources(cpu: str, memory: str, gpus: int) -> dict[str, Any]:
    """Requests and limits.  Memory limit = request (no overcommit, no surprise
    OOM kill from a neighbour); no CPU limit (throttling a model server or a
    notebook buys nothing); GPUs must have request = limit."""
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    limits: dict[str, str] = {"memory": memory}
    if gpus:
        requests[NVIDIA_GPU_RESOURCE] = str(gpus)
        limits[NVIDIA_GPU_RESOURCE] = str(gpus)
    return {"requests": requests, "limits": limits}


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


def container_security_context(non_root: bool) -> dict[str, Any]:
    """No privilege escalation ever.  Capabilities are dropped only for a
    non-root process: a root server that writes into directories owned by
    its image's service user relies on root's default capabilities."""
    ctx: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if non_root:
        ctx["capabilities"] = {"drop": ["ALL"]}
        ctx["runAsNonRoot"] = True
    return ctx


def runs_as_non_root(run_as_user: int | None) -> bool:
    return run_as_user is not None and run_as_user != 0


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


# -- S3 model artifacts --------------------------------------------------------------

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_KMS_KEY_ARN = re.compile(r"^arn:aws(-cn|-us-gov|-iso[a-z]?)?:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    """Without leading or trailing slash; empty for a whole bucket."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"


def parse_s3_uri(value: str) -> S3Location:
    """``s3://bucket/prefix/`` -> S3Location.  Wildcards are refused: the prefix goes into an IAM policy."""
    accepted = "an S3 URI such as s3://my-models/llama-3-8b/ (bucket and optional prefix, no wildcards)"
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", value)
    if match is None or not _BUCKET.match(match[1]) or ".." in match[1]:
        raise ConfigError("", value, accepted, "not an S3 URI")
    prefix = match[2].strip("/")
    if any(c in prefix for c in "*?$") or "//" in prefix:
        raise ConfigError("", value, accepted, "wildcards, '$' and empty path segments are not allowed in the prefix")
    return S3Location(match[1], prefix)


def check_kms_key_arn(value: str | None) -> str | None:
    if value is not None and not _KMS_KEY_ARN.match(value):
        raise ConfigError("", value, "a KMS key ARN such as arn:aws:kms:us-west-2:123456789012:key/<uuid>", "not a KMS key ARN")
    return value


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def s3_read_policy(location: S3Location, *, region: str, kms_key_arn: str | None = None) -> dict[str, Any]:
    """Read-only access to one S3 prefix: list it, get its objects, nothing else.

    ``kms_key_arn`` adds ``kms:Decrypt`` on that key, only through S3, for
    buckets encrypted with a customer managed key.
    """
    partition = partition_of(region)
    bucket_arn = f"arn:{partition}:s3:::{location.bucket}"
    objects = f"{bucket_arn}/{location.prefix}/*" if location.prefix else f"{bucket_arn}/*"
    list_statement: dict[str, Any] = {"Sid": "ListModelPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn}
    if location.prefix:
        list_statement["Condition"] = {"StringLike": {"s3:prefix": [location.prefix, f"{location.prefix}/*"]}}
    statements: list[dict[str, Any]] = [
        list_statement,
        {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects},
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "DecryptModelObjects",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
