"""NodeMonitoringAgent: the EKS node monitoring agent add-on, in every cluster with GPU groups.

The agent reads each node's kernel, network, storage, runtime and GPU state and sets node
conditions (``AcceleratedHardwareReady`` for GPU Xid, NVLink and DCGM health); node auto-repair
(:mod:`mleks.node_repair`) acts on them.  Its chart (aws/eks-node-monitoring-agent, read at
v1.7.0, whose ``configuration.schema.json`` is the add-on's configuration schema) runs two
DaemonSets:

* ``eks-node-monitoring-agent`` on every node; it already tolerates every taint;
* ``dcgm-server``, the DCGM host engine (``nv-hostengine``, host port 5555) the agent reads GPU
  health from, on GPU instance types only.  Its default tolerations are empty, so it would never
  land on our tainted GPU nodes and the agent would see no GPU at all; we add the GPU toleration.

That host engine is the one DCGM engine on a GPU node: the Prometheus-mode exporter
(:mod:`mleks.observability`) connects to it instead of starting its own, because DCGM's
profiling metrics can be served by one engine per GPU (aws/eks-node-monitoring-agent#256).

Neither DaemonSet requests GPUs; both get requests and limits.  The agent needs no AWS
permissions (it writes node conditions through the Kubernetes API), so it has no IAM role.
"""

from __future__ import annotations

from typing import Any

import pulumi

from mleks.catalogs.node_daemonsets import DCGM_SERVER, NODE_MONITORING_AGENT
from mleks.cluster_base import EksCluster
from mleks.infra.eks_addon import managed_addon
from mleks.vocabulary import GPU_TOLERATION

TOKEN = "mleks:addons:NodeMonitoringAgent"
ADDON_NAME = "eks-node-monitoring-agent"
DCGM_PORT = 5555
"""The host port of ``dcgm-server``'s host engine (chart ``templates/dcgm-daemonset.yaml``)."""


def addon_configuration() -> dict[str, Any]:
    """The add-on's configuration values (keys of the chart's ``configuration.schema.json``)."""
    return {
        # The chart's own defaults, stated so a change upstream cannot unbound them silently.
        "nodeAgent": {"resources": {"requests": NODE_MONITORING_AGENT.requests(), "limits": {"cpu": "250m", "memory": "200Mi"}}},
        "dcgmAgent": {
            "tolerations": [dict(GPU_TOLERATION)],
            # nv-hostengine with the profiling module loaded for eight GPUs stays in the low
            # hundreds of MiB; the limit leaves room, since an OOM kill blinds GPU health checks.
            "resources": {"requests": DCGM_SERVER.requests(), "limits": {"cpu": "500m", "memory": "1Gi"}},
        },
    }


class NodeMonitoringAgent(pulumi.ComponentResource):
    """The node monitoring agent add-on in one cluster (added with its first GPU group).

    ``addon_version`` pins a version such as ``v1.7.0-eksbuild.1``; by default EKS installs its
    default for the cluster's Kubernetes version.  Outputs: ``addon_version``.
    """

    def __init__(self, name: str, *, cluster: EksCluster, addon_version: str | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TOKEN, name, None, opts)
        self.addon = managed_addon(
            f"{name}-addon", cluster=cluster, addon_name=ADDON_NAME, addon_version=addon_version, configuration=addon_configuration(), parent=self
        )
        self.register_outputs({"addon_name": ADDON_NAME, "addon_version": self.addon.addon_version})
