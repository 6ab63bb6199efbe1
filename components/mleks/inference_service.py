"""InferenceService: a model server on the inference GPU group, reachable only from inside.

What it renders, in the service's namespace:

* a ServiceAccount, with an IRSA role that may read the model's S3 prefix
  and nothing else (when a model location is given);
* a Deployment on ``role=inference`` nodes: GPU toleration, GPU request =
  limit, CPU/memory at 75% of the GPU share of what a node can give pods
  (:mod:`mleks.manifests.node_capacity`), startup/readiness/liveness
  probes, rolling updates with ``maxUnavailable: 0``;
* a ClusterIP Service, a HorizontalPodAutoscaler (autoscaling/v2) and a
  PodDisruptionBudget;
* only when ``exposure: internal-nlb``: a second Service of type
  LoadBalancer for the AWS Load Balancer Controller, scheme ``internal``.
  Nothing internet-facing is ever rendered.

Model artifacts: with ``model.fetch: init-container`` (default) an init
container (the AWS CLI) copies ``model.s3Uri`` into an emptyDir mounted
read-only at ``model.mountPath`` before the server starts; the server needs
no AWS code.  With ``fetch: server`` nothing is copied; the server reads S3
itself (vLLM's ``--load-format runai_streamer``, Triton's ``s3://`` model
repository) with the same workload identity.

Images: an AWS Deep Learning Container resolved through the DLC catalog, or
any image by reference.  No PyTorch *inference* DLC is newer than 2.6, and
2.6 is past its end of patch (2026-06-30), so for a current PyTorch name a
server image (vLLM, Triton, your own) with ``image.uri``.

``pulumi up`` waits for the Deployment to be ready.  On an inference group at
zero nodes that means cluster-autoscaler adds a node first (node boot, GPU
driver, a multi-GB image pull, model load): 10-20 minutes is normal, so the
Deployment carries ``pulumi.com/timeoutSeconds`` (``awaitTimeoutSeconds``,
default 30 minutes) and a matching ``progressDeadlineSeconds``.
``skipAwait: true`` makes ``pulumi up`` return as soon as the objects exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
from pydantic import Field, field_validator, model_validator

from mleks.catalogs.gpu import InstanceType, smallest
from mleks.catalogs.karpenter import DO_NOT_DISRUPT_ANNOTATION
from mleks.catalogs.node_daemonsets import DaemonSetLoad, heaviest
from mleks.cluster_base import EksCluster, unique
from mleks.errors import ConfigError
from mleks.gpu_node_group import GpuNodeGroupArgs, NodeGroupInput, gpu_fit_errors, placement_errors
from mleks.infra.s3_access import S3Location, check_kms_key_arn, parse_s3_uri, s3_policy
from mleks.manifests import k8s_objects
from mleks.manifests.escalator_config import parse_go_duration
from mleks.manifests.k8s_objects import KubeObject
from mleks.manifests.quantity import CpuQuantity, MemoryQuantity, parse_quantity
from mleks.manifests.workloads import (
    MANAGED_BY,
    EnvVars,
    ImageArgs,
    WorkloadName,
    WorkloadNamespace,
    await_annotations,
    check_shared_memory,
    cluster_ip_service,
    http_probe,
    object_meta,
    pod_spec,
    probe_failure_threshold,
    proportional_requests,
    resolve_image,
    runs_as_non_root,
    server_container,
    serving_port_only,
    shared_memory_volume,
    workload_labels,
)
from mleks.ml_cluster import check_cidr_blocks
from mleks.validation.schema import Model, component_errors
from mleks.vocabulary import NODE_GROUP_LABEL, ROLE_ARN_ANNOTATION, ROLE_LABEL, ObjectName
from mleks.workload_identity import ServiceAccountRole

TOKEN = "mleks:serving:InferenceService"
ROLE = "inference"
COMPONENT = "model-server"

# Pinned AWS CLI v2 image (ECR Public, multi-arch) for the model fetcher.
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.32.9"

# AWS Load Balancer Controller: the class makes the controller, and only the
# controller, own the Service (the legacy in-tree controller, which would
# make an internet-facing Classic LB by default, ignores Services with a
# loadBalancerClass); the annotations pin scheme and target type.
NLB_CLASS = "service.k8s.aws/nlb"
NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
}

Fetch = Literal["init-container", "server"]
Exposure = Literal["cluster-ip", "internal-nlb"]


class ModelSourceArgs(Model):
    """Where the model's files are, and who copies them."""

    s3_uri: str
    """``s3://bucket/prefix/``.  The service account may list and read this prefix and nothing else."""

    fetch: Fetch = "init-container"
    """``init-container``: the AWS CLI copies the prefix to ``mountPath`` before the server starts.
    ``server``: nothing is copied; the server reads S3 itself.  Default: init-container."""

    mount_path: str = "/models"
    """Where the copied files appear (read-only) in the server.  Default: /models."""

    size_limit: MemoryQuantity = "50Gi"
    """Largest the copy may grow on the node's disk (emptyDir sizeLimit).  Default: 50Gi."""

    kms_key_arn: str | None = None
    """The bucket's customer managed KMS key, if any; adds kms:Decrypt on it through S3 only."""

    fetcher_image: str = AWS_CLI_IMAGE
    """Image of the init container; needs ``aws`` as its entry point.  Default: the pinned AWS CLI v2 image."""

    @field_validator("s3_uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        parse_s3_uri(value)
        return value

    @field_validator("mount_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/", "/dev", "/proc", "/sys", "/tmp"):
            raise ConfigError("", value, "an absolute directory such as /models", "not a usable mount path")
        return value

    @field_validator("kms_key_arn")
    @classmethod
    def _kms(cls, value: str | None) -> str | None:
        return check_kms_key_arn(value)

    @property
    def location(self) -> S3Location:
        """The model's S3 folder: ``s3://bucket/prefix/`` with or without the final slash."""
        return parse_s3_uri(self.s3_uri).as_folder()


class ProbeArgs(Model):
    """Health checks.  Model loading is slow, so a startup probe guards the first minutes."""

    readiness_path: str = "/ping"
    """HTTP path that answers 200 when the server can take requests.  TorchServe (DLC): /ping;
    vLLM: /health; Triton: /v2/health/ready.  Default: /ping."""

    liveness_path: str | None = None
    """HTTP path that answers 200 while the process is healthy.  Default: ``readinessPath``."""

    startup_timeout_seconds: int = Field(default=1800, ge=60, le=7200)
    """How long the server may take to start answering (image already pulled) before it is restarted.  Default: 1800."""

    @field_validator("readiness_path", "liveness_path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ConfigError("", value, "an HTTP path starting with /, e.g. /health", "not a path")
        return value


class PodsMetricArgs(Model):
    """A per-pod custom metric (needs a custom metrics adapter such as prometheus-adapter)."""

    name: str
    """Metric name as the adapter serves it, e.g. ``vllm:num_requests_waiting``."""

    target_average_value: str
    """Target per-pod average, a quantity such as ``5`` or ``500m``."""

    @field_validator("target_average_value")
    @classmethod
    def _quantity(cls, value: str) -> str:
        try:
            parse_quantity(value)
        except ValueError:
            raise ConfigError("", value, "a Kubernetes quantity such as 5 or 500m", "not a quantity") from None
        return value


class AutoscalingArgs(Model):
    """The HorizontalPodAutoscaler.  CPU utilisation needs metrics-server in the cluster."""

    min_replicas: int = Field(default=1, ge=1)
    """Fewest pods.  Default: 1.  Two or more keep serving through a node drain."""

    max_replicas: int = Field(default=2, ge=1)
    """Most pods; each takes ``gpus`` GPUs on its own share of a node.  Default: 2."""

    target_cpu_utilization_percent: int | None = Field(default=70, ge=1)
    """Average CPU utilisation (of requests) to aim for; null turns the CPU metric off.  Default: 70."""

    pods_metric: PodsMetricArgs | None = None
    """A custom per-pod metric to scale on as well (the HPA follows whichever asks for more pods).  Default: none."""

    scale_down_stabilization_seconds: int = Field(default=600, ge=0, le=3600)
    """Wait before removing pods after load drops; a new GPU pod takes minutes to start.  Default: 600."""

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalingArgs:
        if self.min_replicas > self.max_replicas:
            raise ConfigError("maxReplicas", self.max_replicas, f"a number >= minReplicas ({self.min_replicas})", "smaller than minReplicas")
        if self.target_cpu_utilization_percent is None and self.pods_metric is None:
            raise ConfigError("targetCpuUtilizationPercent", None, "a percentage, or a podsMetric", "the autoscaler needs at least one metric")
        return self


class InferenceServiceArgs(Model):
    """One model server.  In stack YAML, under ``inferenceServices.<name>``."""

    name: WorkloadName
    """Name of the Deployment, Service and ServiceAccount (filled from the key in stack YAML)."""

    namespace: WorkloadNamespace = "serving"
    """Namespace, created if needed.  Default: serving."""

    image: ImageArgs
    """``{uri: ...}`` for any image, or ``{dlc: {framework, version}}`` for an AWS DLC."""

    command: list[str] | None = None
    """Container entry point.  Default: the image's."""

    args: list[str] = Field(default_factory=list)
    """Container arguments.  Default: none (the image's CMD)."""

    env: EnvVars = Field(default_factory=dict)
    """Extra environment variables (plain values; never put secrets here)."""

    port: int = Field(default=8080, ge=1024, le=65535)
    """The server's HTTP port (the Service uses the same number).  Default: 8080."""

    gpus: int = Field(default=1, ge=1)
    """GPUs per pod (``nvidia.com/gpu`` request and limit).  Default: 1."""

    cpu: CpuQuantity | None = None
    """CPU request.  Default: 75% of the GPU share of what the group's smallest type can give pods."""

    memory: MemoryQuantity | None = None
    """Memory request and limit.  Default: 75% of the GPU share, like ``cpu``."""

    shared_memory: MemoryQuantity = "2Gi"
    """Size of the memory-backed /dev/shm; counts against ``memory``.  Default: 2Gi."""

    model: ModelSourceArgs | None = None
    """Model artifacts in S3.  Default: none (the image or the server brings the model)."""

    probes: ProbeArgs = Field(default_factory=ProbeArgs)
    """Health check paths and the startup allowance."""

    autoscaling: AutoscalingArgs = Field(default_factory=AutoscalingArgs)
    """HorizontalPodAutoscaler settings."""

    node_group: str | list[str] | None = None
    """The inference node group to run on (``nodeGroups.<name>``), or several (``[inference-spot,
    inference-ondemand]``) for pods that may land on any of them, in the order
    ``clusterAutoscaler.priority`` prefers.  Default: the stack's only inference group; required when
    there are several."""

    @field_validator("node_group")
    @classmethod
    def _groups_listed_once(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value:
                raise ConfigError("", value, "a group name, or a list of one or more inference group names (or leave nodeGroup out)", "an empty list")
            repeated = sorted({n for n in value if value.count(n) > 1})
            if repeated:
                raise ConfigError("", value, "each group once, in the order clusterAutoscaler.priority prefers", f"{repeated} listed twice")
        return value

    @property
    def node_group_names(self) -> list[str] | None:
        """``nodeGroup`` as a list (None when not given)."""
        if self.node_group is None:
            return None
        return [self.node_group] if isinstance(self.node_group, str) else list(self.node_group)

    exposure: Exposure = "cluster-ip"
    """``cluster-ip``: reachable inside the cluster only.  ``internal-nlb``: also an internal
    Network Load Balancer, reachable from the VPC (needs the AWS Load Balancer Controller).  Default: cluster-ip."""

    load_balancer_source_cidrs: list[str] = Field(default_factory=list)
    """With ``internal-nlb``: client networks allowed in.  Default: the controller's default for internal NLBs (the VPC CIDR)."""

    run_as_user: int | None = Field(default=None, ge=0)
    """UID to run as.  Default: the image's user (root for DLC, vLLM and Triton images).  Set it for images built to run non-root."""

    run_as_group: int | None = Field(default=None, ge=0)
    """GID to run as.  Default: the image's."""

    fs_group: int | None = Field(default=None, ge=0)
    """Group that owns mounted volumes.  Default: none."""

    read_only_root_filesystem: bool = False
    """Mount the image read-only (an 8Gi emptyDir serves /tmp).  Default: false, because vLLM, Triton and
    TorchServe write caches and logs under the image's own paths (~/.cache, /logs); turn it on for an
    image known to write only to /tmp and its volumes."""

    termination_grace_period_seconds: int = Field(default=60, ge=10, le=3600)
    """Time to finish in-flight requests on shutdown.  Default: 60."""

    do_not_disrupt: bool = False
    """On Karpenter pools: annotate the pods ``karpenter.sh/do-not-disrupt: "true"``, so Karpenter does not
    consolidate their nodes away, nor replace them for drift until the pool's ``terminationGracePeriod``
    has run out.  It does not stop expiry, spot interruptions, node repair or a pool's deletion (see
    docs/autoscaling.md#pods-that-must-not-move).  Default: false."""

    await_timeout_seconds: int = Field(default=1800, ge=600, le=7200)
    """How long ``pulumi up`` waits for the Deployment to be ready (also its progressDeadlineSeconds).  Default: 1800."""

    skip_await: bool = False
    """True: ``pulumi up`` does not wait for the pods at all.  Default: false."""

    @field_validator("load_balancer_source_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return check_cidr_blocks(value, "a CIDR block such as 10.0.0.0/16")

    @model_validator(mode="after")
    def _consistent(self) -> InferenceServiceArgs:
        if self.load_balancer_source_cidrs and self.exposure != "internal-nlb":
            raise ConfigError(
                "loadBalancerSourceCidrs", self.load_balancer_source_cidrs, "no value unless exposure is internal-nlb", "set without a load balancer"
            )
        check_shared_memory(self.shared_memory, self.memory)
        if self.model is not None and self.model.fetch == "init-container" and self.model.mount_path == "/dev/shm":
            raise ConfigError("model.mountPath", self.model.mount_path, "a directory other than /dev/shm", "clashes with the shared memory mount")
        return self


# -- rendering (pure) --------------------------------------------------------------------


def labels(args: InferenceServiceArgs) -> dict[str, str]:
    return workload_labels(args.name, COMPONENT)


def requests_for(args: InferenceServiceArgs, instance: InstanceType, daemonsets: DaemonSetLoad) -> tuple[str, str]:
    """CPU and memory requests: as given, else 75% of the GPU share of what ``instance`` can give pods after ``daemonsets``."""
    cpu, memory = proportional_requests(instance, args.gpus, daemonsets)
    return args.cpu or cpu, args.memory or memory


def _env(args: InferenceServiceArgs, region: str) -> list[dict[str, Any]]:
    env: dict[str, str] = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    if args.model is not None:
        env["MODEL_S3_URI"] = args.model.location.uri
        if args.model.fetch == "init-container":
            env["MODEL_DIR"] = args.model.mount_path
    env.update(args.env)
    return [{"name": k, "value": v} for k, v in env.items()]


def _fetcher(args: InferenceServiceArgs, region: str) -> dict[str, Any]:
    assert args.model is not None
    source = args.model.location
    return {
        "name": "fetch-model",
        "image": args.model.fetcher_image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["s3", "sync", "--only-show-errors", "--no-progress", source.uri, args.model.mount_path],
        # The CLI wants a writable home for its cache; the root filesystem is read-only.
        "env": [{"name": "AWS_REGION", "value": region}, {"name": "AWS_DEFAULT_REGION", "value": region}, {"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            # The fetcher runs non-root whatever the server does; emptyDir is world-writable.
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "model", "mountPath": args.model.mount_path}, {"name": "fetch-tmp", "mountPath": "/tmp"}],
    }


@dataclass(frozen=True)
class Placement:
    """Where a service's pods may go: a nodeSelector, and for several groups a required affinity to any of them."""

    node_selector: dict[str, str]
    any_of_groups: tuple[str, ...] = ()

    @classmethod
    def of(cls, groups: Sequence[GpuNodeGroupArgs]) -> Placement:
        """One group's selector; for several, their role and the affinity (cluster-autoscaler reads the
        ``mleks.io/node-group`` label from each group's node template, so it scales from zero too)."""
        if len(groups) == 1:
            return cls(groups[0].selector)
        return cls({ROLE_LABEL: groups[0].role}, tuple(g.group_name for g in groups))

    def affinity(self) -> dict[str, Any] | None:
        if not self.any_of_groups:
            return None
        term = {"matchExpressions": [{"key": NODE_GROUP_LABEL, "operator": "In", "values": list(self.any_of_groups)}]}
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def render_deployment(
    args: InferenceServiceArgs, *, image: str, instance: InstanceType, region: str, daemonsets: DaemonSetLoad, placement: Placement | None = None
) -> KubeObject:
    liveness = args.probes.liveness_path or args.probes.readiness_path
    fetch = args.model is not None and args.model.fetch == "init-container"
    container = server_container(
        args,
        name="server",
        image=image,
        port=args.port,
        env=_env(args, region),
        requests=requests_for(args, instance, daemonsets),
        probes={
            "startupProbe": http_probe(liveness, 10, probe_failure_threshold(args.probes.startup_timeout_seconds, 10)),
            "readinessProbe": http_probe(args.probes.readiness_path, 10, 3),
            "livenessProbe": http_probe(liveness, 20, 3),
            # Endpoints (and NLB targets) drop the pod before the server stops taking requests.
            "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
        },
        volume_mounts=[{"name": "dshm", "mountPath": "/dev/shm"}],
    )
    volumes: list[dict[str, Any]] = [shared_memory_volume(args.shared_memory)]
    if fetch:
        # Declared before pod_spec() copies the list: a mount without its volume is refused (422) by the API server.
        assert args.model is not None
        container["volumeMounts"].append({"name": "model", "mountPath": args.model.mount_path, "readOnly": True})
        volumes += [{"name": "model", "emptyDir": {"sizeLimit": args.model.size_limit}}, {"name": "fetch-tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    # No Kubernetes API token: a model server never calls the API.  IRSA still works, because
    # EKS's pod identity webhook projects its own web-identity token into the pod.
    where = placement or Placement({ROLE_LABEL: ROLE})
    affinity = where.affinity()
    pod = pod_spec(
        args,
        where.node_selector,
        [container],
        volumes,
        terminationGracePeriodSeconds=args.termination_grace_period_seconds,
        automountServiceAccountToken=False,
        **({"affinity": affinity} if affinity else {}),
    )
    if fetch:
        pod["initContainers"] = [_fetcher(args, region)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(args, labels(args), annotations=await_annotations(args.await_timeout_seconds, args.skip_await)),
        "spec": {
            # No ``replicas``: the HPA owns it, and a value here would be reset
            # by every ``pulumi up`` (then scaled back by the HPA).
            "selector": {"matchLabels": labels(args)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            # Same budget as ``pulumi up``'s wait, so both give up together.
            "progressDeadlineSeconds": args.await_timeout_seconds,
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {
                    "labels": {**labels(args), **MANAGED_BY},
                    **({"annotations": {DO_NOT_DISRUPT_ANNOTATION: "true"}} if args.do_not_disrupt else {}),
                },
                "spec": pod,
            },
        },
    }


def render_service_account(args: InferenceServiceArgs, role_arn: pulumi.Input[str] | None) -> KubeObject:
    meta = object_meta(args, labels(args), annotations={ROLE_ARN_ANNOTATION: role_arn} if role_arn is not None else None)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def render_service(args: InferenceServiceArgs) -> KubeObject:
    return cluster_ip_service(args, labels(args), args.port)


def render_internal_nlb(args: InferenceServiceArgs) -> KubeObject:
    """The opt-in internal NLB: IP targets (pods directly), no node ports at all."""
    liveness = args.probes.readiness_path
    annotations = {
        **NLB_ANNOTATIONS,
        "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol": "http",
        "service.beta.kubernetes.io/aws-load-balancer-healthcheck-path": liveness,
        "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port": "traffic-port",
    }
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "loadBalancerClass": NLB_CLASS,
        "allocateLoadBalancerNodePorts": False,
        "selector": labels(args),
        "ports": [{"name": "http", "port": args.port, "targetPort": "http", "protocol": "TCP"}],
    }
    if args.load_balancer_source_cidrs:
        spec["loadBalancerSourceRanges"] = list(args.load_balancer_source_cidrs)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(args, labels(args), name=nlb_service_name(args), annotations=annotations),
        "spec": spec,
    }


def render_hpa(args: InferenceServiceArgs) -> KubeObject:
    scaling = args.autoscaling
    metrics: list[dict[str, Any]] = []
    if scaling.target_cpu_utilization_percent is not None:
        metrics.append(
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization_percent}}}
        )
    if scaling.pods_metric is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": scaling.pods_metric.name},
                    "target": {"type": "AverageValue", "averageValue": scaling.pods_metric.target_average_value},
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(args, labels(args)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": metrics,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}},
        },
    }


