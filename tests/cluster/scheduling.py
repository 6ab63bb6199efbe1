"""The scheduler and the autoscalers: does every pod fit a node of the group it is meant for?

For each node group and each of its instance types we build the node the
kubelet would register: its labels (the group's, plus the well-known ones the
kubelet and EKS set: ``kubernetes.io/os``, ``kubernetes.io/arch``,
``node.kubernetes.io/instance-type``, ``eks.amazonaws.com/nodegroup``,
``eks.amazonaws.com/capacityType``), its taints, its allocatable
(:mod:`.instance_types`) and its extended resources (``nvidia.com/gpu`` when an
NVIDIA device plugin runs there or the Bottlerocket NVIDIA AMI ships one;
``vpc.amazonaws.com/efa`` when the EFA device plugin runs there, as many as
the launch template has EFA interfaces).  Then every DaemonSet pod that lands
there is subtracted: the rendered DaemonSets and those of the EKS add-ons
(:mod:`.daemonsets`), each evaluated with its nodeSelector, required affinity
and tolerations against the node.

A pod's request is what the scheduler counts (kubernetes.io "Resource
Management for Pods and Containers", "Sidecar Containers"): the larger of the
sum over app containers and restartable init containers (sidecars), and each
plain init container plus the sidecars started before it.  A resource with
limits and no requests requests its limits (API defaulting).

Every workload pod must fit (CPU, memory, GPUs, EFA) every instance type of
every group it can land on, land on at least one group, not land on a group
of the other kind (GPU pods on GPU nodes only, the rest off GPU nodes), and a
group at zero nodes must be scaled up for it by its autoscaler: Escalator
selects pods by its node group's ``label_key``/``label_value`` in their
nodeSelector or required affinity (atlassian/escalator v1.16.2
``pkg/k8s/util.go`` ``NewPodAffinityFilterFunc``, see
/work/shared/reference/escalator.md); cluster-autoscaler builds a node from
the ASG's ``k8s.io/cluster-autoscaler/node-template/{label,taint,resources}/...``
tags (kubernetes/autoscaler ``cluster-autoscaler/cloudprovider/aws/README.md``
"Scaling a node group to 0").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from tests.cluster import daemonsets, quantities
from tests.cluster.instance_types import INSTANCE_TYPES, InstanceType, allocatable_cpu_millis, allocatable_memory_mib
from tests.cluster.render_output import Cluster, NodeGroup, Obj, PodTemplate, Render
from tests.cluster.selectors import node_selector_terms, pod_matches_node_labels, untolerated_taints

GPU = "nvidia.com/gpu"
EFA = "vpc.amazonaws.com/efa"
CA_TEMPLATE = "k8s.io/cluster-autoscaler/node-template/"


@dataclass
class Requests:
    """What one pod asks the scheduler for."""

    cpu_millis: int = 0
    memory_mib: Decimal = Decimal(0)
    extended: dict[str, int] = field(default_factory=dict)

    def add(self, other: Requests) -> Requests:
        ext = dict(self.extended)
        for k, v in other.extended.items():
            ext[k] = ext.get(k, 0) + v
        return Requests(self.cpu_millis + other.cpu_millis, self.memory_mib + other.memory_mib, ext)

    def max(self, other: Requests) -> Requests:
        keys = set(self.extended) | set(other.extended)
        ext = {k: max(self.extended.get(k, 0), other.extended.get(k, 0)) for k in keys}
        return Requests(max(self.cpu_millis, other.cpu_millis), max(self.memory_mib, other.memory_mib), ext)


def container_requests(container: Obj) -> Requests:
    """One container's requests; limits stand in for missing requests."""
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {}) | dict(resources.get("requests") or {})
    out = Requests()
    for name, qty in merged.items():
        if name == "cpu":
            out.cpu_millis = quantities.millicores(qty)
        elif name == "memory":
            out.memory_mib = quantities.mebibytes(qty)
        elif name not in ("ephemeral-storage",) and not name.startswith("hugepages-"):
            out.extended[name] = quantities.whole(qty)
    return out


def pod_requests(spec: Obj) -> Requests:
    """The scheduler's view of a pod's requests (app containers, sidecars, init containers)."""
    total = Requests()
    for c in spec.get("containers") or []:
        total = total.add(container_requests(c))
    sidecars = Requests()
    init_peak = Requests()
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") == "Always":
            sidecars = sidecars.add(container_requests(c))
        else:
            init_peak = init_peak.max(sidecars.add(container_requests(c)))
    return total.add(sidecars).max(init_peak)


# --- nodes --------------------------------------------------------------------------------


