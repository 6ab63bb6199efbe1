"""The platform's pure decisions: which cluster holds which groups, which group a workload runs on,
where each dataset lives, which namespaces to create.  Both the checks and the build read them, so
what is checked is what is built.

* ``dedicated``: one MLCluster per role; the train cluster holds every train group, the inference
  cluster every inference group.
* ``unified``: one MLCluster holding every group; pods pick a group with
  ``nodeSelector: {role: <role>, mleks.io/node-group: <name>}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mleks.catalogs.node_daemonsets import DaemonSetLoad, NodeAddons
from mleks.catalogs.node_daemonsets import gpu_node_load as load_for
from mleks.errors import ConfigError
from mleks.gpu_node_group import GpuNodeGroupArgs
from mleks.inference_service import InferenceServiceArgs
from mleks.manifests.workloads import namespace_object, runs_as_non_root
from mleks.platform.args import MLPlatformArgs
from mleks.vocabulary import PREEXISTING_NAMESPACES, Role

ROLE_ORDER: tuple[Role, ...] = ("train", "inference")


@dataclass(frozen=True)
class ClusterPlan:
    """One cluster of the platform: its name, the GPU roles it hosts and its groups' names (config order)."""

    name: str
    roles: tuple[Role, ...]
    groups: tuple[str, ...]


def plan(cfg: MLPlatformArgs) -> list[ClusterPlan]:
    roles = tuple(r for r in ROLE_ORDER if any(g.role == r for g in cfg.node_groups.values()))

    def groups_of(of: tuple[Role, ...]) -> tuple[str, ...]:
        return tuple(name for name, g in cfg.node_groups.items() if g.role in of)

    if cfg.topology == "unified":
        return [ClusterPlan(cfg.name_prefix, roles, groups_of(roles))]
    return [ClusterPlan(f"{cfg.name_prefix}-{role}", (role,), groups_of((role,))) for role in roles]


def cluster_names(cfg: MLPlatformArgs) -> dict[Role, str]:
    """Role -> the name of the cluster that will hold that role's group."""
    return {role: cp.name for cp in plan(cfg) for role in cp.roles}


def node_addons(cfg: MLPlatformArgs, role: Role) -> NodeAddons:
    """The add-ons with a pod on every GPU node of the cluster that holds ``role``'s groups, as the build adds them.

    The observability add-on goes to every cluster with GPU groups, the EBS CSI driver to the
    cluster of the notebooks, the FSx CSI driver to that of the datasets (both the train cluster).
    A test checks this against what the built clusters report.
    """
    names = cluster_names(cfg)
    in_train = names.get(role) is not None and names.get(role) == names.get("train")
    return NodeAddons(observability=cfg.observability.mode, ebs_csi=in_train and bool(cfg.notebooks), fsx_csi=in_train and bool(cfg.datasets))


def gpu_node_load(cfg: MLPlatformArgs, group: GpuNodeGroupArgs) -> DaemonSetLoad:
    """What the DaemonSets on a node of ``group`` will request, from the arguments alone."""
    return load_for(node_addons(cfg, group.role), ami_family=group.ami_family, efa=group.efa)


