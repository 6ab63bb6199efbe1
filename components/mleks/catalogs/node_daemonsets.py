"""What the DaemonSets on a GPU node request: the share of a node no workload pod can have.

A whole-node training job asks for nearly all of a node's allocatable CPU and memory, so the
sum of what every DaemonSet pod on that node requests decides whether the job is ever
scheduled.  It depends on the cluster's add-ons and on the group (AMI family, EFA), so it is
computed per cluster and group from the rows below, never a fixed allowance.

Each row is one DaemonSet pod (all its containers' requests added up) with where the numbers
were read.  The EKS add-ons are installed at EKS's default versions; the rows were read at the
upstream versions named, and must be re-read when those move.  Our own DaemonSets take their
requests from here, so the manifest and the sizing cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ObservabilityMode = Literal["cloudwatch", "prometheus", "none"]


@dataclass(frozen=True)
class NodeDaemon:
    """One DaemonSet pod on a node: its name, CPU and memory requests, and the source of both."""

    name: str
    cpu_millis: int
    memory_mib: int
    source: str

    def requests(self) -> dict[str, str]:
        """The row as a container's ``resources.requests``, for the DaemonSets we render ourselves."""
        return {"cpu": f"{self.cpu_millis}m", "memory": f"{self.memory_mib}Mi"}


# -- on every node ------------------------------------------------------------------------------------------
AWS_NODE = NodeDaemon(
    "kube-system/aws-node",
    25 + 25,
    0,
    "aws/amazon-vpc-cni-k8s v1.23.0 charts/aws-vpc-cni/values.yaml: resources.requests.cpu 25m for aws-node, and the same"
    " for aws-eks-nodeagent (the network policy agent container, present whatever enableNetworkPolicy says); no memory request",
)
KUBE_PROXY = NodeDaemon("kube-system/kube-proxy", 100, 0, "the EKS kube-proxy add-on manifest: requests cpu 100m, no memory request")

# -- the EKS node monitoring agent, in every cluster with GPU groups -------------------------------------
NODE_MONITORING_AGENT = NodeDaemon(
    "kube-system/eks-node-monitoring-agent",
    10,
    30,
    "our configurationValues for nodeAgent: the chart's own defaults (aws/eks-node-monitoring-agent v1.7.0 values.yaml)",
)
DCGM_SERVER = NodeDaemon(
    "kube-system/dcgm-server",
    50,
    128,
    "our configurationValues for dcgmAgent: the chart sets none (v1.7.0 values.yaml dcgmAgent.resources: {}); NVIDIA nodes only",
)

# -- storage drivers (EKS add-ons; node.tolerateAllTaints, so on GPU nodes too) ------------------------------
EBS_CSI_NODE = NodeDaemon(
    "kube-system/ebs-csi-node",
    30,
    104,
    "kubernetes-sigs/aws-ebs-csi-driver helm-chart-aws-ebs-csi-driver-2.64.0 values.yaml node.resources 10m/40Mi,"
    " and node-driver-registrar and liveness-probe 10m/32Mi each (templates/_node.tpl)",
)
FSX_CSI_NODE = NodeDaemon(
    "kube-system/fsx-csi-node",
    30,
    104,
    "kubernetes-sigs/aws-fsx-csi-driver helm-chart-aws-fsx-csi-driver-1.17.0 values.yaml node.resources 10m/40Mi, sidecars 10m/32Mi each",
)

# -- observability --------------------------------------------------------------------------------------------
CLOUDWATCH_AGENT = NodeDaemon(
    "amazon-cloudwatch/cloudwatch-agent",
    250,
    128,
    "aws-observability/helm-charts amazon-cloudwatch-observability-6.4.0 values.yaml agent.resources.requests 250m/128Mi; tolerates every taint",
)
FLUENT_BIT = NodeDaemon(
    "amazon-cloudwatch/fluent-bit",
    50,
    25,
    "aws-observability/helm-charts amazon-cloudwatch-observability-6.4.0 values.yaml containerLogs.fluentBit.resources.requests 50m/25Mi",
)
# The add-on's own dcgm-exporter (250m/128Mi) is turned off (mleks.observability): it would start a
# second DCGM engine beside the node monitoring agent's.
DCGM_EXPORTER = NodeDaemon(
    "kube-system/dcgm-exporter", 100, 128, "our manifest (mleks.observability), after NVIDIA/dcgm-exporter dcgm-exporter.yaml; AL2023 GPU nodes only"
)