@dataclass
class Node:
    """The node one instance type of one group registers, and what its DaemonSets take."""

    cluster: str
    group: NodeGroup
    instance: InstanceType
    labels: dict[str, str]
    taints: list[Obj]
    extended: dict[str, int] = field(default_factory=dict)
    daemonsets: list[tuple[str, Requests]] = field(default_factory=list)

    @property
    def allocatable_cpu(self) -> int:
        return allocatable_cpu_millis(self.instance)

    @property
    def allocatable_memory(self) -> int:
        return allocatable_memory_mib(self.instance)

    @property
    def daemonset_cpu(self) -> int:
        return sum(r.cpu_millis for _, r in self.daemonsets)

    @property
    def daemonset_memory(self) -> Decimal:
        return sum((r.memory_mib for _, r in self.daemonsets), Decimal(0))

    @property
    def left_cpu(self) -> int:
        return self.allocatable_cpu - self.daemonset_cpu

    @property
    def left_memory(self) -> Decimal:
        return Decimal(self.allocatable_memory) - self.daemonset_memory

    @property
    def is_gpu(self) -> bool:
        return self.instance.gpus > 0

    @property
    def label(self) -> str:
        return f"{self.cluster}: node group {self.group.name} ({self.instance.name})"


def _arch(group: NodeGroup) -> str:
    return "arm64" if "ARM" in group.ami_type.upper() else "amd64"


def _efa_interfaces(group: NodeGroup) -> int:
    interfaces = (group.launch_template or {}).get("networkInterfaces") or []
    return sum(1 for n in interfaces if n.get("interfaceType") in ("efa", "efa-only"))


def _lands(spec: Obj, node: Node) -> bool:
    return pod_matches_node_labels(spec, node.labels) and not untolerated_taints(spec, node.taints)


def _images(spec: Obj) -> list[str]:
    return [str(c.get("image") or "") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]


def build_nodes(cluster: Cluster) -> tuple[list[Node], list[str]]:
    """Every (group, instance type) node of the cluster, with its DaemonSets; and the types the oracle does not know."""
    nodes, unknown = [], []
    rendered_ds = [(f"{p.namespace}/{p.owner['metadata']['name']}", p.spec) for p in cluster.pod_templates() if p.owner.get("kind") == "DaemonSet"]
    addon_ds = [(ds.name, spec) for ds, spec in daemonsets.installed(cluster.addons)]
    for group in cluster.node_groups:
        for type_name in group.instance_types:
            instance = INSTANCE_TYPES.get(type_name)
            if instance is None:
                unknown.append(
                    f"{cluster.name}: node group {group.name}: instance type {type_name} is not in the oracle's table (tests/cluster/instance_types.py)"
                )
                continue
            labels = dict(group.labels) | {
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": _arch(group),
                "node.kubernetes.io/instance-type": type_name,
                "eks.amazonaws.com/nodegroup": group.name,
                "eks.amazonaws.com/capacityType": str(group.inputs.get("capacityType") or "ON_DEMAND"),
            }
            node = Node(cluster.name, group, instance, labels, group.taints)
            for name, spec in rendered_ds + addon_ds:
                if _lands(spec, node):
                    node.daemonsets.append((name, pod_requests(spec)))
            # Extended resources exist only where a device plugin advertises them: a rendered NVIDIA or EFA
            # device plugin DaemonSet, or the Bottlerocket NVIDIA variants, which run the NVIDIA device plugin
            # themselves (bottlerocket-os/bottlerocket README, "aws-k8s-*-nvidia" variants; settings.kubelet-device-plugins).
            images = [img for name, spec in rendered_ds if _lands(spec, node) for img in _images(spec)]
            nvidia_plugin = any("k8s-device-plugin" in img for img in images) or ("BOTTLEROCKET" in group.ami_type and "NVIDIA" in group.ami_type)
            if instance.gpus and nvidia_plugin:
                node.extended[GPU] = instance.gpus
            if any("aws-efa-k8s-device-plugin" in img for img in images):
                node.extended[EFA] = min(_efa_interfaces(group), instance.efa)
            nodes.append(node)
    return nodes, unknown


# --- fitting ------------------------------------------------------------------------------


def fit_problems(requests: Requests, node: Node) -> list[str]:
    """Why a pod with these requests does not fit the node after its DaemonSets (empty when it fits)."""
    out = []
    if requests.cpu_millis > node.left_cpu:
        out.append(f"cpu {requests.cpu_millis}m > {node.left_cpu}m left ({node.allocatable_cpu}m allocatable - {node.daemonset_cpu}m DaemonSets)")
    if requests.memory_mib > node.left_memory:
        out.append(
            f"memory {requests.memory_mib:.0f}Mi > {node.left_memory:.0f}Mi left "
            f"({node.allocatable_memory}Mi allocatable - {node.daemonset_memory:.0f}Mi DaemonSets)"
        )
    for name, count in requests.extended.items():
        if count > node.extended.get(name, 0):
            out.append(f"{name} {count} > {node.extended.get(name, 0)} on the node")
    return out


