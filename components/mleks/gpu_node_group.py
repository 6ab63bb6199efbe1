"""GpuNodeGroup: one EKS managed node group of NVIDIA GPU nodes for one role.

Nodes carry ``role=<role>``, ``mleks.io/node-group=<name>`` and GPU facts as labels, and the taint
``nvidia.com/gpu=true:NoSchedule`` so only pods that ask for GPUs land there.
Groups scale from zero by default; exactly one autoscaler (Escalator for
training, cluster-autoscaler for inference, or none) owns each group's size.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws
from pydantic import AfterValidator, Field, field_validator, model_validator

from mleks.catalogs import gpu as gpu_catalog
from mleks.catalogs import karpenter as karpenter_catalog
from mleks.catalogs.gpu import EFA_RESOURCE, NVIDIA_GPU_RESOURCE, InstanceType
from mleks.catalogs.node_daemonsets import DaemonSetLoad
from mleks.cluster_base import EksCluster, after_program
from mleks.efa_device_plugin import EfaDevicePlugin
from mleks.errors import ConfigError, ConfigErrors
from mleks.infra.managed_node_group import (
    GP3_IOPS_PER_MIBPS,
    GP3_MAX_GIB,
    GP3_MAX_IOPS,
    GP3_MAX_IOPS_PER_GIB,
    GP3_MAX_MIBPS,
    GP3_MIN_IOPS,
    GP3_MIN_MIBPS,
    NodeGroupSpec,
    RootVolume,
    asg_name_of,
    create_node_group,
    node_user_data,
)
from mleks.manifests import k8s_objects
from mleks.manifests import karpenter as karpenter_manifests
from mleks.manifests.escalator_config import parse_go_duration
from mleks.manifests.karpenter import PoolSpec
from mleks.manifests.node_capacity import fit_errors, gpu_count_error
from mleks.node_monitoring_agent import NodeMonitoringAgent
from mleks.node_repair import NodeRepairArgs
from mleks.nvidia_device_plugin import NvidiaDevicePlugin
from mleks.validation.schema import Model, component_errors, raise_all
from mleks.validation.tags import MAX_TAGS_PER_RESOURCE, PROJECT_TAG_KEYS, PROPAGATED_PROJECT_KEYS, SERVICE_TAG_KEYS
from mleks.vocabulary import (
    ACCELERATOR_LABEL,
    AMI_FAMILY_LABEL,
    EFA_PRESENT_LABEL,
    GPU_COUNT_LABEL,
    GPU_MEMORY_LABEL,
    GPU_MODEL_LABEL,
    GPU_PRESENT_LABEL,
    GPU_TAINT,
    NODE_GROUP_LABEL,
    ROLE_LABEL,
    AmiFamily,
    Role,
    label_errors,
)

Autoscaler = Literal["escalator", "cluster-autoscaler", "karpenter", "none"]
CapacityType = Literal["on-demand", "spot", "capacity-block"]

DEFAULT_AUTOSCALER: dict[str, Autoscaler] = {"train": "escalator", "inference": "cluster-autoscaler"}

_CAPACITY_API = {"on-demand": "ON_DEMAND", "spot": "SPOT", "capacity-block": "CAPACITY_BLOCK"}
_AMI_TYPES = {
    ("al2023", "amd64"): "AL2023_x86_64_NVIDIA",
    ("al2023", "arm64"): "AL2023_ARM_64_NVIDIA",
    ("bottlerocket", "amd64"): "BOTTLEROCKET_x86_64_NVIDIA",
    ("bottlerocket", "arm64"): "BOTTLEROCKET_ARM_64_NVIDIA",
}

CA_TEMPLATE_PREFIX = "k8s.io/cluster-autoscaler/node-template"


_GROUP_NAME = re.compile(r"[a-z]([a-z0-9-]{0,16}[a-z0-9])?")
GROUP_NAME_MAX = 18
"""Resource names are ``<namePrefix (32)>-<group>-gpu`` and EKS node group names get Pulumi's
8-character suffix, within EKS's 63 characters: 18 is what is left for the group."""


def normalized_group_name(name: str) -> str:
    """The spelling a group name takes in resource names and labels: lower case, ``_`` as ``-``."""
    return name.strip().lower().replace("_", "-")


def check_group_name(value: str) -> str:
    """``value`` unchanged if it normalizes to a valid group name (see :func:`normalized_group_name`)."""
    if not _GROUP_NAME.fullmatch(normalized_group_name(value)):
        raise ConfigError(
            "",
            value,
            f"1-{GROUP_NAME_MAX} letters, digits, dashes or underscores, starting with a letter, e.g. train-p5",
            "not a node group name (it becomes part of AWS and Kubernetes names)",
        )
    return value


