"""The two shapes of the platform, built from the same components.

* ``dedicated``: one MLCluster per role; the train cluster holds every train
  group, the inference cluster every inference group.
* ``unified``: one MLCluster holding every group; pods pick a group with
  ``nodeSelector: {role: <role>, mleks.io/node-group: <name>}``.

:func:`plan` is the pure decision (which cluster gets which groups); :func:`build`
registers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from mleks import efa_device_plugin, network
from mleks.catalogs.node_daemonsets import DaemonSetLoad, NodeAddons
from mleks.catalogs.node_daemonsets import gpu_node_load as load_for
from mleks.errors import ConfigError
from mleks.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs
from mleks.ml_cluster import MLCluster
from mleks.network import MLVpc
from mleks.vocabulary import Role
from stacks.config import StackConfig

ROLE_ORDER: tuple[Role, ...] = ("train", "inference")


@dataclass(frozen=True)
class ClusterPlan:
    """One cluster of the stack: its name, the GPU roles it hosts and its groups' names (config order)."""

    name: str
    roles: tuple[Role, ...]
    groups: tuple[str, ...]


def plan(cfg: StackConfig) -> list[ClusterPlan]:
    roles = tuple(r for r in ROLE_ORDER if any(g.role == r for g in cfg.node_groups.values()))

    def groups_of(of: tuple[Role, ...]) -> tuple[str, ...]:
        return tuple(name for name, g in cfg.node_groups.items() if g.role in of)

    if cfg.topology == "unified":
        return [ClusterPlan(cfg.name_prefix, roles, groups_of(roles))]
    return [ClusterPlan(f"{cfg.name_prefix}-{role}", (role,), groups_of((role,))) for role in roles]


def check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """What the add-ons the topology installs need from the rest of the config (keys relative to ``mleks:``)."""
    errors: list[ConfigError] = []
    for name, group in cfg.node_groups.items():
        if group.efa:
            try:
                efa_device_plugin.image_for(cfg.region, key=f"nodeGroups.{name}.efa")
            except ConfigError as err:
                errors.append(err)
    return errors


def lookup_errors(cfg: StackConfig) -> list[ConfigError]:
    """What the config asks of the account and region that only a look-up can check: the VPC's AZ count."""
    if cfg.vpc.id is not None:
        return []
    error = network.zone_count_error("vpc.availabilityZoneCount", cfg.vpc.availability_zone_count, network.regular_zones())
    return [] if error is None else [error]


def node_addons(cfg: StackConfig, role: Role) -> NodeAddons:
    """The add-ons with a pod on every GPU node of the cluster that holds ``role``'s groups, as the build adds them.

    The observability add-on goes to every cluster with GPU groups (stacks.operations), the EBS CSI
    driver to the cluster of the notebooks, the FSx CSI driver to that of the datasets (both the
    train cluster).  A test checks this against what the built clusters report.
    """
    names = cluster_names(cfg)
    in_train = names.get(role) is not None and names.get(role) == names.get("train")
    return NodeAddons(observability=cfg.observability.mode, ebs_csi=in_train and bool(cfg.notebooks), fsx_csi=in_train and bool(cfg.datasets))


def gpu_node_load(cfg: StackConfig, group: GpuNodeGroupArgs) -> DaemonSetLoad:
    """What the DaemonSets on a node of ``group`` will request, from the config alone."""
    return load_for(node_addons(cfg, group.role), ami_family=group.ami_family, efa=group.efa)


