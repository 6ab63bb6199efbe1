"""Who scales which GPU group: Escalator for training, cluster-autoscaler for inference.

Every GPU node group has exactly one owner, ``GpuNodeGroupArgs.owner``:
``escalator``, ``cluster-autoscaler`` or ``none``.  Per cluster, this module
gives Escalator's groups to one :class:`EscalatorAddon` and cluster-autoscaler's
groups to one :class:`ClusterAutoscalerAddon`; a ``none`` group is in neither.

* ``dedicated``: Escalator runs in the train cluster, cluster-autoscaler in the
  inference cluster.
* ``unified``: both run in the one cluster, on disjoint groups.

:func:`check` runs while the stack config is parsed (from
``stacks.validation``), before any resource is registered;
:func:`build` registers the add-ons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from mleks import cluster_autoscaler_addon, escalator_addon
from mleks.cluster_autoscaler_addon import ClusterAutoscalerAddon, ClusterAutoscalerArgs
from mleks.errors import ConfigError
from mleks.escalator_addon import EscalatorAddon, EscalatorArgs
from mleks.gpu_node_group import Autoscaler
from stacks.topology import plan

if TYPE_CHECKING:
    from stacks.config import StackConfig
    from stacks.topology import Platform

ESCALATOR_KEY = "escalator"
CLUSTER_AUTOSCALER_KEY = "clusterAutoscaler"


def owners(cfg: StackConfig) -> dict[str, Autoscaler]:
    """The owner of each GPU node group, by the group's name."""
    return {key: g.owner for key, g in cfg.node_groups.items()}


def check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """Autoscaling problems that need the whole config.  Keys are relative to ``mleks:``.

    * every ``escalator.nodeGroups.<name>`` block names a node group that Escalator owns;
    * ``escalator`` / ``clusterAutoscaler`` settings are not given for an autoscaler
      that owns no group (they would silently do nothing);
    * per cluster, Escalator accepts its groups (min < max, options consistent
      with the group), and cluster-autoscaler has a release for the cluster's version.
    """
    errors: list[ConfigError] = []
    esc = cfg.escalator or EscalatorArgs()
    owner = owners(cfg)
    escalator_owned = [r for r, o in owner.items() if o == "escalator"]

    for name in esc.node_groups:
        key = f"{escalator_addon.OPTIONS_KEY}.{name}"
        if name in unchecked:
            continue  # the group itself is reported; its options cannot be judged yet
        if name not in owner:
            errors.append(ConfigError(key, name, f"the name of a node group under nodeGroups: {sorted(owner)}", "no such node group"))
        elif owner[name] != "escalator":
            errors.append(
                ConfigError(
                    key,
                    name,
                    f"options for a group Escalator owns ({escalator_owned or 'none'}), or set nodeGroups.{name}.autoscaler: escalator",
                    f"nodeGroups.{name} has autoscaler {owner[name]!r}, so Escalator would never read these options",
                )
            )
    # A group that did not parse may be the one these settings are for.
    if cfg.escalator is not None and not escalator_owned and not unchecked:
        errors.append(
            ConfigError(
                ESCALATOR_KEY,
                cfg.escalator.model_dump(by_alias=True, exclude_defaults=True),
                "no escalator settings, or a node group with autoscaler: escalator",
                "no node group is scaled by Escalator",
            )
        )
    if cfg.cluster_autoscaler is not None and "cluster-autoscaler" not in owner.values() and not unchecked:
        errors.append(
            ConfigError(
                CLUSTER_AUTOSCALER_KEY,
                cfg.cluster_autoscaler.model_dump(by_alias=True, exclude_defaults=True),
                "no clusterAutoscaler settings, or a node group with autoscaler: cluster-autoscaler",
                "no node group is scaled by cluster-autoscaler",
            )
        )

    ca_owned = [k for k, o in owner.items() if o == "cluster-autoscaler"]
    for i, name in enumerate((cfg.cluster_autoscaler or ClusterAutoscalerArgs()).priority):
        key = f"{CLUSTER_AUTOSCALER_KEY}.priority[{i}]"
        if name in unchecked:
            continue
        if name not in owner:
            errors.append(ConfigError(key, name, f"the name of a node group cluster-autoscaler scales: {ca_owned}", "no such node group"))
        elif owner[name] != "cluster-autoscaler":
            problem = f"nodeGroups.{name} is scaled by {owner[name]}, not cluster-autoscaler"
            errors.append(ConfigError(key, name, f"a group cluster-autoscaler scales: {ca_owned}", problem))

    for cp in plan(cfg):
        groups = [cfg.node_groups[key] for key in cp.groups]
        escalator_groups = [g for g in groups if g.owner == "escalator"]
        if escalator_groups:
            # Unknown option blocks were reported above, once for the stack.
            errors.extend(escalator_addon.node_group_errors(esc.for_groups([g.key for g in escalator_groups]), escalator_groups))
        ca_groups = [g for g in groups if g.owner == "cluster-autoscaler"]
        if ca_groups:
            # The priority list was checked against the whole stack above.
            errors.extend(cluster_autoscaler_addon.node_group_errors(ca_groups, cfg.cluster.kubernetes_version))
    return errors


def build(cfg: StackConfig, platform: Platform) -> dict[str, list[pulumi.ComponentResource]]:
    """Register each cluster's autoscalers; returns them by cluster name."""
    esc = cfg.escalator or EscalatorArgs()
    ca = cfg.cluster_autoscaler or ClusterAutoscalerArgs()
    built: dict[str, list[pulumi.ComponentResource]] = {}
    for name, cluster in platform.clusters.items():
        groups = platform.groups_in(cluster)
        addons: list[pulumi.ComponentResource] = []
        escalator_groups = [g for g in groups if g.args.owner == "escalator"]
        if escalator_groups:
            addons.append(
                EscalatorAddon(
                    f"{name}-escalator",
                    esc.for_groups([g.args.key for g in escalator_groups]),
                    cluster=cluster,
                    node_groups=escalator_groups,
                    opts=pulumi.ResourceOptions(parent=cluster),
                )
            )
        ca_groups = [g for g in groups if g.args.owner == "cluster-autoscaler"]
        if ca_groups:
            addons.append(
                ClusterAutoscalerAddon(
                    f"{name}-cluster-autoscaler",
                    # Each cluster's cluster-autoscaler orders its own groups only.
                    ca.model_copy(update={"priority": [p for p in ca.priority if p in {g.args.key for g in ca_groups}]}),
                    cluster=cluster,
                    node_groups=ca_groups,
                    opts=pulumi.ResourceOptions(parent=cluster),
                )
            )
        built[name] = addons
    return built
