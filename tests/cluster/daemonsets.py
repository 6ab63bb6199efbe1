"""The DaemonSets EKS itself and the EKS add-ons put on every node, as data.

Each row is the pod template the add-on's chart or manifest renders by
default: container requests, tolerations, nodeSelector and required node
affinity, with the repository, file and tag it was read from.  An add-on's
``configurationValues`` (JSON in the plan) override the values named in
``overrides`` (chart value path -> what it sets), as the chart would.

Which add-ons are installed comes from the plan: ``aws:eks/addon:Addon``
``addonName``.  kube-proxy is on every EKS cluster (EKS installs it as a
self-managed add-on unless ``bootstrapSelfManagedAddons`` is false).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

ALWAYS = "(every EKS cluster)"


@cache
def _instance_lists() -> dict[str, list[str]]:
    data = json.loads((Path(__file__).parent / "addon_instance_types.json").read_text())
    return {k: v["instanceTypes"] for k, v in data.items() if not k.startswith("_")}


def _types_in(list_name: str) -> Obj:
    return {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": _instance_lists()[list_name]}


def _not_in(key: str, *values: str) -> Obj:
    return {"key": key, "operator": "NotIn", "values": list(values)}


def _arch(*arches: str) -> Obj:
    return {"key": "kubernetes.io/arch", "operator": "In", "values": list(arches)}


def _container(name: str, cpu: str | None, memory: str | None) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"name": name, "resources": {"requests": requests} if requests else {}}


def _affinity(*expressions: Obj) -> Obj:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": list(expressions)}]}}}


EXISTS = [{"operator": "Exists"}]
LINUX = {"kubernetes.io/os": "linux"}


@dataclass(frozen=True)
class AddonDaemonSet:
    """One DaemonSet an EKS add-on installs, with its default pod spec."""

    addon: str  # EKS addonName, or ALWAYS
    name: str  # namespace/name
    pod_spec: Obj
    source: str
    # chart value path in configurationValues -> ("resources", container name) | ("tolerations", None)
    # | ("enabled", None) | ("tolerateAllTaints", None)
    overrides: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    note: str = ""


ADDON_DAEMONSETS: tuple[AddonDaemonSet, ...] = (
    AddonDaemonSet(
        "vpc-cni",
        "kube-system/aws-node",
        {
            "containers": [_container("aws-node", "25m", None), _container("aws-eks-nodeagent", "25m", None)],
            "initContainers": [_container("aws-vpc-cni-init", "25m", None)],
            "tolerations": EXISTS,
            "affinity": _affinity(
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                _arch("amd64", "arm64"),
                _not_in("eks.amazonaws.com/compute-type", "fargate", "hybrid", "auto"),
            ),
        },
        "aws/amazon-vpc-cni-k8s tag v1.23.0 config/master/aws-k8s-cni.yaml (rendered from charts/aws-vpc-cni/values.yaml: "
        "resources.requests.cpu 25m, used by nodeAgent and init too when theirs are empty; tolerations operator Exists)",
        {"resources": ("resources", "aws-node"), "nodeAgent.resources": ("resources", "aws-eks-nodeagent"), "tolerations": ("tolerations", None)},
        "the aws-eks-nodeagent (network policy agent) container is in the pod whatever enableNetworkPolicy says (nodeAgent.enabled defaults to true)",
    ),
    AddonDaemonSet(
        ALWAYS,
        "kube-system/kube-proxy",
        {
            "containers": [_container("kube-proxy", "100m", None)],
            "tolerations": EXISTS,
            "affinity": _affinity(
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                _arch("amd64", "arm64"),
                _not_in("eks.amazonaws.com/compute-type", "fargate", "hybrid", "auto"),
            ),
        },
        "EKS kube-proxy add-on manifest: requests cpu 100m, tolerations operator Exists (as deployed by EKS; "
        "no public source file of the add-on manifest was found to re-read, see /work/shared/reference/cluster-facts.md)",
        {"resources": ("resources", "kube-proxy")},
    ),
    AddonDaemonSet(
        "eks-pod-identity-agent",
        "kube-system/eks-pod-identity-agent",
        {
            "containers": [_container("eks-pod-identity-agent", None, None)],
            "tolerations": EXISTS,
            "affinity": _affinity(
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                _arch("amd64", "arm64"),
                _not_in("eks.amazonaws.com/compute-type", "fargate"),
            ),
        },
        "aws/eks-pod-identity-agent charts/eks-pod-identity-agent/values.yaml (stored version at commit 00bc0581): resources {}, tolerations operator Exists",
        {"resources": ("resources", "eks-pod-identity-agent"), "tolerations": ("tolerations", None)},
    ),
    AddonDaemonSet(
        "aws-ebs-csi-driver",
        "kube-system/ebs-csi-node",
        {
            "containers": [
                _container("ebs-plugin", "10m", "40Mi"),
                _container("node-driver-registrar", "10m", "32Mi"),
                _container("liveness-probe", "10m", "32Mi"),
            ],
            "tolerations": EXISTS,  # node.tolerateAllTaints: true is the chart default at 2.64.0
            "nodeSelector": LINUX,
            "affinity": _affinity(_not_in("eks.amazonaws.com/compute-type", "fargate", "auto", "hybrid")),
        },
        "kubernetes-sigs/aws-ebs-csi-driver tag helm-chart-aws-ebs-csi-driver-2.64.0 (driver v1.64.0): charts/aws-ebs-csi-driver/values.yaml "
        "node.resources 10m/40Mi, node.tolerateAllTaints true; templates/_node.tpl sidecar defaults 10m/32Mi each",
        {"node.resources": ("resources", "ebs-plugin"), "node.tolerateAllTaints": ("tolerateAllTaints", None), "node.tolerations": ("tolerations", None)},
    ),
    AddonDaemonSet(
        "aws-fsx-csi-driver",
        "kube-system/fsx-csi-node",
        {
            "containers": [
                _container("fsx-plugin", "10m", "40Mi"),
                _container("node-driver-registrar", "10m", "32Mi"),
                _container("liveness-probe", "10m", "32Mi"),
            ],
            "tolerations": EXISTS,  # node.tolerateAllTaints: true is the chart default at 1.17.0
            "nodeSelector": LINUX,
            "affinity": _affinity(_not_in("eks.amazonaws.com/compute-type", "fargate")),
        },
        "kubernetes-sigs/aws-fsx-csi-driver tag helm-chart-aws-fsx-csi-driver-1.17.0 (driver v1.9.0): charts/aws-fsx-csi-driver/values.yaml "
        "node.resources 10m/40Mi, sidecars.*.resources 10m/32Mi, node.tolerateAllTaints true",
        {"node.resources": ("resources", "fsx-plugin"), "node.tolerateAllTaints": ("tolerateAllTaints", None), "node.tolerations": ("tolerations", None)},
    ),
    AddonDaemonSet(
        "eks-node-monitoring-agent",
        "kube-system/eks-node-monitoring-agent",
        {
            "containers": [_container("eks-node-monitoring-agent", "10m", "30Mi")],
            "tolerations": EXISTS,
            "nodeSelector": LINUX,
            "affinity": _affinity(
                _not_in("eks.amazonaws.com/compute-type", "fargate", "auto", "hybrid"),
                _not_in("sagemaker.amazonaws.com/compute-type", "hyperpod"),
                _arch("amd64", "arm64"),
            ),
        },
        "aws/eks-node-monitoring-agent tag v1.7.0 charts/eks-node-monitoring-agent/values.yaml nodeAgent.resources 10m/30Mi, tolerations operator Exists",
        {"nodeAgent.resources": ("resources", "eks-node-monitoring-agent"), "nodeAgent.tolerations": ("tolerations", None)},
    ),
    AddonDaemonSet(
        "eks-node-monitoring-agent",
        "kube-system/dcgm-server",
        {
            "containers": [_container("eks-node-monitoring-agent-dcgm", None, None)],
            "tolerations": [],
            "nodeSelector": LINUX,
            "affinity": _affinity(
                _types_in("node_monitoring_dcgm_server"),
                _not_in("eks.amazonaws.com/compute-type", "fargate", "auto", "hybrid"),
                _not_in("sagemaker.amazonaws.com/compute-type", "hyperpod"),
                _arch("amd64"),
            ),
        },
        "aws/eks-node-monitoring-agent tag v1.7.0 charts/eks-node-monitoring-agent/values.yaml dcgmAgent: resources {}, tolerations [], "
        "affinity on NVIDIA instance types; templates/dcgm-daemonset.yaml (nv-hostengine, hostPort 5555)",
        {"dcgmAgent.resources": ("resources", "eks-node-monitoring-agent-dcgm"), "dcgmAgent.tolerations": ("tolerations", None)},
    ),
    AddonDaemonSet(
        "amazon-cloudwatch-observability",
        "amazon-cloudwatch/cloudwatch-agent",
        {
            "containers": [_container("cloudwatch-agent", "250m", "128Mi")],
            "tolerations": EXISTS,
            "nodeSelector": LINUX,
            "affinity": _affinity(_not_in("eks.amazonaws.com/compute-type", "fargate")),
        },
        "aws-observability/helm-charts tag amazon-cloudwatch-observability-6.4.0 charts/amazon-cloudwatch-observability/values.yaml "
        "agent.resources.requests 250m/128Mi, root tolerations operator Exists",
        {"agent.resources": ("resources", "cloudwatch-agent"), "agent.tolerations": ("tolerations", None), "tolerations": ("tolerations", None)},
    ),
    AddonDaemonSet(
        "amazon-cloudwatch-observability",
        "amazon-cloudwatch/fluent-bit",
        {"containers": [_container("fluent-bit", "50m", "25Mi")], "tolerations": EXISTS},
        "aws-observability/helm-charts tag amazon-cloudwatch-observability-6.4.0 values.yaml containerLogs.fluentBit.resources.requests 50m/25Mi, "
        "root tolerations operator Exists",
        {
            "containerLogs.enabled": ("enabled", None),
            "containerLogs.fluentBit.resources": ("resources", "fluent-bit"),
            "containerLogs.fluentBit.tolerations": ("tolerations", None),
            "tolerations": ("tolerations", None),
        },
    ),
    AddonDaemonSet(
        "amazon-cloudwatch-observability",
        "amazon-cloudwatch/dcgm-exporter",
        {
            "containers": [_container("dcgm-exporter", "250m", "128Mi")],
            "tolerations": EXISTS,
            "nodeSelector": LINUX,
            "affinity": _affinity(_types_in("cloudwatch_dcgm_exporter"), _not_in("eks.amazonaws.com/compute-type", "fargate")),
        },
        "aws-observability/helm-charts tag amazon-cloudwatch-observability-6.4.0 values.yaml dcgmExporter.resources.requests 250m/128Mi, "
        "affinity on NVIDIA instance types, root tolerations operator Exists",
        {
            "dcgmExporter.enabled": ("enabled", None),
            "dcgmExporter.resources": ("resources", "dcgm-exporter"),
            "dcgmExporter.tolerations": ("tolerations", None),
            "tolerations": ("tolerations", None),
        },
    ),
    AddonDaemonSet(
        "amazon-cloudwatch-observability",
        "amazon-cloudwatch/neuron-monitor",
        {
            "containers": [_container("neuron-monitor", "256m", "128Mi")],
            "tolerations": EXISTS,
            "nodeSelector": LINUX,
            "affinity": _affinity(_types_in("cloudwatch_neuron_monitor"), _not_in("eks.amazonaws.com/compute-type", "fargate")),
        },
        "aws-observability/helm-charts tag amazon-cloudwatch-observability-6.4.0 values.yaml neuronMonitor.resources.requests 256m/128Mi, "
        "affinity on Trainium/Inferentia instance types",
        {
            "neuronMonitor.enabled": ("enabled", None),
            "neuronMonitor.resources": ("resources", "neuron-monitor"),
            "neuronMonitor.tolerations": ("tolerations", None),
        },
    ),
)


def _lookup(values: Obj, path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def configured_pod_spec(ds: AddonDaemonSet, configuration_values: str | None) -> Obj | None:
    """The DaemonSet's pod spec with the add-on's ``configurationValues`` applied; None when they disable it."""
    spec = copy.deepcopy(ds.pod_spec)
    values = json.loads(configuration_values) if configuration_values else {}
    # Root-level overrides first, so a component's own value wins (as the charts' "Override root tolerations" do).
    for path, (what, container) in sorted(ds.overrides.items(), key=lambda item: item[0].count(".")):
        value = _lookup(values, path)
        if value is None:
            continue
        if what == "enabled" and value in (False, "false"):
            return None
        if what == "resources" and isinstance(value, dict):
            for c in spec["containers"] + spec.get("initContainers", []):
                if c["name"] == container:
                    c["resources"] = value
        if what == "tolerations" and isinstance(value, list):
            spec["tolerations"] = value
        if what == "tolerateAllTaints":
            spec["tolerations"] = EXISTS if value in (True, "true") else [{"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    return spec


def installed(cluster_addons: list[Obj]) -> list[tuple[AddonDaemonSet, Obj]]:
    """(row, configured pod spec) for every add-on DaemonSet of a cluster with these ``aws:eks/addon:Addon`` inputs."""
    by_name = {a.get("addonName"): a for a in cluster_addons}
    out = []
    for ds in ADDON_DAEMONSETS:
        if ds.addon != ALWAYS and ds.addon not in by_name:
            continue
        spec = configured_pod_spec(ds, (by_name.get(ds.addon) or {}).get("configurationValues"))
        if spec is not None:
            out.append((ds, spec))
    return out
