"""Datasets (``mleks:datasets``): FSx for Lustre file systems in the training cluster, and their claims.

Each dataset lives in one AZ: that of its home group (``datasets.<name>.nodeGroup``, or by default
the single-AZ group among the groups of the workloads that mount it).  :func:`check` refuses, before
anything is registered, a workload that names an unknown dataset or runs on a single-AZ group that
cannot be shown to share the dataset's AZ; :func:`build` registers the FSx CSI driver, the file
systems and one static claim per namespace that mounts each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

from mleks.dataset import FsxLustreDataset, claim_name
from mleks.errors import ConfigError
from mleks.fsx_csi_driver import FsxCsiDriver
from mleks.gpu_node_group import GpuNodeGroupArgs
from stacks import topology

if TYPE_CHECKING:
    from stacks.config import StackConfig
    from stacks.topology import Platform

KEY = "datasets"


@dataclass(frozen=True)
class Use:
    """One workload mounting one dataset."""

    key: str  # where the mount is written, e.g. trainingJobs.nccl-allreduce.datasets[0]
    dataset: str
    namespace: str
    group: str | None  # the GPU group it runs on; None for the system nodes (a CPU notebook)


def uses(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[Use]:
    out = []
    for name, job in cfg.training_jobs.items():
        found = topology.resolve_group(cfg, "train", job.node_group, f"trainingJobs.{name}", unchecked)
        group = found[0] if isinstance(found, tuple) else None
        out += [Use(f"trainingJobs.{name}.datasets[{i}]", d.name, job.namespace, group) for i, d in enumerate(job.datasets)]
    for name, nb in cfg.notebooks.items():
        found = topology.resolve_group(cfg, "train", nb.node_group, f"notebooks.{name}", unchecked) if nb.gpus else None
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


def home_group(cfg: StackConfig, name: str, all_uses: list[Use]) -> str | None:
    """The group whose AZ dataset ``name`` goes in (checked by :func:`check`)."""
    ds = cfg.datasets[name]
    if ds.node_group is not None:
        return ds.node_group
    pinned = [u.group for u in all_uses if u.dataset == name and u.group and zone_of(cfg.node_groups[u.group])]
    if pinned:
        return pinned[0]
    train = [k for k, g in cfg.node_groups.items() if g.role == "train"]
    return train[0] if train else None


def check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    errors: list[ConfigError] = []
    all_uses = uses(cfg, unchecked)
    defined = sorted(cfg.datasets)
    for use in all_uses:
        if use.dataset not in cfg.datasets:
            errors.append(ConfigError(f"{use.key}.name", use.dataset, f"a dataset under mleks:datasets: {defined or 'none defined'}", "no such dataset"))
    if cfg.datasets and not any(g.role == "train" for g in cfg.node_groups.values()) and not unchecked:
        errors.append(
            ConfigError(KEY, defined, "datasets in a stack with a train node group", "datasets live in the training cluster, and this stack has none")
        )
        return errors
    for name, ds in cfg.datasets.items():
        if ds.node_group is not None:
            found = topology.resolve_group(cfg, "train", ds.node_group, f"{KEY}.{name}", unchecked)
            if isinstance(found, ConfigError):
                errors.append(found)
                continue
            if found is None:
                continue
        home = home_group(cfg, name, all_uses)
        if home is None or home in unchecked:
            continue
        zone = zone_of(cfg.node_groups[home])
        for use in all_uses:
            if use.dataset != name or use.group is None or use.group == home or use.group in unchecked:
                continue
            theirs = zone_of(cfg.node_groups[use.group])
            if theirs is not None and theirs != zone:
                where = zone or "a subnet of nodeGroups." + home
                errors.append(
                    ConfigError(
                        use.key,
                        name,
                        f"a dataset in the AZ of the group it runs on (set {KEY}.{name}.nodeGroup: {use.group}), or a group in {where}",
                        f"dataset {name} is in {where} (nodeGroups.{home}); this workload runs on nodeGroups.{use.group}, in {theirs}",
                    )
                )
    return errors


def build(cfg: StackConfig, platform: Platform) -> dict[str, Any]:
    """Register the datasets; return what the ``datasets`` output says of each."""
    if not cfg.datasets:
        return {}
    cluster = platform.cluster_for("train")
    assert cluster is not None  # guaranteed by check()
    child = pulumi.ResourceOptions(parent=cluster)
    driver = FsxCsiDriver(f"{cluster.name}-fsx-csi", cluster=cluster, opts=child)
    all_uses = uses(cfg)
    exported: dict[str, Any] = {}
    for name, ds in cfg.datasets.items():
        home = home_group(cfg, name, all_uses)
        group = platform.node_groups.get(home) if home else None
        subnets = group.subnet_ids if group is not None else cluster.private_subnet_ids
        dataset = FsxLustreDataset(f"{cluster.name}-{name}", ds, cluster=cluster, subnet_id=subnets.apply(lambda ids: ids[0]), opts=child)
        namespaces = sorted({u.namespace for u in all_uses if u.dataset == name})
        for namespace in namespaces:
            dataset.claim_in(namespace, depends_on=[*platform.namespace(cluster, namespace), driver])
        exported[name] = {
            "fileSystemId": dataset.file_system.id,
            "dnsName": dataset.file_system.dns_name,
            "mountName": dataset.file_system.mount_name,
            "claim": claim_name(name),
            "namespaces": namespaces,
            "nodeGroup": home,
            "s3": ds.s3.uri if ds.s3 else None,
            "retainedOnDestroy": ds.deletion == "retain",
        }
    return exported
