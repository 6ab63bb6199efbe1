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

Karpenter NodePools (:class:`~.render_output.KarpenterPool`) get nodes the same
way, one per allowed instance type (the ``node.kubernetes.io/instance-type In``
requirement) and capacity type: the template labels, the requirements with a
single value, and the labels Karpenter and the kubelet set
(``karpenter.sh/nodepool``, ``karpenter.sh/capacity-type``,
``karpenter.k8s.aws/ec2nodeclass``, the instance type's
``karpenter.k8s.aws/instance-*`` labels, ``kubernetes.io/os``/``arch``,
``node.kubernetes.io/instance-type``), the template taints, and Karpenter's
allocatable (:func:`karpenter_allocatable_cpu_millis`,
:func:`karpenter_allocatable_memory_mib`).  A type Karpenter never launches
(another architecture than the pool allows, or more than the pool's limits)
gets no node.  A NodePool is always "at zero": Karpenter launches a node for a
pending pod when the pod tolerates the template taints, its nodeSelector and
one of its required affinity terms are compatible with the template
(:func:`~.selectors.compatible_problems`), and some allowed type takes its
requests after DaemonSets (:func:`karpenter_launch_problems`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from tests.cluster import daemonsets, quantities
from tests.cluster.instance_types import (
    EVICTION_HARD_MIB,
    INSTANCE_TYPES,
    VM_MEMORY_OVERHEAD,
    InstanceType,
    allocatable_cpu_millis,
    allocatable_memory_mib,
    kube_reserved_cpu_millis,
)
from tests.cluster.render_output import Cluster, KarpenterPool, NodeGroup, Obj, PodTemplate, Render
from tests.cluster.selectors import (
    KARPENTER_WELL_KNOWN_LABELS,
    Requirements,
    add_requirements,
    compatible_problems,
    intersects_problems,
    label_requirements,
    node_selector_terms,
    pod_matches_node_labels,
    pod_requirement_alternatives,
    requirements_of,
    untolerated_taints,
)

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
    """The node one instance type of one group (or NodePool) registers, and what its DaemonSets take."""

    cluster: str
    group: NodeGroup | KarpenterPool
    instance: InstanceType
    labels: dict[str, str]
    taints: list[Obj]
    extended: dict[str, int] = field(default_factory=dict)
    daemonsets: list[tuple[str, Requests]] = field(default_factory=list)

    @property
    def pool(self) -> KarpenterPool | None:
        """The NodePool that launches the node, ``None`` for a managed node group's."""
        return self.group if isinstance(self.group, KarpenterPool) else None

    @property
    def allocatable_cpu(self) -> int:
        return karpenter_allocatable_cpu_millis(self.instance, self.pool) if self.pool else allocatable_cpu_millis(self.instance)

    @property
    def allocatable_memory(self) -> int:
        return karpenter_allocatable_memory_mib(self.instance, self.pool) if self.pool else allocatable_memory_mib(self.instance)

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
    def owner(self) -> str:
        """``node group NAME`` or ``NodePool NAME``, for messages."""
        return f"NodePool {self.group.name}" if self.pool else f"node group {self.group.name}"

    @property
    def label(self) -> str:
        return f"{self.cluster}: {self.owner} ({self.instance.name})"


def _arch(group: NodeGroup) -> str:
    return "arm64" if "ARM" in group.ami_type.upper() else "amd64"


def _efa_interfaces(group: NodeGroup) -> int:
    interfaces = (group.launch_template or {}).get("networkInterfaces") or []
    return sum(1 for n in interfaces if n.get("interfaceType") in ("efa", "efa-only"))


def _lands(spec: Obj, node: Node) -> bool:
    return pod_matches_node_labels(spec, node.labels) and not untolerated_taints(spec, node.taints)


def _images(spec: Obj) -> list[str]:
    return [str(c.get("image") or "") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]


def _equip(node: Node, rendered_ds: list[tuple[str, Obj]], addon_ds: list[tuple[str, Obj]], bottlerocket_nvidia: bool, efa_interfaces: int) -> Node:
    """Subtract the DaemonSets that land on the node and add the extended resources its device plugins advertise."""
    for name, spec in rendered_ds + addon_ds:
        if _lands(spec, node):
            node.daemonsets.append((name, pod_requests(spec)))
    # Extended resources exist only where a device plugin advertises them: a rendered NVIDIA or EFA
    # device plugin DaemonSet, or the Bottlerocket NVIDIA variants, which run the NVIDIA device plugin
    # themselves (bottlerocket-os/bottlerocket README, "aws-k8s-*-nvidia" variants; settings.kubelet-device-plugins).
    images = [img for name, spec in rendered_ds if _lands(spec, node) for img in _images(spec)]
    nvidia_plugin = any("k8s-device-plugin" in img for img in images) or bottlerocket_nvidia
    if node.instance.gpus and nvidia_plugin:
        node.extended[GPU] = node.instance.gpus
    if any("aws-efa-k8s-device-plugin" in img for img in images):
        node.extended[EFA] = min(efa_interfaces, node.instance.efa)
    return node


def build_nodes(cluster: Cluster) -> tuple[list[Node], list[str]]:
    """Every (group, instance type) node of the cluster, with its DaemonSets; and the types the oracle does not know.

    NodePools add one node per (allowed instance type, capacity type) that Karpenter may launch.
    """
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
            bottlerocket_nvidia = "BOTTLEROCKET" in group.ami_type and "NVIDIA" in group.ami_type
            nodes.append(_equip(node, rendered_ds, addon_ds, bottlerocket_nvidia, _efa_interfaces(group)))
    for pool in cluster.node_pools:
        if not pool.instance_types:
            unknown.append(
                f"{cluster.name}: NodePool {pool.name} has no 'node.kubernetes.io/instance-type In' requirement: "
                "Karpenter may launch any type, and the oracle checks a pool only against the types it lists"
            )
        for type_name in pool.instance_types:
            instance = INSTANCE_TYPES.get(type_name)
            if instance is None:
                where = f"{cluster.name}: NodePool {pool.name}"
                unknown.append(f"{where}: instance type {type_name} is not in the oracle's table (tests/cluster/instance_types.py)")
                continue
            if karpenter_type_exclusions(pool, instance):
                continue  # Karpenter never launches it: reported by tests.cluster.karpenter
            for capacity_type in pool.capacity_types:
                node = Node(cluster.name, pool, instance, karpenter_node_labels(pool, instance, capacity_type), pool.taints)
                # Bottlerocket aliases resolve to the NVIDIA variant on NVIDIA instance types, which runs the device plugin.
                nodes.append(_equip(node, rendered_ds, addon_ds, pool.ami_family == "bottlerocket", karpenter_efa_interfaces(pool, instance)))
    return nodes, unknown


# --- Karpenter nodes ------------------------------------------------------------------------

# aws/karpenter-provider-aws v1.14.1 pkg/providers/instancetype/types.go: instanceTypeScheme
# (category and generation of a type name) and computeRequirements (the labels of a launched node).
_INSTANCE_TYPE_SCHEME = re.compile(r"(^[a-z]+)(\-[0-9]+tb)?([0-9]+).*\.")


def karpenter_node_labels(pool: KarpenterPool, instance: InstanceType, capacity_type: str) -> dict[str, str]:
    """The labels of a node Karpenter launches from the pool as that type and capacity type.

    The template labels, every requirement with a single ``In`` value (a NodeClaim's labels,
    core nodeclaimtemplate.go ``NewNodeClaimTemplate`` and ``resolveCustomLabelsFromRequirements``),
    ``karpenter.sh/nodepool``, ``karpenter.k8s.aws/ec2nodeclass``, ``karpenter.sh/registered`` and
    ``initialized``, and what the instance type sets (types.go ``computeRequirements``).
    """
    labels = dict(pool.labels)
    for key, r in requirements_of(pool.requirements).items():
        if r.operator == "In" and len(r.values) == 1:
            labels[key] = next(iter(r.values))
    labels |= {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": instance.arch,
        "node.kubernetes.io/instance-type": instance.name,
        "karpenter.sh/nodepool": pool.name,
        "karpenter.sh/capacity-type": capacity_type,
        "karpenter.sh/registered": "true",
        "karpenter.sh/initialized": "true",
        "karpenter.k8s.aws/instance-cpu": str(instance.vcpu),
        "karpenter.k8s.aws/instance-memory": str(instance.memory_mib),
        "karpenter.k8s.aws/instance-capability-flex": "false",
    }
    if pool.node_class_ref.get("name"):
        labels["karpenter.k8s.aws/ec2nodeclass"] = str(pool.node_class_ref["name"])
    family, _, size = instance.name.partition(".")
    labels |= {"karpenter.k8s.aws/instance-family": family, "karpenter.k8s.aws/instance-size": size}
    parts = _INSTANCE_TYPE_SCHEME.match(instance.name)
    if parts:
        labels |= {"karpenter.k8s.aws/instance-category": parts.group(1), "karpenter.k8s.aws/instance-generation": parts.group(3)}
    if instance.gpus:
        labels |= {"karpenter.k8s.aws/instance-gpu-count": str(instance.gpus), "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia"}
    return labels


def karpenter_max_pods(instance: InstanceType, pool: KarpenterPool) -> int:
    """types.go ``pods``: ``kubelet.maxPods``, else the ENI limit (no managed-node-group cap), less with ``podsPerCore`` (not on Bottlerocket)."""
    kubelet = pool.node_class.kubelet if pool.node_class else {}
    pods = int(kubelet["maxPods"]) if kubelet.get("maxPods") is not None else instance.eni_max_pods
    if int(kubelet.get("podsPerCore") or 0) > 0 and pool.ami_family != "bottlerocket":
        pods = min(pods, int(kubelet["podsPerCore"]) * instance.vcpu)
    return pods


def _reserved(kubelet: Obj, field_name: str, resource: str) -> Any:
    return (kubelet.get(field_name) or {}).get(resource)


def karpenter_allocatable_cpu_millis(instance: InstanceType, pool: KarpenterPool) -> int:
    """vCPU less kube-reserved (types.go ``kubeReservedResources``: the same ranges as nodeadm, or ``kubelet.kubeReserved.cpu``) and ``systemReserved.cpu``."""
    kubelet = pool.node_class.kubelet if pool.node_class else {}
    kube = _reserved(kubelet, "kubeReserved", "cpu")
    system = _reserved(kubelet, "systemReserved", "cpu")
    reserved = quantities.millicores(kube) if kube is not None else kube_reserved_cpu_millis(instance.vcpu)
    return instance.vcpu * 1000 - reserved - (quantities.millicores(system) if system is not None else 0)


def karpenter_allocatable_memory_mib(instance: InstanceType, pool: KarpenterPool) -> int:
    """Karpenter's allocatable memory of the type launched from the pool.

    types.go: ``memory`` (EC2 MiB, less 64 MiB on arm64, less ``ceil(7.5%)`` VM overhead) minus
    kube-reserved ``11 x pods + 255`` MiB, where pods is the ENI-limited count on AL2023 and the
    other families with ``UsesENILimitedMemoryOverhead`` and the node's maxPods on Bottlerocket
    (amifamily ``FeatureFlags``), or ``kubelet.kubeReserved.memory``; minus ``systemReserved.memory``
    and the ``evictionHard`` ``memory.available`` threshold (100Mi by default).  Without maxPods
    this differs from a managed group's node of the same type, whose maxPods EKS caps at 110/250.
    """
    kubelet = pool.node_class.kubelet if pool.node_class else {}
    capacity = instance.memory_mib - (64 if instance.arch == "arm64" else 0)
    capacity -= math.ceil(capacity * VM_MEMORY_OVERHEAD)
    pods = karpenter_max_pods(instance, pool) if pool.ami_family == "bottlerocket" else instance.eni_max_pods
    kube = _reserved(kubelet, "kubeReserved", "memory")
    system = _reserved(kubelet, "systemReserved", "memory")
    reserved = quantities.mebibytes(kube) if kube is not None else Decimal(11 * pods + 255)
    if system is not None:
        reserved += quantities.mebibytes(system)
    threshold = (kubelet.get("evictionHard") or {}).get("memory.available")
    if threshold is None:
        eviction = Decimal(EVICTION_HARD_MIB)
    elif str(threshold).endswith("%"):
        eviction = Decimal(capacity) * Decimal(str(threshold)[:-1]) / 100
    else:
        eviction = quantities.mebibytes(threshold)
    return int(Decimal(capacity) - reserved - eviction)


def karpenter_efa_interfaces(pool: KarpenterPool, instance: InstanceType) -> int:
    """types.go ``efas``: the EC2NodeClass's ``efa-only`` network interfaces when it lists any, else the type's maximum."""
    interfaces = (pool.node_class.spec.get("networkInterfaces") if pool.node_class else None) or None
    if interfaces is None:
        return instance.efa
    return sum(1 for n in interfaces if n.get("interfaceType") == "efa-only")


def _karpenter_capacity(instance: InstanceType) -> dict[str, Decimal]:
    """The instance capacity NodePool limits are held to (types.go ``computeCapacity``), in cores, MiB and devices."""
    memory = instance.memory_mib - (64 if instance.arch == "arm64" else 0)
    memory -= math.ceil(memory * VM_MEMORY_OVERHEAD)
    return {"cpu": Decimal(instance.vcpu), "memory": Decimal(memory), GPU: Decimal(instance.gpus), EFA: Decimal(instance.efa)}


def karpenter_type_exclusions(pool: KarpenterPool, instance: InstanceType) -> list[str]:
    """Why Karpenter never launches this allowed type from the pool (empty when it may).

    Another architecture than ``kubernetes.io/arch`` allows; or a capacity above a
    ``spec.limits`` entry: core scheduler.go ``filterByRemainingResources`` drops a type whose
    capacity exceeds what is left of the limits, and nothing is left above the limit itself.
    """
    out = []
    if instance.arch not in pool.arch:
        out.append(f"its architecture {instance.arch} is not in the pool's kubernetes.io/arch {pool.arch}")
    capacity = _karpenter_capacity(instance)
    for name, limit in pool.limits.items():
        if name not in capacity:
            continue
        have = capacity[name]
        want = quantities.mebibytes(limit) if name == "memory" else quantities.value(limit)
        if have > want:
            unit = "Mi" if name == "memory" else ""
            out.append(f"its {name} capacity {have:.0f}{unit} exceeds the pool's limits.{name} {limit}")
    return out


def karpenter_template_requirements(pool: KarpenterPool) -> Requirements:
    """What a NodeClaim of the pool must satisfy: the requirements, then the template labels and the
    pool and node class labels as ``In [value]`` (core nodeclaimtemplate.go ``NewNodeClaimTemplate``)."""
    labels = pool.labels | {"karpenter.sh/nodepool": pool.name, "karpenter.sh/registered": "true", "karpenter.sh/initialized": "true"}
    if pool.node_class_ref.get("name"):
        labels["karpenter.k8s.aws/ec2nodeclass"] = str(pool.node_class_ref["name"])
    return add_requirements(requirements_of(pool.requirements), *label_requirements(labels).values())


def karpenter_constraint_problems(spec: Obj, pool: KarpenterPool) -> list[str]:
    """Why the pod's taints and node constraints keep Karpenter from using the pool at all (empty when it may).

    Core nodeclaim.go ``CanAdd``: the pod tolerates the template taints (not the startupTaints),
    and its requirements are ``Compatible`` with the template's (``AllowUndefinedWellKnownLabels``),
    for the nodeSelector with any one required affinity term.
    """
    untolerated = untolerated_taints(spec, pool.taints)
    if untolerated:
        return [f"it does not tolerate the NodePool's taints {untolerated}"]
    template = karpenter_template_requirements(pool)
    alternatives = pod_requirement_alternatives(spec)
    problems = [compatible_problems(template, pod) for pod in alternatives]
    if all(problems):
        return [f"its node constraints are not compatible with the NodePool's template: {'; '.join(problems[0])}"]
    return []


def karpenter_fit_problems(requests: Requests, node: Node) -> list[str]:
    """The pod against a type as Karpenter sizes it: CPU and memory after DaemonSets, extended resources from the type's capacity.

    Karpenter counts the type's GPUs and EFA interfaces whether or not a device plugin will
    advertise them (types.go ``computeCapacity``); a resource no type offers is never offered.
    """
    out = []
    if requests.cpu_millis > node.left_cpu:
        out.append(f"cpu {requests.cpu_millis}m > {node.left_cpu}m left")
    if requests.memory_mib > node.left_memory:
        out.append(f"memory {requests.memory_mib:.0f}Mi > {node.left_memory:.0f}Mi left")
    pool = node.pool
    capacity = {GPU: node.instance.gpus, EFA: karpenter_efa_interfaces(pool, node.instance) if pool else node.instance.efa}
    for name, count in requests.extended.items():
        if count > capacity.get(name, 0):
            out.append(f"{name} {count} > {capacity.get(name, 0)} on the type")
    return out


def karpenter_launch_problems(spec: Obj, requests: Requests, pool: KarpenterPool, nodes: list[Node]) -> list[str]:
    """Why Karpenter would not launch a node from the pool for this pending pod (empty when it would).

    The constraints (:func:`karpenter_constraint_problems`), the pool's ``nvidia.com/gpu`` limit,
    then some allowed type whose labels intersect the pod's requirements (core nodeclaim.go
    ``filterInstanceTypesByRequirements``: ``compatible`` and ``fits`` with the DaemonSet overhead).
    """
    constraints = karpenter_constraint_problems(spec, pool)
    if constraints:
        return constraints
    gpus = requests.extended.get(GPU, 0)
    if pool.gpu_limit is not None and gpus > pool.gpu_limit:
        return [f"{GPU} {gpus} > the NodePool's limit {pool.gpu_limit}"]
    template = karpenter_template_requirements(pool)
    merged = [add_requirements(template, *pod.values()) for pod in pod_requirement_alternatives(spec) if not compatible_problems(template, pod)]
    reasons: dict[str, list[str]] = {}
    for node in nodes:
        if node.pool is not pool:
            continue
        offering = label_requirements({k: v for k, v in node.labels.items() if k in KARPENTER_WELL_KNOWN_LABELS})
        if all(intersects_problems(offering, m) for m in merged):
            reasons.setdefault(node.instance.name, []).append(f"{node.labels.get('karpenter.sh/capacity-type')}: its labels do not meet the pod's requirements")
            continue
        misfit = karpenter_fit_problems(requests, node)
        if not misfit:
            return []
        reasons.setdefault(node.instance.name, []).append("; ".join(misfit))
    if not reasons:
        return ["the pool has no instance type Karpenter may launch"]
    return ["no allowed instance type takes it: " + "; ".join(f"{t}: {', '.join(dict.fromkeys(r))}" for t, r in reasons.items())]


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


def escalator_groups(cluster: Cluster) -> list[Obj]:
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


def cluster_autoscaler_asgs(cluster: Cluster) -> set[str]:
    """ASG names given to cluster-autoscaler with ``--nodes=min:max:name``."""
    names = set()
    for pod in cluster.pod_templates():
        for c in pod.containers(init=False):
            for arg in list(c.get("command") or []) + list(c.get("args") or []):
                if isinstance(arg, str) and arg.startswith("--nodes="):
                    names.add(arg.split(":", 2)[-1])
    return names


def cluster_autoscaler_discovery(cluster: Cluster) -> list[dict[str, str | None]]:
    """Tag filters given to cluster-autoscaler with ``--node-group-auto-discovery=asg:tag=key[=value],...``."""
    filters = []
    for pod in cluster.pod_templates():
        for c in pod.containers(init=False):
            for arg in list(c.get("command") or []) + list(c.get("args") or []):
                if isinstance(arg, str) and arg.startswith("--node-group-auto-discovery=asg:tag="):
                    items = arg.split("asg:tag=", 1)[1].split(",")
                    filters.append({k: (v if sep else None) for k, sep, v in (i.partition("=") for i in items if i)})
    return filters


def cluster_autoscaler_owns(cluster: Cluster, group: NodeGroup) -> bool:
    """cluster-autoscaler scales the managed group: its ASG is named with ``--nodes``, or its tags match an auto-discovery filter.

    EKS tags every managed node group's ASG ``k8s.io/cluster-autoscaler/enabled=true`` and
    ``k8s.io/cluster-autoscaler/<cluster>=owned`` (EKS user guide "Managed node groups": "Amazon EKS
    tags managed node group resources so that they are configured to use the Kubernetes Cluster Autoscaler").
    """
    if group.asg_name and group.asg_name in cluster_autoscaler_asgs(cluster):
        return True
    tags: dict[str, str] = {"k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{cluster.name}": "owned"}
    for t in group.asg_tags:
        tag = t.get("tag") or {}
        tags[str(tag.get("key"))] = str(tag.get("value"))
    return any(all(k in tags and (v is None or tags[k] == v) for k, v in f.items()) for f in cluster_autoscaler_discovery(cluster))


def escalator_selects(pod: PodTemplate, key: str, value: str) -> bool:
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


def _autoscaler_problems(cluster: Cluster, pod: PodTemplate, requests: Requests, groups: list[NodeGroup | KarpenterPool], nodes: list[Node]) -> list[str]:
    """Groups at zero that the pod may need must be scaled from zero for it by their autoscaler; NodePools by Karpenter."""
    out = []
    escalator = escalator_groups(cluster)
    for group in groups:
        if isinstance(group, KarpenterPool):
            reasons = karpenter_launch_problems(pod.spec, requests, group, nodes)
            if reasons:
                out.append(f"{cluster.name}: {pod.label}: NodePool {group.name}: Karpenter would not launch a node for it: " + "; ".join(reasons))
            continue
        if group.min_size > 0:
            continue
        owners = [g for g in escalator if group.labels.get(str(g["label_key"])) == str(g.get("label_value"))]
        where = f"{cluster.name}: {pod.label}: node group {group.name} (min 0)"
        if owners:
            if not any(escalator_selects(pod, str(g["label_key"]), str(g.get("label_value"))) for g in owners):
                keys = [f"{g['label_key']}={g.get('label_value')}" for g in owners]
                out.append(f"{where}: Escalator counts only pods that select {keys}; this one does not, so nothing scales the group up for it")
            continue
        if cluster_autoscaler_owns(cluster, group):
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
            out.append(f"{where}: {kind} {node.owner} ({node.instance.name})")
        for node in landing:
            if node in wrong_kind:
                continue
            reasons = fit_problems(requests, node)
            if reasons:
                out.append(f"{where}: does not fit {node.label}: " + "; ".join(reasons))
        groups = list({id(n.group): n.group for n in landing if n not in wrong_kind}.values())
        out += _autoscaler_problems(cluster, pod, requests, groups, nodes)
    return list(dict.fromkeys(out))  # a NodePool type has a node per capacity type: one message each


def daemonset_problems(nodes: list[Node]) -> list[str]:
    """A node whose DaemonSets alone ask more than it has can run nothing else."""
    return [f"{n.label}: DaemonSets ask {n.daemonset_cpu}m of {n.allocatable_cpu}m CPU" for n in nodes if n.left_cpu < 0] + [
        f"{n.label}: DaemonSets ask {n.daemonset_memory:.0f}Mi of {n.allocatable_memory}Mi memory" for n in nodes if n.left_memory < 0
    ]


def scheduling_problems(render: Render) -> list[str]:
    """Every scheduling and autoscaling problem of every cluster in the render, Karpenter's included.

    The Karpenter checks (:func:`tests.cluster.karpenter.karpenter_problems`: who provisions
    what, the NodePool and EC2NodeClass rules) run here so that every variant of the cluster
    check runs them; that module builds on this one, hence the import at call time.
    """
    from tests.cluster.karpenter import karpenter_problems

    out = []
    for cluster in render.clusters.values():
        nodes, unknown = build_nodes(cluster)
        out += unknown + daemonset_problems(nodes) + workload_problems(cluster, nodes)
    return out + karpenter_problems(render)


# --- the capacity table -------------------------------------------------------------------


def capacity_table(render: Render, *, node_pools: bool = False) -> list[dict[str, Any]]:
    """Per cluster, group and instance type: allocatable, what DaemonSets take, what is left, and who takes it.

    "Left" is the largest whole-node request that fits: a pod asking at most
    that much CPU and memory (and the node's GPUs) is scheduled.  With
    ``node_pools`` the Karpenter NodePools' types are rows too (group
    ``NodePool/<name>``, one row per type whatever its capacity types).
    """
    rows = []
    for cluster in render.clusters.values():
        nodes, _ = build_nodes(cluster)
        workloads = [(p, pod_requests(p.spec)) for p in cluster.pod_templates() if p.owner.get("kind") != "DaemonSet"]
        seen: set[tuple[int, str]] = set()
        for n in nodes:
            if n.pool and (not node_pools or (id(n.group), n.instance.name) in seen):
                continue
            seen.add((id(n.group), n.instance.name))
            landing = [(p, r) for p, r in workloads if _lands(p.spec, n) and (r.extended.get(GPU, 0) > 0) == n.is_gpu]
            biggest = max(landing, key=lambda pr: (pr[1].cpu_millis, pr[1].memory_mib), default=None)
            rows.append(
                {
                    "cluster": cluster.name,
                    "group": f"NodePool/{n.group.name}" if n.pool else n.group.name,
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
