"""The Kueue objects of team queues, and the Kueue chart's values (pure).

Each train group is a ``ResourceFlavor`` (its node labels, and the GPU taint's toleration); each team
is a ``ClusterQueue`` (nominal quota per flavor, a borrowing limit, preemption) in one cohort per
cluster, and a ``LocalQueue`` in the team's namespace that its Jobs name with the
``kueue.x-k8s.io/queue-name`` label.  Field names follow the v1beta2 CRDs of the pinned release
(:mod:`mleks.catalogs.kueue`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml

from mleks.catalogs import kueue as catalog
from mleks.catalogs.gpu import EFA_RESOURCE, NVIDIA_GPU_RESOURCE
from mleks.manifests.k8s_objects import KubeObject
from mleks.vocabulary import GPU_TOLERATION, ROLE_LABEL, SYSTEM_ROLE

Preemption = Literal["never", "reclaim"]


@dataclass(frozen=True)
class FlavorSpec:
    """One train group as Kueue sees it."""

    name: str
    node_labels: dict[str, str]
    efa: bool


@dataclass(frozen=True)
class QuotaSpec:
    """A team's quota on one flavor: GPUs, and the CPU, memory and EFA interfaces that come with them."""

    flavor: str
    gpus: int
    cpu_millis: int
    memory_mib: int
    efa: int
    borrow_gpus: int
    borrow_cpu_millis: int
    borrow_memory_mib: int
    borrow_efa: int


@dataclass(frozen=True)
class TeamSpec:
    name: str
    namespace: str
    cohort: str
    quotas: tuple[QuotaSpec, ...]
    preemption: Preemption


def resource_flavor(flavor: FlavorSpec) -> KubeObject:
    """Workloads admitted on this flavor get its node labels as nodeSelector and the GPU toleration."""
    return {
        "apiVersion": catalog.API_VERSION,
        "kind": "ResourceFlavor",
        "metadata": {"name": flavor.name},
        "spec": {"nodeLabels": dict(flavor.node_labels), "tolerations": [dict(GPU_TOLERATION)]},
    }


def covered_resources(flavors: tuple[FlavorSpec, ...]) -> list[str]:
    """What every flavor of a team's queue counts: CPU, memory and GPUs, and EFA interfaces when a group has them
    (a workload asking for a resource its ClusterQueue does not cover is never admitted)."""
    return ["cpu", "memory", NVIDIA_GPU_RESOURCE, *([EFA_RESOURCE] if any(f.efa for f in flavors) else [])]


def _resource(name: str, nominal: int | str, borrow: int | str) -> dict[str, Any]:
    return {"name": name, "nominalQuota": nominal, "borrowingLimit": borrow}


