"""Datasets: an FSx for Lustre file system linked to S3, mounted by training jobs and notebooks.

A :class:`FsxLustreDataset` makes, in one cluster:

* the file system (``PERSISTENT_2`` by default, SSD), in one subnet: the AZ of the train group
  that reads it, since EFA and Capacity Block groups live in one AZ and Lustre across AZs pays
  cross-AZ latency and transfer;
* encryption at rest with a customer managed KMS key (the one given, or its own, rotated yearly);
* a data repository association to an S3 prefix, importing the bucket's listing at creation and
  following new, changed and deleted objects (export back to S3 only if asked);
* a security group with the Lustre ports (TCP 988 and 1018-1023, FSx for Lustre user guide
  "File system access control with Amazon VPC") open only to the cluster's nodes and the file
  system's own servers, and the matching rule on the nodes' side;
* a static PersistentVolume and PersistentVolumeClaim per namespace that mounts it
  (:meth:`FsxLustreDataset.claim_in`).  Static, because data repository associations on
  ``PERSISTENT_2`` are not supported through the CSI driver's dynamic provisioning
  (kubernetes-sigs/aws-fsx-csi-driver#367).

The file system, its association and its key are retained when the stack is destroyed, unless
``deletion: delete`` says otherwise; ``mleks diff`` says which.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
from pydantic import Field, field_validator, model_validator

from mleks.catalogs.partitions import partition_of
from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError
from mleks.infra import kms
from mleks.infra.s3_access import check_kms_key_arn, parse_s3_uri
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject
from mleks.validation.schema import Model, raise_all
from mleks.vocabulary import ObjectName

TOKEN = "mleks:storage:FsxLustreDataset"
CSI_DRIVER = "fsx.csi.aws.com"
LUSTRE_PORTS = ((988, 988), (1018, 1023))

DeploymentType = Literal["PERSISTENT_2", "PERSISTENT_1"]
# Throughput per TiB each deployment type accepts (FSx for Lustre user guide, "Managing throughput
# capacity": PERSISTENT_1 SSD 50/100/200, PERSISTENT_2 SSD 125/250/500/1000 MB/s/TiB).
THROUGHPUTS: dict[str, tuple[int, ...]] = {"PERSISTENT_2": (125, 250, 500, 1000), "PERSISTENT_1": (50, 100, 200)}
# Scratch types are left out: FSx encrypts them with its own keys, never a customer managed one.
S3Event = Literal["NEW", "CHANGED", "DELETED"]
S3_EVENTS: tuple[S3Event, ...] = ("NEW", "CHANGED", "DELETED")

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


def valid_capacity(gib: int) -> bool:
    """1200 GiB, 2400 GiB or a multiple of 2400 GiB: what FSx accepts for SSD PERSISTENT_1/2 at creation
    (FSx API reference, CreateFileSystem ``StorageCapacity``)."""
    return gib == 1200 or (gib >= 2400 and gib % 2400 == 0)


class S3LinkArgs(Model):
    """The S3 prefix a dataset mirrors."""

    uri: str
    """The prefix, as ``s3://bucket/prefix/`` (a folder, ending with ``/``), or ``s3://bucket/`` for the whole bucket."""

    import_events: list[S3Event] = Field(default_factory=lambda: list(S3_EVENTS))
    """S3 changes FSx follows into the file system.  Default: NEW, CHANGED, DELETED."""

    export: bool = False
    """Write files created or changed in the file system back to S3.  Default: false (read-mostly training data)."""

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        parse_s3_uri(value)  # a bucket and a plain prefix, nothing that bends a policy
        if not value.endswith("/"):
            raise ConfigError("", value, "an S3 folder ending with /, e.g. s3://my-bucket/datasets/imagenet/", "not an s3://bucket/prefix/ URI")
        return value


