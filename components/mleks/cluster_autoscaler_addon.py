"""ClusterAutoscalerAddon: Kubernetes cluster-autoscaler for the inference node groups of one cluster.

Cluster-autoscaler suits bursty services: it adds a node when a pod cannot be
scheduled, and removes a node whose pods fit elsewhere, draining it through
the eviction API (which honours PodDisruptionBudgets).  Escalator owns the
training groups (see ``docs/autoscaling.md``).

Ownership is explicit: one ``--nodes=<min>:<max>:<asg>`` flag per group,
never ``--node-group-auto-discovery``.  EKS tags every managed node group's
ASG with the default discovery tags, so auto-discovery would also claim the
groups Escalator scales, and the two would fight over their size.

Scale from zero works because :class:`~mleks.gpu_node_group.GpuNodeGroup`
tags each cluster-autoscaler group's ASG with ``k8s.io/cluster-autoscaler/node-template/*``
(labels, the GPU taint, ``nvidia.com/gpu`` count): with no node to copy,
cluster-autoscaler builds its template node from those tags.

:func:`render`, :func:`container_command` and :func:`iam_policy` are pure;
:class:`ClusterAutoscalerAddon` registers what they return.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import pulumi
import yaml
from pydantic import Field, field_validator, model_validator

from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError
from mleks.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs, require_scalable
from mleks.infra.account import account_and_partition
from mleks.manifests.controllers import (
    NAMESPACE,
    asg_arn,
    cluster_role_binding,
    controller_deployment,
    metrics_port_only,
    metrics_service,
    pod_disruption_budget,
    service_account,
)
from mleks.manifests.escalator_config import parse_go_duration, require_duration
from mleks.manifests.k8s_objects import KubeObject
from mleks.validation.schema import Model
from mleks.workload_identity import deploy_with_irsa

NAME = "cluster-autoscaler"
IMAGE_REPOSITORY = "registry.k8s.io/autoscaling/cluster-autoscaler"

# The newest cluster-autoscaler patch release per Kubernetes minor.  A
# cluster-autoscaler minor is built against, and only supported with, the same
# Kubernetes minor.  Sources: image promotions in kubernetes/k8s.io PR #9760
# (2026-07-22: v1.33.6, v1.34.5, v1.35.2, v1.36.1) and the kubernetes/autoscaler tag cluster-autoscaler-1.32.7
# (2026-02-13, the newest 1.32 patch).  Update here, and only here, when a patch ships.
RELEASES: dict[str, str] = {
    "1.32": "1.32.7",
    "1.33": "1.33.6",
    "1.34": "1.34.5",
    "1.35": "1.35.2",
    "1.36": "1.36.1",
}

LEASE_NAME = "cluster-autoscaler"
"""The leader-election Lease (cluster-autoscaler's default), set explicitly so the flag and RBAC agree."""

STATUS_CONFIG_MAP = "cluster-autoscaler-status"
PRIORITY_CONFIG_MAP = "cluster-autoscaler-priority-expander"
"""The ConfigMap the priority expander reads (cluster-autoscaler ``expander/priority``; the chart grants it by this name)."""
HTTP_PORT = 8085
"""Serves ``/health-check`` and ``/metrics``."""

# Requests sized for a few hundred nodes and a few thousand pods, as the
# upstream FAQ suggests; memory grows with the number of pods it simulates.
RESOURCES = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

Expander = Literal["least-waste", "most-pods", "least-nodes", "random"]


class ClusterAutoscalerArgs(Model):
    """Cluster-autoscaler tunables.  In stack YAML, under ``mleks:clusterAutoscaler``.

    Flags that are not tunables here are fixed in :func:`container_command`,
    each with its reason.
    """

    expander: Expander = "least-waste"
    """How to choose between groups that could all host a pending pod.  ``least-waste``
    picks the group whose new node leaves the least idle CPU and memory, which
    steers a small model away from a big, expensive GPU node.  Default: least-waste."""

    scale_down_enabled: bool = True
    """Remove unneeded nodes.  Default: true."""

    scale_down_unneeded_time: str = "15m"
    """Go duration a node must stay unneeded before it is removed.  15 min rather than
    the upstream 10: a new GPU node costs minutes of boot plus a multi-GB image and
    model load, so riding out a short lull between bursts is cheaper than paying
    that again.  Default: 15m."""

    scale_down_delay_after_add: str = "15m"
    """Go duration after a scale-up before scale-down is evaluated again.  Long enough
    for the pods that caused the scale-up to pull their image and load their model,
    so the new node is not judged idle before it serves.  Default: 15m."""

    scale_down_utilization_threshold: float = Field(default=0.5, gt=0, le=1)
    """CPU/memory requests over allocatable below which a non-GPU node may be removed.  Default: 0.5 (upstream)."""

    scale_down_gpu_utilization_threshold: float = Field(default=0.5, gt=0, le=1)
    """GPU requests over allocatable below which a GPU node may be removed (only GPUs
    count on GPU nodes).  0.5: a 1-GPU node is removed when its GPU is free; a 4-GPU
    node when fewer than two GPUs are in use and its pods fit elsewhere.  Default: 0.5."""

    max_node_provision_time: str = "25m"
    """Go duration a new node may take to register before the scale-up counts as failed
    and the group is backed off.  25 min rather than 15: GPU instances, spot ones
    especially, can take long to be granted and to boot.  Default: 25m."""

    scan_interval: str = "10s"
    """Go duration between two scaling loops.  Default: 10s (upstream)."""

    priority: list[str] = Field(default_factory=list)
    """Node group names, most preferred first (e.g. ``[inference-spot, inference-ondemand]``): cluster-autoscaler
    adds nodes to the first listed group that can take the pending pods, and only then to the next, with its
    ``priority`` expander (``expander`` breaks ties).  Groups left out come last.  Default: none (``expander`` alone)."""

    log_level: int = Field(default=4, ge=0, le=10)
    """klog verbosity (``--v``).  4 logs every scaling decision.  Default: 4."""

    @field_validator("scale_down_unneeded_time", "scale_down_delay_after_add", "max_node_provision_time", "scan_interval")
    @classmethod
    def _durations(cls, value: str) -> str:
        require_duration(value, positive=True)
        return value

    @field_validator("priority")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen: dict[str, int] = {}
        for i, name in enumerate(value):
            if name in seen:
                raise ConfigError(f"[{i}]", name, f"each group once (already at [{seen[name]}])", "listed twice")
            seen[name] = i
        return value

    @model_validator(mode="after")
    def _provision_outlasts_scan(self) -> ClusterAutoscalerArgs:
        if parse_go_duration(self.max_node_provision_time) <= parse_go_duration(self.scan_interval):
            raise ConfigError(
                "maxNodeProvisionTime",
                self.max_node_provision_time,
                f"a duration longer than scanInterval ({self.scan_interval}), e.g. 25m",
                "every GPU scale-up would count as failed",
            )
        return self


# --------------------------------------------------------------------------
# Pure logic
# --------------------------------------------------------------------------


def image_for(kubernetes_version: str) -> str:
    """The cluster-autoscaler image for a cluster at ``kubernetes_version`` (``"1.35"``)."""
    minor = ".".join(kubernetes_version.split(".")[:2])
    release = RELEASES.get(minor)
    if release is None:
        raise ConfigError(
            "cluster.kubernetesVersion",
            kubernetes_version,
            f"one of {sorted(RELEASES)} (a pinned cluster-autoscaler release exists for these)",
            "no cluster-autoscaler release pinned for this Kubernetes minor; add it to RELEASES in components/mleks/cluster_autoscaler_addon.py",
        )
    return f"{IMAGE_REPOSITORY}:v{release}"


@dataclass(frozen=True)
class ScaledGroup:
    """One ASG as cluster-autoscaler sees it: node counts and the ASG name."""

    min_size: int
    max_size: int
    asg_name: str

    @property
    def nodes_flag(self) -> str:
        return f"--nodes={self.min_size}:{self.max_size}:{self.asg_name}"


def node_group_errors(groups: Sequence[GpuNodeGroupArgs], kubernetes_version: str, priority: Sequence[str] = ()) -> list[ConfigError]:
    """What would make the add-on wrong for these groups; keys relative to ``mleks:``."""
    errors: list[ConfigError] = []
    names = [g.key for g in groups]
    for i, name in enumerate(priority):
        if name not in names:
            errors.append(
                ConfigError(f"clusterAutoscaler.priority[{i}]", name, f"a group cluster-autoscaler scales in this cluster: {names}", "no such node group here")
            )
    if not groups:
        errors.append(ConfigError("nodeGroups", [], "at least one node group with autoscaler: cluster-autoscaler", "cluster-autoscaler has nothing to scale"))
    for g in groups:
        if g.owner != "cluster-autoscaler":
            errors.append(
                ConfigError(
                    f"nodeGroups.{g.key}.autoscaler",
                    g.owner,
                    "cluster-autoscaler, for a group given to cluster-autoscaler",
                    "the group belongs to another autoscaler",
                )
            )
    try:
        image_for(kubernetes_version)
    except ConfigError as err:
        errors.append(err)
    return errors


def expander_flag(args: ClusterAutoscalerArgs) -> str:
    """``priority`` first when a preference is configured, ``expander`` to break its ties."""
    return f"--expander=priority,{args.expander}" if args.priority else f"--expander={args.expander}"


def priorities_yaml(priority: Sequence[str], asg_names: dict[str, str]) -> str:
    """The priority expander's table: a higher number wins; each listed group's ASG by an exact regex.

    Groups the list leaves out match the catch-all at the lowest priority, so they are still used
    once the listed ones cannot take a pod.
    """
    top = 10 * len(priority)
    levels: dict[int, list[str]] = {top - 10 * i: [f"^{re.escape(asg_names[name])}$"] for i, name in enumerate(priority)}
    levels[1] = [".*"]
    return yaml.safe_dump(levels, sort_keys=True, default_flow_style=False)


def priority_config_map(priorities: pulumi.Input[str], kubernetes_version: str) -> KubeObject:
    """The ConfigMap the priority expander reads (``priorities`` may be an Output)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": PRIORITY_CONFIG_MAP, "namespace": NAMESPACE, "labels": labels(kubernetes_version)},
        "data": {"priorities": priorities},
    }


def container_command(args: ClusterAutoscalerArgs, groups: Sequence[ScaledGroup]) -> list[str]:
    """The full command line, one ``--nodes`` per owned ASG and no auto-discovery."""
    if not groups:
        raise ValueError("cluster-autoscaler needs at least one --nodes group")
    return [
        "./cluster-autoscaler",
        "--cloud-provider=aws",
        # Where the status ConfigMap and the leader Lease live.
        f"--namespace={NAMESPACE}",
        *[g.nodes_flag for g in sorted(groups, key=lambda g: g.asg_name)],
        expander_flag(args),
        # Similar groups (e.g. a copy of a group per AZ) grow together, so one
        # AZ's or spot pool's loss does not take a whole service with it.
        "--balance-similar-node-groups=true",
        # Only DaemonSet pods from kube-system reach the tainted GPU nodes, and
        # they never block scale-down; a stray kube-system pod there should
        # not keep an expensive GPU node alive.  System nodes are not ours to scale.
        "--skip-nodes-with-system-pods=false",
        # Model servers cache weights in emptyDir; that cache is re-downloaded
        # on the next node, and must not pin a GPU node forever.
        "--skip-nodes-with-local-storage=false",
        # GPU nodes carry several DaemonSets (NVIDIA and EFA device plugins,
        # CNI, kube-proxy); their requests must not make an idle node look busy.
        "--ignore-daemonsets-utilization=true",
        # No new pod lands on a node that is about to go.
        "--cordon-node-before-terminating=true",
        f"--scale-down-enabled={str(args.scale_down_enabled).lower()}",
        f"--scale-down-unneeded-time={args.scale_down_unneeded_time}",
        f"--scale-down-delay-after-add={args.scale_down_delay_after_add}",
        f"--scale-down-utilization-threshold={args.scale_down_utilization_threshold}",
        f"--scale-down-gpu-utilization-threshold={args.scale_down_gpu_utilization_threshold}",
        f"--max-node-provision-time={args.max_node_provision_time}",
        f"--scan-interval={args.scan_interval}",
        "--leader-elect=true",
        "--leader-elect-resource-lock=leases",
        f"--leader-elect-resource-name={LEASE_NAME}",
        f"--v={args.log_level}",
    ]


DESCRIBE_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
"""The read actions of the cluster-autoscaler AWS README, minus ``autoscaling:DescribeTags``,
which only tag auto-discovery needs."""


def nodegroup_arn(partition: str, region: str, account_id: str, cluster_name: str, node_group_name: str) -> str:
    """An EKS managed node group's ARN; the trailing UUID is a wildcard."""
    return f"arn:{partition}:eks:{region}:{account_id}:nodegroup/{cluster_name}/{node_group_name}/*"


def iam_policy(asg_arns: Sequence[str], nodegroup_arns: Sequence[str]) -> dict[str, Any]:
    """Least privilege for cluster-autoscaler on the given ASGs (cluster-autoscaler AWS README).

    Describe calls cannot be scoped to a resource.  Resizing and terminating are
    limited to the owned ASGs, so cluster-autoscaler cannot touch Escalator's
    groups even if misconfigured.  ``eks:DescribeNodegroup`` (labels and taints
    of a group at zero) is limited to the owned node groups.
    """
    if not asg_arns or len(asg_arns) != len(nodegroup_arns):
        raise ValueError("one ASG ARN and one node group ARN per owned group")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow", "Action": list(DESCRIBE_ACTIONS), "Resource": "*"},
            {
                "Sid": "ScaleOwnedGroupsOnly",
                "Effect": "Allow",
                "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Resource": sorted(asg_arns),
            },
            {"Sid": "DescribeOwnedNodeGroups", "Effect": "Allow", "Action": ["eks:DescribeNodegroup"], "Resource": sorted(nodegroup_arns)},
        ],
    }