def resolve_group(
    cfg: MLPlatformArgs, role: Role, requested: str | None, key: str, unchecked: frozenset[str] = frozenset(), *, at: str | None = None
) -> tuple[str, GpuNodeGroupArgs] | ConfigError | None:
    """The node group (key, args) a workload at ``key`` runs on: the one it names, or the only one of ``role``.

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


def service_groups(cfg: MLPlatformArgs, svc: InferenceServiceArgs, key: str, unchecked: frozenset[str] = frozenset()) -> list[Any] | None:
    """The groups (key, args) a service may run on, or its errors; None when that waits on a group that did not parse."""
    names = svc.node_group_names
    if names is None:
        found = resolve_group(cfg, "inference", None, key, unchecked)
        return None if found is None else [found]
    listed = isinstance(svc.node_group, list)
    answers = [resolve_group(cfg, "inference", n, key, unchecked, at=f"{key}.nodeGroup[{i}]" if listed else None) for i, n in enumerate(names)]
    errors = [a for a in answers if isinstance(a, ConfigError)]
    if errors:
        return errors
    if any(a is None for a in answers):
        return None
    return answers


# -- datasets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """One workload mounting one dataset."""

    key: str  # where the mount is written, e.g. trainingJobs.nccl-allreduce.datasets[0]
    dataset: str
    namespace: str
    group: str | None  # the GPU group it runs on; None for the system nodes (a CPU notebook)


def uses(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[Use]:
    out = []
    for name, job in cfg.training_jobs.items():
        found = resolve_group(cfg, "train", job.node_group, f"trainingJobs.{name}", unchecked)
        group = found[0] if isinstance(found, tuple) else None
        out += [Use(f"trainingJobs.{name}.datasets[{i}]", d.name, job.namespace, group) for i, d in enumerate(job.datasets)]
    for name, nb in cfg.notebooks.items():
        found = resolve_group(cfg, "train", nb.node_group, f"notebooks.{name}", unchecked) if nb.gpus else None
        group = found[0] if isinstance(found, tuple) else None
        out += [Use(f"notebooks.{name}.datasets[{i}]", d.name, nb.namespace, group) for i, d in enumerate(nb.datasets)]
    return out


def zone_of(group: GpuNodeGroupArgs) -> str | None:
    """What pins a group to one AZ, in words; ``None`` for a group that spans the cluster's AZs."""
    if group.capacity_reservation_id:
        return f"the AZ of Capacity Block {group.capacity_reservation_id}"
    if group.efa:
        return f"the AZ of subnet {group.efa_subnet_id}" if group.efa_subnet_id else "the AZ of the cluster's first private subnet"
    return None


def home_group(cfg: MLPlatformArgs, name: str, all_uses: list[Use]) -> str | None:
    """The group whose AZ dataset ``name`` goes in (checked by :func:`mleks.platform.checks.dataset_errors`)."""
    ds = cfg.datasets[name]
    if ds.node_group is not None:
        return ds.node_group
    pinned = [u.group for u in all_uses if u.dataset == name and u.group and zone_of(cfg.node_groups[u.group])]
    if pinned:
        return pinned[0]
    train = [k for k, g in cfg.node_groups.items() if g.role == "train"]
    return train[0] if train else None


# -- namespaces ------------------------------------------------------------------------------


@dataclass
class NamespaceNeeds:
    """What the workloads of one namespace in one cluster need from it."""

    non_root: list[bool] = field(default_factory=list)
    readiness_gates: bool = False

    def render(self, name: str) -> dict[str, Any]:
        return namespace_object(name, restricted=all(self.non_root), readiness_gates=self.readiness_gates)


def namespaces(cfg: MLPlatformArgs) -> dict[tuple[str, str], NamespaceNeeds]:
    """(cluster name, namespace) -> what goes into it, for every namespace the platform owns.

    Training jobs, inference services and notebooks may share a namespace (in ``unified`` they share
    one cluster), so namespaces are planned across all of them: one Namespace per (cluster, name),
    at the Pod Security level every workload in it can run under.  Namespaces every cluster already
    has are never created, so the platform can never delete them.
    """
    cluster_of = cluster_names(cfg)
    needs: dict[tuple[str, str], NamespaceNeeds] = {}

    def add(role: Role, namespace: str) -> NamespaceNeeds | None:
        cluster = cluster_of.get(role)
        if cluster is None or namespace in PREEXISTING_NAMESPACES:
            return None
        return needs.setdefault((cluster, namespace), NamespaceNeeds())

    for job in cfg.training_jobs.values():
        entry = add("train", job.namespace)
        if entry is not None:
            entry.non_root.append(False)  # DLC training images run as root
    for svc in cfg.inference_services.values():
        entry = add("inference", svc.namespace)
        if entry is not None:
            entry.non_root.append(runs_as_non_root(svc.run_as_user))
            entry.readiness_gates = entry.readiness_gates or svc.exposure == "internal-nlb"
    for nb in cfg.notebooks.values():
        entry = add("train", nb.namespace)
        if entry is not None:
            entry.non_root.append(runs_as_non_root(nb.run_as_user))
    return needs