class DatasetArgs(Model):
    """One dataset (``mleks:datasets.<name>``): an FSx for Lustre file system, optionally linked to S3."""

    name: str
    """Dataset name: lowercase letters, digits and dashes.  In stack YAML, its key under ``datasets``."""

    kind: Literal["fsx-lustre"] = "fsx-lustre"
    """The storage: ``fsx-lustre``.  Default: fsx-lustre."""

    deployment_type: DeploymentType = "PERSISTENT_2"
    """``PERSISTENT_2`` (current generation, S3 data repository associations) or ``PERSISTENT_1``.  Default: PERSISTENT_2."""

    storage_capacity_gib: int = 1200
    """Capacity in GiB: 1200, 2400, or a multiple of 2400.  Default: 1200 (the smallest)."""

    per_unit_storage_throughput: int = 250
    """MB/s per TiB: 125, 250, 500 or 1000 (PERSISTENT_2); 50, 100 or 200 (PERSISTENT_1).  Default: 250, so a
    1.2 TiB file system serves about 300 MB/s, enough to keep a node's GPUs fed with most image and text data."""

    s3: S3LinkArgs | None = None
    """The S3 prefix to link (``uri``, ``importEvents``, ``export``).  Default: none (an empty file system)."""

    node_group: str | None = None
    """The train group whose AZ the file system goes in.  Default: the single-AZ group (EFA or Capacity Block)
    among those whose workloads mount it, else the first train group."""

    kms_key_arn: str | None = None
    """A customer managed KMS key for encryption at rest.  Default: a new key for this dataset, rotated yearly."""

    deletion: Literal["retain", "delete"] = "retain"
    """What ``pulumi destroy`` (or removing the dataset) does: ``retain`` keeps the file system, its S3 link
    and its key (Pulumi forgets them), ``delete`` deletes them.  Default: retain."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ConfigError("", value, "2-32 lowercase letters, digits and dashes, starting with a letter", "not a valid dataset name")
        return value

    @field_validator("kms_key_arn")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return check_kms_key_arn(value)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetArgs:
        errors = []
        if not valid_capacity(self.storage_capacity_gib):
            errors.append(
                ConfigError(
                    "storageCapacityGib",
                    self.storage_capacity_gib,
                    "1200, 2400, or a multiple of 2400 (4800, 7200, ...)",
                    "FSx for Lustre does not create an SSD file system of this size",
                )
            )
        allowed = THROUGHPUTS[self.deployment_type]
        if self.per_unit_storage_throughput not in allowed:
            errors.append(
                ConfigError(
                    "perUnitStorageThroughput",
                    self.per_unit_storage_throughput,
                    f"one of {list(allowed)} MB/s/TiB for {self.deployment_type}",
                    "FSx for Lustre does not offer this throughput",
                )
            )
        if self.s3 is not None and self.s3.export and self.deployment_type != "PERSISTENT_2":
            errors.append(
                ConfigError("s3.export", True, "export with PERSISTENT_2 (a data repository association)", "PERSISTENT_1 links S3 on import only here")
            )
        if (
            self.s3 is not None
            and self.deployment_type == "PERSISTENT_1"
            and persistent_1_import_policy(self.s3.import_events) == "NONE"
            and self.s3.import_events
        ):
            errors.append(
                ConfigError(
                    "s3.importEvents", self.s3.import_events, "[NEW], [NEW, CHANGED] or [NEW, CHANGED, DELETED] with PERSISTENT_1", "no such import policy"
                )
            )
        if errors:
            raise_all(type(self).__name__, errors)
        return self

    @property
    def claim_name(self) -> str:
        return claim_name(self.name)


class DatasetMount(Model):
    """A dataset mounted into a workload: ``{name, mountPath, readOnly}``."""

    name: str
    """The dataset (``mleks:datasets.<name>``)."""

    mount_path: str
    """Absolute path in the container, e.g. ``/data``."""

    read_only: bool = True
    """Mount read-only.  Default: true (training data); set false to write (checkpoints, outputs)."""

    @field_validator("mount_path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_mount_path(value, "/data")


def check_mount_path(value: str, example: str) -> str:
    """A path a shared volume may be mounted at: absolute, and not one the runtime owns."""
    if not value.startswith("/") or value.rstrip("/") in ("", "/dev", "/dev/shm", "/proc", "/sys"):
        raise ConfigError("", value, f"an absolute path such as {example}, not /, /dev, /dev/shm, /proc or /sys", "not a usable mount path")
    return value


def s3_prefix_list_name(region: str) -> str:
    """The AWS-managed prefix list of S3 in ``region`` (China regions prefix the service name with ``cn.``)."""
    return f"{'cn.' if partition_of(region) == 'aws-cn' else ''}com.amazonaws.{region}.s3"


def lustre_rules(dataset: str, file_system_sg: Any, nodes_sg: Any) -> list[dict[str, Any]]:
    """The security group rules Lustre needs, and no more: TCP 988 and 1018-1023 between the file
    system's servers, from the nodes to the servers and back; all traffic among the servers."""
    rules: list[dict[str, Any]] = []
    for low, high in LUSTRE_PORTS:
        ports = f"{low}" if low == high else f"{low}-{high}"
        for direction, suffix, sg, source, what in (
            ("ingress", "self", file_system_sg, file_system_sg, "between the file system's servers"),
            ("ingress", "nodes", file_system_sg, nodes_sg, "from the cluster's nodes"),
            ("ingress", "to-nodes", nodes_sg, file_system_sg, f"from dataset {dataset}'s servers to the nodes"),
            ("egress", "egress", file_system_sg, nodes_sg, "to the cluster's nodes"),
        ):
            rules.append(
                {
                    "direction": direction,
                    "suffix": f"{ports}-{suffix}",
                    "security_group_id": sg,
                    "referenced_security_group_id": source,
                    "ip_protocol": "tcp",
                    "from_port": low,
                    "to_port": high,
                    "description": f"Lustre {ports} {what}",
                }
            )
    rules.append(
        {
            "direction": "egress",
            "suffix": "egress-self",
            "security_group_id": file_system_sg,
            "referenced_security_group_id": file_system_sg,
            "ip_protocol": "-1",
            "description": "between the file system's servers",
        }
    )
    return rules