def resolve_group(
    cfg: StackConfig, role: Role, requested: str | None, key: str, unchecked: frozenset[str] = frozenset(), *, at: str | None = None
) -> tuple[str, GpuNodeGroupArgs] | ConfigError | None:
    """The node group (config key, args) a workload at ``key`` runs on: the one it names, or the only one of ``role``.

    A ``ConfigError`` (keyed ``at``, by default ``<key>.nodeGroup``) when the name is unknown, of
    another role, or missing while several groups have the role; ``None`` when the answer depends on
    a group that did not parse (``unchecked``), whose own error is the one to fix.  No group of the
    role at all is the caller's to report.
    """
    at = at or f"{key}.nodeGroup"
    of_role = [name for name, g in cfg.node_groups.items() if g.role == role]
    if requested is not None:
        if requested in unchecked:
            return None
        group = cfg.node_groups.get(requested)
        if group is None:
            return ConfigError(at, requested, f"the name of one of the {role} groups under nodeGroups: {of_role}", "no such node group")
        if group.role != role:
            return ConfigError(at, requested, f"one of the {role} groups: {of_role}", f"nodeGroups.{requested} is a group of role {group.role!r}, not {role!r}")
        return requested, group
    if any(name in unchecked for name in of_role) or (not of_role and unchecked):
        return None
    if len(of_role) > 1:
        return ConfigError(at, None, f"one of the {role} groups {of_role}", f"the stack has {len(of_role)} {role} groups, so this must name the one to run on")
    if not of_role:
        return None
    return of_role[0], cfg.node_groups[of_role[0]]


def cluster_names(cfg: StackConfig) -> dict[Role, str]:
    """Role -> the name of the cluster that will hold that role's group."""
    return {role: cp.name for cp in plan(cfg) for role in cp.roles}


@dataclass
class Platform:
    """What the topology built, for the add-ons and workloads to attach to."""

    config: StackConfig
    clusters: dict[str, MLCluster] = field(default_factory=dict)
    node_groups: dict[str, GpuNodeGroup] = field(default_factory=dict)
    """By the group's config key."""
    namespaces: dict[tuple[str, str], pulumi.Resource] = field(default_factory=dict)
    """(cluster name, namespace) -> the Namespace the stack created there (see stacks.namespaces)."""

    def cluster_for(self, role: Role) -> MLCluster | None:
        """The cluster that holds the groups of ``role`` (one in either topology)."""
        group = next((g for g in self.node_groups.values() if g.role == role), None)
        return self.clusters[group.cluster.name] if group else None

    def namespace(self, cluster: MLCluster, name: str) -> list[pulumi.Resource]:
        """What a workload in ``name`` must depend on: the stack's Namespace, if it owns one."""
        found = self.namespaces.get((cluster.name, name))
        return [found] if found is not None else []

    def groups_in(self, cluster: MLCluster) -> list[GpuNodeGroup]:
        return [g for g in self.node_groups.values() if g.cluster is cluster]


def _network(cfg: StackConfig) -> tuple[pulumi.Input[str], pulumi.Input[Sequence[str]], list[pulumi.Resource]]:
    """An existing VPC, or a new :class:`MLVpc`: its id, private subnet ids, and what nodes wait for (egress)."""
    if cfg.vpc.id:
        return cfg.vpc.id, cfg.vpc.private_subnet_ids, []
    vpc = MLVpc(f"{cfg.name_prefix}-vpc", cfg.vpc, tags=cfg.tags)
    return vpc.vpc_id, vpc.private_subnet_ids, vpc.egress


def build(cfg: StackConfig) -> Platform:
    platform = Platform(cfg)
    vpc_id, private_subnets, egress = _network(cfg)
    for cp in plan(cfg):
        cluster = MLCluster(
            cp.name,
            cfg.cluster,
            cluster_name=cp.name,
            region=cfg.region,
            vpc_id=vpc_id,
            private_subnet_ids=private_subnets,
            tags=cfg.tags,
            config_key="mleks:cluster",
            node_dependencies=egress,
        )
        platform.clusters[cp.name] = cluster
        for key in cp.groups:
            # The group's auto-repair comes from mleks:nodeRepair (checked in stacks.operations).
            group = cfg.node_groups[key].model_copy(update={"auto_repair": cfg.node_repair.for_group(key)})
            platform.node_groups[key] = GpuNodeGroup(
                f"{cfg.name_prefix}-{group.group_name}-gpu",
                group,
                cluster=cluster,
                opts=pulumi.ResourceOptions(parent=cluster),
            )
        # The cluster adds the device plugins its groups need (see mleks.cluster_base).
    return platform
