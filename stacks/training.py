"""Training jobs from stack config (``mleks:trainingJobs``): checks and wiring.

Users add jobs in the stack YAML, no code: a list of jobs, or a dict of jobs
by name (see ``docs/training.md``).  :func:`check` runs inside
``StackConfig`` validation, so a job that cannot run (no train group, more
pods than the group has nodes, more GPUs than a node has, an image the
resolver refuses) fails before any resource is registered.  :func:`build`
puts each job on the cluster that holds the train group, creates the jobs'
namespaces there, and exports the resolved image of every job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from mleks.dlc_training_job import (
    DLCTrainingJob,
    DLCTrainingJobArgs,
    plan_job,
)
from mleks.errors import ConfigError
from stacks import topology

if TYPE_CHECKING:
    from stacks.config import StackConfig
    from stacks.topology import Platform

KEY = "trainingJobs"


def jobs(cfg: StackConfig) -> list[tuple[str, DLCTrainingJobArgs]]:
    """Each job with its config key, e.g. ``("trainingJobs.smoke", args)``, in either spelling of the section."""
    return [(f"{KEY}.{name}", args) for name, args in cfg.training_jobs.items()]


def check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """The whole-config checks of every job, as errors (empty when all is well).

    Jobs on a node group that did not parse (``unchecked``) are skipped: that group's error is the one to fix.
    """
    errors: list[ConfigError] = []
    has_train = any(g.role == "train" for g in cfg.node_groups.values())
    for key, args in jobs(cfg):
        found = topology.resolve_group(cfg, "train", args.node_group, key, unchecked)
        if isinstance(found, ConfigError):
            errors.append(found)
            continue
        if found is None:
            if not has_train and not unchecked:
                errors.append(ConfigError(key, args.name, "a stack with a train node group, or no training jobs", "this stack has no train node group"))
            continue
        try:
            plan_job(args, found[1], cfg.region, topology.gpu_node_load(cfg, found[1]))
        except ConfigError as err:
            errors.append(err.under(key))
    return errors


def build(cfg: StackConfig, platform: Platform) -> dict[str, DLCTrainingJob]:
    """Register every job on the train group's cluster; export ``trainingJobs``."""
    built: dict[str, DLCTrainingJob] = {}
    cluster = platform.cluster_for("train")
    exported: dict[str, Any] = {}
    if cluster is not None:
        for key, args in jobs(cfg):
            found = topology.resolve_group(cfg, "train", args.node_group, key)
            assert isinstance(found, tuple)  # guaranteed by check()
            group_key, group = found
            job = DLCTrainingJob(
                f"{cluster.name}-{args.name}",
                args,
                cluster=cluster,
                node_group=group,
                region=cfg.region,
                depends_on=platform.namespace(cluster, args.namespace),
                config_key=f"mleks:{KEY}.{args.name}",
                opts=pulumi.ResourceOptions(parent=cluster),
            )
            built[args.name] = job
            plan = job.plan
            exported[args.name] = {
                "cluster": cluster.name,
                "nodeGroup": group_key,
                "namespace": plan.namespace,
                "image": plan.image.uri,
                "nodes": plan.args.nodes,
                "gpusPerNode": plan.gpus,
                "requests": {"cpu": plan.cpu, "memory": plan.memory},
                "efaPerPod": plan.efa_devices,
                "masterAddr": plan.master_addr,
                "warnings": [str(w) for w in plan.warnings],
            }
    pulumi.export("trainingJobs", exported)
    return built
