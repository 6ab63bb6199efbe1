"""EKS node auto-repair for managed node groups (``nodeRepairConfig``), on by default for GPU groups.

With the EKS node monitoring agent running (every cluster with GPU groups gets it,
see :mod:`mleks.node_monitoring_agent`), EKS reacts to the conditions the agent sets:
``AcceleratedHardwareReady`` (GPU Xid and NVLink errors, the DCGM health checks) after
10 minutes, ``KernelReady``, ``NetworkingReady``, ``StorageReady`` and the kubelet's
``Ready`` after 30 (EKS user guide, ``nodes/node-health.adoc``).  It cordons the node,
then reboots or replaces it.  How that meets Escalator and running jobs: docs/operations.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mleks.catalogs import node_health
from mleks.errors import ConfigError
from mleks.validation.schema import Model, raise_all

# GPU nodes are scarce and each carries a slice of a training job: repair one at a time
# unless told otherwise, the same pace as the groups' rolling updates (maxUnavailable 1).
DEFAULT_PARALLEL = 1


class NodeRepairOverride(Model):
    """What EKS does for one condition and reason, instead of its default action
    (EKS API ``NodeRepairConfigOverrides``)."""

    node_monitoring_condition: str = Field(min_length=1)
    """The node condition the monitoring agent sets, e.g. ``AcceleratedHardwareReady``."""

    node_unhealthy_reason: str = Field(min_length=1)
    """The reason within it, e.g. ``NvidiaXID79Error`` (the GPU fell off the bus)."""

    repair_action: Literal["Replace", "Reboot", "NoAction"]
    """``Replace`` the instance, ``Reboot`` it, or take ``NoAction`` (cordon only)."""

    min_repair_wait_time_mins: int = Field(ge=1)
    """Minutes the condition must hold before EKS acts: at least 1 (EKS API minimum)."""

    @model_validator(mode="after")
    def _known_to_the_agent(self) -> NodeRepairOverride:
        # EKS accepts any string here, and a misspelled condition or reason silently never matches.
        condition, reason = self.node_monitoring_condition, self.node_unhealthy_reason
        if condition not in node_health.FATAL_REASONS:
            accepted = f"a condition the node monitoring agent ({node_health.AGENT_VERSION}) sets: {', '.join(node_health.conditions())}"
            raise ConfigError("nodeMonitoringCondition", condition, accepted, "not a condition the agent reports, so the override would never match")
        if not node_health.reason_known(condition, reason):
            accepted = f"a reason that sets {condition} False ({node_health.AGENT_VERSION}): {node_health.reasons_text(condition)}"
            raise ConfigError("nodeUnhealthyReason", reason, accepted, "not a reason the agent reports for this condition, so the override would never match")
        return self


class NodeRepairArgs(Model):
    """Node auto-repair of one managed node group.  Default: on, one node at a time."""

    enabled: bool = True
    """Let EKS reboot or replace nodes it finds unhealthy.  Default: true."""

    max_parallel_nodes_repaired_count: int | None = Field(default=None, ge=1)
    """At most this many nodes repaired at once.  Default: 1 (unless the percentage is given)."""

    max_parallel_nodes_repaired_percentage: int | None = Field(default=None, ge=1, le=100)
    """At most this share of the group's nodes repaired at once, in percent (instead of the count)."""

    max_unhealthy_node_threshold_count: int | None = Field(default=None, ge=1)
    """Stop repairing when more nodes than this are unhealthy (a wider failure).  Default: EKS's
    own rule (more than 20% of a group of more than five nodes)."""

    max_unhealthy_node_threshold_percentage: int | None = Field(default=None, ge=1, le=100)
    """The same threshold in percent of the group's nodes (instead of the count)."""

    overrides: list[NodeRepairOverride] = Field(default_factory=list)
    """Per-condition actions, e.g. reboot instead of replace for one Xid."""

    @model_validator(mode="after")
    def _consistent(self) -> NodeRepairArgs:
        errors = []
        # The EKS API takes a count or a percentage for each limit, never both.
        for count, percent in (
            ("max_parallel_nodes_repaired_count", "max_parallel_nodes_repaired_percentage"),
            ("max_unhealthy_node_threshold_count", "max_unhealthy_node_threshold_percentage"),
        ):
            if getattr(self, count) is not None and getattr(self, percent) is not None:
                alias = NodeRepairArgs.model_fields[percent].alias or percent
                errors.append(
                    ConfigError(alias, getattr(self, percent), f"either {NodeRepairArgs.model_fields[count].alias} or this, not both", "EKS takes one")
                )
        if not self.enabled:
            tuned = [NodeRepairArgs.model_fields[f].alias or f for f in sorted(self.model_fields_set & _TUNABLES)]
            for key in tuned:
                errors.append(ConfigError(key, getattr(self, _field_of(key)), "no value while enabled is false", "repair is off, so this would do nothing"))
        if errors:
            raise_all(type(self).__name__, errors)
        return self

    def api(self) -> dict[str, Any]:
        """Keyword arguments of ``aws.eks.NodeGroup``'s ``node_repair_config``."""
        if not self.enabled:
            return {"enabled": False}
        out: dict[str, Any] = {"enabled": True}
        if self.max_parallel_nodes_repaired_percentage is None:
            out["max_parallel_nodes_repaired_count"] = self.max_parallel_nodes_repaired_count or DEFAULT_PARALLEL
        else:
            out["max_parallel_nodes_repaired_percentage"] = self.max_parallel_nodes_repaired_percentage
        for name in ("max_unhealthy_node_threshold_count", "max_unhealthy_node_threshold_percentage"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.overrides:
            out["node_repair_config_overrides"] = [o.model_dump() for o in self.overrides]
        return out


_TUNABLES = frozenset(NodeRepairArgs.model_fields) - {"enabled"}
_PAIRS = (
    ("max_parallel_nodes_repaired_count", "max_parallel_nodes_repaired_percentage"),
    ("max_unhealthy_node_threshold_count", "max_unhealthy_node_threshold_percentage"),
)


class NodeRepairSettings(NodeRepairArgs):
    """Auto-repair for every GPU group of a stack (``mleks:nodeRepair``), with per-group changes
    under ``nodeGroups.<name>``.  Default: on for every group, one node at a time."""

    node_groups: dict[str, NodeRepairArgs] = Field(default_factory=dict)
    """Per group, by its key under ``mleks:nodeGroups``: what differs from the
    settings above, e.g. ``{inference-spot: {enabled: false}}``."""

    def for_group(self, name: str) -> NodeRepairArgs:
        """The settings of group ``name``: its own keys over the stack's.

        A group's count replaces the stack's percentage for the same limit (and the other way
        round), and a group with ``enabled: false`` takes none of the stack's tunables.
        """
        stack = {f: getattr(self, f) for f in self.model_fields_set if f in NodeRepairArgs.model_fields}
        own = self.node_groups.get(name)
        if own is None:
            return NodeRepairArgs(**stack)
        mine = {f: getattr(own, f) for f in own.model_fields_set}
        if mine.get("enabled") is False:
            return NodeRepairArgs(**mine)
        for pair in _PAIRS:
            if any(f in mine for f in pair):
                for f in pair:
                    stack.pop(f, None)
        return NodeRepairArgs(**{**stack, **mine})


def _field_of(alias: str) -> str:
    return next(name for name, f in NodeRepairArgs.model_fields.items() if f.alias == alias or name == alias)
