"""The EKS managed node group and launch template shared by every node group.

Both the CPU system group of :class:`~mleks.ml_cluster.MLCluster` and
each :class:`~mleks.gpu_node_group.GpuNodeGroup` are an
``aws.eks.NodeGroup`` with a launch template of ours.  We own the launch
template (rather than letting pulumi-eks generate one) so that what matters
for security and cost is visible in ``pulumi preview`` and pinned by tests:
IMDSv2 with a hop limit of 1, an encrypted gp3 root volume with provisioned
throughput, EFA interfaces and the placement group.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from mleks.validation.tags import PROJECT_TAG_KEYS, PROPAGATED_PROJECT_KEYS

# A hop limit of 1 keeps pods (which are one network hop further away than the
# node) from reaching IMDS and borrowing the node role; pods get credentials
# through IRSA instead.  Same default as terraform-aws-eks.
IMDS_HOP_LIMIT = 1

ROOT_DEVICE = "/dev/xvda"  # the root device of the AL2023 and Bottlerocket EKS AMIs
BOTTLEROCKET_DATA_DEVICE = "/dev/xvdb"  # Bottlerocket's data volume (images, pod storage)
# Bottlerocket's OS volume holds only the read-only OS image; 8 GiB leaves room
# above the AMI snapshot, so a launch never fails on a too-small volume.
BOTTLEROCKET_OS_VOLUME_GIB = 8


# gp3 limits of the current EC2 API reference (CreateVolume; raised in September 2025 from 16 TiB,
# 16,000 IOPS and 1,000 MiB/s): size 1-65,536 GiB, 3,000-80,000 IOPS at most 500 per GiB,
# 125-2,000 MiB/s at most 0.25 MiB/s per provisioned IOPS.
GP3_MAX_GIB = 65536
GP3_MIN_IOPS, GP3_MAX_IOPS, GP3_MAX_IOPS_PER_GIB = 3000, 80000, 500
GP3_MIN_MIBPS, GP3_MAX_MIBPS = 125, 2000
GP3_IOPS_PER_MIBPS = 4


@dataclass(frozen=True)
class RootVolume:
    """Root EBS volume: size in GiB, throughput in MiB/s, IOPS."""

    size_gib: int
    throughput_mibps: int = 125
    iops: int = 3000


@dataclass(frozen=True)
class NodeGroupSpec:
    """Everything needed to render one managed node group.

    ``capacity_type`` uses the EKS API spelling (``ON_DEMAND``, ``SPOT``,
    ``CAPACITY_BLOCK``); ``taints`` use the API effect spelling
    (``NO_SCHEDULE``).
    """

    name: str
    ami_type: str
    instance_types: tuple[str, ...]
    capacity_type: str
    min_size: int
    max_size: int
    desired_size: int
    root_volume: RootVolume
    labels: dict[str, str]
    taints: tuple[dict[str, str], ...] = ()
    efa_interfaces: int = 0
    capacity_reservation_id: str | None = None
    autoscaled: bool = False
    parallel_pull: bool = False
    """Pull and unpack image layers in parallel (SOCI parallel pull mode), through the node's user data."""
    data_volume_snapshot_id: str | None = None
    """Bottlerocket: restore the data volume (the container image store) from this EBS snapshot."""
    node_repair: dict[str, Any] | None = None
    """``node_repair_config`` of the group, or None to leave EKS's default (off)."""
    tags: dict[str, str] = field(default_factory=dict)


def _gp3(size_gib: int, throughput_mibps: int = 125, iops: int = 3000) -> dict[str, Any]:
    return {
        "volume_size": size_gib,
        "volume_type": "gp3",
        "throughput": throughput_mibps,
        "iops": iops,
        "encrypted": "true",
        "delete_on_termination": "true",
    }