def render_pdb(args: InferenceServiceArgs) -> KubeObject:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(args, labels(args)),
        "spec": {
            # One at a time.  ``minAvailable: 1`` with one replica would block
            # every node drain (cluster-autoscaler scale-down, AMI upgrades).
            "maxUnavailable": 1,
            # A pod that never got ready must not block a drain either.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": labels(args)},
        },
    }


def nlb_service_name(args: InferenceServiceArgs) -> str:
    """The internal NLB's Service, beside the ClusterIP one of the service's own name."""
    return f"{args.name}-internal"


SERVICE_KINDS = ("ServiceAccount", "Deployment", "Service", "NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget")


def object_names(args: InferenceServiceArgs) -> tuple[ObjectName, ...]:
    """Every Kubernetes object :func:`render` creates, by kind, namespace and name."""
    names = [ObjectName(kind, args.namespace, args.name) for kind in SERVICE_KINDS]
    if args.exposure == "internal-nlb":
        names.append(ObjectName("Service", args.namespace, nlb_service_name(args)))
    return tuple(names)


def render(
    args: InferenceServiceArgs,
    *,
    image: str,
    instance: InstanceType,
    region: str,
    daemonsets: DaemonSetLoad,
    role_arn: pulumi.Input[str] | None = None,
    placement: Placement | None = None,
) -> list[KubeObject]:
    """Every Kubernetes object of the service, ServiceAccount first.  ``placement``: its groups' (default: any inference node)."""
    objects = [
        render_service_account(args, role_arn),
        render_deployment(args, image=image, instance=instance, region=region, daemonsets=daemonsets, placement=placement),
        render_service(args),
        serving_port_only(args, labels(args), args.port),
        render_hpa(args),
        render_pdb(args),
    ]
    if args.exposure == "internal-nlb":
        objects.append(render_internal_nlb(args))
    return objects


