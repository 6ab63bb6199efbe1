"""NvidiaDevicePlugin: advertises ``nvidia.com/gpu`` on AL2023 GPU nodes.

The EKS AL2023 NVIDIA AMIs ship the driver but not the device plugin;
Bottlerocket NVIDIA AMIs ship and run their own.  So the DaemonSet is pinned by
required node affinity to GPU nodes whose AMI family is AL2023: it can never
land on a CPU node (the eksctl #8858 bug) nor double up on Bottlerocket.
"""

from __future__ import annotations

import pulumi

from components import k8s_objects
from components.gpu_catalog import NVIDIA_GPU_RESOURCE
from components.gpu_node_group import AMI_FAMILY_LABEL, GPU_PRESENT_LABEL
from components.k8s_objects import KubeObject
from components.ml_cluster import MLCluster

# Pinned upstream release (NVIDIA/k8s-device-plugin v0.20.0, 2026-08-19; see
# shared/reference/dlc-and-gpu.md section 4.4).
VERSION = "v0.20.0"
IMAGE = f"nvcr.io/nvidia/k8s-device-plugin:{VERSION}"
NAME = "nvidia-device-plugin"
NAMESPACE = "kube-system"


def gpu_node_affinity(extra: list[dict] | None = None) -> dict:
    """Required affinity: nodes labelled as GPU nodes of an AL2023 group."""
    expressions = [
        {"key": GPU_PRESENT_LABEL, "operator": "In", "values": ["true"]},
        {"key": AMI_FAMILY_LABEL, "operator": "In", "values": ["al2023"]},
        *(extra or []),
    ]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": expressions}]}}}


GPU_TOLERATION = {"key": NVIDIA_GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def render() -> list[KubeObject]:
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/version": VERSION}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        "affinity": gpu_node_affinity(),
                        "tolerations": [GPU_TOLERATION, {"key": "CriticalAddonsOnly", "operator": "Exists"}],
                        "containers": [
                            {
                                "name": NAME,
                                "image": IMAGE,
                                "env": [
                                    # The upstream default: fail rather than run on a node without a driver.
                                    {"name": "FAIL_ON_INIT_ERROR", "value": "true"},
                                    # MOFED must stay off beside the EFA device plugin (EKS guide).
                                    {"name": "MOFED_ENABLED", "value": "false"},
                                ],
                                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                                "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}],
                            }
                        ],
                        "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}}],
                    },
                },
            },
        }
    ]


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device plugin DaemonSet, scoped to AL2023 GPU nodes of one cluster."""

    def __init__(self, name: str, *, cluster: MLCluster, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mleks:addons:NvidiaDevicePlugin", name, None, opts)
        for obj in render():
            k8s_objects.create(obj, cluster.k8s_opts(self), name_prefix=name)
        self.register_outputs({"version": VERSION})