# -- what the rows above cannot promise ---------------------------------------------------------------------
HEADROOM = NodeDaemon(
    "headroom",
    100,
    64,
    "not a pod: room for what the rows cannot pin down.  EKS installs its add-ons' default versions, which may"
    " request more than the versions read here, and kube-proxy's request comes from the deployed add-on, not a"
    " public file.  A whole-node job that lost this margin would stay Pending while Escalator adds nodes.",
)

# -- device plugins (our manifests) ---------------------------------------------------------------------------
NVIDIA_DEVICE_PLUGIN = NodeDaemon("kube-system/nvidia-device-plugin", 50, 64, "our manifest (mleks.nvidia_device_plugin); AL2023 GPU nodes only")
EFA_DEVICE_PLUGIN = NodeDaemon("kube-system/aws-efa-k8s-device-plugin", 10, 20, "our manifest (mleks.efa_device_plugin); EFA nodes only")


@dataclass(frozen=True)
class NodeAddons:
    """The add-ons of one cluster that put a pod on its GPU nodes."""

    observability: ObservabilityMode = "none"
    ebs_csi: bool = False
    fsx_csi: bool = False


@dataclass(frozen=True)
class DaemonSetLoad:
    """What the DaemonSets on one node request in all."""

    cpu_millis: int
    memory_mib: int


def gpu_node_daemons(addons: NodeAddons, *, ami_family: str, efa: bool) -> tuple[NodeDaemon, ...]:
    """Every DaemonSet pod on a GPU node of a group with ``ami_family`` and ``efa`` in a cluster with ``addons``.

    Bottlerocket ships its own NVIDIA device plugin (no pod), and our DCGM exporter runs on
    AL2023 only (mleks.observability); every group gets the node monitoring agent and its engine.
    """
    al2023 = ami_family == "al2023"
    daemons = [AWS_NODE, KUBE_PROXY, NODE_MONITORING_AGENT, DCGM_SERVER, HEADROOM]
    daemons += [NVIDIA_DEVICE_PLUGIN] if al2023 else []
    daemons += [EFA_DEVICE_PLUGIN] if efa else []
    daemons += [EBS_CSI_NODE] if addons.ebs_csi else []
    daemons += [FSX_CSI_NODE] if addons.fsx_csi else []
    if addons.observability == "cloudwatch":
        daemons += [CLOUDWATCH_AGENT, FLUENT_BIT]
    elif addons.observability == "prometheus" and al2023:
        daemons += [DCGM_EXPORTER]
    return tuple(daemons)


def gpu_node_load(addons: NodeAddons, *, ami_family: str, efa: bool) -> DaemonSetLoad:
    """The sum of :func:`gpu_node_daemons`."""
    daemons = gpu_node_daemons(addons, ami_family=ami_family, efa=efa)
    return DaemonSetLoad(sum(d.cpu_millis for d in daemons), sum(d.memory_mib for d in daemons))


def ceiling_load(*, ami_family: str, efa: bool) -> DaemonSetLoad:
    """The most any cluster's add-ons put on a GPU node of this kind: every observability mode's
    DaemonSets at their heaviest, both CSI drivers.

    A training Job's pod template cannot change without replacing the Job, which runs it again; sized
    against this ceiling rather than today's add-ons, a finished job is not re-run because a notebook,
    a dataset or the metrics mode came or went.  The price is a few hundred millicores left idle on a
    node of 48 to 192 vCPUs.
    """
    modes: tuple[ObservabilityMode, ...] = ("cloudwatch", "prometheus", "none")
    return heaviest([gpu_node_load(NodeAddons(observability=m, ebs_csi=True, fsx_csi=True), ami_family=ami_family, efa=efa) for m in modes])


def heaviest(loads: list[DaemonSetLoad]) -> DaemonSetLoad:
    """The most CPU and the most memory of ``loads``: what a pod that may land on any of their groups must leave room for."""
    return DaemonSetLoad(max(x.cpu_millis for x in loads), max(x.memory_mib for x in loads))