def labels(kubernetes_version: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/version": image_for(kubernetes_version).rsplit(":", 1)[1],
        "app.kubernetes.io/component": "autoscaler",
    }


SELECTOR = {"app.kubernetes.io/name": NAME}


@cache
def _chart_rbac() -> dict[str, Any]:
    """Per cluster-autoscaler minor, the RBAC rules of the upstream chart for that minor (see the file's _source)."""
    return dict(json.loads(resources.files("mleks.catalogs.data").joinpath("cluster_autoscaler_rbac.json").read_text())["minors"])


def chart_rbac(kubernetes_version: str) -> dict[str, Any]:
    """The chart's rules for the cluster-autoscaler minor that runs on ``kubernetes_version``."""
    minor = ".".join(kubernetes_version.split(".")[:2])
    image_for(minor)  # the same refusal as the image, for a minor we pin nothing for
    return dict(_chart_rbac()[minor])


def cluster_role(kubernetes_version: str) -> KubeObject:
    """The upstream chart's ClusterRole for this minor, as the AWS provider gets it.

    From 1.35, dynamic resource allocation is locked on (``config/flags/flags.go``)
    and cluster-autoscaler waits for ResourceSlice, DeviceClass and
    ResourceClaim informers to sync before it scales anything; without the
    ``resource.k8s.io`` rule the chart adds for 1.35 it would block forever.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": NAME, "labels": labels(kubernetes_version)},
        "rules": chart_rbac(kubernetes_version)["clusterRole"],
    }


def role(kubernetes_version: str, *, priority_expander: bool = False) -> KubeObject:
    """The chart's namespaced rights in kube-system: the status ConfigMap (the Lease is in the ClusterRole, as upstream),
    and with the priority expander the chart's extra rights to read its ConfigMap."""
    rules = chart_rbac(kubernetes_version)["rolePriorityExpander" if priority_expander else "role"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels(kubernetes_version)},
        "rules": rules,
    }


