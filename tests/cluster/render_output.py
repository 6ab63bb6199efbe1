"""Load a render (``plan.json`` + ``kubernetes/<cluster>.yaml``) and group it by cluster.

Only the files are read.  A plan resource is assigned to a cluster by the AWS
API fields that name it (``clusterName`` of node groups and add-ons, ``name``
of the EKS cluster), and by the resources it depends on (launch templates,
ASG tags, placement groups), never by the product's component types.

Karpenter v1 node pools are Kubernetes objects of the cluster's YAML: a
``karpenter.sh/v1`` ``NodePool`` and the ``karpenter.k8s.aws/v1``
``EC2NodeClass`` its ``spec.template.spec.nodeClassRef`` names (field meanings:
aws/karpenter-provider-aws v1.14.1 ``website/content/en/v1.14/concepts/nodepools.md``
and ``nodeclasses.md``).  The Karpenter controller is a Helm release of the
plan; its pods are not rendered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import quantities

Obj = dict[str, Any]

# The pod template of each workload kind, as a path into the object.
# Pods are checked by admission and scheduled one by one; for the others the
# controller creates pods from the template (kubernetes.io "Workload Management").
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass
class PodTemplate:
    """One pod a workload creates: its owner, namespace, metadata and spec."""

    owner: Obj
    namespace: str
    metadata: Obj
    spec: Obj

    @property
    def label(self) -> str:
        """``Kind namespace/name`` of the owner, for messages."""
        return describe(self.owner)

    def containers(self, *, init: bool = True) -> list[Obj]:
        """Containers, then init containers (the API server validates both)."""
        out = list(self.spec.get("containers") or [])
        if init:
            out += list(self.spec.get("initContainers") or [])
        return out


@dataclass
class NodeGroup:
    """An EKS managed node group from the plan, with what EKS and the ASG add to it."""

    name: str  # the EKS node group name (the resource's nodegroupName, else the Pulumi name)
    inputs: Obj
    launch_template: Obj | None = None
    placement_group: Obj | None = None
    asg_tags: list[Obj] = field(default_factory=list)  # aws:autoscaling/tag:Tag inputs

    @property
    def instance_types(self) -> list[str]:
        """The group's types: ``instanceTypes``, else the launch template's ``instanceType``."""
        types = list(self.inputs.get("instanceTypes") or [])
        if not types and self.launch_template and self.launch_template.get("instanceType"):
            types = [self.launch_template["instanceType"]]
        return types

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.inputs.get("labels") or {})

    @property
    def taints(self) -> list[Obj]:
        """Taints as Kubernetes writes them (EKS API ``NO_SCHEDULE`` -> ``NoSchedule``)."""
        effects = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
        return [{"key": t["key"], "value": t.get("value", ""), "effect": effects.get(t["effect"], t["effect"])} for t in self.inputs.get("taints") or []]

    @property
    def ami_type(self) -> str:
        return str(self.inputs.get("amiType") or "")

    @property
    def min_size(self) -> int:
        return int((self.inputs.get("scalingConfig") or {}).get("minSize", 0))

    @property
    def asg_name(self) -> str | None:
        """The ASG name as the autoscaler tags name it (the plan has no output of the node group)."""
        names = {t.get("autoscalingGroupName") for t in self.asg_tags}
        return next(iter(names)) if len(names) == 1 else None


# Karpenter's defaults when a NodePool leaves a well-known key open: every capacity type the
# instance offers (on-demand and spot; "reserved" only with capacityReservationSelectorTerms), and
# the architecture of the instance type (aws/karpenter-provider-aws v1.14.1
# pkg/providers/instancetype/types.go computeRequirements).
KARPENTER_CAPACITY_TYPES = ("spot", "on-demand")
INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"
ARCH_KEY = "kubernetes.io/arch"
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"


@dataclass
class EC2NodeClass:
    """A ``karpenter.k8s.aws/v1`` ``EC2NodeClass``: AMI, disks, IMDS and kubelet settings of a NodePool's nodes."""

    name: str
    obj: Obj

    @property
    def spec(self) -> Obj:
        return dict(self.obj.get("spec") or {})

    @property
    def aliases(self) -> list[str]:
        """``amiSelectorTerms[].alias`` values (``family@version``)."""
        return [str(t["alias"]) for t in self.spec.get("amiSelectorTerms") or [] if isinstance(t, dict) and t.get("alias")]

    @property
    def ami_family(self) -> str:
        """``al2023``, ``bottlerocket``, ...: the alias prefix, else ``spec.amiFamily`` lower-cased ("" when neither)."""
        if self.aliases:
            return self.aliases[0].split("@", 1)[0].lower()
        return str(self.spec.get("amiFamily") or "").lower()

    @property
    def kubelet(self) -> Obj:
        return dict(self.spec.get("kubelet") or {})


