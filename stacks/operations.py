"""Day two: GPU node auto-repair and the observability mode, for every cluster of the stack.

* ``mleks:nodeRepair`` gives each GPU group its ``nodeRepairConfig`` (on by default); the node
  monitoring agent that feeds it comes with each cluster's first GPU group (mleks.cluster_base).
* ``mleks:observability`` adds, per cluster with GPU groups, the CloudWatch add-on or the DCGM
  exporter and scrape configuration for Escalator and cluster-autoscaler, or nothing.

:func:`check` runs while the config is parsed (from ``stacks.validation``), before any resource is
registered; the topology reads ``nodeRepair`` as it builds the groups; :func:`build` registers the
observability components once the autoscalers exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from mleks import cluster_autoscaler_addon, escalator_addon
from mleks.errors import ConfigError, ConfigErrors
from mleks.manifests.controllers import NAMESPACE as CONTROLLERS_NAMESPACE
from mleks.observability import CloudWatchObservability, DcgmExporter, ServiceMonitors, bottlerocket_problems

if TYPE_CHECKING:
    from stacks.config import StackConfig
    from stacks.topology import Platform

REPAIR_KEY = "nodeRepair"
OBSERVABILITY_KEY = "observability"


def check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """Problems of ``nodeRepair`` and ``observability`` against the node groups.  Keys are relative to ``mleks:``."""
    errors: list[ConfigError] = []
    for name in cfg.node_repair.node_groups:
        if name in unchecked:
            continue
        if name not in cfg.node_groups:
            errors.append(
                ConfigError(
                    f"{REPAIR_KEY}.nodeGroups.{name}", name, f"the name of a node group under nodeGroups: {sorted(cfg.node_groups)}", "no such node group"
                )
            )
            continue
        try:
            cfg.node_repair.for_group(name)
        except ConfigErrors as err:  # the group's keys and the stack's contradict each other
            errors += [e.under(f"{REPAIR_KEY}.nodeGroups.{name}") for e in err.errors]
    for name, group in cfg.node_groups.items():
        if "auto_repair" in group.model_fields_set:
            # One place for stack users, so a group's repair settings are never split between two keys.
            errors.append(
                ConfigError(
                    f"nodeGroups.{name}.autoRepair",
                    group.auto_repair.model_dump(by_alias=True, exclude_defaults=True),
                    f"the same settings under {REPAIR_KEY}.nodeGroups.{name}",
                    "in a stack, node auto-repair is set under mleks:nodeRepair",
                )
            )
    if cfg.observability.custom_metrics == "none":
        for name, svc in cfg.inference_services.items():
            metric = svc.autoscaling.pods_metric
            if metric is not None:
                errors.append(
                    ConfigError(
                        f"inferenceServices.{name}.autoscaling.podsMetric",
                        metric.model_dump(by_alias=True),
                        f"a CPU target only, or an adapter you run that serves custom.metrics.k8s.io ({OBSERVABILITY_KEY}.customMetrics: provided)",
                        "nothing in the cluster serves the custom metrics API, so the HPA would never get a reading and never scale",
                    )
                )
    bottlerocket = sorted(k for k, g in cfg.node_groups.items() if g.ami_family == "bottlerocket")
    errors += bottlerocket_problems(cfg.observability.mode, bottlerocket, OBSERVABILITY_KEY)
    return errors


def build(cfg: StackConfig, platform: Platform) -> None:
    mode = cfg.observability.mode
    for name, cluster in platform.clusters.items():
        groups = platform.groups_in(cluster)
        if not groups or mode == "none":
            continue
        child = pulumi.ResourceOptions(parent=cluster)
        if mode == "cloudwatch":
            CloudWatchObservability(f"{name}-cloudwatch", cluster=cluster, addon_version=cfg.observability.cloudwatch_addon_version, opts=child)
            continue
        DcgmExporter(f"{name}-dcgm", cluster=cluster, scrape=cfg.observability.scrape, opts=child)
        skipped = sorted(g.args.key for g in groups if g.args.ami_family == "bottlerocket")
        if skipped:
            pulumi.log.warn(
                f"mleks:{OBSERVABILITY_KEY} = 'prometheus': no DCGM exporter on the Bottlerocket groups {skipped} of {name}"
                " (only AL2023 GPU nodes run it); their GPU health still reaches the node monitoring agent and auto-repair",
                resource=cluster,
            )
        if "serviceMonitor" in cfg.observability.scrape:
            owners = {g.args.owner for g in groups}
            targets = []
            if "escalator" in owners:
                targets.append((escalator_addon.NAME, CONTROLLERS_NAMESPACE, escalator_addon.SELECTOR, "metrics"))
            if "cluster-autoscaler" in owners:
                targets.append((cluster_autoscaler_addon.NAME, CONTROLLERS_NAMESPACE, cluster_autoscaler_addon.SELECTOR, "http"))
            if targets:
                ServiceMonitors(f"{name}-monitors", cluster=cluster, targets=targets, opts=child)
