"""The Karpenter objects a Karpenter-owned GPU group renders, and the controller's chart values (pure).

A group owned by Karpenter is a ``NodePool`` (karpenter.sh/v1: what may launch, for which pods, how far,
and when nodes may go) and an ``EC2NodeClass`` (karpenter.k8s.aws/v1: how a node is launched: AMI,
subnets, security group, IAM role, disks, IMDS).  Field names and limits follow the CRDs of the pinned
release (:mod:`mleks.catalogs.karpenter`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from mleks.catalogs import karpenter as catalog
from mleks.infra.managed_node_group import BOTTLEROCKET_DATA_DEVICE, BOTTLEROCKET_OS_VOLUME_GIB, IMDS_HOP_LIMIT, ROOT_DEVICE, RootVolume
from mleks.manifests.k8s_objects import KubeObject
from mleks.vocabulary import ROLE_ARN_ANNOTATION, ROLE_LABEL, SYSTEM_ROLE

NAMESPACE = "kube-system"
"""Where the controller runs: upstream's getting-started installs it in kube-system, beside the other node controllers."""
SERVICE_ACCOUNT = "karpenter"
RELEASE_NAME = "karpenter"
CONTROLLER_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
"""The controller's requests.  The chart sets none; upstream's install script gives 1 CPU and 1Gi
(getting-started scripts/step08-apply-helm-chart.sh).  The memory is kept, since the controller holds the
region's instance-type catalog; half a CPU is enough for a few GPU pools, and leaves room on the 2-vCPU
system nodes (m7i.large) for two replicas and the other add-ons."""


@dataclass(frozen=True)
class PoolSpec:
    """Everything needed to render one Karpenter GPU pool (a NodePool and its EC2NodeClass)."""

    name: str
    """The NodePool's and the EC2NodeClass's name: the group's name, unique in its cluster."""
    labels: dict[str, str]
    taints: tuple[dict[str, str], ...]
    """Kubernetes spelling (``NoSchedule``)."""
    instance_types: tuple[str, ...]
    arch: str
    capacity_type: str
    """``spot`` or ``on-demand`` (Karpenter's ``karpenter.sh/capacity-type`` values)."""
    gpu_limit: int
    weight: int | None
    consolidation_policy: str
    consolidate_after: str
    expire_after: str
    termination_grace_period: str
    disruption_budget: str
    ami_alias: str
    root_volume: RootVolume
    bottlerocket: bool
    discovery_tag: str
    """The tag key Karpenter finds the cluster's private subnets and node security group by (one key per
    cluster, so clusters sharing a VPC do not overwrite each other's tag); its value is the cluster's name."""
    discovery_value: pulumi.Input[str]
    user_data: str | None = None
    data_volume_snapshot_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _ebs(size_gib: int, throughput_mibps: int, iops: int, snapshot_id: str | None = None) -> dict[str, Any]:
    ebs: dict[str, Any] = {
        "volumeSize": f"{size_gib}Gi",
        "volumeType": "gp3",
        "iops": iops,
        "throughput": throughput_mibps,
        "encrypted": True,
        "deleteOnTermination": True,
    }
    if snapshot_id is not None:
        ebs["snapshotID"] = snapshot_id
    return ebs


def block_device_mappings(spec: PoolSpec) -> list[dict[str, Any]]:
    """The sized, provisioned volume where images live, as for managed groups: the root on AL2023,
    Bottlerocket's data volume beside its small OS volume."""
    v = spec.root_volume
    if spec.bottlerocket:
        return [
            {"deviceName": ROOT_DEVICE, "ebs": _ebs(BOTTLEROCKET_OS_VOLUME_GIB, 125, 3000)},
            {"deviceName": BOTTLEROCKET_DATA_DEVICE, "ebs": _ebs(v.size_gib, v.throughput_mibps, v.iops, spec.data_volume_snapshot_id)},
        ]
    return [{"deviceName": ROOT_DEVICE, "ebs": _ebs(v.size_gib, v.throughput_mibps, v.iops)}]


