"""The DaemonSet shell both device plugins share (NVIDIA, EFA).

A device plugin runs on every node that has its device, as a
system-node-critical pod that tolerates the GPU taint (and CriticalAddonsOnly),
and registers with the kubelet through its device-plugins directory.  What
differs (the container, which nodes, host access) stays in the plugin's module.
"""

from __future__ import annotations

from typing import Any

from mleks.manifests.k8s_objects import KubeObject
from mleks.vocabulary import GPU_TOLERATION

NAMESPACE = "kube-system"

KUBELET_SOCKETS = {"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}}
"""Where the kubelet listens for device plugins: every plugin mounts it."""

KUBELET_SOCKETS_MOUNT = {"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}


def daemonset(name: str, version: str, *, pod: dict[str, Any], update_strategy: dict[str, Any]) -> KubeObject:
    """The plugin's DaemonSet: ``pod`` (affinity, containers, volumes...) as a
    system-node-critical pod that tolerates the GPU taint and CriticalAddonsOnly."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "updateStrategy": update_strategy,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    # A device plugin talks to the kubelet's socket, never to the API server.
                    "automountServiceAccountToken": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "tolerations": [GPU_TOLERATION, {"key": "CriticalAddonsOnly", "operator": "Exists"}],
                    **pod,
                },
            },
        },
    }