def role_binding(kubernetes_version: str) -> KubeObject:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels(kubernetes_version)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }


def deployment(*, command: pulumi.Input[list[str]], kubernetes_version: str, region: str) -> KubeObject:
    return controller_deployment(
        NAME,
        labels(kubernetes_version),
        SELECTOR,
        image=image_for(kubernetes_version),
        command=command,
        env=[
            {"name": "AWS_REGION", "value": region},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        ],
        port=HTTP_PORT,
        port_name="http",
        probe_path="/health-check",
        resources=RESOURCES,
    )


def render(
    *,
    command: pulumi.Input[list[str]],
    kubernetes_version: str,
    region: str,
    role_arn: pulumi.Input[str],
    priorities: pulumi.Input[str] | None = None,
) -> list[KubeObject]:
    """Every Kubernetes object of the add-on.  ``command``, ``role_arn`` and ``priorities`` (the priority
    expander's table, when a preference is configured) may be Outputs."""
    meta_labels = labels(kubernetes_version)
    extra = [priority_config_map(priorities, kubernetes_version)] if priorities is not None else []
    return [
        service_account(NAME, meta_labels, role_arn),
        cluster_role(kubernetes_version),
        cluster_role_binding(NAME, meta_labels),
        role(kubernetes_version, priority_expander=priorities is not None),
        *extra,
        role_binding(kubernetes_version),
        deployment(command=command, kubernetes_version=kubernetes_version, region=region),
        pod_disruption_budget(NAME, meta_labels, SELECTOR),
        metrics_service(NAME, meta_labels, SELECTOR, HTTP_PORT, "http"),
        metrics_port_only(NAME, meta_labels, SELECTOR, HTTP_PORT),
    ]