@dataclass
class KarpenterPool:
    """A ``karpenter.sh/v1`` ``NodePool``: the node-group-like view the scheduler checks use."""

    name: str
    obj: Obj
    node_class: EC2NodeClass | None = None  # the EC2NodeClass its nodeClassRef names, when the render has it

    @property
    def spec(self) -> Obj:
        return dict(self.obj.get("spec") or {})

    @property
    def template(self) -> Obj:
        return dict(self.spec.get("template") or {})

    @property
    def template_spec(self) -> Obj:
        return dict(self.template.get("spec") or {})

    @property
    def labels(self) -> dict[str, str]:
        """``spec.template.metadata.labels``."""
        return {str(k): str(v) for k, v in ((self.template.get("metadata") or {}).get("labels") or {}).items()}

    @property
    def taints(self) -> list[Obj]:
        """``spec.template.spec.taints`` (startupTaints are not kept: pods need not tolerate them)."""
        return [{"key": t.get("key"), "value": t.get("value", ""), "effect": t.get("effect")} for t in self.template_spec.get("taints") or []]

    @property
    def startup_taints(self) -> list[Obj]:
        return list(self.template_spec.get("startupTaints") or [])

    @property
    def requirements(self) -> list[Obj]:
        """``spec.template.spec.requirements`` as written (key, operator, values, minValues)."""
        return [r for r in self.template_spec.get("requirements") or [] if isinstance(r, dict)]

    @property
    def node_class_ref(self) -> Obj:
        return dict(self.template_spec.get("nodeClassRef") or {})

    def allowed(self, key: str) -> list[str] | None:
        """The values an ``In`` requirement on ``key`` allows, less any ``NotIn``; ``None`` when no ``In`` names the key."""
        allowed: list[str] | None = None
        for r in self.requirements:
            if r.get("key") == key and r.get("operator") == "In":
                values = [str(v) for v in r.get("values") or []]
                allowed = values if allowed is None else [v for v in allowed if v in values]
        excluded = {str(v) for r in self.requirements if r.get("key") == key and r.get("operator") == "NotIn" for v in r.get("values") or []}
        return None if allowed is None else [v for v in allowed if v not in excluded]

    @property
    def instance_types(self) -> list[str]:
        """The ``node.kubernetes.io/instance-type In`` values (empty when the pool leaves the type open)."""
        return self.allowed(INSTANCE_TYPE_KEY) or []

    @property
    def arch(self) -> list[str]:
        """Allowed ``kubernetes.io/arch`` values; both when the pool does not say."""
        return self.allowed(ARCH_KEY) or ["amd64", "arm64"]

    @property
    def capacity_types(self) -> list[str]:
        """Allowed ``karpenter.sh/capacity-type`` values; on-demand and spot when the pool does not say."""
        allowed = self.allowed(CAPACITY_TYPE_KEY)
        return list(KARPENTER_CAPACITY_TYPES) if allowed is None else allowed

    @property
    def ami_family(self) -> str:
        return self.node_class.ami_family if self.node_class else ""

    @property
    def limits(self) -> Obj:
        return dict(self.spec.get("limits") or {})

    @property
    def gpu_limit(self) -> int | None:
        """``spec.limits["nvidia.com/gpu"]`` as a count, ``None`` when unlimited."""
        value = self.limits.get("nvidia.com/gpu")
        return None if value is None else quantities.whole(value)

    @property
    def weight(self) -> int:
        return int(self.spec.get("weight") or 0)

    @property
    def node_group(self) -> str | None:
        """The ``mleks.io/node-group`` template label: the product's name for the group the pool serves."""
        return self.labels.get("mleks.io/node-group")


@dataclass
class Cluster:
    """One EKS cluster: its plan resources and its Kubernetes objects."""

    name: str
    version: str
    eks: Obj  # inputs of the eks:index:Cluster (or aws:eks/cluster:Cluster) resource
    objects: list[Obj] = field(default_factory=list)
    node_groups: list[NodeGroup] = field(default_factory=list)
    addons: list[Obj] = field(default_factory=list)  # aws:eks/addon:Addon inputs
    node_pools: list[KarpenterPool] = field(default_factory=list)  # karpenter.sh NodePools of the cluster's YAML
    node_classes: list[EC2NodeClass] = field(default_factory=list)  # karpenter.k8s.aws EC2NodeClasses of the cluster's YAML

    def addon(self, name: str) -> Obj | None:
        """The EKS add-on of that ``addonName``, if the plan installs it."""
        return next((a for a in self.addons if a.get("addonName") == name), None)

    def kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind]

    def pod_templates(self) -> list[PodTemplate]:
        return list(pod_templates(self.objects))


@dataclass
class Render:
    """A whole render: the plan's resources and every cluster in it."""

    directory: Path
    plan: Obj
    clusters: dict[str, Cluster]

    @property
    def resources(self) -> list[Obj]:
        return list(self.plan.get("resources") or [])

    def of_type(self, type_: str) -> list[Obj]:
        return [r for r in self.resources if r.get("type") == type_]