def model_policy(args: InferenceServiceArgs, region: str) -> dict[str, Any] | None:
    """The IRSA policy: read the model folder, nothing else; None without a model."""
    if args.model is None:
        return None
    return s3_policy([args.model.location], region=region, kms_key_arn=args.model.kms_key_arn)


# -- the component ---------------------------------------------------------------------


def service_errors(args: InferenceServiceArgs, groups: Sequence[GpuNodeGroupArgs], region: str, loads: Sequence[DaemonSetLoad]) -> list[ConfigError]:
    """Why a service cannot run on ``groups`` (each beside its DaemonSet load), keyed relative to the service's args.

    One image for every group, so one CPU architecture; each group must fit a pod (a group no pod
    fits is scaled by nothing); ``maxReplicas`` within what the groups can ever hold; the image
    resolvable for the region and the groups' instance types.
    """
    arches = {g.arch for g in groups}
    if len(arches) > 1:
        # The service renders one image reference, and DLC tags are built per architecture.
        detail = ", ".join(f"{g.key} is {g.arch}" for g in groups)
        return [
            ConfigError("nodeGroup", args.node_group, "groups of one CPU architecture: the service runs one image", f"the groups mix architectures ({detail})")
        ]
    errors = _karpenter_errors(args, groups)
    if errors:
        return errors
    owners = sorted({g.owner for g in groups if g.owner != "none"})
    if len(owners) > 1 and "karpenter" in owners:
        # Both would provision for the same pending pod: Karpenter launches a node while
        # cluster-autoscaler grows an ASG, and one of the two nodes is waste.
        detail = ", ".join(f"{g.key} is scaled by {g.owner}" for g in groups)
        return [
            ConfigError(
                "nodeGroup",
                args.node_group,
                "groups of one autoscaler; beside Karpenter pools, only groups with autoscaler: none (an always-on floor)",
                f"two autoscalers would launch nodes for the same pending pods ({detail})",
            )
        ]
    errors = [e for g, load in zip(groups, loads, strict=True) for e in gpu_fit_errors(args.gpus, args.cpu, args.memory, g, load)]
    # A pod that fits no node makes the replica bound meaningless; report the cause only.
    errors = errors or _replica_errors(args, groups)
    try:
        resolve_image(args.image, region=region, job_type="inference", instance_types=[t for g in groups for t in g.instance_infos])
    except ConfigError as err:
        errors.append(err)
    return errors


