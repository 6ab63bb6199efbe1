"""EfaDevicePlugin: advertises ``vpc.amazonaws.com/efa`` on EFA-enabled GPU nodes.

Neither AL2023 nor Bottlerocket ships this plugin.  It runs only on nodes our
EFA node groups label ``vpc.amazonaws.com/efa.present=true``, and tolerates the
GPU taint that those nodes carry.
"""

from __future__ import annotations

import pulumi

from mleks.catalogs.addon_registry import addon_image
from mleks.catalogs.node_daemonsets import EFA_DEVICE_PLUGIN
from mleks.cluster_base import EksCluster
from mleks.manifests import k8s_objects
from mleks.manifests.device_plugins import KUBELET_SOCKETS, KUBELET_SOCKETS_MOUNT, daemonset
from mleks.manifests.k8s_objects import KubeObject
from mleks.vocabulary import EFA_PRESENT_LABEL

# aws/eks-charts aws-efa-k8s-device-plugin chart v0.5.30, app v0.5.20 (see
# shared/reference/dlc-and-gpu.md section 4.5).  The image lives in the EKS
# add-on registry of the cluster's own region, which every EKS node role may
# pull from (components/mleks/catalogs/addon_registry.py).
VERSION = "v0.5.20"
REPOSITORY = "eks/aws-efa-k8s-device-plugin"
NAME = "aws-efa-k8s-device-plugin"


def image_for(region: str, key: str = "nodeGroups.<name>.efa") -> str:
    """The plugin image in ``region``'s EKS add-on registry; ``ConfigError`` at ``key`` where none is known."""
    return addon_image(region, REPOSITORY, VERSION, key=key)


def render(region: str) -> list[KubeObject]:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": EFA_PRESENT_LABEL, "operator": "In", "values": ["true"]}]}]
            }
        }
    }
    container = {
        "name": NAME,
        "image": image_for(region),
        # Privileged: it opens /dev/infiniband devices on the host.
        "securityContext": {"privileged": True, "allowPrivilegeEscalation": True},
        "resources": {"requests": EFA_DEVICE_PLUGIN.requests(), "limits": {"memory": "128Mi"}},
        "volumeMounts": [KUBELET_SOCKETS_MOUNT, {"name": "infiniband", "mountPath": "/dev/infiniband"}],
    }
    pod = {
        # The plugin must see the host's network devices.
        "hostNetwork": True,
        "affinity": affinity,
        "containers": [container],
        "volumes": [KUBELET_SOCKETS, {"name": "infiniband", "hostPath": {"path": "/dev/infiniband"}}],
    }
    return [daemonset(NAME, VERSION, pod=pod, update_strategy={"type": "RollingUpdate"})]


class EfaDevicePlugin(pulumi.ComponentResource):
    """The AWS EFA device plugin DaemonSet, scoped to EFA-enabled nodes of one cluster."""

    def __init__(self, name: str, *, cluster: EksCluster, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mleks:addons:EfaDevicePlugin", name, None, opts)
        cluster.device_plugin_added("efa", self)
        for obj in render(cluster.region):
            k8s_objects.create(obj, cluster.k8s_opts(self), name_prefix=name)
        self.register_outputs({"version": VERSION})
