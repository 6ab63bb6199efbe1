"""DLCTrainingJob: an AWS Deep Learning Container training run on the train group.

One ``batch/v1`` Job, no Kubeflow.  It runs in the cluster that holds the
train node group (the train cluster in ``dedicated``, the one cluster in
``unified``), with:

* **Placement** by ``nodeSelector: {role: train}``: Escalator counts a pod
  towards a node group only when the pod selects the group's label by
  nodeSelector or required affinity (shared/reference/escalator.md §4.4), and a
  toleration for the ``nvidia.com/gpu`` taint of every GPU node.
* **Resources** that fit the group's smallest instance type: ``nvidia.com/gpu``
  in limits and requests, and CPU and memory requests proportional to the GPUs
  taken.  The proportion matters: Escalator computes utilisation from CPU and
  memory requests only, never GPUs, so a pod asking for 8 GPUs and 1 CPU would
  look like 1% of a node and Escalator would not scale up for it.  The default
  is ``gpus / gpus-per-node`` of an estimate of what a node can give pods
  (:mod:`mleks.manifests.node_capacity`); explicit values are checked against the
  same estimate.
  A memory-backed ``/dev/shm`` serves PyTorch data-loader workers.
* **Failure handling**: ``restartPolicy: Never``, a ``backoffLimit``, and a
  ``podFailurePolicy`` that ignores disruptions (spot reclaim, node drain,
  preemption: pod condition ``DisruptionTarget``) so they never use up the
  retries, and fails the job at once on exit codes that mean the command itself
  is wrong (2: usage error, 126: not executable, 127: not found).
* **Credentials** through IRSA only (:class:`~mleks.workload_identity.ServiceAccountRole`):
  read on the S3 data prefixes, read and write on the checkpoint prefix, and
  nothing else.  The pod never mounts a Kubernetes API token.
* **Multi-node** (``nodes > 1``): an Indexed Job (completions = parallelism =
  nodes) with a headless Service of the same name as the pods' ``subdomain``,
  so pod *i* is ``<job>-<i>.<job>.<namespace>.svc.cluster.local``.  torchrun
  reads its rendezvous from ``PET_*`` variables (its ``--flag`` fallbacks), so
  a plain ``torchrun train.py`` joins: ``PET_NODE_RANK`` comes from the
  job-completion-index annotation, ``PET_MASTER_ADDR`` is pod 0's DNS name,
  ``PET_NPROC_PER_NODE`` is the GPUs per pod.  The same values are also set as
  ``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, ``NNODES`` and
  ``NPROC_PER_NODE`` for commands that pass flags explicitly.  On an EFA group
  each pod also gets its share of ``vpc.amazonaws.com/efa`` devices and the
  libfabric settings of :func:`efa_env`.

Re-runs.  ``pulumi up`` never waits for training: the Job (and the headless
Service, whose pods may not exist for minutes while Escalator adds nodes)
carries ``pulumi.com/skipAwait: "true"``.  A Job is immutable, so any change
to its ``spec`` (image, command, env, resources, nodes, retries...) *replaces*
it: the old Job and its pods are deleted first, then the new one starts from
the beginning.  Labels and annotations update in place.  A finished Job is
kept (no ``ttlSecondsAfterFinished`` by default), so an unchanged ``pulumi up``
does nothing and never re-runs a job.  With a TTL, Kubernetes deletes the
finished Job and the next ``pulumi up --refresh`` re-creates it, which runs
it again; the component warns when a TTL is set.  Finished pods do not keep
nodes up: Escalator ignores Succeeded and Failed pods.  To run an unchanged
job again: ``pulumi up --replace <urn of the Job>``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pydantic import Field, field_validator, model_validator

from mleks.catalogs import dlc as dlc_catalog
from mleks.catalogs.dlc import OWN_IMAGE_ADVICE
from mleks.catalogs.gpu import InstanceType
from mleks.catalogs.kueue import QUEUE_LABEL
from mleks.catalogs.node_daemonsets import DaemonSetLoad, ceiling_load, heaviest
from mleks.cluster_base import EksCluster, unique
from mleks.dataset import DatasetMount, check_mount_path, claim_name
from mleks.errors import ConfigError, ConfigWarning
from mleks.gpu_node_group import GpuNodeGroupArgs, NodeGroupInput, placement_errors
from mleks.infra.s3_access import S3Location, check_kms_key_arn, parse_s3_uri, s3_policy
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject
from mleks.manifests.node_capacity import BATCH, fit_errors, gpu_count_error, node_budget, share_requests
from mleks.manifests.quantity import CpuQuantity, MemoryQuantity, cpu_millis, cpu_text, memory_bytes, memory_text
from mleks.manifests.workloads import EnvVars, container_security_context, placement, pod_security_context, resources, shared_memory_volume
from mleks.validation.schema import Model, VersionText, component_errors, raise_all, raised
from mleks.vocabulary import ROLE_ARN_ANNOTATION, ObjectName, label_errors
from mleks.workload_identity import ServiceAccountRole

TYPE = "mleks:training:DLCTrainingJob"
DEFAULT_NAMESPACE = "ml-training"
CONTAINER = "trainer"
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
JOB_LABEL = "mleks.io/training-job"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
DEFAULT_MASTER_PORT = 29500
# Exit codes that mean the command is wrong, so retrying cannot help: 2 is a
# usage error (Python argparse, bash builtins, "can't open file"), 126 "not
# executable", 127 "command not found".
DEFAULT_FAIL_JOB_EXIT_CODES = (2, 126, 127)

# Instance families whose EFA supports RDMA read, where libfabric may use
# GPUDirect RDMA.  Newer libfabric (>= 1.18) detects this itself; the variable
# is for older images and is harmless on these types (aws-samples/
# awsome-distributed-training 1.architectures/efa-cheatsheet.md).  On other
# EFA types (g5, g6, g6e ...) setting it is an error.
EFA_RDMA_READ_FAMILIES = frozenset({"p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300", "p6e-gb200"})

_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MIB = 2**20
_GIB = 2**30


# -- EFA --------------------------------------------------------------------------
def efa_env(instances: list[InstanceType]) -> dict[str, str]:
    """libfabric settings for NCCL over EFA (aws-ofi-nccl), for every EFA group.

    * ``FI_PROVIDER=efa``: libfabric uses EFA only, never its TCP provider.
    * ``FI_EFA_USE_HUGE_PAGE=0``: the EFA provider's buffers use normal pages.
      Huge pages would need a ``hugepages-2Mi`` request that nodes only satisfy
      if huge pages were reserved at boot, and the EFA cheatsheet names this
      setting as the fix for forked data-loader workers failing with "Cannot
      allocate memory"; the cost is a small performance hit.  Hence no
      ``hugepages-2Mi`` request.
    * ``FI_EFA_USE_DEVICE_RDMA=1`` only where every type supports RDMA read
      (:data:`EFA_RDMA_READ_FAMILIES`).

    Not set: ``FI_EFA_FORK_SAFE`` (not needed on kernels >= 5.15; AL2023 runs
    6.x) and the ``RDMAV_*`` variables (the cheatsheet says never).
    """
    env = {"FI_PROVIDER": "efa", "FI_EFA_USE_HUGE_PAGE": "0"}
    if instances and all(t.family in EFA_RDMA_READ_FAMILIES for t in instances):
        env["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return env


# -- arguments ----------------------------------------------------------------------
class SharedVolumeArgs(Model):
    """A shared file system mounted into every pod of the job."""

    claim_name: str
    """An existing PersistentVolumeClaim in the job's namespace: FSx for Lustre
    (``fsx.csi.aws.com``) or EFS (``efs.csi.aws.com``), ReadWriteMany for multi-node jobs."""

    mount_path: str
    """Absolute path in the container, e.g. ``/fsx``."""

    read_only: bool = False
    """Mount read-only.  Default: false."""

    sub_path: str | None = None
    """A directory inside the volume to mount instead of its root.  Default: the root."""

    @field_validator("claim_name")
    @classmethod
    def _claim(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", value):
            raise ConfigError("", value, "the name of an existing PersistentVolumeClaim (lowercase DNS name)", "not a valid claim name")
        return value

    @field_validator("mount_path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_mount_path(value, "/fsx")


class DLCTrainingJobArgs(Model):
    """One training job.  In stack YAML, an entry of ``mleks:trainingJobs``."""

    name: str
    """Job name: lowercase letters, digits and dashes, starting with a letter, at most 50 characters.
    In the dict form of ``trainingJobs`` it is the key."""

    command: list[str] = Field(default_factory=list)
    """The container command, e.g. ``[torchrun, train.py]``.  Replaces the image's ENTRYPOINT
    (the DLC entrypoint only runs a CUDA-compat check and telemetry, then ``eval``s its
    arguments, which re-splits quoted ones).  Default: the image's ENTRYPOINT."""

    args: list[str] = Field(default_factory=list)
    """Arguments of the command.  Default: none (the image's CMD when ``command`` is empty too)."""

    version: VersionText | None = None
    """Framework version of the DLC image, ``X.Y`` (newest catalogued patch) or ``X.Y.Z``.
    Required unless ``image`` is set; there is deliberately no default, because a changed
    default image would replace, and so re-run, every job."""

    framework: Literal["pytorch", "tensorflow"] = "pytorch"
    """DLC framework.  Default: pytorch."""

    accelerator: Literal["gpu", "cpu"] = "gpu"
    """DLC build.  Default: gpu."""

    python: VersionText | None = None
    """Python of the image, ``3.12`` or ``py312``.  Default: any."""

    cuda: VersionText | None = None
    """CUDA of the image, ``13.0`` or ``cu130``.  Default: any."""

    image: str | None = None
    """Any image reference; replaces the DLC lookup.  Default: the DLC for framework/version."""

    namespace: str = DEFAULT_NAMESPACE
    """Kubernetes namespace.  The stack creates it (Pod Security ``baseline``) unless it is a
    built-in one (default, kube-*), and keeps it when the last job goes (it holds your own
    claims too).  Default: ml-training."""

    nodes: int = Field(default=1, ge=1)
    """Pods (torchrun nodes).  More than 1 makes an Indexed Job with a headless Service.
    At most the train group's ``maxSize``.  Default: 1."""

    gpus_per_node: int | None = Field(default=None, ge=1)
    """GPUs per pod, at most the GPUs of the group's smallest instance type.  Default: all of them."""

    cpu: CpuQuantity | None = None
    """CPU request per pod (``"90"``, ``"7500m"``).  Default: the pod's GPU share of what the
    smallest instance type can give pods, so Escalator, which counts CPU and memory but
    not GPUs, scales up for the job."""

    memory: MemoryQuantity | None = None
    """Memory request and limit per pod (``"300Gi"``).  Default: the GPU share, like ``cpu``."""

    shm_size: MemoryQuantity | None = None
    """Size limit of the memory-backed ``/dev/shm`` (counted in the pod's memory).
    Default: a quarter of the memory request."""

    backoff_limit: int | None = Field(default=None, ge=0)
    """Failed pods tolerated before the job fails (disruptions do not count).
    Default: 3 per node, because one pod's failure usually takes its peers down too."""

    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Wall-clock limit of the whole job, in seconds.  Default: none."""

    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    """Delete the finished job after this many seconds.  Default: none (kept), because a job
    deleted by TTL is re-created, and so re-run, by the next ``pulumi up --refresh``."""

    fail_job_exit_codes: list[int] = Field(default_factory=lambda: list(DEFAULT_FAIL_JOB_EXIT_CODES))
    """Exit codes that fail the job at once, without retries.  Default: [2, 126, 127]."""

    env: EnvVars = Field(default_factory=dict)
    """Extra environment variables; they override the ones the job sets.  Default: none."""

    s3_data_prefixes: list[str] = Field(default_factory=list)
    """S3 prefixes the job may read (``s3://bucket/prefix/``); in ``MLEKS_S3_DATA_PREFIXES``.  Default: none."""

    s3_checkpoint_prefix: str | None = None
    """The one S3 prefix the job may write (and read back); in ``MLEKS_S3_CHECKPOINT_PREFIX``.  Default: none."""

    s3_kms_key_arn: str | None = None
    """The customer managed KMS key of SSE-KMS buckets above, if any: adds ``kms:Decrypt`` (and, with a
    checkpoint prefix, ``kms:GenerateDataKey``) on that key through S3 only.  Default: none."""

    volumes: list[SharedVolumeArgs] = Field(default_factory=list)
    """Shared file systems (existing FSx for Lustre or EFS claims).  Default: none."""

    datasets: list[DatasetMount] = Field(default_factory=list)
    """Datasets of the stack (``mleks:datasets``) to mount: ``[{name, mountPath, readOnly}]``; read-only unless
    ``readOnly: false``.  Each is the claim ``dataset-<name>`` in the job's namespace.  Default: none."""

    node_group: str | None = None
    """The train node group to run on (``nodeGroups.<name>``).  Default: the stack's only train group;
    required when there are several.  The image, GPUs, fit and EFA are checked against it."""

    efa: bool | None = None
    """Give each pod EFA devices and the libfabric settings.  Default: when ``nodes > 1``
    and the train group has ``efa: true``."""

    master_port: int = Field(default=DEFAULT_MASTER_PORT, ge=1024, le=65535)
    """TCP port of the torchrun rendezvous on pod 0.  Default: 29500."""

    team: str | None = None
    """The team whose Kueue queue the job goes through (``mleks:teams``).  Default: the team whose namespace
    the job runs in, when the cluster has team queues.  A queued job is created suspended; Kueue starts it
    once the team's quota (or what it may borrow) has room for all of it."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on the Job and its pods.  Default: none."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # 50 leaves room for the pod hostname "<name>-<index>" within 63 characters.
        if len(value) > 50 or not _NAME.fullmatch(value):
            raise ConfigError("", value, "1-50 lowercase letters, digits and dashes, starting with a letter", "not a valid job name")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if len(value) > 63 or not _NAME.fullmatch(value):
            raise ConfigError("", value, "a namespace name: lowercase letters, digits and dashes, at most 63", "not a valid namespace")
        return value

    @field_validator("fail_job_exit_codes")
    @classmethod
    def _exit_codes(cls, value: list[int]) -> list[int]:
        for i, code in enumerate(value):
            if not 1 <= code <= 255:
                raise ConfigError(f"[{i}]", code, "exit codes from 1 to 255 (0 is success)", "not a failure exit code")
        return sorted(set(value))

    @field_validator("s3_data_prefixes")
    @classmethod
    def _data(cls, value: list[str]) -> list[str]:
        for i, uri in enumerate(value):
            try:
                parse_s3_uri(uri)
            except ConfigError as err:
                raise ConfigError(f"[{i}]", uri, err.accepted, err.problem) from None
        return value

    @field_validator("s3_kms_key_arn")
    @classmethod
    def _kms(cls, value: str | None) -> str | None:
        return check_kms_key_arn(value)

    @field_validator("s3_checkpoint_prefix")
    @classmethod
    def _checkpoint(cls, value: str | None) -> str | None:
        if value is not None:
            loc = parse_s3_uri(value)
            if not loc.prefix:
                raise ConfigError("", value, "a prefix inside the bucket, e.g. s3://my-bucket/checkpoints/my-job/", "write access to a whole bucket")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        errors = label_errors(value)
        errors += [
            ConfigError(k, value[k], f"a label key other than {sorted(_OWN_LABEL_KEYS)}", "this label is set by the job") for k in value if k in _OWN_LABEL_KEYS
        ]
        if errors:
            raise_all("labels", errors)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DLCTrainingJobArgs:
        if self.image is None and self.version is None:
            raise ConfigError("version", None, "a DLC framework version such as 2.13, or an explicit image", "missing")
        if self.image is not None and (self.version, self.python, self.cuda) != (None, None, None):
            key = "version" if self.version is not None else "python" if self.python is not None else "cuda"
            raise ConfigError(key, getattr(self, key), "no DLC selector when image is set (the image is used as given)", "conflicts with image")
        if not self.command and not self.args:
            raise ConfigError("command", [], "the training command, e.g. [torchrun, train.py]", "the job would run the image's default shell and exit")
        paths = [v.mount_path.rstrip("/") for v in self.volumes]
        for i, path in enumerate(paths):
            if path in paths[:i]:
                raise ConfigError(f"volumes[{i}].mountPath", self.volumes[i].mount_path, "a mount path used once", "mounted twice")
        names = [d.name for d in self.datasets]
        for i, d in enumerate(self.datasets):
            if d.name in names[:i]:
                raise ConfigError(f"datasets[{i}].name", d.name, "each dataset once", "mounted twice")
            if d.mount_path.rstrip("/") in paths:
                raise ConfigError(f"datasets[{i}].mountPath", d.mount_path, "a mount path no other volume uses", "mounted twice")
            paths.append(d.mount_path.rstrip("/"))
        return self

    @property
    def mounted_volumes(self) -> list[SharedVolumeArgs]:
        """The shared volumes and the datasets, as the claims the pods mount."""
        datasets = [SharedVolumeArgs(claim_name=claim_name(d.name), mount_path=d.mount_path, read_only=d.read_only) for d in self.datasets]
        return [*self.volumes, *datasets]

    @property
    def data_locations(self) -> list[S3Location]:
        return [parse_s3_uri(u) for u in self.s3_data_prefixes]

    @property
    def checkpoint_location(self) -> S3Location | None:
        return parse_s3_uri(self.s3_checkpoint_prefix) if self.s3_checkpoint_prefix else None


_OWN_LABEL_KEYS = frozenset({"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/managed-by", JOB_LABEL})


# -- the plan: every decision, before anything is registered ---------------------------
@dataclass(frozen=True)
class JobPlan:
    """What a job will run and request, worked out from its args and the train group."""

    args: DLCTrainingJobArgs
    image: dlc_catalog.ResolvedImage
    instance: InstanceType
    selector: dict[str, str]
    """The node labels the job's pods select: its train group's role and name."""
    gpus: int
    cpu: str
    memory: str
    shm_size: str
    backoff_limit: int
    efa_devices: int
    env: dict[str, str]
    policy: dict[str, Any] | None
    warnings: tuple[ConfigWarning, ...]
    """Keyed by the job's own keys (``version``, ``image``, ``ttlSecondsAfterFinished``...)."""
    queue: str | None = None
    """The Kueue LocalQueue the job goes through (its team's), or None outside any queue."""

    @property
    def name(self) -> str:
        return self.args.name

    @property
    def namespace(self) -> str:
        return self.args.namespace

    @property
    def multi_node(self) -> bool:
        return self.args.nodes > 1

    @property
    def master_addr(self) -> str | None:
        return master_addr(self.name, self.namespace) if self.multi_node else None


def master_addr(job: str, namespace: str) -> str:
    """Pod 0's DNS name: hostname ``<job>-0`` in the subdomain of the headless Service ``<job>``."""
    return f"{job}-0.{job}.{namespace}.svc.cluster.local"


def plan_job(args: DLCTrainingJobArgs, group: GpuNodeGroupArgs, region: str, daemonsets: DaemonSetLoad) -> JobPlan:
    """Check a job against the train group and region, and decide its resources.

    ``daemonsets``: what the DaemonSets on the group's nodes request (``cluster.gpu_node_load(group)``),
    which the job's pods cannot have.  Default requests are sized against the heavier of that and
    the ceiling any add-on set could reach (:func:`~mleks.catalogs.node_daemonsets.ceiling_load`), so
    adding or removing an add-on never changes, and so never re-runs, a job; explicit ``cpu`` and
    ``memory`` only have to fit beside what the cluster runs.

    Raises ``ConfigError`` keyed relative to the job (``gpusPerNode``,
    ``nodes``, ``version``...), so callers can prefix the config path.
    """
    instance = group.smallest_instance
    group_key = f"nodeGroups.{group.key}"
    # Defaults are sized against the ceiling; explicit requests only have to fit what the cluster runs.
    sizing = heaviest([daemonsets, ceiling_load(ami_family=group.ami_family, efa=group.efa)])
    gpus = args.gpus_per_node if args.gpus_per_node is not None else instance.accelerator_count
    too_many = gpu_count_error("gpusPerNode", gpus, instance, group_key)
    if too_many is not None:
        raise too_many
    if args.nodes > group.max_size:
        raise ConfigError(
            "nodes", args.nodes, f"at most {group.max_size}, the train group's maxSize ({group_key}.maxSize)", "more pods than the group has nodes"
        )

    try:
        image = dlc_catalog.resolve_dlc_image(
            args.framework,
            args.version or "",
            region=region,
            accelerator=args.accelerator,
            python=args.python,
            cuda=args.cuda,
            instance_types=group.instance_infos,
            image_override=args.image,
        )
    except ConfigError as err:
        if err.key == "region":
            # The region is right; this job just needs an image from elsewhere.
            raise ConfigError("image", None, f"an explicit image: there is no DLC registry for {region}", err.problem) from None
        key = "image" if err.key == "image_override" else err.key
        raise ConfigError(key, err.value, err.accepted, err.problem) from None

    too_big = fit_errors(args.cpu, args.memory, instance, group_key, daemonsets)
    if too_big:
        raise too_big[0]
    budget = node_budget(instance, daemonsets)
    default_cpu, default_memory = share_requests(instance, gpus, BATCH, sizing)
    cpu = cpu_millis(args.cpu) if args.cpu is not None else default_cpu
    memory = memory_bytes(args.memory) if args.memory is not None else default_memory
    default_shm = memory // 4 // _GIB * _GIB or memory // 4 // _MIB * _MIB
    shm = memory_bytes(args.shm_size) if args.shm_size is not None else default_shm
    if shm > memory:
        accepted = f"at most the memory request ({memory_text(memory)}); /dev/shm counts as pod memory"
        raise ConfigError("shmSize", args.shm_size, accepted, "larger than the memory")

    if args.efa and not group.efa:
        raise ConfigError("efa", True, "false, or a train group with efa: true", "the train group has no EFA interfaces")
    use_efa = args.efa if args.efa is not None else (args.nodes > 1 and group.efa)
    efa_devices = max(1, group.efa_interfaces * gpus // instance.accelerator_count) if use_efa else 0

    warnings = [
        w.rekeyed("image") if w.key == "image_override" else ConfigWarning(w.key, w.value, w.message.replace(OWN_IMAGE_ADVICE, f"{OWN_IMAGE_ADVICE} (image)"))
        for w in image.warnings
    ]
    gpu_share = gpus / instance.accelerator_count
    if max(cpu / budget.cpu_millis, memory / budget.memory_bytes) < gpu_share / 2:
        warnings.append(
            ConfigWarning(
                "cpu" if args.cpu is not None else "memory",
                args.cpu if args.cpu is not None else args.memory,
                "cpu and memory requests are under half the pod's GPU share of a node; Escalator counts only"
                " CPU and memory, so it may not add nodes for this job",
            )
        )
    if args.ttl_seconds_after_finished is not None:
        warnings.append(
            ConfigWarning(
                "ttlSecondsAfterFinished",
                args.ttl_seconds_after_finished,
                "once Kubernetes deletes the finished job, the next `pulumi up --refresh` re-creates it and it runs again",
            )
        )

    plan_env = _env(args, gpus, region, use_efa, group)
    return JobPlan(
        args=args,
        image=image,
        instance=instance,
        selector=group.selector,
        gpus=gpus,
        cpu=args.cpu if args.cpu is not None else cpu_text(cpu),
        memory=args.memory if args.memory is not None else memory_text(memory),
        shm_size=args.shm_size if args.shm_size is not None else memory_text(shm),
        backoff_limit=args.backoff_limit if args.backoff_limit is not None else 3 * args.nodes,
        efa_devices=efa_devices,
        env=plan_env,
        policy=s3_policy(args.data_locations, args.checkpoint_location, region=region, kms_key_arn=args.s3_kms_key_arn),
        warnings=tuple(warnings),
    )


def _env(args: DLCTrainingJobArgs, gpus: int, region: str, efa: bool, group: GpuNodeGroupArgs) -> dict[str, str]:
    """Plain-value variables; ``NODE_RANK`` and ``PET_NODE_RANK`` come from the pod (see :func:`render`)."""
    env = {"AWS_REGION": region, "NNODES": str(args.nodes), "NPROC_PER_NODE": str(gpus)}
    if args.nodes > 1:
        env.update(
            {
                "MASTER_ADDR": master_addr(args.name, args.namespace),
                "MASTER_PORT": str(args.master_port),
                # The pod's interface under the Amazon VPC CNI; NCCL's bootstrap
                # (and its socket transport, without EFA) must use it.
                "NCCL_SOCKET_IFNAME": "eth0",
            }
        )
    if efa:
        env.update(efa_env(group.instance_infos))
    if args.s3_data_prefixes:
        env["MLEKS_S3_DATA_PREFIXES"] = ",".join(args.s3_data_prefixes)
    if args.s3_checkpoint_prefix:
        env["MLEKS_S3_CHECKPOINT_PREFIX"] = args.s3_checkpoint_prefix
    # torchrun reads each --flag from PET_<FLAG> when the flag is not given.
    for name in ("NNODES", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT"):
        if name in env:
            env[f"PET_{name}"] = env[name]
    return {**env, **args.env}


# -- rendering (pure) ---------------------------------------------------------------------
def labels_of(plan: JobPlan) -> dict[str, str]:
    return {
        **plan.args.labels,
        "app.kubernetes.io/name": plan.name,
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/managed-by": "pulumi",
        JOB_LABEL: plan.name,
    }


def render_service_account(plan: JobPlan, role_arn: pulumi.Input[str] | None) -> KubeObject:
    meta: dict[str, Any] = {"name": plan.name, "namespace": plan.namespace, "labels": labels_of(plan)}
    if role_arn is not None:
        meta["annotations"] = {ROLE_ARN_ANNOTATION: role_arn}
    # No API token: training needs none, and IRSA projects its own token.
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def render_headless_service(plan: JobPlan) -> KubeObject:
    """DNS names for the job's pods; its name is the pods' ``subdomain``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": plan.name,
            "namespace": plan.namespace,
            "labels": labels_of(plan),
            # Pods wait for Escalator to add nodes, and finish; neither is a
            # reason for `pulumi up` to wait for endpoints.
            "annotations": dict(SKIP_AWAIT),
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: plan.name},
            # Pod 0 must resolve before any pod is ready (there are no probes).
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": plan.args.master_port, "targetPort": plan.args.master_port, "protocol": "TCP"}],
        },
    }


def _container(plan: JobPlan) -> dict[str, Any]:
    args = plan.args
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plan.env.items()]
    if plan.multi_node:
        rank = {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}
        env += [{"name": n, "valueFrom": rank} for n in ("NODE_RANK", "PET_NODE_RANK") if n not in args.env]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": plan.image.uri,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "resources": resources(plan.cpu, plan.memory, plan.gpus, plan.efa_devices, guaranteed=True),
        # DLC training images run as root and write where root owns (TEMP=/tmp,
        # ~/.cache, pip installs), so neither non-root nor a read-only root;
        # every capability is dropped all the same.  EFA jobs need no IPC_LOCK
        # (which Pod Security baseline refuses): the nodes of an EFA group hand
        # every container an unlimited locked-memory limit for libfabric's
        # buffer registration (mleks.infra.managed_node_group, _AL2023_EFA_MEMLOCK).
        "securityContext": container_security_context(False),
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            *(
                {"name": f"shared-{i}", "mountPath": v.mount_path, "readOnly": v.read_only, **({"subPath": v.sub_path} if v.sub_path else {})}
                for i, v in enumerate(args.mounted_volumes)
            ),
        ],
    }
    if args.command:
        container["command"] = list(args.command)
    if args.args:
        container["args"] = list(args.args)
    return container


def render_job(plan: JobPlan) -> KubeObject:
    args = plan.args
    labels = labels_of(plan)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": plan.name,
        "automountServiceAccountToken": False,
        # Service environment variables (<SVC>_PORT...) could clash with the
        # rendezvous variables and are never needed.
        "enableServiceLinks": False,
        "securityContext": pod_security_context(None, None, None),
        # Escalator counts a pod towards the train group only when it selects
        # the group's label by nodeSelector (or required affinity).
        **placement(plan.selector, plan.gpus),
        "containers": [_container(plan)],
        "volumes": [
            shared_memory_volume(plan.shm_size),
            *(
                {"name": f"shared-{i}", "persistentVolumeClaim": {"claimName": v.claim_name, "readOnly": v.read_only}}
                for i, v in enumerate(args.mounted_volumes)
            ),
        ],
    }
    if plan.multi_node:
        pod_spec["subdomain"] = plan.name
    rules: list[dict[str, Any]] = [
        # Spot reclaim, node drain or scale-down, preemption: not the job's fault.
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
    if args.fail_job_exit_codes:
        rules.append({"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": list(args.fail_job_exit_codes)}})
    spec: dict[str, Any] = {
        "completions": args.nodes,
        "parallelism": args.nodes,
        "backoffLimit": plan.backoff_limit,
        "podFailurePolicy": {"rules": rules},
        # A replacement pod starts only once the old one is gone, so two pods
        # never hold the same rank (and hostname) at once.
        "podReplacementPolicy": "Failed",
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if plan.multi_node:
        spec["completionMode"] = "Indexed"
    if args.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = args.active_deadline_seconds
    if args.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = args.ttl_seconds_after_finished
    job_labels = dict(labels)
    if plan.queue is not None:
        # Created suspended, in the team's queue: no pod exists (and Escalator adds no node) until Kueue admits it.
        job_labels[QUEUE_LABEL] = plan.queue
        spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": job_labels, "annotations": dict(SKIP_AWAIT)},
        "spec": spec,
    }


def render_network_policy(plan: JobPlan) -> KubeObject:
    """Ingress to the job's pods from the job's own pods only (any port: NCCL opens ephemeral
    ones for its bootstrap and socket transport); a single-node job admits nothing at all."""
    own = {"matchLabels": {JOB_LABEL: plan.name}}
    spec: dict[str, Any] = {"podSelector": own, "policyTypes": ["Ingress"]}
    if plan.multi_node:
        spec["ingress"] = [{"from": [{"podSelector": own}]}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": labels_of(plan)},
        "spec": spec,
    }


def object_names(args: DLCTrainingJobArgs) -> tuple[ObjectName, ...]:
    """Every Kubernetes object :func:`render` creates: ServiceAccount, NetworkPolicy, Job, and a headless Service when multi-node."""
    kinds = ("ServiceAccount", "NetworkPolicy", "Job", *(("Service",) if args.nodes > 1 else ()))
    return tuple(ObjectName(kind, args.namespace, args.name) for kind in kinds)


def render(plan: JobPlan, role_arn: pulumi.Input[str] | None = None) -> list[KubeObject]:
    """The job's Kubernetes objects: ServiceAccount, NetworkPolicy, headless Service (multi-node), Job."""
    objs = [render_service_account(plan, role_arn), render_network_policy(plan)]
    if plan.multi_node:
        objs.append(render_headless_service(plan))
    objs.append(render_job(plan))
    return objs


KUEUE_OWNED_FIELDS = ("spec.suspend",)
"""What of a queued Job Pulumi leaves to Kueue: ``spec.suspend``, which Kueue flips on admission and
eviction.  After a ``pulumi refresh`` the state holds Kueue's value; without this the difference would
replace the running Job (any spec change does), and an update would re-suspend it.  What else Kueue
touches needs no ignoring (kubernetes-sigs/kueue v0.19.2 pkg/podset/podset.go Merge, RestorePodSpec):
it adds the flavor's node labels, which equal the job's own nodeSelector, skips tolerations the job
already has, restores the template on eviction, and its own labels and annotations are keys Pulumi does
not manage (refresh drops them, server-side apply leaves them).  Ignoring more would hide real edits:
moving a job to another group of the same type would change nothing but its nodeSelector."""


def job_resource_options(queued: bool = False) -> dict[str, Any]:
    """Resource options of the Job: any spec change replaces it (delete first: the name is fixed).  A queued
    job leaves Kueue's fields to Kueue: a ``pulumi up`` after admission neither re-suspends the running job
    nor sees Kueue's changes as a reason to replace it."""
    options: dict[str, Any] = {"replace_on_changes": ["spec"], "delete_before_replace": True}
    if queued:
        options["ignore_changes"] = list(KUEUE_OWNED_FIELDS)
    return options


def resolve_queue(team: str | None, namespace: str, queues: dict[str, str] | None) -> tuple[str | None, list[ConfigError]]:
    """The team queue a job of ``team`` in ``namespace`` goes through, and why it cannot (keys ``team`` and
    ``namespace``, relative to the job).  ``queues``: namespace -> team of the cluster's team queues, or None
    when the cluster has none."""
    if queues is None:
        if team is not None:
            return None, [
                ConfigError(
                    "team",
                    team,
                    "no team, or a cluster with team queues (mleks:teams, or a KueueAddon created before the job)",
                    "the cluster has no team queues",
                )
            ]
        return None, []
    if team is not None:
        homes = [ns for ns, t in queues.items() if t == team]
        if not homes:
            return None, [ConfigError("team", team, f"one of the teams {sorted(set(queues.values()))}", "no such team")]
        if homes[0] != namespace:
            return None, [
                ConfigError("namespace", namespace, f"{homes[0]!r}, the namespace of team {team!r}", "a team's queue takes jobs from its own namespace only")
            ]
        return team, []
    found = queues.get(namespace)
    if found is None:
        listed = ", ".join(f"{t} ({ns})" for ns, t in sorted(queues.items()))
        return None, [
            ConfigError(
                "namespace",
                namespace,
                f"the namespace of a team ({listed}), or name the team",
                "the cluster's jobs go through team queues, and no team runs jobs in this namespace",
            )
        ]
    return found, []


# -- the component ------------------------------------------------------------------------
class DLCTrainingJob(pulumi.ComponentResource):
    """A DLC training Job on the train group of ``cluster``.

    ``node_group`` is the train group (a :class:`~mleks.gpu_node_group.GpuNodeGroup`, or its args;
    its instance types fix the image architecture and the resource checks); ``region`` picks the
    DLC registry (default: the cluster's).
    ``depends_on`` is typically the job's Namespace.  Bad args raise
    ``ConfigError`` before anything is registered.  ``config_key``: where the
    job sits in your config (``mleks:trainingJobs.smoke``), for warnings.

    Outputs: ``image`` (the resolved URI), ``job_name``, ``namespace``,
    ``service_account``, ``role_arn`` (or ``None`` without S3 access),
    ``master_addr`` (multi-node only).
    """

    def __init__(
        self,
        name: str,
        args: DLCTrainingJobArgs,
        *,
        cluster: EksCluster,
        node_group: NodeGroupInput,
        region: str | None = None,
        depends_on: list[pulumi.Resource] | None = None,
        config_key: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        groups, errors = placement_errors(node_group, role="train", cluster=cluster, named=[args.node_group] if args.node_group else None)
        if len(groups) > 1:
            errors.append(ConfigError("node_group", [g.key for g in groups], "one train group: a job's pods all run on one group", "several groups"))
        plan: JobPlan | None = None
        args_errors: list[ConfigError] = []
        queue, queue_errors = resolve_queue(args.team, args.namespace, dict(cluster.kueue.queues) if cluster.kueue is not None else None)
        errors += [e.under("args") for e in queue_errors]
        if groups and not errors:
            plan, args_errors = raised(lambda: plan_job(args, groups[0], region or cluster.region, cluster.gpu_node_load(groups[0])))
            plan = None if plan is None else dataclasses.replace(plan, queue=queue)
        if errors or args_errors or plan is None:
            raise component_errors(errors, component="DLCTrainingJob", name=name, config_key=config_key, args_errors=args_errors)
        super().__init__(TYPE, name, None, opts)
        self.plan = plan
        for warning in plan.warnings:
            pulumi.log.warn(str(warning.under(config_key)), resource=self)

        role_arn: pulumi.Output[str] | None = None
        if plan.policy is not None:
            role = ServiceAccountRole.of_cluster(f"{name}-irsa", cluster, parent=self, namespace=plan.namespace, service_account=plan.name, policy=plan.policy)
            role_arn = role.role_arn

        # DLC training images run as root, so the namespace cannot be restricted on their account.
        deps = unique([*cluster.namespace(plan.namespace, non_root=False), *(depends_on or [])])
        created: list[pulumi.Resource] = []
        if plan.queue is not None and cluster.kueue is not None:
            # The webhook that suspends and admits it, and its LocalQueue, come first.
            deps = unique([*deps, *cluster.kueue.ready])
        for obj in render(plan, role_arn):
            extra = job_resource_options(plan.queue is not None) if obj["kind"] == "Job" else {}
            # The Job waits for its ServiceAccount (and so its IRSA role): a pod
            # created before them would start without AWS credentials.
            created.append(k8s_objects.create(obj, cluster.k8s_opts(self, depends_on=deps + created, **extra), name_prefix=name))

        self.image: pulumi.Output[str] = pulumi.Output.from_input(plan.image.uri)
        self.role_arn = role_arn
        self.register_outputs(
            {
                "image": plan.image.uri,
                "job_name": plan.name,
                "namespace": plan.namespace,
                "service_account": plan.name,
                "role_arn": role_arn,
                "master_addr": plan.master_addr,
            }
        )