def ec2_node_class(spec: PoolSpec, *, role_name: pulumi.Input[str]) -> KubeObject:
    """How the pool's nodes launch: pinned AMI, IMDSv2 at hop limit 1, the cluster's private subnets and
    node security group (by the discovery tag), the Karpenter node role, encrypted gp3."""
    selector = [{"tags": {spec.discovery_tag: spec.discovery_value}}]
    body: dict[str, Any] = {
        "role": role_name,
        "amiSelectorTerms": [{"alias": spec.ami_alias}],
        "subnetSelectorTerms": selector,
        "securityGroupSelectorTerms": selector,
        # Pods reach no instance credentials: tokens required, one hop (the node, not its pods).
        "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": IMDS_HOP_LIMIT, "httpTokens": "required"},
        "blockDeviceMappings": block_device_mappings(spec),
        "detailedMonitoring": False,
        "associatePublicIPAddress": False,
        "tags": dict(spec.tags),
    }
    if spec.user_data is not None:
        body["userData"] = spec.user_data
    return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": spec.name}, "spec": body}


def node_pool(spec: PoolSpec) -> KubeObject:
    """What the pool may launch and for whom: nodes that carry the group's labels and GPU taint, of the
    listed types and capacity type, up to ``gpu_limit`` GPUs, replaced one budget at a time."""
    requirements = [
        {"key": catalog.INSTANCE_TYPE_LABEL, "operator": "In", "values": list(spec.instance_types)},
        {"key": catalog.CAPACITY_TYPE_LABEL, "operator": "In", "values": [spec.capacity_type]},
        {"key": catalog.ARCH_LABEL, "operator": "In", "values": [spec.arch]},
        {"key": catalog.OS_LABEL, "operator": "In", "values": ["linux"]},
    ]
    body: dict[str, Any] = {
        "template": {
            "metadata": {"labels": dict(spec.labels)},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": spec.name},
                "taints": [dict(t) for t in spec.taints],
                "requirements": requirements,
                "expireAfter": spec.expire_after,
                "terminationGracePeriod": spec.termination_grace_period,
            },
        },
        "limits": {"nvidia.com/gpu": str(spec.gpu_limit)},
        "disruption": {
            "consolidationPolicy": spec.consolidation_policy,
            "consolidateAfter": spec.consolidate_after,
            "budgets": [{"nodes": spec.disruption_budget}],
        },
    }
    if spec.weight is not None:
        body["weight"] = spec.weight
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": spec.name}, "spec": body}


def helm_values(*, cluster_name: pulumi.Input[str], queue_name: pulumi.Input[str], role_arn: pulumi.Input[str], replicas: int, region: str) -> dict[str, Any]:
    """The chart values (the inputs may be Outputs): on the system nodes, two replicas and a PDB, the
    cluster and interruption queue named, AWS access through IRSA, the image pinned by digest."""
    return {
        "replicas": replicas,
        "nodeSelector": {ROLE_LABEL: SYSTEM_ROLE},
        "podDisruptionBudget": {"name": "karpenter", "maxUnavailable": 1},
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT, "annotations": {ROLE_ARN_ANNOTATION: role_arn}},
        "controller": {
            "image": {"repository": catalog.IMAGE_REPOSITORY, "tag": catalog.VERSION, "digest": catalog.IMAGE_DIGEST},
            "resources": CONTROLLER_RESOURCES,
            # The controller asks IMDS for its region when AWS_REGION is unset (karpenter-provider-aws
            # pkg/operator/operator.go), and IMDS is out of a pod's reach at hop limit 1.
            "env": [{"name": "AWS_REGION", "value": region}],
        },
        # nodeRepair (alpha in this release) replaces nodes whose node monitoring agent conditions stay
        # unhealthy, what EKS node auto-repair does for managed groups.
        "settings": {"clusterName": cluster_name, "interruptionQueue": queue_name, "featureGates": {"nodeRepair": True}},
    }
