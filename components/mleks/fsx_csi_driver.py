"""FsxCsiDriver: the Amazon FSx for Lustre CSI driver EKS add-on, which mounts datasets into pods.

The datasets here are static volumes (:mod:`mleks.dataset`): the driver only mounts them, on the
nodes, and never creates or deletes a file system.  So its controller gets an IRSA role that may
only describe file systems (the driver's install guide grants create/delete for dynamic
provisioning, which is not used), and the node plugin needs no AWS access at all.  The node
plugin must run on the GPU nodes, where the jobs are: the chart's ``node.tolerateAllTaints``
(aws-fsx-csi-driver ``charts/aws-fsx-csi-driver/values.yaml`` at v1.9.0, default true) is set
explicitly so a changed default cannot strand a job.
"""

from __future__ import annotations

from typing import Any

import pulumi

from mleks.cluster_base import EksCluster
from mleks.infra.eks_addon import managed_addon
from mleks.workload_identity import ServiceAccountRole

TOKEN = "mleks:addons:FsxCsiDriver"
ADDON_NAME = "aws-fsx-csi-driver"
NAMESPACE = "kube-system"
CONTROLLER_SERVICE_ACCOUNT = "fsx-csi-controller-sa"


def controller_policy() -> dict[str, Any]:
    """Describe only: enough for the controller to validate static volumes, nothing that changes FSx."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            # DescribeFileSystems supports no resource-level permissions (Service Authorization Reference, Amazon FSx).
            {"Sid": "DescribeFileSystems", "Effect": "Allow", "Action": ["fsx:DescribeFileSystems"], "Resource": "*"},
        ],
    }


def addon_configuration() -> dict[str, Any]:
    return {"node": {"tolerateAllTaints": True}}


class FsxCsiDriver(pulumi.ComponentResource):
    """The FSx CSI driver add-on in one cluster.  Outputs: ``role_arn``, ``addon_version``."""

    def __init__(self, name: str, *, cluster: EksCluster, addon_version: str | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        cluster.node_addon_added("FsxCsiDriver", fsx_csi=True)  # its node pod tolerates every taint
        super().__init__(TOKEN, name, None, opts)
        role = ServiceAccountRole.of_cluster(
            f"{name}-controller", cluster, parent=self, namespace=NAMESPACE, service_account=CONTROLLER_SERVICE_ACCOUNT, policy=controller_policy()
        )
        self.addon = managed_addon(
            f"{name}-addon",
            cluster=cluster,
            addon_name=ADDON_NAME,
            addon_version=addon_version,
            role_arn=role.role_arn,
            configuration=addon_configuration(),
            parent=self,
            depends_on=[role],
        )
        self.role_arn = role.role_arn
        self.register_outputs({"role_arn": role.role_arn, "addon_name": ADDON_NAME, "addon_version": self.addon.addon_version})
