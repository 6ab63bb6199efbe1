"""Kueue's admission, read from the render: do the team queues resolve, and can what they promise exist?

Semantics from kubernetes-sigs/kueue v0.19.2 (site docs "Cluster Queue", "Local Queue", "Resource
Flavor", "Run a Job"; apis/kueue/v1beta2):

* a Job joins a queue by the label ``kueue.x-k8s.io/queue-name``, naming a LocalQueue **in the Job's
  namespace**; that LocalQueue names a ClusterQueue (``spec.clusterQueue``), whose
  ``namespaceSelector`` must select the namespace, or the workload is never admitted;
* a ClusterQueue's flavors must exist as ResourceFlavors, and a flavor's ``nodeLabels`` must match real
  nodes, or an admitted job's pods stay Pending;
* a workload is admitted only if its pods' requests, in every resource it asks for, fit the quota
  (nominal plus what may be borrowed) of one flavor: a resource the queue does not cover is never
  admitted;
* a queued Job should be created suspended (the webhook would suspend it anyway; a Job created running
  could start pods before admission).

Promise vs capacity: the nominal quotas of all ClusterQueues on one flavor must fit in the GPUs its node
group can ever have (``scalingConfig.maxSize`` x the smallest instance type's GPUs), or a guaranteed
quota is a promise no node can keep.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.cluster import quantities
from tests.cluster.instance_types import INSTANCE_TYPES
from tests.cluster.render_output import Cluster, NodeGroup, Obj, Render, describe
from tests.cluster.scheduling import pod_requests

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GPU = "nvidia.com/gpu"


def _flavor_groups(cluster: Cluster, flavor: Obj) -> list[NodeGroup]:
    labels = (flavor.get("spec") or {}).get("nodeLabels") or {}
    return [g for g in cluster.node_groups if all(g.labels.get(k) == v for k, v in labels.items())]


def _selects(selector: Obj, namespace: str) -> bool:
    """A namespaceSelector against a namespace carrying only its automatic name label (enough for ours)."""
    labels = {"kubernetes.io/metadata.name": namespace}
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        value = labels.get(e["key"])
        if e["operator"] == "In" and value not in e.get("values", []):
            return False
        if e["operator"] == "NotIn" and value in e.get("values", []):
            return False
    return True


def _quota(value: Any, resource: str) -> Decimal:
    if resource == "cpu":
        return Decimal(quantities.millicores(value))
    if resource == "memory":
        return quantities.mebibytes(value)
    return Decimal(quantities.whole(value))


def cluster_problems(cluster: Cluster) -> list[str]:
    problems: list[str] = []
    flavors = {f["metadata"]["name"]: f for f in cluster.kind("ResourceFlavor")}
    queues = {q["metadata"]["name"]: q for q in cluster.kind("ClusterQueue")}
    locals_ = {(q["metadata"].get("namespace"), q["metadata"]["name"]): q for q in cluster.kind("LocalQueue")}

    for name, flavor in flavors.items():
        if not _flavor_groups(cluster, flavor):
            problems.append(f"{cluster.name}: ResourceFlavor {name}: no node group carries its nodeLabels {flavor['spec'].get('nodeLabels')}")

    nominal: dict[str, int] = {}
    for name, queue in queues.items():
        for rg in queue["spec"].get("resourceGroups") or []:
            covered = list(rg.get("coveredResources") or [])
            for f in rg.get("flavors") or []:
                if f["name"] not in flavors:
                    problems.append(f"{cluster.name}: ClusterQueue {name}: flavor {f['name']} is not a ResourceFlavor")
                if [r["name"] for r in f.get("resources") or []] != covered:
                    problems.append(f"{cluster.name}: ClusterQueue {name}: flavor {f['name']} lists its resources unlike coveredResources {covered}")
                gpu = next((r for r in f.get("resources") or [] if r["name"] == GPU), None)
                if gpu is not None:
                    nominal[f["name"]] = nominal.get(f["name"], 0) + int(gpu["nominalQuota"])

    for flavor_name, gpus in nominal.items():
        for group in _flavor_groups(cluster, flavors.get(flavor_name, {"spec": {}})):
            known = [INSTANCE_TYPES[t] for t in group.instance_types if t in INSTANCE_TYPES]
            if not known:
                continue
            most = int((group.inputs.get("scalingConfig") or {}).get("maxSize", 0)) * min(t.gpus for t in known)
            if gpus > most:
                problems.append(
                    f"{cluster.name}: the teams' nominal quotas on flavor {flavor_name} add up to {gpus} GPUs,"
                    f" more than node group {group.name} can have ({most})"
                )

    for (namespace, name), local in locals_.items():
        target = (local.get("spec") or {}).get("clusterQueue")
        if target not in queues:
            problems.append(f"{cluster.name}: LocalQueue {namespace}/{name}: ClusterQueue {target} does not exist")
        elif not _selects(queues[target]["spec"].get("namespaceSelector") or {}, str(namespace)):
            problems.append(f"{cluster.name}: LocalQueue {namespace}/{name}: ClusterQueue {target}'s namespaceSelector does not select {namespace}")

    for job in cluster.kind("Job"):
        queue_name = ((job.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)
        if queue_name is None:
            continue
        namespace = job["metadata"].get("namespace") or "default"
        local = locals_.get((namespace, queue_name))
        if local is None:
            problems.append(f"{cluster.name}: {describe(job)}: no LocalQueue {queue_name} in its namespace, so it is never admitted")
            continue
        if job["spec"].get("suspend") is not True:
            problems.append(f"{cluster.name}: {describe(job)}: queued but not created suspended")
        queue = queues.get(local["spec"]["clusterQueue"])
        if queue is None:
            continue
        problems += _admission_problems(cluster, job, queue, flavors)
    return problems


def _admission_problems(cluster: Cluster, job: Obj, queue: Obj, flavors: dict[str, Obj]) -> list[str]:
    """Whether one flavor of the queue can hold every pod of the job at once (quota + borrowing limit)."""
    pod = job["spec"]["template"]["spec"]
    pods = int(job["spec"].get("parallelism") or 1)
    one = pod_requests(pod)
    asked: dict[str, Decimal] = {"cpu": Decimal(one.cpu_millis * pods), "memory": one.memory_mib * pods}
    asked.update({k: Decimal(v * pods) for k, v in one.extended.items()})
    selector = pod.get("nodeSelector") or {}
    reasons = []
    for rg in queue["spec"].get("resourceGroups") or []:
        for f in rg.get("flavors") or []:
            labels = (flavors.get(f["name"], {}).get("spec") or {}).get("nodeLabels") or {}
            if any(labels.get(k, v) != v for k, v in selector.items()):
                continue  # the job's node selector excludes this flavor
            limits = {r["name"]: r for r in f.get("resources") or []}
            missing = [r for r in asked if asked[r] and r not in limits]
            if missing:
                reasons.append(f"flavor {f['name']} does not cover {missing}")
                continue
            over = [
                f"{r} {asked[r]} > {_quota(limits[r]['nominalQuota'], r) + _quota(limits[r].get('borrowingLimit', 0), r)}"
                for r in asked
                if asked[r] > _quota(limits[r]["nominalQuota"], r) + _quota(limits[r].get("borrowingLimit", 0), r)
            ]
            if not over:
                return []
            reasons.append(f"flavor {f['name']}: {', '.join(over)}")
    why = "; ".join(reasons) or "no flavor its nodeSelector allows"
    return [f"{cluster.name}: {describe(job)}: its queue {queue['metadata']['name']} can never admit it ({why})"]


def kueue_problems(render: Render) -> list[str]:
    return [p for cluster in render.clusters.values() for p in cluster_problems(cluster)]