def cluster_queue(team: TeamSpec, flavors: tuple[FlavorSpec, ...]) -> KubeObject:
    """The team's quotas on every train flavor (zero where it has none, so it may still borrow there),
    for its own namespace only, in the cluster's cohort."""
    resources = covered_resources(flavors)
    by_flavor = {q.flavor: q for q in team.quotas}
    entries = []
    for flavor in flavors:
        q = by_flavor.get(flavor.name) or QuotaSpec(flavor.name, 0, 0, 0, 0, 0, 0, 0, 0)
        values = {
            "cpu": _resource("cpu", f"{q.cpu_millis}m", f"{q.borrow_cpu_millis}m"),
            "memory": _resource("memory", f"{q.memory_mib}Mi", f"{q.borrow_memory_mib}Mi"),
            NVIDIA_GPU_RESOURCE: _resource(NVIDIA_GPU_RESOURCE, q.gpus, q.borrow_gpus),
            EFA_RESOURCE: _resource(EFA_RESOURCE, q.efa, q.borrow_efa),
        }
        entries.append({"name": flavor.name, "resources": [values[r] for r in resources]})
    # Never: a running job is never stopped for another.  reclaim: the team takes back its own nominal
    # quota from borrowers in the cohort, and may stop its own lower-priority jobs; nothing more.
    preemption = (
        {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority", "borrowWithinCohort": {"policy": "Never"}}
        if team.preemption == "reclaim"
        else {"reclaimWithinCohort": "Never", "withinClusterQueue": "Never", "borrowWithinCohort": {"policy": "Never"}}
    )
    return {
        "apiVersion": catalog.API_VERSION,
        "kind": "ClusterQueue",
        "metadata": {"name": team.name},
        "spec": {
            "cohortName": team.cohort,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": team.namespace}},
            "queueingStrategy": "BestEffortFIFO",
            "preemption": preemption,
            "resourceGroups": [{"coveredResources": resources, "flavors": entries}],
        },
    }


def local_queue(team: TeamSpec) -> KubeObject:
    return {
        "apiVersion": catalog.API_VERSION,
        "kind": "LocalQueue",
        "metadata": {"name": team.name, "namespace": team.namespace},
        "spec": {"clusterQueue": team.name},
    }


@dataclass(frozen=True)
class AllOrNothing:
    """Kueue's waitForPodsReady: a job whose pods are not all ready in ``timeout_s`` is evicted and requeued."""

    timeout_s: int
    backoff_base_s: int
    backoff_max_s: int
    backoff_limit: int | None


def manager_configuration(all_or_nothing: AllOrNothing, namespaces: list[str]) -> dict[str, Any]:
    """The manager's Configuration: upstream's defaults for the ports and leader election, Jobs as the only
    integration (services and notebooks stay outside the queue), all-or-nothing starts, and the teams'
    ``namespaces`` as the only ones it manages.

    The last matters because Kueue's Job webhooks fail closed: with the manager down, every Job create in a
    namespace they cover fails.  The chart points them at ``managedJobsNamespaceSelector`` when it is set
    (charts/kueue/templates/webhook/manifests.yaml), so other namespaces never depend on Kueue."""
    requeuing: dict[str, Any] = {
        "timestamp": "Eviction",
        "backoffBaseSeconds": all_or_nothing.backoff_base_s,
        "backoffMaxSeconds": all_or_nothing.backoff_max_s,
    }
    if all_or_nothing.backoff_limit is not None:
        requeuing["backoffLimitCount"] = all_or_nothing.backoff_limit
    return {
        "apiVersion": catalog.CONFIG_API_VERSION,
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": ":8081"},
        "metrics": {"bindAddress": ":8443"},
        "webhook": {"port": 9443},
        "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
        "integrations": {"frameworks": ["batch/job"]},
        "manageJobsWithoutQueueName": False,
        "managedJobsNamespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(namespaces)}]},
        "waitForPodsReady": {
            "timeout": f"{all_or_nothing.timeout_s}s",
            # Other jobs are admitted while one waits for its pods: a slow scale-up blocks nobody else.
            "blockAdmission": False,
            "requeuingStrategy": requeuing,
            "recoveryTimeout": f"{all_or_nothing.timeout_s}s",
        },
    }


MANAGER_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}
"""The chart's default requests (values.yaml controllerManager.manager.resources), without its CPU limit:
throttling the admission webhook slows every Job creation."""


def helm_values(all_or_nothing: AllOrNothing, *, namespaces: list[str], prometheus: bool) -> dict[str, Any]:
    """The chart values: two replicas on the system nodes with a PodDisruptionBudget, the image pinned,
    the manager's Configuration, and a ServiceMonitor in Prometheus mode."""
    return {
        "enablePrometheus": prometheus,
        "enableCertManager": False,
        "controllerManager": {
            "replicas": 2,
            "nodeSelector": {ROLE_LABEL: SYSTEM_ROLE},
            "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"control-plane": "controller-manager"}},
                }
            ],
            "manager": {
                "image": {"repository": catalog.IMAGE_REPOSITORY, "tag": catalog.IMAGE_TAG, "pullPolicy": "IfNotPresent"},
                "resources": MANAGER_RESOURCES,
            },
        },
        "managerConfig": {"controllerManagerConfigYaml": yaml.safe_dump(manager_configuration(all_or_nothing, namespaces), sort_keys=False)},
    }