def block_device_mappings(volume: RootVolume, ami_type: str, snapshot_id: str | None = None) -> list[dict[str, Any]]:
    """Where container images live gets the sized, provisioned volume.

    AL2023 keeps images on its root volume.  Bottlerocket keeps a small
    read-only OS volume and stores images on a second, data volume; sizing
    the root there would leave the images on the AMI's default 20 GiB.  That
    data volume may start from a snapshot that already holds the images.
    """
    if ami_type.startswith("BOTTLEROCKET"):
        data = _gp3(volume.size_gib, volume.throughput_mibps, volume.iops)
        if snapshot_id is not None:
            data["snapshot_id"] = snapshot_id
        return [
            {"device_name": ROOT_DEVICE, "ebs": _gp3(BOTTLEROCKET_OS_VOLUME_GIB)},
            {"device_name": BOTTLEROCKET_DATA_DEVICE, "ebs": data},
        ]
    return [{"device_name": ROOT_DEVICE, "ebs": _gp3(volume.size_gib, volume.throughput_mibps, volume.iops)}]


def efa_network_interfaces(count: int, security_group_id: pulumi.Input[str]) -> list[dict[str, Any]]:
    """``count`` EFA devices laid out as current EC2 guidance says (EC2 user guide
    ``efa-acc-inst-types``, "Maximize network bandwidth on Amazon EC2 instances
    with multiple network cards"):

    * network card 0, device 0: an ENA interface, the node's primary (an
      EFA-only interface cannot be the primary);
    * network card 0, device 1: EFA-only;
    * network cards 1 .. count-1, device 0: EFA-only.

    EFA-only interfaces take no IP address from the subnet: NCCL only needs
    their RDMA path, and on p5 that saves 31 addresses per node.  They need
    the VPC CNI 1.18.5 or later (EKS user guide ``node-efa``).
    """

    def interface(card: int, device: int, kind: str) -> dict[str, Any]:
        return {
            "device_index": device,
            "network_card_index": card,
            "interface_type": kind,
            "delete_on_termination": "true",
            "security_groups": [security_group_id],
        }

    if count < 1:
        return []
    return [interface(0, 0, "interface"), interface(0, 1, "efa-only"), *(interface(card, 0, "efa-only") for card in range(1, count))]


# AL2023: a NodeConfig part in a MIME multi-part document, merged by EKS with its own (amazon-eks-ami
# nodeadm/doc/examples.md, "Enabling fast image pull" and "Modifying container RLIMITs").  Bottlerocket:
# TOML settings, merged likewise (Bottlerocket settings reference 1.44.x, soci-snapshotter).
_MIME_BOUNDARY = "MLEKSBOUNDARY"
_AL2023_FAST_PULL = """  featureGates:
    FastImagePull: true
"""
# EFA registers (pins) NCCL's buffers with the adapter, which counts against RLIMIT_MEMLOCK unless
# the process holds CAP_IPC_LOCK, a capability Pod Security baseline refuses.  So the node raises
# the limit for every container instead: nodeadm's base runtime spec sets only RLIMIT_NOFILE
# (65536/1048576, amazon-eks-ami v20260724 nodeadm/internal/containerd/base-runtime-spec.json) and
# nodeadm merges this list over it, so NOFILE is restated at its default.  Bottlerocket does the same
# by itself when an EFA device is attached (bottlerocket-core-kit schnauzer generate_oci_resource_limits).
RLIMIT_UNLIMITED = 2**64 - 1
_AL2023_EFA_MEMLOCK = f"""  containerd:
    baseRuntimeSpec:
      process:
        rlimits:
          - type: RLIMIT_NOFILE
            soft: 65536
            hard: 1048576
          - type: RLIMIT_MEMLOCK
            soft: {RLIMIT_UNLIMITED}
            hard: {RLIMIT_UNLIMITED}
"""
BOTTLEROCKET_FAST_PULL = """[settings.container-runtime]
snapshotter = "soci"

[settings.container-runtime-plugins.soci-snapshotter]
pull-mode = "parallel-pull-unpack"
"""


def _al2023_node_config(spec_body: str) -> str:
    return f"""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="{_MIME_BOUNDARY}"

--{_MIME_BOUNDARY}
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
{spec_body}
--{_MIME_BOUNDARY}--
"""


AL2023_FAST_PULL = _al2023_node_config(_AL2023_FAST_PULL)


