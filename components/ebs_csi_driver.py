"""EbsCsiDriver: the Amazon EBS CSI driver EKS add-on, with workload identity, and an encrypted gp3 StorageClass.

Why the EKS add-on rather than the Helm chart: AWS builds, scans and
version-matches it to the cluster, and ``aws eks describe-addon-versions``
tells you what to upgrade to.  Its controller gets AWS credentials through an
IRSA role that trusts exactly ``kube-system/ebs-csi-controller-sa``, never
through the node role.

Why the AWS managed policy ``AmazonEBSCSIDriverPolicy``: AWS updates it as the
driver gains features (it is what the EKS user guide attaches), and its
write actions are already scoped by tag conditions to volumes and snapshots
the driver created.  An inline copy would silently fall behind the driver.

The StorageClass ``gp3-encrypted``:

* ``encrypted: "true"`` with the account's default EBS key (``aws/ebs``); a
  customer managed key would also need KMS grants for the controller role;
* ``WaitForFirstConsumer``: the volume is created in the AZ of the node the
  pod lands on (EBS volumes cannot cross AZs);
* ``allowVolumeExpansion``: grow a notebook's disk by editing its PVC;
* ``reclaimPolicy: Retain``: a deleted PVC (or ``pulumi destroy``) leaves
  the volume, because a notebook's home directory is someone's work.  The
  volume keeps the stack's tags, so leftovers are easy to find and delete;
* not the cluster default: workloads name it, so nothing else changes
  behaviour because this add-on was installed.

Installed only in clusters that host a notebook (see ``stacks/serving.py``):
nothing else in this project uses EBS volumes, and the add-on puts a node
DaemonSet on every node, GPU nodes included.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from components import k8s_objects
from components.k8s_objects import KubeObject
from components.ml_cluster import MLCluster
from components.partitions import partition_of
from components.workload_identity import ServiceAccountRole

TOKEN = "mleks:addons:EbsCsiDriver"
ADDON_NAME = "aws-ebs-csi-driver"
NAMESPACE = "kube-system"
CONTROLLER_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
PROVISIONER = "ebs.csi.aws.com"
STORAGE_CLASS = "gp3-encrypted"


def managed_policy_arn(partition: str = "aws") -> str:
    return f"arn:{partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"


def addon_configuration() -> dict[str, Any]:
    """Add-on configuration values.

    The node DaemonSet must run on tainted GPU nodes, or a notebook pod there
    could never mount its volume; say so explicitly rather than rely on the
    add-on's default.
    """
    return {"node": {"tolerateAllTaints": True}}


def storage_class(tags: dict[str, str], name: str = STORAGE_CLASS) -> KubeObject:
    """The encrypted gp3 StorageClass (pure)."""
    parameters = {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"}
    # The driver tags each volume it creates with tagSpecification_<n>: "key=value".
    for i, (key, value) in enumerate(sorted(tags.items()), start=1):
        parameters[f"tagSpecification_{i}"] = f"{key}={value}"
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "mleks"}},
        "provisioner": PROVISIONER,
        "parameters": parameters,
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


class EbsCsiDriver(pulumi.ComponentResource):
    """The EBS CSI driver add-on and the ``gp3-encrypted`` StorageClass in one cluster.

    Outputs: ``storage_class_name``, ``role_arn`` (the controller's IRSA
    role), ``addon_version``.  Attribute ``storage_class_name`` is a plain
    string, for workloads to name in their volume claims.
    """

    def __init__(
        self,
        name: str,
        *,
        cluster: MLCluster,
        addon_version: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``addon_version``: pin an add-on version such as ``v1.x.y-eksbuild.1``.
        Default: EKS's default version for the cluster's Kubernetes version at
        creation (not upgraded afterwards unless you set this)."""
        super().__init__(TOKEN, name, None, opts)
        role = ServiceAccountRole.of_cluster(
            f"{name}-controller",
            cluster,
            parent=self,
            namespace=NAMESPACE,
            service_account=CONTROLLER_SERVICE_ACCOUNT,
            managed_policy_arns=[managed_policy_arn(partition_of(cluster.region))],
        )
        self.addon = aws.eks.Addon(
            f"{name}-addon",
            cluster_name=cluster.cluster_name,
            addon_name=ADDON_NAME,
            addon_version=addon_version,
            service_account_role_arn=role.role_arn,
            configuration_values=json.dumps(addon_configuration(), sort_keys=True),
            # Pulumi owns the configuration: take over a hand-installed copy,
            # and put back any console edit on the next ``pulumi up``.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=cluster.tags,
            # The controller needs nodes to run on, and the role before it starts.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster.system_node_group, role]),
        )
        self.storage_class = k8s_objects.create(storage_class(cluster.tags), cluster.k8s_opts(self, depends_on=[self.addon]), name_prefix=name)
        self.storage_class_name = STORAGE_CLASS
        self.role_arn = role.role_arn
        self.register_outputs({"storage_class_name": STORAGE_CLASS, "role_arn": role.role_arn, "addon_version": self.addon.addon_version})