def persistent_1_import_policy(events: list[S3Event]) -> str:
    """The file-system-level ``AutoImportPolicy`` (FSx API: NONE, NEW, NEW_CHANGED, NEW_CHANGED_DELETED)."""
    chosen = set(events)
    if chosen == set(S3_EVENTS):
        return "NEW_CHANGED_DELETED"
    if chosen == {"NEW", "CHANGED"}:
        return "NEW_CHANGED"
    return "NEW" if chosen == {"NEW"} else "NONE"


def claim_name(dataset: str) -> str:
    """The PersistentVolumeClaim a dataset has in each namespace that mounts it."""
    return f"dataset-{dataset}"


def volume_name(cluster: str, dataset: str, namespace: str) -> str:
    """The cluster-scoped PersistentVolume behind one namespace's claim (a volume binds one claim)."""
    return f"{cluster}-dataset-{dataset}-{namespace}"[:253]


def object_names(dataset: str, *, cluster: str, namespace: str) -> tuple[ObjectName, ...]:
    """The objects :func:`claim_objects` creates for ``namespace``: the cluster-scoped volume and the claim."""
    return (ObjectName("PersistentVolume", None, volume_name(cluster, dataset, namespace)), ObjectName("PersistentVolumeClaim", namespace, claim_name(dataset)))


def volume_handle(file_system_id: Any, namespace: str) -> Any:
    """A handle per volume: the file system's id and the namespace (``fs-0abc::ml-training``).

    Two PersistentVolumes with one ``volumeHandle`` are one volume to Kubernetes
    (kubernetes/kubernetes#132921), and each namespace has a volume of its own
    here.  The FSx CSI driver mounts by ``dnsname`` and ``mountname`` alone and
    uses the handle only as a lock key (aws-fsx-csi-driver ``pkg/driver/node.go``
    NodePublishVolume at 01a89278), so the suffix changes nothing it does.
    """
    if isinstance(file_system_id, pulumi.Output):
        return file_system_id.apply(lambda fs: f"{fs}::{namespace}")
    return f"{file_system_id}::{namespace}"