def node_user_data(*, bottlerocket: bool, parallel_pull: bool, efa: bool) -> str | None:
    """A node's user data before encoding, or None when EKS's (or Karpenter's) own is enough; both merge it with theirs."""
    if bottlerocket:
        return BOTTLEROCKET_FAST_PULL if parallel_pull else None
    parts = [*([_AL2023_FAST_PULL] if parallel_pull else []), *([_AL2023_EFA_MEMLOCK] if efa else [])]
    return _al2023_node_config("".join(parts)) if parts else None


def user_data_text(spec: NodeGroupSpec) -> str | None:
    """The launch template's user data before encoding, or None when EKS's own is enough."""
    return node_user_data(bottlerocket=spec.ami_type.startswith("BOTTLEROCKET"), parallel_pull=spec.parallel_pull, efa=spec.efa_interfaces > 0)


def user_data(spec: NodeGroupSpec) -> str | None:
    text = user_data_text(spec)
    return None if text is None else base64.b64encode(text.encode()).decode()


def wants_placement_group(spec: NodeGroupSpec) -> bool:
    """Whether the group gets a cluster placement group: EFA groups on on-demand or spot capacity only.

    A cluster placement group keeps EFA nodes on one network spine.  A group that
    launches into a capacity reservation or Capacity Block must not get one: the
    reserved instances sit where the reservation was made, and launching them into
    a placement group the reservation was not made with loses instances (eksctl#7949:
    "we had a reservation for 16 ... we only were able to get 11"; terraform-aws-eks
    PR #3730: InsufficientInstanceCapacity against ODCRs and Capacity Blocks).  A
    Capacity Block's instances are already placed close together for this reason.
    """
    return spec.efa_interfaces > 0 and spec.capacity_reservation_id is None and spec.capacity_type != "CAPACITY_BLOCK"


def launch_tags(spec: NodeGroupSpec) -> dict[str, str]:
    """The tags the launch template gives every instance and volume it launches: all of them, as they are when the group is made.

    The template's tag specifications are set once (``ignore_changes``): a change there is a new template
    version (terraform-provider-aws ``ec2_launch_template.go``, resourceLaunchTemplateUpdate lists
    tag_specifications among its updateKeys), and EKS rolls a new version out by replacing every node,
    GPU nodes under running jobs included.  So the first nodes and every volume are tagged from the start,
    and later tag values reach instances through the Auto Scaling group (:func:`propagated_tags`).
    """
    return {**spec.tags, "Name": spec.name}


def propagated_tags(spec: NodeGroupSpec) -> dict[str, str]:
    """The user's tags, and the project's that can change for a group (its role and owner), put on the
    group's Auto Scaling group with PropagateAtLaunch.

    The Auto Scaling group tags each instance it launches with them, and a group tag's value takes the
    place of a launch template tag of the same key on those instances (EC2 Auto Scaling user guide, "Tag
    Auto Scaling groups and instances", tag lifecycle); a changed group tag touches no running node.
    Volumes keep the launch template's tags: "Tags are not propagated to Amazon EBS volumes" (same page).
    """
    return {k: v for k, v in spec.tags.items() if k not in PROJECT_TAG_KEYS or k in PROPAGATED_PROJECT_KEYS}


def tag_resource_name(group: str, key: str) -> str:
    """A stable Pulumi name for the group's tag ``key``: readable, and unique even where keys differ only in punctuation."""
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[:40]
    return f"{group}-tag-{slug}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"


def launch_template_args(
    spec: NodeGroupSpec,
    security_group_id: pulumi.Input[str],
    placement_group: pulumi.Input[str] | None,
) -> dict[str, Any]:
    """Keyword arguments for ``aws.ec2.LaunchTemplate``."""
    args: dict[str, Any] = {
        "description": f"Managed node group {spec.name}",
        "update_default_version": True,
        "metadata_options": {
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": IMDS_HOP_LIMIT,
            "instance_metadata_tags": "disabled",
        },
        "block_device_mappings": block_device_mappings(spec.root_volume, spec.ami_type, spec.data_volume_snapshot_id),
        "tag_specifications": [
            {"resource_type": "instance", "tags": launch_tags(spec)},
            {"resource_type": "volume", "tags": launch_tags(spec)},
        ],
        # The template's own tags are not part of a version: changing them rolls nothing.
        "tags": spec.tags,
    }
    if spec.efa_interfaces:
        args["network_interfaces"] = efa_network_interfaces(spec.efa_interfaces, security_group_id)
    data = user_data(spec)
    if data is not None:
        args["user_data"] = data
    if placement_group is not None:
        args["placement"] = {"group_name": placement_group}
    if spec.capacity_type == "CAPACITY_BLOCK":
        # EKS takes the instance type of a capacity-block group from the
        # launch template, with the reservation it must launch into.
        args["instance_type"] = spec.instance_types[0]
        args["instance_market_options"] = {"market_type": "capacity-block"}
        args["capacity_reservation_specification"] = {"capacity_reservation_target": {"capacity_reservation_id": spec.capacity_reservation_id}}
    return args


