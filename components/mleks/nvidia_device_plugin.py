"""NvidiaDevicePlugin: advertises ``nvidia.com/gpu`` on AL2023 GPU nodes.

The EKS AL2023 NVIDIA AMIs ship the driver but not the device plugin;
Bottlerocket NVIDIA AMIs ship and run their own.  So the DaemonSet is pinned by
required node affinity to GPU nodes whose AMI family is AL2023: it can never
land on a CPU node (the eksctl #8858 bug) nor double up on Bottlerocket.
"""

from __future__ import annotations

import pulumi

from mleks.catalogs.node_daemonsets import NVIDIA_DEVICE_PLUGIN
from mleks.cluster_base import EksCluster
from mleks.manifests import k8s_objects
from mleks.manifests.device_plugins import KUBELET_SOCKETS, KUBELET_SOCKETS_MOUNT, daemonset
from mleks.manifests.k8s_objects import KubeObject
from mleks.vocabulary import AMI_FAMILY_LABEL, GPU_PRESENT_LABEL

# Pinned upstream release (NVIDIA/k8s-device-plugin v0.20.0, 2026-08-19; see
# shared/reference/dlc-and-gpu.md section 4.4).
VERSION = "v0.20.0"
IMAGE = f"nvcr.io/nvidia/k8s-device-plugin:{VERSION}"
NAME = "nvidia-device-plugin"


def gpu_node_affinity(extra: list[dict] | None = None) -> dict:
    """Required affinity: nodes labelled as GPU nodes of an AL2023 group."""
    expressions = [
        {"key": GPU_PRESENT_LABEL, "operator": "In", "values": ["true"]},
        {"key": AMI_FAMILY_LABEL, "operator": "In", "values": ["al2023"]},
        *(extra or []),
    ]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": expressions}]}}}


def render() -> list[KubeObject]:
    container = {
        "name": NAME,
        "image": IMAGE,
        "env": [
            # The upstream default: fail rather than run on a node without a driver.
            {"name": "FAIL_ON_INIT_ERROR", "value": "true"},
            # MOFED must stay off beside the EFA device plugin (EKS guide).
            {"name": "MOFED_ENABLED", "value": "false"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": NVIDIA_DEVICE_PLUGIN.requests(), "limits": {"memory": "256Mi"}},
        "volumeMounts": [KUBELET_SOCKETS_MOUNT],
    }
    pod = {"affinity": gpu_node_affinity(), "containers": [container], "volumes": [KUBELET_SOCKETS]}
    plugin = daemonset(NAME, VERSION, pod=pod, update_strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})
    # It serves the kubelet over a Unix socket and nothing over the network.
    no_ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NAME, "namespace": plugin["metadata"]["namespace"], "labels": plugin["metadata"]["labels"]},
        "spec": {"podSelector": {"matchLabels": plugin["spec"]["selector"]["matchLabels"]}, "policyTypes": ["Ingress"]},
    }
    return [plugin, no_ingress]


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device plugin DaemonSet, scoped to AL2023 GPU nodes of one cluster."""

    def __init__(self, name: str, *, cluster: EksCluster, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mleks:addons:NvidiaDevicePlugin", name, None, opts)
        cluster.device_plugin_added("nvidia", self)
        for obj in render():
            k8s_objects.create(obj, cluster.k8s_opts(self), name_prefix=name)
        self.register_outputs({"version": VERSION})