def _karpenter_errors(args: InferenceServiceArgs, groups: Sequence[GpuNodeGroupArgs]) -> list[ConfigError]:
    """A service's shutdown must fit the drain of every Karpenter pool it runs on: a pod whose grace period
    is longer than the pool's terminationGracePeriod is deleted as soon as the drain starts (Karpenter
    disruption docs, "TerminationGracePeriod")."""
    errors = []
    for g in groups:
        if g.owner != "karpenter":
            continue
        drain_s = parse_go_duration(g.karpenter_settings.termination_grace_period) // 10**9
        if args.termination_grace_period_seconds >= drain_s:
            errors.append(
                ConfigError(
                    "terminationGracePeriodSeconds",
                    args.termination_grace_period_seconds,
                    f"less than {drain_s}, the terminationGracePeriod of Karpenter pool {g.key!r} (or raise the pool's)",
                    "Karpenter would delete the pod when it starts draining its node, without the grace period",
                )
            )
    if args.do_not_disrupt and not any(g.owner == "karpenter" for g in groups):
        errors.append(ConfigError("doNotDisrupt", True, "false, or a nodeGroup owned by Karpenter", "only Karpenter reads the annotation"))
    return errors


def _replica_errors(svc: InferenceServiceArgs, groups: Sequence[GpuNodeGroupArgs]) -> list[ConfigError]:
    # Upper bound: every node of every group the largest member type, as many pods per node as its GPUs allow.
    per_node = [(g, max(t.accelerator_count for t in g.instance_infos) // svc.gpus) for g in groups]
    most = sum(g.max_size * n for g, n in per_node)
    if svc.autoscaling.max_replicas > most:
        detail = " + ".join(f"nodeGroups.{g.key}.maxSize {g.max_size} x {n} pod(s)" for g, n in per_node)
        return [
            ConfigError(
                "autoscaling.maxReplicas",
                svc.autoscaling.max_replicas,
                f"at most {most} ({detail} of {svc.gpus} GPU(s) per node)",
                "more pods than its inference groups can ever hold",
            )
        ]
    return []


class InferenceService(pulumi.ComponentResource):
    """A model server on the inference GPU group of ``cluster``.

    Outputs: ``service_name``, ``namespace``, ``port``, ``image``,
    ``role_arn`` (None without a model), ``internal_hostname`` (the internal
    NLB's DNS name, None unless ``exposure: internal-nlb``).
    """

    def __init__(
        self,
        name: str,
        args: InferenceServiceArgs,
        *,
        cluster: EksCluster,
        node_group: NodeGroupInput | Sequence[NodeGroupInput],
        region: str | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
        load_balancer_controller: pulumi.Resource | None = None,
        config_key: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``node_group``: the inference group(s) to run on (:class:`~mleks.gpu_node_group.GpuNodeGroup`,
        or their args).  ``region``: default, the cluster's.  ``load_balancer_controller``: what the
        internal NLB Service waits for (an :class:`~mleks.load_balancer_controller.AwsLoadBalancerController`'s
        release); only that Service waits, so the server's pods start while the controller is still
        being installed."""
        region = region or cluster.region
        groups, errors = placement_errors(node_group, role="inference", cluster=cluster, named=args.node_group_names)
        loads = [cluster.gpu_node_load(g) for g in groups]
        args_errors = service_errors(args, groups, region, loads) if groups and not errors else []
        if errors or args_errors:
            raise component_errors(errors, component="InferenceService", name=name, config_key=config_key, args_errors=args_errors)
        super().__init__(TOKEN, name, None, opts)
        self.args = args
        infos = [t for g in groups for t in g.instance_infos]
        resolved = resolve_image(args.image, region=region, job_type="inference", instance_types=infos)
        for warning in resolved.warnings:
            pulumi.log.warn(str(warning.under(config_key)), resource=self)

        role_arn: pulumi.Output[str] | None = None
        policy = model_policy(args, region)
        if policy is not None:
            role = ServiceAccountRole.of_cluster(f"{name}-model", cluster, parent=self, namespace=args.namespace, service_account=args.name, policy=policy)
            role_arn = role.role_arn

        # The heaviest DaemonSet load of the groups: the pod must fit beside it on whichever group it lands.
        load = heaviest(loads)
        objects = render(args, image=resolved.uri, instance=smallest(infos), region=region, daemonsets=load, role_arn=role_arn, placement=Placement.of(groups))
        namespace = cluster.namespace(args.namespace, non_root=runs_as_non_root(args.run_as_user), readiness_gates=args.exposure == "internal-nlb")
        depends_on = unique([*namespace, *depends_on])
        account = k8s_objects.create(objects[0], cluster.k8s_opts(self, depends_on=list(depends_on)), name_prefix=name)
        created = {}
        for obj in objects[1:]:
            nlb = obj["kind"] == "Service" and obj["spec"].get("type") == "LoadBalancer" and load_balancer_controller is not None
            after = [*depends_on, account, *([load_balancer_controller] if nlb and load_balancer_controller is not None else [])]
            created[(obj["kind"], obj["metadata"]["name"])] = k8s_objects.create(obj, cluster.k8s_opts(self, depends_on=after), name_prefix=name)

        internal_hostname: pulumi.Output[Any] | None = None
        nlb = created.get(("Service", nlb_service_name(args)))
        if isinstance(nlb, k8s.core.v1.Service):
            internal_hostname = nlb.status.apply(_ingress_hostname)

        self.service_name = args.name
        self.namespace = args.namespace
        self.image: pulumi.Output[str] = pulumi.Output.from_input(resolved.uri)
        self.role_arn = role_arn
        self.internal_hostname = internal_hostname
        self.register_outputs(
            {
                "service_name": args.name,
                "namespace": args.namespace,
                "port": args.port,
                "image": resolved.uri,
                "role_arn": role_arn,
                "internal_hostname": internal_hostname,
            }
        )


def _ingress_hostname(status: Any) -> str | None:
    ingress = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    return ingress[0].hostname if ingress else None