def node_group_args(spec: NodeGroupSpec) -> dict[str, Any]:
    """Keyword arguments for ``aws.eks.NodeGroup`` that depend on the spec only."""
    args: dict[str, Any] = {
        "ami_type": spec.ami_type,
        "capacity_type": spec.capacity_type,
        "scaling_config": {
            "min_size": spec.min_size,
            "max_size": spec.max_size,
            "desired_size": spec.desired_size,
        },
        # One node at a time: GPU nodes are scarce and a rolling AMI update
        # must not take a whole training group down at once.
        "update_config": {"max_unavailable": 1},
        "labels": spec.labels,
        "taints": [dict(t) for t in spec.taints],
        "tags": spec.tags,
    }
    if spec.capacity_type != "CAPACITY_BLOCK":
        args["instance_types"] = list(spec.instance_types)
    if spec.node_repair is not None:
        args["node_repair_config"] = spec.node_repair
    return args


def ignore_changes_for(spec: NodeGroupSpec) -> list[str]:
    """Fields ``pulumi up`` must leave alone.

    An autoscaler owns the desired size of its group; resetting it on every
    ``pulumi up`` would fight the autoscaler and could terminate nodes under
    running jobs.
    """
    return ["scalingConfig.desiredSize"] if spec.autoscaled else []


def create_node_group(
    spec: NodeGroupSpec,
    *,
    parent: pulumi.Resource,
    cluster_name: pulumi.Input[str],
    kubernetes_version: pulumi.Input[str],
    node_role_arn: pulumi.Input[str],
    subnet_ids: pulumi.Input[Sequence[str]],
    security_group_id: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource] | None = None,
) -> tuple[aws.eks.NodeGroup, aws.ec2.LaunchTemplate, aws.ec2.PlacementGroup | None]:
    """Register the launch template, placement group and node group for ``spec``."""
    child = pulumi.ResourceOptions(parent=parent)
    placement: aws.ec2.PlacementGroup | None = None
    if wants_placement_group(spec):
        placement = aws.ec2.PlacementGroup(f"{spec.name}-pg", strategy="cluster", tags=spec.tags, opts=child)
    template = aws.ec2.LaunchTemplate(
        f"{spec.name}-lt",
        # Tag specifications are set when the group is made: see launch_tags.
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["tagSpecifications"]),
        **launch_template_args(spec, security_group_id, placement.name if placement else None),
    )
    group = aws.eks.NodeGroup(
        spec.name,
        cluster_name=cluster_name,
        version=kubernetes_version,
        node_role_arn=node_role_arn,
        subnet_ids=subnet_ids,
        launch_template={"id": template.id, "version": template.latest_version.apply(str)},
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(depends_on or []),
            ignore_changes=ignore_changes_for(spec),
        ),
        **node_group_args(spec),
    )
    asg_name = asg_name_of(group)
    for key, value in sorted(propagated_tags(spec).items()):
        aws.autoscaling.Tag(
            tag_resource_name(spec.name, key),
            autoscaling_group_name=asg_name,
            tag={"key": key, "value": value, "propagate_at_launch": True},
            opts=pulumi.ResourceOptions(parent=parent),
        )
    return group, template, placement


def asg_name_of(group: aws.eks.NodeGroup) -> pulumi.Output[str]:
    """The name of the Auto Scaling group behind a managed node group."""

    def first_asg(resources: Sequence[aws.eks.outputs.NodeGroupResource]) -> str:
        asgs = resources[0].autoscaling_groups or []
        return str(asgs[0].name)

    return group.resources.apply(first_asg)