_SNAPSHOT_ID = re.compile(r"^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
# nodeadm ignores FastImagePull below a vCPU/memory threshold and recommends 2xlarge or larger, with at
# least 600 MiB/s of root volume throughput (amazon-eks-ami nodeadm/doc/examples.md, "Enabling fast image pull").
PARALLEL_PULL_MIN_VCPU = 8
PARALLEL_PULL_MIN_MIBPS = 600
PARALLEL_PULL_MIBPS = 1000


class FastStartArgs(Model):
    """Image fast-start levers of one GPU group (``nodeGroups.<name>.fastStart``)."""

    parallel_pull: bool | None = None
    """Pull and unpack image layers in parallel (SOCI parallel pull mode: AL2023 nodeadm ``FastImagePull``,
    Bottlerocket ``soci-snapshotter`` ``parallel-pull-unpack``).  It helps images read in full at start, as
    training images are, unlike lazy loading.  Default: on when the group's smallest type has 8 or more vCPUs
    and no snapshot is set."""

    data_volume_snapshot_id: str | None = None
    """Bottlerocket only: an EBS snapshot (``snap-...``) of a data volume that already holds the images, built
    by ``python -m stacks.image_snapshot``.  Nodes boot with the images in place.  Default: none."""

    data_volume_snapshot_size_gib: int | None = Field(default=None, ge=1)
    """The snapshot's size in GiB, as the script prints it, so a too-small ``diskSizeGib`` is caught before deploying."""

    @field_validator("data_volume_snapshot_id")
    @classmethod
    def _snapshot(cls, value: str | None) -> str | None:
        if value is not None and not _SNAPSHOT_ID.match(value):
            raise ConfigError("", value, "an EBS snapshot id: snap- and 8 or 17 hexadecimal digits", "not a snapshot id")
        return value


class KarpenterPoolArgs(Model):
    """How Karpenter runs a group it owns (``nodeGroups.<name>.karpenter``, with ``autoscaler: karpenter``)."""

    max_gpus: int | None = Field(default=None, ge=1)
    """The NodePool's ``limits`` on ``nvidia.com/gpu``: Karpenter launches nothing that would take the pool
    past it.  Default: ``maxSize`` times the GPUs of the group's smallest type, so the pool never has more
    than ``maxSize`` nodes."""

    weight: int | None = None
    """Which pool Karpenter tries first when a pod may land on several (higher first; NodePool ``weight``,
    1-100): give a spot pool a higher weight than its on-demand fallback.  Default: none (Karpenter's
    cheapest-first choice)."""

    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = "WhenEmpty"
    """Which nodes Karpenter removes: ``WhenEmpty`` only removes nodes without serving pods, because moving
    a model server to pack nodes tighter costs a cold start of minutes.  Default: WhenEmpty."""

    consolidate_after: str = "10m"
    """How long a node stays empty before Karpenter removes it (a Go duration such as ``10m``), so short
    lulls between bursts keep a warm node.  Default: 10m."""

    expire_after: str = "Never"
    """The age at which Karpenter replaces a node, or ``Never``.  Expiry is forceful: it ignores the
    disruption budget, so nodes launched in one burst all drain together.  Default: Never, because the
    AMI is pinned (``amiVersion``): a new AMI reaches the nodes as drift, one budget at a time."""

    termination_grace_period: str = "30m"
    """How long Karpenter may drain a node before it removes the pods left (PodDisruptionBudgets and
    ``karpenter.sh/do-not-disrupt`` pods are waited for until then).  It also bounds how long removing the
    pool, or ``pulumi destroy``, waits for the pool's nodes.  Default: 30m."""

    disruption_budget: str = "1"
    """How many of the pool's nodes Karpenter may disrupt at once for consolidation and drift: a number or a
    percentage (expiry, interruption and repair are not budgeted).  Default: 1, so consolidation and drift
    take at most one node of a serving pool at a time."""

    ami_version: str | None = None
    """The AMI release the pool's nodes run, pinned: an amazon-eks-ami release (``v20260714``) for AL2023,
    a Bottlerocket release (``v1.50.0``) for Bottlerocket.  Changing it replaces every node of the pool, one
    budget at a time.  Default: v20260714 on AL2023 (the release mleks was tested with); required on Bottlerocket."""

    def problems(self) -> list[ConfigError]:
        errors = []
        for key, value, never in (
            ("consolidateAfter", self.consolidate_after, True),
            ("expireAfter", self.expire_after, True),
            ("terminationGracePeriod", self.termination_grace_period, False),
        ):
            if not (karpenter_catalog.DURATION.match(value) or (never and value == "Never")):
                accepted = "a duration of hours, minutes or seconds such as 10m or 1h30m" + (", or Never" if never else "")
                errors.append(ConfigError(key, value, accepted, "not a Karpenter duration"))
        if self.weight is not None and not 1 <= self.weight <= 100:
            errors.append(ConfigError("weight", self.weight, "1 to 100 (the NodePool CRD's range)", "out of range"))
        if not karpenter_catalog.BUDGET.match(self.disruption_budget):
            errors.append(ConfigError("disruptionBudget", self.disruption_budget, "a number of nodes such as 1, or a percentage such as 10%", "not a budget"))
        return errors


class GpuNodeGroupArgs(Model):
    """Settings of one GPU node group.  In stack YAML, under ``nodeGroups.<name>``."""

    role: Role
    """What the group is for: ``train`` or ``inference``; becomes the ``role`` node label.  In stack YAML it
    defaults to the group's name when that is a role (``nodeGroups.train``)."""

    name: Annotated[str | None, AfterValidator(lambda v: None if v is None else check_group_name(v))] = None
    """The group's name as written (in stack YAML, its key under ``nodeGroups``).  Lower-cased with ``_`` as
    ``-`` (:attr:`group_name`), it is in resource names and the ``mleks.io/node-group`` node label.  Default: the role."""

    instance_types: list[str]
    """NVIDIA GPU instance types, all of one architecture; the first is preferred."""

    min_size: int = Field(default=0, ge=0)
    """Minimum nodes.  Default: 0, so an idle group costs nothing."""

    max_size: int = Field(default=2, ge=1)
    """Maximum nodes.  Default: 2."""

    desired_size: int | None = None
    """Initial nodes.  Default: ``minSize``.  Ignored after creation when an autoscaler owns the group."""

    capacity_type: CapacityType = "on-demand"
    """``on-demand``, ``spot`` or ``capacity-block``.  Default: on-demand."""

    capacity_reservation_id: str | None = None
    """The Capacity Block reservation (``cr-...``), required with ``capacityType: capacity-block``.
    The group then uses only the cluster's private subnets in the reservation's AZ."""

    ami_family: AmiFamily = "al2023"
    """``al2023`` (EKS AL2023 NVIDIA AMI) or ``bottlerocket`` (ships its own device plugin).  Default: al2023."""

    disk_size_gib: int = Field(default=200, ge=50, le=GP3_MAX_GIB)
    """Root gp3 volume in GiB, 50 to 65536.  DLC images are 10-20 GB each and several are cached.  Default: 200."""

    disk_throughput_mibps: int = Field(default=500, ge=GP3_MIN_MIBPS, le=GP3_MAX_MIBPS)
    """gp3 throughput in MiB/s, for pulling multi-GB images quickly.  Default: 500, or 1000 when the group pulls
    in parallel (``fastStart``), which nodeadm's guidance wants at 600 or more."""

    disk_iops: int = Field(default=6000, ge=GP3_MIN_IOPS, le=GP3_MAX_IOPS)
    """gp3 IOPS, 3000 to 80000 and at most 500 per GiB.  Default: 6000."""

    efa: bool = False
    """Attach every EFA interface the type has, in one subnet, with a cluster placement group on on-demand and
    spot capacity (not on a Capacity Block: a placement group the block was not made with loses reserved
    instances, eksctl#7949).  Default: false."""

    efa_subnet_id: str | None = None
    """The subnet (one AZ) for an EFA group.  Default: the cluster's first private subnet
    (with a Capacity Block, the first one in the reservation's AZ)."""

    autoscaler: Autoscaler | None = None
    """Who owns the group's size.  Default: ``escalator`` for train, ``cluster-autoscaler`` for inference.
    ``karpenter`` (inference groups only) makes the group a Karpenter NodePool instead of a managed node
    group; see docs/autoscaling.md#karpenter."""

    karpenter: KarpenterPoolArgs | None = None
    """Karpenter's settings for the group, with ``autoscaler: karpenter``.  Default: see each field."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Extra node labels.  May not override the labels this component sets."""

    fast_start: FastStartArgs = Field(default_factory=lambda: FastStartArgs())
    """How nodes get images quickly: ``parallelPull`` (SOCI parallel pull and unpack) and, on Bottlerocket,
    ``dataVolumeSnapshotId`` (a snapshot that already holds the images).  Default: parallel pull on groups
    whose types have 8 vCPUs or more, no snapshot.  See docs/operations.md#fast-starts."""

    auto_repair: NodeRepairArgs = Field(default_factory=NodeRepairArgs)
    """EKS node auto-repair: reboot or replace nodes the node monitoring agent finds unhealthy (a GPU
    with Xid errors, say).  Default: on, one node at a time.  In stack YAML set it under
    ``mleks:nodeRepair``; see docs/operations.md."""

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ConfigError("", value, "at least one NVIDIA GPU instance type", "empty list")
        infos = []
        for i, name in enumerate(value):
            try:
                infos.append(gpu_catalog.nvidia_gpu_type(name))
            except ConfigError as err:
                raise ConfigError(f"[{i}]", name, err.accepted, err.problem) from None
        gpu_catalog.common_architecture(infos)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GpuNodeGroupArgs:
        # Every problem at once: each check below adds to the list instead of stopping the others.
        errors = self._problems()
        if errors:
            raise_all(type(self).__name__, errors)
        return self

    def _problems(self) -> list[ConfigError]:
        errors: list[ConfigError] = []
        if self.min_size > self.max_size:
            errors.append(ConfigError("maxSize", self.max_size, f"a number >= minSize ({self.min_size})", "smaller than minSize"))
        if self.desired_size is not None and not self.min_size <= self.desired_size <= self.max_size:
            accepted = f"a number from minSize ({self.min_size}) to maxSize ({self.max_size})"
            errors.append(ConfigError("desiredSize", self.desired_size, accepted, "out of bounds"))
        if self.disk_iops > self.disk_size_gib * GP3_MAX_IOPS_PER_GIB:
            accepted = f"at most {GP3_MAX_IOPS_PER_GIB} per GiB of diskSizeGib ({self.disk_size_gib * GP3_MAX_IOPS_PER_GIB}), or a larger disk (gp3 limit)"
            errors.append(ConfigError("diskIops", self.disk_iops, accepted, "too many IOPS for the volume's size"))
        # gp3 allows at most 0.25 MiB/s of throughput per provisioned IOPS.
        if self.disk_throughput_mibps > self.disk_iops // GP3_IOPS_PER_MIBPS:
            accepted = f"at most diskIops/{GP3_IOPS_PER_MIBPS} = {self.disk_iops // GP3_IOPS_PER_MIBPS} (gp3 limit)"
            errors.append(ConfigError("diskThroughputMibps", self.disk_throughput_mibps, accepted, "too high for the IOPS"))
        elif (
            "disk_throughput_mibps" not in self.model_fields_set
            and self.instance_types
            and self.parallel_pull
            and self.disk_iops // GP3_IOPS_PER_MIBPS < PARALLEL_PULL_MIBPS
        ):
            accepted = (
                f"diskIops of at least {PARALLEL_PULL_MIBPS * GP3_IOPS_PER_MIBPS} for parallel pull's {PARALLEL_PULL_MIBPS} MiB/s, or diskThroughputMibps"
            )
            errors.append(ConfigError("diskIops", self.disk_iops, accepted, "too low for the default throughput of a parallel-pull group (gp3 limit)"))
        if self.capacity_type == "capacity-block":
            if not self.capacity_reservation_id or not self.capacity_reservation_id.startswith("cr-"):
                accepted = "the Capacity Block reservation id (cr-...)"
                errors.append(ConfigError("capacityReservationId", self.capacity_reservation_id, accepted, "required with capacityType: capacity-block"))
            if len(self.instance_types) != 1:
                accepted = "exactly one instance type (the one reserved)"
                errors.append(ConfigError("instanceTypes", self.instance_types, accepted, "a capacity block is for one type"))
        elif self.capacity_reservation_id is not None:
            accepted = "no value unless capacityType is capacity-block"
            errors.append(ConfigError("capacityReservationId", self.capacity_reservation_id, accepted, "set without a capacity block"))
        if self.efa:
            errors += self._efa_problems()
        elif self.efa_subnet_id is not None:
            errors.append(ConfigError("efaSubnetId", self.efa_subnet_id, "no value unless efa is true", "set without efa"))
        errors += self._fast_start_problems()
        errors += self._karpenter_problems()
        errors += [e.under("labels") for e in label_errors(self.labels, node_group=True)]
        reserved = set(self.base_labels())
        for key in sorted(reserved & set(self.labels)):
            errors.append(ConfigError(f"labels.{key}", self.labels[key], f"a label key other than {sorted(reserved)}", "this label is set by the node group"))
        return errors

    def _fast_start_problems(self) -> list[ConfigError]:
        fast, errors = self.fast_start, []
        if fast.data_volume_snapshot_id is not None:
            if self.ami_family != "bottlerocket":
                errors.append(
                    ConfigError(
                        "fastStart.dataVolumeSnapshotId",
                        fast.data_volume_snapshot_id,
                        "amiFamily: bottlerocket (its data volume holds the images), or no snapshot",
                        "AL2023 keeps images on its root volume, which a snapshot cannot replace here",
                    )
                )
            if fast.parallel_pull:
                errors.append(
                    ConfigError(
                        "fastStart.parallelPull",
                        True,
                        "false, or no snapshot",
                        "the snapshot's images are unpacked for containerd's default snapshotter; with SOCI every image would be pulled again",
                    )
                )
            if fast.data_volume_snapshot_size_gib is not None and fast.data_volume_snapshot_size_gib > self.disk_size_gib:
                errors.append(
                    ConfigError(
                        "diskSizeGib",
                        self.disk_size_gib,
                        f"at least {fast.data_volume_snapshot_size_gib}, the snapshot's size",
                        "a volume cannot be smaller than the snapshot it is restored from",
                    )
                )
        if fast.parallel_pull and "disk_throughput_mibps" in self.model_fields_set and self.disk_throughput_mibps < PARALLEL_PULL_MIN_MIBPS:
            errors.append(
                ConfigError(
                    "diskThroughputMibps",
                    self.disk_throughput_mibps,
                    f"at least {PARALLEL_PULL_MIN_MIBPS} MiB/s with fastStart.parallelPull (nodeadm's guidance), or parallelPull: false",
                    "parallel pull is slower than a plain pull on a slower volume",
                )
            )
        return errors

    def _karpenter_problems(self) -> list[ConfigError]:
        if self.owner != "karpenter":
            if self.karpenter is not None:
                return [ConfigError("karpenter", "{...}", "no karpenter settings unless autoscaler is karpenter", "set on a group Karpenter does not own")]
            return []
        errors: list[ConfigError] = []
        if self.role != "inference":
            errors.append(
                ConfigError(
                    "autoscaler",
                    "karpenter",
                    "escalator (or none) for a train group; karpenter serves inference groups only",
                    "Karpenter may drain a node under a running training job (aws/karpenter-provider-aws#701), Escalator never does",
                )
            )
        if self.min_size:
            errors.append(
                ConfigError(
                    "minSize",
                    self.min_size,
                    "0 with autoscaler: karpenter; for nodes that always run, add an on-demand managed group with autoscaler: none beside it",
                    "a Karpenter pool has no minimum: it launches only for pending pods",
                )
            )
        if self.desired_size is not None:
            errors.append(ConfigError("desiredSize", self.desired_size, "no value with autoscaler: karpenter", "a Karpenter pool has no desired size"))
        if self.capacity_type == "capacity-block":
            errors.append(
                ConfigError(
                    "capacityType", self.capacity_type, "spot or on-demand with autoscaler: karpenter", "Capacity Blocks are for managed training groups here"
                )
            )
        if self.efa:
            errors.append(
                ConfigError("efa", True, "false with autoscaler: karpenter", "EFA groups are multi-node training groups, which Karpenter does not own")
            )
        pool = self.karpenter_settings
        errors += [e.under("karpenter") for e in pool.problems()]
        if pool.ami_version is None and self.ami_family == "bottlerocket":
            errors.append(
                ConfigError(
                    "karpenter.amiVersion",
                    None,
                    "the Bottlerocket release to pin, e.g. v1.50.0 (Bottlerocket's releases page lists them)",
                    "required on Bottlerocket: no release is pinned by default, and Karpenter's nodes must not follow latest",
                )
            )
        elif pool.ami_version is not None:
            pattern = karpenter_catalog.BOTTLEROCKET_VERSION if self.ami_family == "bottlerocket" else karpenter_catalog.AMI_VERSION
            example = "v1.50.0" if self.ami_family == "bottlerocket" else karpenter_catalog.AL2023_AMI_VERSION
            if not pattern.match(pool.ami_version):
                errors.append(ConfigError("karpenter.amiVersion", pool.ami_version, f"a release such as {example}", f"not a {self.ami_family} release version"))
        if self.instance_types:
            largest = max(self.instance_infos, key=lambda t: t.accelerator_count)
            if self.gpu_limit < largest.accelerator_count:
                key = "karpenter.maxGpus" if pool.max_gpus is not None else "maxSize"
                value = pool.max_gpus if pool.max_gpus is not None else self.max_size
                errors.append(
                    ConfigError(
                        key,
                        value,
                        f"a GPU limit of at least {largest.accelerator_count} (the GPUs of {largest.instance_type}), or drop that type",
                        f"the pool's GPU limit is {self.gpu_limit}, so Karpenter could never launch {largest.instance_type}",
                    )
                )
        return errors

    @property
    def karpenter_settings(self) -> KarpenterPoolArgs:
        """``karpenter`` as given, or its defaults."""
        return self.karpenter or KarpenterPoolArgs()

    @property
    def gpu_limit(self) -> int:
        """A Karpenter pool's cap on ``nvidia.com/gpu``: ``karpenter.maxGpus``, else maxSize nodes of the smallest type."""
        pool = self.karpenter_settings
        return pool.max_gpus if pool.max_gpus is not None else self.max_size * self.smallest_instance.accelerator_count

    @property
    def parallel_pull(self) -> bool:
        """Whether the group pulls in parallel: as set, or by default on groups of 8+ vCPUs without a snapshot."""
        fast = self.fast_start
        if fast.parallel_pull is not None:
            return fast.parallel_pull
        slow_disk = "disk_throughput_mibps" in self.model_fields_set and self.disk_throughput_mibps < PARALLEL_PULL_MIN_MIBPS
        return fast.data_volume_snapshot_id is None and not slow_disk and self.smallest_instance.vcpu >= PARALLEL_PULL_MIN_VCPU

    @property
    def root_throughput_mibps(self) -> int:
        """The image volume's throughput: as set, else 1000 MiB/s for parallel pull and 500 otherwise."""
        if "disk_throughput_mibps" in self.model_fields_set or not self.parallel_pull:
            return self.disk_throughput_mibps
        return PARALLEL_PULL_MIBPS

    def _efa_problems(self) -> list[ConfigError]:
        lacking = [t.instance_type for t in self.instance_infos if not t.efa_capable]
        if lacking:
            capable = sorted(n for n, t in gpu_catalog.catalog().items() if t.is_nvidia_gpu and t.efa_capable)
            return [ConfigError("efa", True, f"efa: false, or EFA-capable types only ({', '.join(capable)})", f"{lacking} have no EFA interface")]
        # One launch template serves every type of the group, so one interface
        # layout: a p5.48xlarge (32 EFA) beside a g6e.12xlarge (1) would get 1.
        counts = {t.instance_type: t.max_efa_interfaces for t in self.instance_infos}
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{k}={v}" for k, v in counts.items())
            return [
                ConfigError(
                    "instanceTypes",
                    self.instance_types,
                    "EFA instance types with the same number of EFA interfaces, or one node group per type",
                    f"the types differ in EFA interfaces ({detail}); the larger ones would get the fewest",
                )
            ]
        return []

    # -- derived facts (pure) ---------------------------------------------
    @property
    def instance_infos(self) -> list[InstanceType]:
        return [gpu_catalog.catalog()[n] for n in self.instance_types]

    @property
    def smallest_instance(self) -> InstanceType:
        """The member type with the fewest GPUs/vCPU/memory: what a pod can count on."""
        return gpu_catalog.smallest(self.instance_infos)

    @property
    def arch(self) -> gpu_catalog.Architecture:
        return gpu_catalog.common_architecture(self.instance_infos)

    @property
    def ami_type(self) -> str:
        return _AMI_TYPES[(self.ami_family, self.arch)]

    @property
    def key(self) -> str:
        """The group's name as written: its key under ``nodeGroups`` (its role when none was given)."""
        return self.name or self.role

    @property
    def group_name(self) -> str:
        """The group's name as resources and labels spell it."""
        return normalized_group_name(self.key)

    @property
    def selector(self) -> dict[str, str]:
        """What a pod selects to land on this group, and nothing else: its role and its own label.

        Escalator counts a pod towards the group whose label the pod selects
        (shared/reference/escalator.md), so the group label is one no other group carries.
        """
        return {ROLE_LABEL: self.role, NODE_GROUP_LABEL: self.group_name}

    @property
    def owner(self) -> Autoscaler:
        """The autoscaler that owns this group's size."""
        return self.autoscaler or DEFAULT_AUTOSCALER[self.role]

    @property
    def efa_interfaces(self) -> int:
        """EFA interfaces per node: every member type has the same number (checked above)."""
        return self.instance_infos[0].max_efa_interfaces if self.efa else 0

    def base_labels(self) -> dict[str, str]:
        """Labels this component sets: role, GPU presence and GPU facts shared by every member type."""
        infos = self.instance_infos
        labels = {
            ROLE_LABEL: self.role,
            NODE_GROUP_LABEL: self.group_name,
            GPU_PRESENT_LABEL: "true",
            AMI_FAMILY_LABEL: self.ami_family,
        }
        facts = {
            ACCELERATOR_LABEL: {f"nvidia-{t.accelerator_model}" for t in infos},
            GPU_MODEL_LABEL: {t.accelerator_model for t in infos},
            GPU_COUNT_LABEL: {str(t.accelerator_count) for t in infos},
            GPU_MEMORY_LABEL: {str(t.accelerator_memory_mib) for t in infos},
        }
        # A label must be true of every node, so only facts all types share.
        labels.update({k: v.pop() for k, v in facts.items() if len(v) == 1})
        if self.efa:
            labels[EFA_PRESENT_LABEL] = "true"
        return labels

    def node_labels(self) -> dict[str, str]:
        return {**self.labels, **self.base_labels()}


def node_group_spec(name: str, args: GpuNodeGroupArgs, tags: dict[str, str]) -> NodeGroupSpec:
    """The managed node group a GpuNodeGroup renders (pure)."""
    return NodeGroupSpec(
        name=name,
        ami_type=args.ami_type,
        instance_types=tuple(args.instance_types),
        capacity_type=_CAPACITY_API[args.capacity_type],
        min_size=args.min_size,
        max_size=args.max_size,
        desired_size=args.desired_size if args.desired_size is not None else args.min_size,
        root_volume=RootVolume(args.disk_size_gib, args.root_throughput_mibps, args.disk_iops),
        parallel_pull=args.parallel_pull,
        data_volume_snapshot_id=args.fast_start.data_volume_snapshot_id,
        labels=args.node_labels(),
        taints=(GPU_TAINT,),
        efa_interfaces=args.efa_interfaces,
        capacity_reservation_id=args.capacity_reservation_id,
        autoscaled=args.owner != "none",
        node_repair=args.auto_repair.api(),
        tags={**tags, "mleks/role": args.role, "mleks/node-group": args.group_name, "mleks/autoscaler": args.owner},
    )


def cluster_autoscaler_template_tags(args: GpuNodeGroupArgs) -> dict[str, str]:
    """ASG tags that let cluster-autoscaler build a node from nothing.

    With the group at zero there is no node to copy, so cluster-autoscaler
    reads labels, taints and extended resources from these tags.  Counts come
    from the smallest member type, which any new node is at least.
    """
    smallest = args.smallest_instance
    tags = {f"{CA_TEMPLATE_PREFIX}/label/{k}": v for k, v in args.node_labels().items()}
    tags[f"{CA_TEMPLATE_PREFIX}/taint/{GPU_TAINT['key']}"] = f"{GPU_TAINT['value']}:NoSchedule"
    tags[f"{CA_TEMPLATE_PREFIX}/resources/{NVIDIA_GPU_RESOURCE}"] = str(smallest.accelerator_count)
    if args.efa:
        tags[f"{CA_TEMPLATE_PREFIX}/resources/{EFA_RESOURCE}"] = str(args.efa_interfaces)
    return dict(sorted(tags.items()))


def asg_tag_errors(groups: Sequence[GpuNodeGroupArgs], tags: dict[str, str], key: str = "tags") -> list[ConfigError]:
    """The user's ``tags`` must fit on every group's Auto Scaling group beside what EKS and cluster-autoscaler put there.

    The user's tags reach instances through the Auto Scaling group (``propagated_tags``), which
    holds at most 50 tags (EC2 Auto Scaling quotas) and already carries EKS's own and, for a
    cluster-autoscaler group, its node-template tags.  One error, naming the groups that set the limit.
    """
    user = [k for k in tags if k not in PROJECT_TAG_KEYS]

    def room(g: GpuNodeGroupArgs) -> int:
        template = len(cluster_autoscaler_template_tags(g)) if g.owner == "cluster-autoscaler" else 0
        return MAX_TAGS_PER_RESOURCE - len(SERVICE_TAG_KEYS) - len(PROPAGATED_PROJECT_KEYS) - template

    too_small = [g for g in groups if len(user) > room(g)]
    if not too_small:
        return []
    limit = min(room(g) for g in too_small)
    tightest = [g.group_name for g in too_small if room(g) == limit]
    template = MAX_TAGS_PER_RESOURCE - len(SERVICE_TAG_KEYS) - len(PROPAGATED_PROJECT_KEYS) - limit
    why = f"EKS's {len(SERVICE_TAG_KEYS)} tags, this project's {len(PROPAGATED_PROJECT_KEYS)}" + (
        f" and cluster-autoscaler's {template} node-template tags" if template else ""
    )
    return [
        ConfigError(
            key,
            f"{len(user)} tags",
            f"at most {limit} tags while node group(s) {', '.join(repr(n) for n in tightest)} exist: an Auto Scaling group"
            f" holds at most {MAX_TAGS_PER_RESOURCE} tags, and theirs carry {why} besides yours",
            "too many tags for the Auto Scaling groups that propagate them to the nodes",
        )
    ]


def subnets_in_zone(subnet_ids: Sequence[str], in_zone: Sequence[str], zone: str, reservation_id: str) -> list[str]:
    """``subnet_ids`` (in their order) that are in ``in_zone``; raise if there are none."""
    found = [s for s in subnet_ids if s in set(in_zone)]
    if not found:
        raise ConfigError(
            "capacityReservationId",
            reservation_id,
            f"a Capacity Block in the AZ of one of the cluster's private subnets {list(subnet_ids)}",
            f"the reservation is in {zone}, where the cluster has no private subnet, so no node could launch into it",
        )
    return found


def capacity_block_subnets(reservation_id: str, subnet_ids: pulumi.Input[Sequence[str]], *, parent: pulumi.Resource) -> pulumi.Output[list[str]]:
    """The subnets among ``subnet_ids`` in the Availability Zone of Capacity Block ``reservation_id``."""
    invoke = pulumi.InvokeOptions(parent=parent)
    zone = aws.ec2.get_capacity_block_reservation_output(id=reservation_id, opts=invoke).availability_zone
    filters = pulumi.Output.all(subnet_ids, zone).apply(
        lambda v: [aws.ec2.GetSubnetsFilterArgs(name="subnet-id", values=list(v[0])), aws.ec2.GetSubnetsFilterArgs(name="availability-zone", values=[v[1]])]
    )
    in_zone = aws.ec2.get_subnets_output(filters=filters, opts=invoke).ids
    return pulumi.Output.all(subnet_ids, in_zone, zone).apply(lambda v: subnets_in_zone(v[0], v[1], v[2], reservation_id))


DELETION_POLICY_ANNOTATION = "pulumi.com/deletionPropagationPolicy"
"""pulumi-kubernetes's annotation for how it deletes an object (pulumi/pulumi-kubernetes#3011)."""
NODE_TERMINATION_MARGIN_MIN = 15
"""Beyond a pool's terminationGracePeriod, what deleting it may wait: EC2 terminating the instances."""


def karpenter_pool_spec(args: GpuNodeGroupArgs, tags: dict[str, str], *, discovery_tag: str, discovery_value: pulumi.Input[str]) -> PoolSpec:
    """The NodePool and EC2NodeClass a Karpenter group renders (pure): the same labels, taint, types, disk
    and fast start as a managed group of these args would have."""
    pool = args.karpenter_settings
    bottlerocket = args.ami_family == "bottlerocket"
    version = pool.ami_version or karpenter_catalog.AL2023_AMI_VERSION
    return PoolSpec(
        name=args.group_name,
        labels=args.node_labels(),
        taints=({"key": GPU_TAINT["key"], "value": GPU_TAINT["value"], "effect": "NoSchedule"},),
        instance_types=tuple(args.instance_types),
        arch=args.arch,
        capacity_type=args.capacity_type,
        gpu_limit=args.gpu_limit,
        weight=pool.weight,
        consolidation_policy=pool.consolidation_policy,
        consolidate_after=pool.consolidate_after,
        expire_after=pool.expire_after,
        termination_grace_period=pool.termination_grace_period,
        disruption_budget=pool.disruption_budget,
        ami_alias=f"{'bottlerocket' if bottlerocket else 'al2023'}@{version}",
        root_volume=RootVolume(args.disk_size_gib, args.root_throughput_mibps, args.disk_iops),
        bottlerocket=bottlerocket,
        discovery_tag=discovery_tag,
        discovery_value=discovery_value,
        user_data=node_user_data(bottlerocket=bottlerocket, parallel_pull=args.parallel_pull, efa=False),
        data_volume_snapshot_id=args.fast_start.data_volume_snapshot_id,
        tags={**tags, "mleks/role": args.role, "mleks/node-group": args.group_name, "mleks/autoscaler": "karpenter"},
    )


def karpenter_group_errors(args: GpuNodeGroupArgs, cluster: EksCluster) -> list[ConfigError]:
    """Why a Karpenter group cannot be added to ``cluster`` (keys relative to the group)."""
    errors = []
    if cluster.karpenter is None:
        errors.append(
            ConfigError(
                "cluster",
                cluster.name,
                f"a cluster with a KarpenterAddon, created before this group (KarpenterAddon('...', cluster={cluster.name}))",
                "autoscaler is karpenter, but the cluster has no Karpenter controller",
            )
        )
    return errors + karpenter_catalog.cluster_errors(
        kubernetes_version=cluster.kubernetes_version, region=cluster.region, version_key="cluster.kubernetes_version", region_key="cluster.region"
    )


class GpuNodeGroup(pulumi.ComponentResource):
    """A managed node group of NVIDIA GPU nodes in an :class:`MLCluster`.

    Outputs: ``asg_name`` (the Auto Scaling group the autoscalers drive),
    ``node_group_name``; attributes ``args`` and ``cluster``.  A Karpenter group (``autoscaler: karpenter``)
    is a NodePool and an EC2NodeClass instead: outputs ``node_pool`` and ``gpu_limit``; no ASG, so
    ``asg_name`` and ``node_group_name`` are None.
    """

    asg_name: pulumi.Output[str] | None
    node_group_name: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        args: GpuNodeGroupArgs,
        *,
        cluster: EksCluster,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Before registering anything: the cluster's tags must fit this group's Auto Scaling group, and a
        # Karpenter group needs its cluster's controller.
        errors = asg_tag_errors([args], cluster.tags) if args.owner != "karpenter" else karpenter_group_errors(args, cluster)
        if errors:
            raise component_errors(errors, component="GpuNodeGroup", name=name, config_key=None)
        super().__init__("mleks:nodegroup:GpuNodeGroup", name, None, opts)
        self.args = args
        self.cluster = cluster
        self.role = args.role
        self.watched_by: set[str] = set()
        """The autoscaler add-ons that scale this group (they add themselves)."""
        self.node_pool: pulumi.Resource | None = None
        """A Karpenter group's NodePool (None for a managed node group)."""
        outputs = self._karpenter_pool(args, cluster) if args.owner == "karpenter" else self._managed_group(name, args, cluster)
        cluster.gpu_group_added(self)
        _add_node_daemons(cluster, args)
        self.register_outputs(outputs)

    def _managed_group(self, name: str, args: GpuNodeGroupArgs, cluster: EksCluster) -> dict[str, object]:
        """The group as an EKS managed node group (and, for cluster-autoscaler, its node-template tags); its outputs."""
        spec = node_group_spec(name, args, cluster.tags)

        subnets: pulumi.Output[list[str]] = cluster.private_subnet_ids.apply(list)
        if args.capacity_reservation_id is not None:
            # A Capacity Block is a reservation in one AZ, and an instance launched
            # into a subnet of any other AZ fails: only the reservation's AZ.
            subnets = capacity_block_subnets(args.capacity_reservation_id, cluster.private_subnet_ids, parent=self)
        if args.efa:
            # A cluster placement group lives in one AZ, so the group gets one subnet.
            subnets = pulumi.Output.from_input([args.efa_subnet_id]) if args.efa_subnet_id else subnets.apply(lambda ids: ids[:1])

        self.subnet_ids = subnets
        """The subnets its nodes launch into: one AZ for EFA and Capacity Block groups."""
        self.node_group, self.launch_template, self.placement_group = create_node_group(
            spec,
            parent=self,
            cluster_name=cluster.cluster_name,
            kubernetes_version=cluster.kubernetes_version,
            node_role_arn=cluster.node_role_arn,
            subnet_ids=subnets,
            security_group_id=cluster.cluster_security_group_id,
            depends_on=cluster.node_prerequisites,
        )
        self.asg_name = asg_name_of(self.node_group)
        self.node_group_name = self.node_group.node_group_name

        if args.owner == "cluster-autoscaler":
            for key, value in cluster_autoscaler_template_tags(args).items():
                short = key.removeprefix(CA_TEMPLATE_PREFIX + "/").replace("/", "-").replace(".", "-")
                aws.autoscaling.Tag(
                    f"{name}-ca-{short}",
                    autoscaling_group_name=self.asg_name,
                    tag={"key": key, "value": value, "propagate_at_launch": False},
                    opts=pulumi.ResourceOptions(parent=self),
                )
        return {"asg_name": self.asg_name, "node_group_name": self.node_group_name, "autoscaler": after_program(lambda: self._check_owner_watches(name))}

    def _karpenter_pool(self, args: GpuNodeGroupArgs, cluster: EksCluster) -> dict[str, object]:
        """The group as a NodePool and its EC2NodeClass, after the cluster's Karpenter controller; its outputs."""
        controller = cluster.karpenter
        assert controller is not None  # karpenter_group_errors refused a cluster without one
        self.watched_by.add("karpenter")
        spec = karpenter_pool_spec(args, cluster.tags, discovery_tag=controller.discovery_tag, discovery_value=cluster.cluster_name)
        self.subnet_ids = cluster.private_subnet_ids
        self.asg_name = None
        self.node_group_name = None
        waits = [*controller.ready]
        node_class = k8s_objects.create(
            karpenter_manifests.ec2_node_class(spec, role_name=controller.node_role_name), cluster.k8s_opts(self, depends_on=waits), name_prefix=cluster.name
        )
        pool = karpenter_manifests.node_pool(spec)
        # Deleting the pool deletes its NodeClaims first (foreground), each once Karpenter has drained its
        # node and terminated the instance: the pool leaves Pulumi's state only when no node bills.
        pool["metadata"]["annotations"] = {DELETION_POLICY_ANNOTATION: "foreground"}
        drain_s = parse_go_duration(spec.termination_grace_period) / 1e9
        self.node_pool = k8s_objects.create(
            pool,
            cluster.k8s_opts(
                self,
                depends_on=[*waits, node_class],
                custom_timeouts=pulumi.CustomTimeouts(delete=f"{int(drain_s // 60) + NODE_TERMINATION_MARGIN_MIN}m"),
            ),
            name_prefix=cluster.name,
        )
        return {"node_pool": spec.name, "gpu_limit": spec.gpu_limit, "autoscaler": "karpenter"}

    def _check_owner_watches(self, name: str) -> str:
        """The owner, once the program has run; raise if no add-on of that kind scales the group."""
        owner = self.args.owner
        if owner != "none" and owner not in self.watched_by:
            addon = "EscalatorAddon" if owner == "escalator" else "ClusterAutoscalerAddon"
            raise ConfigErrors(
                [
                    ConfigError(
                        f"{name}.autoscaler",
                        owner,
                        f"an {addon} in the same cluster with this group in its node_groups, or autoscaler='none' for a fixed-size group",
                        f"nothing scales the group, so it stays at minSize ({self.args.min_size}) and {owner} is never told about it",
                    )
                ]
            )
        return owner


def _add_node_daemons(cluster: EksCluster, args: GpuNodeGroupArgs) -> None:
    """What every GPU node of ``cluster`` needs, added once per cluster with the first group that needs it.

    The node monitoring agent (GPU health for auto-repair, and the one DCGM engine per node) comes
    with any GPU group; the NVIDIA device plugin with an AL2023 group (Bottlerocket ships its own);
    the EFA plugin with an EFA group.  They are the cluster's children, not the group's: a cluster
    keeps one of each whichever group came first.
    """
    child = pulumi.ResourceOptions(parent=cluster)
    if cluster.node_monitoring_agent is None:
        cluster.node_monitoring_agent = NodeMonitoringAgent(f"{cluster.name}-node-monitoring", cluster=cluster, opts=child)
    if args.ami_family == "al2023" and not cluster.has_device_plugin("nvidia"):
        NvidiaDevicePlugin(f"{cluster.name}-nvidia", cluster=cluster, opts=child)
    if args.efa and not cluster.has_device_plugin("efa"):
        EfaDevicePlugin(f"{cluster.name}-efa", cluster=cluster, opts=child)


def require_scalable(errors: list[ConfigError], node_groups: Sequence[GpuNodeGroup], cluster: EksCluster, controller: str) -> None:
    """Refuse, before the autoscaler registers anything, groups it cannot scale: ``errors`` from
    its own checks, and groups of another cluster (an autoscaler sees its own cluster's groups only)."""
    for i, group in enumerate(node_groups):
        if not isinstance(group, GpuNodeGroup):
            given = type(group).__name__
            errors.append(ConfigError(f"node_groups[{i}]", given, "a GpuNodeGroup component (the group itself, not its args)", f"a {given}"))
        elif group.cluster is not cluster:
            errors.append(
                ConfigError(
                    f"node_groups[{i}]",
                    group.args.key,
                    f"a group of cluster {cluster.name!r}: {controller} scales only its own cluster's groups",
                    f"the group belongs to cluster {group.cluster.name!r}",
                )
            )
    if errors:
        raise ConfigErrors(errors)


NodeGroupInput = GpuNodeGroup | GpuNodeGroupArgs
"""What a workload's ``node_group`` takes: the group component (preferred: its cluster is checked
too), or its args."""


def placement_errors(
    given: NodeGroupInput | Sequence[NodeGroupInput] | None, *, role: Role, cluster: EksCluster, named: Sequence[str] | None
) -> tuple[list[GpuNodeGroupArgs], list[ConfigError]]:
    """The groups a workload of ``role`` in ``cluster`` was given, and every reason it cannot run there.

    ``named``: the group names the workload's own args ask for (``node_group=`` in its Args, as a
    stack file sets it), which must be the groups given.  Errors are keyed ``node_group`` (or
    ``node_group[i]``) and ``args.node_group``, relative to the workload.
    """
    # A list (or tuple) of groups, or one thing: a group, its args, or something passed by mistake.
    listed = isinstance(given, (list, tuple))
    items: list[object] = list(given) if isinstance(given, (list, tuple)) else [given]
    groups: list[GpuNodeGroupArgs] = []
    errors: list[ConfigError] = []
    for i, item in enumerate(items):
        key = f"node_group[{i}]" if listed else "node_group"
        if item is None:
            continue
        if isinstance(item, GpuNodeGroup):
            if item.cluster is not cluster:
                errors.append(
                    ConfigError(key, item.args.key, f"a GPU group of cluster {cluster.name!r}", f"the group belongs to cluster {item.cluster.name!r}")
                )
            args = item.args
        elif isinstance(item, GpuNodeGroupArgs):
            args = item
        else:
            given_type = type(item).__name__
            errors.append(ConfigError(key, given_type, "a GpuNodeGroup (or its GpuNodeGroupArgs)", f"a {given_type}"))
            continue
        if args.role != role:
            errors.append(ConfigError(key, args.key, f"a group of role {role!r}", f"the group has role {args.role!r}"))
        groups.append(args)
    if listed and not items:
        errors.append(ConfigError("node_group", [], f"at least one group of role {role!r}", "an empty list"))
    if named is not None and groups and sorted(named) != sorted(g.key for g in groups):
        errors.append(
            ConfigError(
                "args.node_group", list(named), f"the names of the groups given as node_group: {[g.key for g in groups]}, or no name", "names another group"
            )
        )
    return groups, errors


def gpu_fit_errors(gpus: int, cpu: str | None, memory: str | None, group: GpuNodeGroupArgs, load: DaemonSetLoad) -> list[ConfigError]:
    """Why a pod asking ``gpus``, ``cpu`` and ``memory`` fits no node of ``group`` beside ``load``
    (keys ``gpus``, ``cpu``, ``memory``, relative to the workload)."""
    group_key = f"nodeGroups.{group.key}"
    instance = group.smallest_instance
    too_many = gpu_count_error("gpus", gpus, instance, group_key)
    if too_many is not None:
        return [too_many]
    return fit_errors(cpu, memory, instance, group_key, load)