def describe(obj: Obj) -> str:
    """``Kind namespace/name`` (or ``Kind name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def pod_templates(objects: list[Obj]) -> Iterator[PodTemplate]:
    """Every pod the objects create: workload templates and bare Pods."""
    for obj in objects:
        kind = obj.get("kind")
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        if kind == "Pod":
            yield PodTemplate(obj, namespace, obj.get("metadata") or {}, obj.get("spec") or {})
            continue
        path = _TEMPLATE_PATHS.get(str(kind))
        if path is None:
            continue
        node: Any = obj
        for key in path:
            node = (node or {}).get(key)
        if isinstance(node, dict):
            yield PodTemplate(obj, namespace, node.get("metadata") or {}, node.get("spec") or {})


def _cluster_resources(plan: Obj) -> dict[str, Obj]:
    """EKS cluster name -> inputs of the resource that creates it."""
    out: dict[str, Obj] = {}
    for r in plan.get("resources") or []:
        if r.get("type") in ("eks:index:Cluster", "aws:eks/cluster:Cluster"):
            name = (r.get("inputs") or {}).get("name")
            if name and (name not in out or r["type"] == "eks:index:Cluster"):
                out[name] = r.get("inputs") or {}
    return out


def _node_groups(plan: Obj) -> list[tuple[str, NodeGroup]]:
    """(cluster name, node group) for every managed node group, linked to what it depends on."""
    by_urn = {r["urn"]: r for r in plan.get("resources") or []}
    groups: list[tuple[str, NodeGroup]] = []
    for r in plan.get("resources") or []:
        if r.get("type") != "aws:eks/nodeGroup:NodeGroup":
            continue
        inputs = r.get("inputs") or {}
        group = NodeGroup(inputs.get("nodegroupName") or r["name"], inputs)
        deps = [by_urn[u] for u in r.get("dependencies") or [] if u in by_urn]
        group.launch_template = next((d.get("inputs") for d in deps if d["type"] == "aws:ec2/launchTemplate:LaunchTemplate"), None)
        lt = next((d for d in deps if d["type"] == "aws:ec2/launchTemplate:LaunchTemplate"), None)
        if lt is not None:
            lt_deps = [by_urn[u] for u in lt.get("dependencies") or [] if u in by_urn]
            group.placement_group = next((d.get("inputs") for d in lt_deps if d["type"] == "aws:ec2/placementGroup:PlacementGroup"), None)
        group.asg_tags = [
            t.get("inputs") or {}
            for t in plan.get("resources") or []
            if t.get("type") == "aws:autoscaling/tag:Tag" and r["urn"] in (t.get("dependencies") or [])
        ]
        groups.append((str(inputs.get("clusterName")), group))
    return groups


def _group(api_version: Any) -> str:
    return str(api_version or "").rpartition("/")[0]


def _karpenter(objects: list[Obj]) -> tuple[list[KarpenterPool], list[EC2NodeClass]]:
    """NodePools (``karpenter.sh``) and EC2NodeClasses (``karpenter.k8s.aws``), each pool linked to the class it names."""
    classes = [
        EC2NodeClass(str((o.get("metadata") or {}).get("name")), o)
        for o in objects
        if o.get("kind") == "EC2NodeClass" and _group(o.get("apiVersion")) == "karpenter.k8s.aws"
    ]
    pools = []
    for o in objects:
        if o.get("kind") != "NodePool" or _group(o.get("apiVersion")) != "karpenter.sh":
            continue
        pool = KarpenterPool(str((o.get("metadata") or {}).get("name")), o)
        ref = pool.node_class_ref
        if ref.get("group") == "karpenter.k8s.aws" and ref.get("kind") == "EC2NodeClass":
            pool.node_class = next((c for c in classes if c.name == ref.get("name")), None)
        pools.append(pool)
    return pools, classes


def load(directory: Path) -> Render:
    """Read ``plan.json`` and ``kubernetes/*.yaml`` under ``directory`` (one stack's render)."""
    plan = json.loads((directory / "plan.json").read_text())
    clusters: dict[str, Cluster] = {}
    for name, eks in _cluster_resources(plan).items():
        clusters[name] = Cluster(name, str(eks.get("version") or ""), eks)
    for path in sorted((directory / "kubernetes").glob("*.yaml")):
        name = path.stem
        cluster = clusters.setdefault(name, Cluster(name, "", {}))
        cluster.objects = [d for d in yaml.safe_load_all(path.read_text()) if d]
        cluster.node_pools, cluster.node_classes = _karpenter(cluster.objects)
    for cluster_name, group in _node_groups(plan):
        clusters.setdefault(cluster_name, Cluster(cluster_name, "", {})).node_groups.append(group)
    for r in plan.get("resources") or []:
        if r.get("type") == "aws:eks/addon:Addon":
            inputs = r.get("inputs") or {}
            clusters.setdefault(str(inputs.get("clusterName")), Cluster(str(inputs.get("clusterName")), "", {})).addons.append(inputs)
    return Render(directory, plan, clusters)
