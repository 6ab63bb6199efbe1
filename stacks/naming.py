"""Names across sections: no two components of the stack create one Kubernetes object.

Each workload's objects come from its component's own ``object_names`` (the names its
renderer uses), placed in the cluster the topology gives its role; datasets add a volume
and a claim per namespace that mounts them.  :func:`mleks.vocabulary.collisions` finds
what two of them share, and the error names both keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mleks import dataset, dlc_training_job, inference_service, jupyter_notebook
from mleks.errors import ConfigError
from mleks.vocabulary import NamedObjects, collisions
from stacks import datasets, topology

if TYPE_CHECKING:
    from stacks.config import StackConfig


def owners(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[NamedObjects]:
    """Every workload and dataset of the stack with the objects it creates and its cluster (keys relative to ``mleks:``)."""
    clusters = topology.cluster_names(cfg)
    train, serve = clusters.get("train"), clusters.get("inference")
    out: list[NamedObjects] = []
    if serve is not None:
        out += [NamedObjects(f"inferenceServices.{k}", serve, inference_service.object_names(s)) for k, s in cfg.inference_services.items()]
    if train is not None:
        out += [NamedObjects(f"trainingJobs.{k}", train, dlc_training_job.object_names(j)) for k, j in cfg.training_jobs.items()]
        out += [NamedObjects(f"notebooks.{k}", train, jupyter_notebook.object_names(n)) for k, n in cfg.notebooks.items()]
        uses = datasets.uses(cfg, unchecked)
        for name in cfg.datasets:
            for namespace in sorted({u.namespace for u in uses if u.dataset == name}):
                out.append(NamedObjects(f"datasets.{name}", train, dataset.object_names(name, cluster=train, namespace=namespace)))
    return out


def check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    return collisions(owners(cfg, unchecked))
