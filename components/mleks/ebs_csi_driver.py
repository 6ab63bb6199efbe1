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

* ``encrypted: "true"`` with a customer managed KMS key: the cluster's own
  (created here, rotated yearly) or one you name.  The account's default EBS
  key may itself be a customer managed key, and CreateVolume then fails
  without KMS grants, so the key is always explicit and the controller role
  gets exactly the KMS statements the EKS user guide (``storage/ebs-csi``)
  lists, on that key only;
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

from typing import Any

import pulumi

from mleks.catalogs.partitions import partition_of
from mleks.cluster_base import EksCluster
from mleks.infra import kms
from mleks.infra.eks_addon import managed_addon
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject
from mleks.workload_identity import ServiceAccountRole

TOKEN = "mleks:addons:EbsCsiDriver"
ADDON_NAME = "aws-ebs-csi-driver"
NAMESPACE = "kube-system"
CONTROLLER_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
PROVISIONER = "ebs.csi.aws.com"
STORAGE_CLASS = "gp3-encrypted"


def managed_policy_arn(partition: str = "aws") -> str:
    return f"arn:{partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"


def addon_configuration(tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Add-on configuration values.

    * ``tolerateAllTaints``: the node DaemonSet must run on tainted GPU nodes,
      or a notebook pod there could never mount its volume.
    * ``hostNetwork``: with IMDS at hop limit 1 a pod cannot reach it, and the
      node plugin then falls back to Kubernetes metadata and "will assume one
      ENI and one EBS volume" when it computes how many volumes the node can
      attach (aws-ebs-csi-driver ``docs/install.md``, "Kubernetes Metadata").
      On a p4d or p5 node the EFA interfaces take attachment slots, so the
      limit would be too high and attachments would fail.  In the host network
      namespace the plugin reaches IMDS at hop limit 1 (same document: "it
      either must be run in host networking mode, or with a hop limit of at
      least 2"), so IMDS stays closed to every workload pod.
    * ``controller.extraVolumeTags``: the stack's tags on every volume the driver creates.  They
      live here, not in the StorageClass's ``tagSpecification_<n>`` parameters, because a
      StorageClass's parameters cannot change (Kubernetes replaces it), while a new add-on
      configuration only restarts the controller (the add-on's configuration schema declares the
      key; the chart's ``values.schema.json`` at the pinned driver has it too).
    """
    config: dict[str, Any] = {"node": {"tolerateAllTaints": True, "hostNetwork": True}}
    if tags:
        config["controller"] = {"extraVolumeTags": dict(sorted(tags.items()))}
    return config


def kms_policy(key_arn: str) -> dict[str, Any]:
    """What the controller needs to create and attach volumes encrypted with ``key_arn``.

    The two statements of the EKS user guide ``storage/ebs-csi`` ("encrypted
    volumes with a customer managed key"), scoped to the one key.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GrantsForEbsOnly",
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": [key_arn],
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Sid": "UseTheVolumeKey",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": [key_arn],
            },
        ],
    }


def storage_class(kms_key_arn: pulumi.Input[str], name: str = STORAGE_CLASS) -> KubeObject:
    """The encrypted gp3 StorageClass (pure; ``kms_key_arn`` may be an Output).  Volume tags come from the add-on's configuration."""
    parameters: dict[str, Any] = {"type": "gp3", "encrypted": "true", "kmsKeyId": kms_key_arn, "csi.storage.k8s.io/fstype": "ext4"}
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
    role), ``addon_version``, ``kms_key_arn``.  Attribute
    ``storage_class_name`` is a plain string, for workloads to name in their
    volume claims.
    """

    def __init__(
        self,
        name: str,
        *,
        cluster: EksCluster,
        kms_key_arn: str | None = None,
        addon_version: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``kms_key_arn``: the customer managed key that encrypts the volumes.
        Default: a new key for this cluster, rotated yearly, kept 30 days after
        deletion is scheduled (its volumes are retained, see above).
        ``addon_version``: pin an add-on version such as ``v1.x.y-eksbuild.1``.
        Default: EKS's default version for the cluster's Kubernetes version at
        creation (not upgraded afterwards unless you set this)."""
        cluster.node_addon_added("EbsCsiDriver", ebs_csi=True)  # its node pod tolerates every taint
        super().__init__(TOKEN, name, None, opts)
        key = kms.key_arn(
            f"{name}-volumes",
            given=kms_key_arn,
            description=f"EBS volumes of workloads in {cluster.name}",
            tags=cluster.tags,
            parent=self,
            # Retained volumes outlive the stack; so must the key that decrypts them.
            retain_on_delete=True,
        )
        role = ServiceAccountRole.of_cluster(
            f"{name}-controller",
            cluster,
            parent=self,
            namespace=NAMESPACE,
            service_account=CONTROLLER_SERVICE_ACCOUNT,
            policy=pulumi.Output.from_input(key).apply(kms_policy),
            managed_policy_arns=[managed_policy_arn(partition_of(cluster.region))],
        )
        # The controller needs the role before it starts.
        self.addon = managed_addon(
            f"{name}-addon",
            cluster=cluster,
            addon_name=ADDON_NAME,
            addon_version=addon_version,
            role_arn=role.role_arn,
            configuration=addon_configuration(cluster.tags),
            parent=self,
            depends_on=[role],
        )
        # The class depends on the driver so that deletions run the other way: when the last workload
        # with a volume leaves, Pulumi deletes it and the class before the driver that detaches its volume.
        self.storage_class = k8s_objects.create(storage_class(key), cluster.k8s_opts(self, depends_on=[self.addon]), name_prefix=name)
        self.storage_class_name = STORAGE_CLASS
        self.role_arn = role.role_arn
        self.kms_key_arn = pulumi.Output.from_input(key)
        self.register_outputs(
            {"storage_class_name": STORAGE_CLASS, "role_arn": role.role_arn, "addon_version": self.addon.addon_version, "kms_key_arn": self.kms_key_arn}
        )
