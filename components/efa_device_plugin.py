"""EfaDevicePlugin: advertises ``vpc.amazonaws.com/efa`` on EFA-enabled GPU nodes.

Neither AL2023 nor Bottlerocket ships this plugin.  It runs only on nodes our
EFA node groups label ``vpc.amazonaws.com/efa.present=true``, and tolerates the
GPU taint that those nodes carry.
"""

from __future__ import annotations

import pulumi

from components import k8s_objects
from components.gpu_node_group import EFA_PRESENT_LABEL
from components.k8s_objects import KubeObject
from components.ml_cluster import MLCluster
from components.nvidia_device_plugin import GPU_TOLERATION

# aws/eks-charts aws-efa-k8s-device-plugin chart v0.5.30, app v0.5.20 (see
# shared/reference/dlc-and-gpu.md section 4.5).  The image lives in the EKS
# add-on registry, which every EKS node role may pull from.
VERSION = "v0.5.20"
IMAGE = f"602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-efa-k8s-device-plugin:{VERSION}"
NAME = "aws-efa-k8s-device-plugin"
NAMESPACE = "kube-system"


def render() -> list[KubeObject]:
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/version": VERSION}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": EFA_PRESENT_LABEL, "operator": "In", "values": ["true"]}]}]
            }
        }
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        # The plugin must see the host's network devices.
                        "hostNetwork": True,
                        "affinity": affinity,
                        "tolerations": [GPU_TOLERATION, {"key": "CriticalAddonsOnly", "operator": "Exists"}],
                        "containers": [
                            {
                                "name": NAME,
                                "image": IMAGE,
                                # Privileged: it opens /dev/infiniband devices on the host.
                                "securityContext": {"privileged": True, "allowPrivilegeEscalation": True},
                                "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "128Mi"}},
                                "volumeMounts": [
                                    {"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                                    {"name": "infiniband", "mountPath": "/dev/infiniband"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}},
                            {"name": "infiniband", "hostPath": {"path": "/dev/infiniband"}},
                        ],
                    },
                },
            },
        }
    ]


class EfaDevicePlugin(pulumi.ComponentResource):
    """The AWS EFA device plugin DaemonSet, scoped to EFA-enabled nodes of one cluster."""

    def __init__(self, name: str, *, cluster: MLCluster, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mleks:addons:EfaDevicePlugin", name, None, opts)
        for obj in render():
            k8s_objects.create(obj, cluster.k8s_opts(self), name_prefix=name)
        self.register_outputs({"version": VERSION})