def _escalator_groups(cluster: Cluster) -> list[Obj]:
    """Escalator's node groups, from any ConfigMap holding a ``node_groups`` YAML list."""
    out = []
    for cm in cluster.kind("ConfigMap"):
        for text in (cm.get("data") or {}).values():
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("node_groups"), list):
                out += [g for g in doc["node_groups"] if isinstance(g, dict) and g.get("label_key")]
    return out


def _cluster_autoscaler_asgs(cluster: Cluster) -> set[str]:
    """ASG names given to cluster-autoscaler with ``--nodes=min:max:name``."""
    names = set()
    for pod in cluster.pod_templates():
        for c in pod.containers(init=False):
            for arg in list(c.get("command") or []) + list(c.get("args") or []):
                if isinstance(arg, str) and arg.startswith("--nodes="):
                    names.add(arg.split(":", 2)[-1])
    return names


def _escalator_selects(pod: PodTemplate, key: str, value: str) -> bool:
    """NewPodAffinityFilterFunc: the pod's nodeSelector, or a required affinity In expression, names the group's label."""
    if str((pod.spec.get("nodeSelector") or {}).get(key)) == value:
        return True
    for term in node_selector_terms(pod.spec):
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == key and expr.get("operator") == "In" and value in [str(v) for v in expr.get("values") or []]:
                return True
    return False


def _ca_template(group: NodeGroup, instance: InstanceType) -> tuple[dict[str, str], list[Obj], dict[str, int]]:
    """The node cluster-autoscaler imagines for an empty ASG: tag labels, taints and resources, plus what it knows of the type."""
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": instance.arch, "node.kubernetes.io/instance-type": instance.name}
    taints, resources = [], {}
    for tag in group.asg_tags:
        key, value = str((tag.get("tag") or {}).get("key") or ""), str((tag.get("tag") or {}).get("value") or "")
        if not key.startswith(CA_TEMPLATE):
            continue
        kind, _, name = key[len(CA_TEMPLATE) :].partition("/")
        if kind == "label":
            labels[name] = value
        elif kind == "taint":
            taint_value, _, effect = value.rpartition(":")
            taints.append({"key": name, "value": taint_value, "effect": effect})
        elif kind == "resources":
            resources[name] = quantities.whole(value)
    return labels, taints, resources


def _autoscaler_problems(cluster: Cluster, pod: PodTemplate, requests: Requests, groups: list[NodeGroup]) -> list[str]:
    """Groups at zero that the pod may need must be scaled from zero for it by their autoscaler."""
    out = []
    escalator = _escalator_groups(cluster)
    ca_asgs = _cluster_autoscaler_asgs(cluster)
    for group in groups:
        if group.min_size > 0:
            continue
        owners = [g for g in escalator if group.labels.get(str(g["label_key"])) == str(g.get("label_value"))]
        where = f"{cluster.name}: {pod.label}: node group {group.name} (min 0)"
        if owners:
            if not any(_escalator_selects(pod, str(g["label_key"]), str(g.get("label_value"))) for g in owners):
                keys = [f"{g['label_key']}={g.get('label_value')}" for g in owners]
                out.append(f"{where}: Escalator counts only pods that select {keys}; this one does not, so nothing scales the group up for it")
            continue
        if group.asg_name and group.asg_name in ca_asgs:
            for type_name in group.instance_types:
                instance = INSTANCE_TYPES.get(type_name)
                if instance is None:
                    continue
                labels, taints, resources = _ca_template(group, instance)
                reasons = []
                if not pod_matches_node_labels(pod.spec, labels):
                    reasons.append(f"its selectors do not match the node-template labels {labels}")
                if untolerated_taints(pod.spec, taints):
                    reasons.append(f"it does not tolerate the node-template taints {untolerated_taints(pod.spec, taints)}")
                for name, count in requests.extended.items():
                    if name in resources and count > resources[name]:
                        reasons.append(f"{name} {count} > {resources[name]} in the node-template resources tag")
                if reasons:
                    out.append(f"{where}: cluster-autoscaler would not scale up {type_name} for it: " + "; ".join(reasons))
            continue
        out.append(f"{where}: neither Escalator nor cluster-autoscaler owns the group, so nothing scales it from zero")
    return out


