"""The namespaces the workloads live in, each created once per cluster.

Training jobs, inference services and notebooks may share a namespace (in
``unified`` they share one cluster), so namespaces are planned across all of
them: one Namespace object per (cluster, name), with the Pod Security level
every workload in it can run under.  Namespaces that every cluster already
has are never created, so the stack can never delete them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mleks.manifests import k8s_objects
from mleks.manifests.workloads import namespace_object, runs_as_non_root
from mleks.vocabulary import Role

if TYPE_CHECKING:
    from stacks.config import StackConfig
    from stacks.topology import Platform

PREEXISTING = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
"""Namespaces every cluster has; workloads may use them, the stack never owns them."""


@dataclass
class NamespaceNeeds:
    """What the workloads of one namespace in one cluster need from it."""

    non_root: list[bool] = field(default_factory=list)
    readiness_gates: bool = False

    def render(self, name: str) -> dict[str, Any]:
        return namespace_object(name, restricted=all(self.non_root), readiness_gates=self.readiness_gates)


def plan(cfg: StackConfig) -> dict[tuple[str, str], NamespaceNeeds]:
    """(cluster name, namespace) -> what goes into it, for every namespace the stack owns."""
    from stacks import topology

    cluster_of = topology.cluster_names(cfg)
    needs: dict[tuple[str, str], NamespaceNeeds] = {}

    def add(role: Role, namespace: str) -> NamespaceNeeds | None:
        cluster = cluster_of.get(role)
        if cluster is None or namespace in PREEXISTING:
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


def build(cfg: StackConfig, platform: Platform) -> None:
    """Register each planned namespace once, into ``platform.namespaces``."""
    for (cluster_name, namespace), entry in sorted(plan(cfg).items()):
        cluster = platform.clusters[cluster_name]
        # Retained on delete: users keep their own objects there (data claims,
        # secrets), which deleting the namespace would destroy with it.
        opts = cluster.k8s_opts(cluster, retain_on_delete=True)
        created = k8s_objects.create(entry.render(namespace), opts, name_prefix=cluster_name)
        platform.namespaces[(cluster_name, namespace)] = created
        # Workloads ask their cluster for their namespace: this is it.
        cluster.adopt_namespace(namespace, created)