def claim_objects(args: DatasetArgs, *, cluster: str, namespace: str, file_system_id: Any, dns_name: Any, mount_name: Any) -> list[KubeObject]:
    """The static PersistentVolume and the claim bound to it, for ``namespace`` (pure; ids may be Outputs)."""
    pv = volume_name(cluster, args.name, namespace)
    labels = {"app.kubernetes.io/name": args.name, "app.kubernetes.io/component": "dataset", "app.kubernetes.io/part-of": "mleks"}
    capacity = f"{args.storage_capacity_gib}Gi"
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv, "labels": labels},
            "spec": {
                "capacity": {"storage": capacity},
                "volumeMode": "Filesystem",
                "accessModes": ["ReadWriteMany"],
                # Deleting the claim must never touch the data: the file system is managed here, not by the driver.
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "mountOptions": ["flock"],
                "claimRef": {"namespace": namespace, "name": claim_name(args.name)},
                "csi": {
                    "driver": CSI_DRIVER,
                    "volumeHandle": volume_handle(file_system_id, namespace),
                    "volumeAttributes": {"dnsname": dns_name, "mountname": mount_name},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name(args.name), "namespace": namespace, "labels": labels},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv, "resources": {"requests": {"storage": capacity}}},
        },
    ]


class FsxLustreDataset(pulumi.ComponentResource):
    """An FSx for Lustre dataset in one cluster, in ``subnet_id``'s AZ.

    Outputs: ``file_system_id``, ``dns_name``, ``mount_name``, ``kms_key_arn``.  Call :meth:`claim_in`
    for each namespace whose workloads mount it (the FSx CSI driver must run in the cluster:
    :class:`mleks.fsx_csi_driver.FsxCsiDriver`).
    """

    def __init__(
        self,
        name: str,
        args: DatasetArgs,
        *,
        cluster: EksCluster,
        subnet_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TOKEN, name, None, opts)
        self.args, self.cluster, self._name = args, cluster, name
        retain = args.deletion == "retain"
        tags = {**cluster.tags, "mleks/dataset": args.name}
        child = pulumi.ResourceOptions(parent=self)
        key = kms.key_arn(
            f"{name}-key", given=args.kms_key_arn, description=f"FSx for Lustre dataset {args.name}", tags=tags, parent=self, retain_on_delete=retain
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"FSx for Lustre dataset {args.name}: Lustre from the cluster's nodes",
            vpc_id=cluster.vpc_id,
            tags={**tags, "Name": f"{name}-fsx"},
            # The retained file system's network interfaces keep using it: deleting it with the dataset
            # would fail (DependencyViolation) and stop every later `pulumi up`.  Its rules go, so the
            # cluster's security group they name can still be deleted.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=retain),
        )
        for rule in lustre_rules(args.name, group.id, cluster.cluster_security_group_id):
            kind = aws.vpc.SecurityGroupIngressRule if rule.pop("direction") == "ingress" else aws.vpc.SecurityGroupEgressRule
            kind(f"{name}-lustre-{rule.pop('suffix')}", tags=tags, opts=child, **rule)
        if args.s3 is not None:
            # Whether a data repository's S3 traffic leaves through the file system's own network
            # interfaces is not documented either way (FSx for Lustre user guide; the EKS FSx guide only
            # says to leave outbound open).  HTTPS to the region's S3 prefix list covers that case and
            # opens nothing else: an S3 import that cannot reach S3 fails silently at deploy time.
            s3_prefix_list = aws.ec2.get_managed_prefix_list_output(name=s3_prefix_list_name(cluster.region), opts=pulumi.InvokeOptions(parent=self))
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-s3-egress",
                security_group_id=group.id,
                prefix_list_id=s3_prefix_list.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description=f"HTTPS to S3 for dataset {args.name}'s data repository",
                tags=tags,
                opts=child,
            )
        lustre: dict[str, Any] = {}
        if args.s3 is not None and args.deployment_type == "PERSISTENT_1":
            # PERSISTENT_1 links S3 on the file system itself (no data repository association).
            lustre |= {"import_path": args.s3.uri, "auto_import_policy": persistent_1_import_policy(args.s3.import_events)}
        data = pulumi.ResourceOptions(parent=self, retain_on_delete=retain)
        self.file_system = aws.fsx.LustreFileSystem(
            f"{name}-fs",
            deployment_type=args.deployment_type,
            storage_type="SSD",
            storage_capacity=args.storage_capacity_gib,
            per_unit_storage_throughput=args.per_unit_storage_throughput,
            file_system_type_version="2.15",
            # LZ4 shrinks most datasets on disk at no throughput cost (FSx for Lustre user guide, "Lustre data compression").
            data_compression_type="LZ4",
            subnet_ids=subnet_id,  # pulumi-aws takes the one subnet as a string (MaxItems 1)
            security_group_ids=[group.id],
            kms_key_id=key,
            copy_tags_to_backups=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=retain, depends_on=[group]),
            **lustre,
        )
        self.association: aws.fsx.DataRepositoryAssociation | None = None
        """The link to S3 (PERSISTENT_2 with ``s3``); PERSISTENT_1 imports through the file system itself."""
        if args.s3 is not None and args.deployment_type == "PERSISTENT_2":
            s3 = aws.fsx.DataRepositoryAssociationS3Args(
                auto_import_policy=aws.fsx.DataRepositoryAssociationS3AutoImportPolicyArgs(events=list(args.s3.import_events)),
                auto_export_policy=aws.fsx.DataRepositoryAssociationS3AutoExportPolicyArgs(events=list(S3_EVENTS)) if args.s3.export else None,
            )
            self.association = aws.fsx.DataRepositoryAssociation(
                f"{name}-s3",
                file_system_id=self.file_system.id,
                data_repository_path=args.s3.uri,
                file_system_path="/",
                # List what is already in S3 at creation, so the first job sees the whole dataset.
                batch_import_meta_data_on_create=True,
                delete_data_in_filesystem=False,
                s3=s3,
                tags=tags,
                opts=data,
            )
        self.kms_key_arn = key
        self._claims: dict[str, list[pulumi.Resource]] = {}
        self.register_outputs(
            {
                "file_system_id": self.file_system.id,
                "dns_name": self.file_system.dns_name,
                "mount_name": self.file_system.mount_name,
                "kms_key_arn": key,
            }
        )

    def claim_in(self, namespace: str, *, depends_on: list[pulumi.Resource] | None = None) -> None:
        """The static volume and claim ``dataset-<name>`` in ``namespace`` (once per namespace).

        A workload that mounts the dataset waits for :meth:`ready_in`.
        """
        objects = claim_objects(
            self.args,
            cluster=self.cluster.name,
            namespace=namespace,
            file_system_id=self.file_system.id,
            dns_name=self.file_system.dns_name,
            mount_name=self.file_system.mount_name,
        )
        self._claims[namespace] = [
            k8s_objects.create(obj, self.cluster.k8s_opts(self, depends_on=list(depends_on or [])), name_prefix=f"{self._name}-{namespace}") for obj in objects
        ]

    def ready_in(self, namespace: str) -> list[pulumi.Resource]:
        """What a pod in ``namespace`` that mounts the dataset must wait for: its claim there, and the link to S3.

        Without the claim the pod stays Pending; before the association exists the file system
        is empty, and a job that starts then reads no data.
        """
        if namespace not in self._claims:
            raise ConfigError("namespace", namespace, f"a namespace the dataset is claimed in: {sorted(self._claims)}", "call claim_in(namespace) first")
        return [*self._claims[namespace], *([self.association] if self.association is not None else [])]


def check_mounts(mounts: list[DatasetMount], other_paths: list[str], key: str) -> list[ConfigError]:
    """Datasets named once per workload, and no mount path shared with another volume."""
    errors = []
    seen: set[str] = set()
    paths = [p.rstrip("/") for p in other_paths]
    for i, m in enumerate(mounts):
        if m.name in seen:
            errors.append(ConfigError(f"{key}[{i}].name", m.name, "each dataset once per workload", "mounted twice"))
        seen.add(m.name)
        if m.mount_path.rstrip("/") in paths:
            errors.append(ConfigError(f"{key}[{i}].mountPath", m.mount_path, "a mount path no other volume uses", "mounted twice"))
        paths.append(m.mount_path.rstrip("/"))
    return errors