def workload_problems(cluster: Cluster, nodes: list[Node]) -> list[str]:
    """Every non-DaemonSet pod: lands somewhere, of its kind only, fits every type there, and is scaled for."""
    out = []
    for pod in cluster.pod_templates():
        if pod.owner.get("kind") == "DaemonSet":
            continue
        requests = pod_requests(pod.spec)
        landing = [n for n in nodes if _lands(pod.spec, n)]
        where = f"{cluster.name}: {pod.label}"
        if not landing:
            out.append(f"{where}: no node group matches its nodeSelector/affinity and tolerates its taints: the pod stays Pending")
            continue
        wants_gpu = requests.extended.get(GPU, 0) > 0
        wrong_kind = [n for n in landing if n.is_gpu != wants_gpu]
        for node in wrong_kind:
            kind = "a GPU pod may land on non-GPU" if wants_gpu else "a pod without GPUs may land on GPU"
            out.append(f"{where}: {kind} node group {node.group.name} ({node.instance.name})")
        for node in landing:
            if node in wrong_kind:
                continue
            reasons = fit_problems(requests, node)
            if reasons:
                out.append(f"{where}: does not fit {node.label}: " + "; ".join(reasons))
        groups = list({id(n.group): n.group for n in landing if n not in wrong_kind}.values())
        out += _autoscaler_problems(cluster, pod, requests, groups)
    return out


def daemonset_problems(nodes: list[Node]) -> list[str]:
    """A node whose DaemonSets alone ask more than it has can run nothing else."""
    return [f"{n.label}: DaemonSets ask {n.daemonset_cpu}m of {n.allocatable_cpu}m CPU" for n in nodes if n.left_cpu < 0] + [
        f"{n.label}: DaemonSets ask {n.daemonset_memory:.0f}Mi of {n.allocatable_memory}Mi memory" for n in nodes if n.left_memory < 0
    ]


def scheduling_problems(render: Render) -> list[str]:
    """Every scheduling and autoscaling problem of every cluster in the render."""
    out = []
    for cluster in render.clusters.values():
        nodes, unknown = build_nodes(cluster)
        out += unknown + daemonset_problems(nodes) + workload_problems(cluster, nodes)
    return out


# --- the capacity table -------------------------------------------------------------------


def capacity_table(render: Render) -> list[dict[str, Any]]:
    """Per cluster, group and instance type: allocatable, what DaemonSets take, what is left, and who takes it.

    "Left" is the largest whole-node request that fits: a pod asking at most
    that much CPU and memory (and the node's GPUs) is scheduled.
    """
    rows = []
    for cluster in render.clusters.values():
        nodes, _ = build_nodes(cluster)
        workloads = [(p, pod_requests(p.spec)) for p in cluster.pod_templates() if p.owner.get("kind") != "DaemonSet"]
        for n in nodes:
            landing = [(p, r) for p, r in workloads if _lands(p.spec, n) and (r.extended.get(GPU, 0) > 0) == n.is_gpu]
            biggest = max(landing, key=lambda pr: (pr[1].cpu_millis, pr[1].memory_mib), default=None)
            rows.append(
                {
                    "cluster": cluster.name,
                    "group": n.group.name,
                    "type": n.instance.name,
                    "maxPods": n.instance.max_pods,
                    "allocatable_cpu_m": n.allocatable_cpu,
                    "allocatable_memory_mib": n.allocatable_memory,
                    "daemonset_cpu_m": n.daemonset_cpu,
                    "daemonset_memory_mib": int(n.daemonset_memory),
                    "left_cpu_m": n.left_cpu,
                    "left_memory_mib": int(n.left_memory),
                    "extended": dict(n.extended),
                    "daemonsets": [f"{name} {r.cpu_millis}m/{r.memory_mib:.0f}Mi" for name, r in n.daemonsets],
                    "largest_pod": f"{biggest[0].label} {biggest[1].cpu_millis}m/{biggest[1].memory_mib:.0f}Mi" if biggest else "",
                }
            )
    return rows


def format_capacity_table(rows: list[dict[str, Any]]) -> str:
    """The table as aligned text, one line per (group, type)."""
    header = f"{'cluster/group':48} {'type':13} {'alloc cpu':>9} {'alloc MiB':>10} {'DS cpu':>7} {'DS MiB':>7} {'left cpu':>9} {'left MiB':>10}"
    header += "  largest pod landing there"
    lines = [header]
    for r in rows:
        lines.append(
            f"{r['cluster'] + '/' + r['group']:48} {r['type']:13} {r['allocatable_cpu_m']:>8}m {r['allocatable_memory_mib']:>10} "
            f"{r['daemonset_cpu_m']:>6}m {r['daemonset_memory_mib']:>7} {r['left_cpu_m']:>8}m {r['left_memory_mib']:>10}  {r['largest_pod']}"
        )
    return "\n".join(lines)