# --------------------------------------------------------------------------
# Component
# --------------------------------------------------------------------------


class ClusterAutoscalerAddon(pulumi.ComponentResource):
    """cluster-autoscaler in one cluster, scaling exactly the given GPU node groups.

    Args:
        name: Pulumi name prefix, unique per cluster (e.g. ``ml-inference-cluster-autoscaler``).
        args: the tunables.
        cluster: the cluster it runs in; its Kubernetes minor picks the image.
        node_groups: the groups it owns (``owner == "cluster-autoscaler"``), at least one.

    Raises ``ConfigErrors`` before registering anything when a group belongs to
    another autoscaler or no release is pinned for the cluster's version.

    Outputs: ``role_arn``, ``asg_names``, ``image``.
    """

    def __init__(
        self,
        name: str,
        args: ClusterAutoscalerArgs,
        *,
        cluster: EksCluster,
        node_groups: Sequence[GpuNodeGroup],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        group_args = [g.args for g in node_groups]
        require_scalable(node_group_errors(group_args, cluster.kubernetes_version, args.priority), node_groups, cluster, "cluster-autoscaler")
        super().__init__("mleks:addons:ClusterAutoscalerAddon", name, None, opts)
        for group in node_groups:
            group.watched_by.add("cluster-autoscaler")

        asg_names: pulumi.Output[list[str]] = pulumi.Output.all(*[g.asg_name for g in node_groups])
        node_group_names: pulumi.Output[list[str]] = pulumi.Output.all(*[g.node_group_name for g in node_groups])
        command = asg_names.apply(
            lambda names: container_command(args, [ScaledGroup(a.min_size, a.max_size, n) for a, n in zip(group_args, names, strict=True)])
        )

        priorities = None
        if args.priority:
            keys = [g.args.key for g in node_groups]
            priorities = asg_names.apply(lambda names: priorities_yaml(args.priority, dict(zip(keys, names, strict=True))))
        account, partition = account_and_partition(self)
        policy = pulumi.Output.all(partition, account, cluster.cluster_name, asg_names, node_group_names).apply(
            lambda v: iam_policy(
                [asg_arn(v[0], cluster.region, v[1], n) for n in v[3]],
                [nodegroup_arn(v[0], cluster.region, v[1], v[2], n) for n in v[4]],
            )
        )
        self.irsa = deploy_with_irsa(
            self,
            name,
            cluster=cluster,
            namespace=NAMESPACE,
            service_account=NAME,
            policy=policy,
            render=lambda role_arn: render(
                command=command, kubernetes_version=cluster.kubernetes_version, region=cluster.region, role_arn=role_arn, priorities=priorities
            ),
        )
        self.role_arn = self.irsa.role_arn
        self.asg_names = asg_names
        self.image = image_for(cluster.kubernetes_version)
        self.register_outputs({"role_arn": self.role_arn, "asg_names": asg_names, "image": self.image})
