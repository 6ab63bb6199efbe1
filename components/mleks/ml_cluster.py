"""MLCluster: a private, encrypted EKS control plane with a CPU system node group.

GPU node groups (:class:`~mleks.gpu_node_group.GpuNodeGroup`) attach to
it; add-ons and workloads use its Kubernetes provider and OIDC issuer.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s
from pydantic import Field, field_validator, model_validator

from mleks.catalogs.ec2 import check_cpu_instance_type
from mleks.catalogs.eks_versions import extended_support_warning, kubernetes_version_status, supported_kubernetes_versions
from mleks.catalogs.partitions import PARTITION_PATTERN, check_region, partition_of
from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError
from mleks.infra import kms
from mleks.infra.managed_node_group import GP3_MAX_GIB, NodeGroupSpec, RootVolume, create_node_group
from mleks.infra.s3_access import check_kms_key_arn
from mleks.metrics_server import MetricsServer
from mleks.validation.schema import Model, VersionText, component_errors, raise_all, raised
from mleks.vocabulary import ROLE_LABEL, SYSTEM_ROLE
from mleks.workload_identity import ServiceAccountRole

DEFAULT_KUBERNETES_VERSION = "1.35"

# Every control-plane log type: audit and authenticator answer "who did
# what", the others are what AWS support asks for first.
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

# An IAM role or user, the only principals an access entry takes.  STS session
# ARNs (``arn:aws:sts::...:assumed-role/...``) are refused by CreateAccessEntry:
# a session is a temporary principal, not an identity (EKS API reference).
_IAM_PRINCIPAL = re.compile(rf"^arn:({PARTITION_PATTERN}):iam::\d{{12}}:(role|user)/[\w+=,.@/-]+$")
_STS_SESSION = re.compile(rf"^arn:({PARTITION_PATTERN}):sts::(\d{{12}}):assumed-role/([\w+=,.@-]+)/")


def check_cidr_blocks(value: list[str], accepted: str, *, ipv4_only: bool = False) -> list[str]:
    """Each entry a CIDR block with no host bits set; an error names the entry's index."""
    for i, cidr in enumerate(value):
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            raise ConfigError(f"[{i}]", cidr, accepted, "not a CIDR block") from None
        if ipv4_only and network.version != 4:
            raise ConfigError(f"[{i}]", cidr, accepted, "an IPv6 block; this setting takes IPv4 only")
    return value


_GRAVITON_FAMILY = re.compile(r"^[a-z]+\d+g[a-z]*$")  # m7g, c6gn, r8gd, t4g, im4gn: AWS names Graviton with a "g"


def is_graviton(instance_type: str) -> bool:
    return bool(_GRAVITON_FAMILY.match(instance_type.split(".", 1)[0]))


class EndpointAccess(Model):
    """Who can reach the Kubernetes API endpoint.

    The private endpoint is always on (nodes and in-VPC tools use it).  The
    public endpoint is on only when ``publicAccessCidrs`` lists networks.
    """

    public_access_cidrs: list[str] = Field(default_factory=list, max_length=40)
    """CIDR blocks allowed to reach the public endpoint: at most 40 (an EKS quota that cannot be raised).
    Default: none (private only)."""

    allow_public_from_anywhere: bool = False
    """Must be true to put ``0.0.0.0/0`` in ``publicAccessCidrs``.  Default: false."""

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        # EKS public access CIDRs are IPv4 only.
        return check_cidr_blocks(value, "an IPv4 CIDR block such as 203.0.113.0/24", ipv4_only=True)

    @model_validator(mode="after")
    def _world_needs_opt_in(self) -> EndpointAccess:
        for i, cidr in enumerate(self.public_access_cidrs):
            if ipaddress.ip_network(cidr).prefixlen == 0 and not self.allow_public_from_anywhere:
                raise ConfigError(
                    f"publicAccessCidrs[{i}]",
                    cidr,
                    "your office or VPN ranges, or set allowPublicFromAnywhere: true to open the API to the internet",
                    "opens the Kubernetes API to the whole internet",
                )
        return self

    @property
    def public(self) -> bool:
        return bool(self.public_access_cidrs)


class SystemNodeGroupArgs(Model):
    """The on-demand CPU group for CoreDNS, autoscalers and other add-ons."""

    instance_types: list[str] = Field(default_factory=lambda: ["m7i.large"])
    """EC2 instance types.  Default: ``["m7i.large"]`` (2 vCPU, 8 GiB)."""

    min_size: int = Field(default=2, ge=2)
    """Minimum nodes.  At least 2 so CoreDNS and the autoscalers survive a node loss.  Default: 2."""

    max_size: int = Field(default=4, ge=2)
    """Maximum nodes.  Default: 4."""

    disk_size_gib: int = Field(default=50, ge=20, le=GP3_MAX_GIB)
    """Root gp3 volume in GiB, 20 to 65536 (the EC2 gp3 maximum).  Default: 50."""

    @field_validator("instance_types")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ConfigError("", value, "at least one EC2 instance type, e.g. [m7i.large]", "empty list")
        errors = []
        for i, name in enumerate(value):
            try:
                check_cpu_instance_type(name)
            except ConfigError as err:
                errors.append(ConfigError(f"[{i}]", name, err.accepted, err.problem))
        if errors:
            raise_all("instanceTypes", errors)
        # One AMI serves the whole group, so one architecture.
        if len({is_graviton(t) for t in value}) > 1:
            raise ConfigError("", value, "instance types of one architecture (all Graviton, e.g. m7g, or all x86)", "mixed architectures in one node group")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> SystemNodeGroupArgs:
        if self.min_size > self.max_size:
            raise ConfigError("maxSize", self.max_size, f"a number >= minSize ({self.min_size})", "smaller than minSize")
        return self


class MLClusterArgs(Model):
    """Settings shared by every cluster of a stack."""

    kubernetes_version: VersionText = DEFAULT_KUBERNETES_VERSION
    """EKS Kubernetes minor version, e.g. "1.35".  Default: 1.35 (standard support until 2027-03-27)."""

    endpoint: EndpointAccess = Field(default_factory=EndpointAccess)
    """API endpoint access.  Default: private only."""

    admin_principals: list[str] = Field(default_factory=list)
    """IAM role or user ARNs given cluster-admin through EKS access entries.  Default: none."""

    system_nodes: SystemNodeGroupArgs = Field(default_factory=SystemNodeGroupArgs)
    """The CPU system node group."""

    log_retention_days: int = 90
    """Days to keep control-plane logs in CloudWatch.  Default: 90."""

    secrets_kms_key_arn: str | None = None
    """Bring your own KMS key for secrets encryption.  Default: a new key with rotation."""

    volume_kms_key_arn: str | None = None
    """The customer managed KMS key for workload EBS volumes (notebook home directories).
    The EBS CSI controller gets the KMS grants EKS documents, on this key only.  Default: a new
    key per cluster with rotation, kept when the stack is destroyed (so are the volumes)."""

    deletion_protection: bool = False
    """Refuse ``pulumi destroy`` of the cluster at the EKS API.  Default: false."""

    @field_validator("secrets_kms_key_arn", "volume_kms_key_arn")
    @classmethod
    def _kms_keys(cls, value: str | None) -> str | None:
        return check_kms_key_arn(value)

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if kubernetes_version_status(value) == "unsupported":
            raise ConfigError("", value, f"one of {supported_kubernetes_versions()}", "not supported by EKS today")
        return value

    @field_validator("admin_principals")
    @classmethod
    def _principals(cls, value: list[str]) -> list[str]:
        accepted = "an IAM role or user ARN such as arn:aws:iam::123456789012:role/Admins"
        seen: dict[str, int] = {}
        for i, arn in enumerate(value):
            session = _STS_SESSION.match(arn)
            if session:
                role = f"arn:{session[1]}:iam::{session[2]}:role/{session[3]}"
                raise ConfigError(
                    f"[{i}]",
                    arn,
                    f"{accepted}: the role this session was assumed from, {role} (with the role's path, if it has one)",
                    "an STS session ARN, which EKS access entries refuse",
                )
            if not _IAM_PRINCIPAL.match(arn):
                raise ConfigError(f"[{i}]", arn, accepted, "not an IAM principal ARN")
            if arn in seen:
                raise ConfigError(f"[{i}]", arn, "each principal once", f"already listed at [{seen[arn]}]; EKS allows one access entry per principal")
            seen[arn] = i
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        # The values CloudWatch Logs accepts for retentionInDays.
        allowed = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]
        if value not in allowed:
            raise ConfigError("", value, f"one of {allowed}", "not a CloudWatch Logs retention period")
        return value


def system_node_group_spec(name: str, args: SystemNodeGroupArgs, tags: dict[str, str]) -> NodeGroupSpec:
    arm = is_graviton(args.instance_types[0])
    return NodeGroupSpec(
        name=name,
        ami_type="AL2023_ARM_64_STANDARD" if arm else "AL2023_x86_64_STANDARD",
        instance_types=tuple(args.instance_types),
        capacity_type="ON_DEMAND",
        min_size=args.min_size,
        max_size=args.max_size,
        desired_size=args.min_size,
        root_volume=RootVolume(size_gib=args.disk_size_gib),
        labels={ROLE_LABEL: SYSTEM_ROLE},
        tags=tags,
    )


def access_entry_key(principal_arn: str) -> str:
    """A key that stays with its principal when the list is reordered or shortened.

    Keys by position would re-point entries at other principals, and EKS
    refuses a second entry for a principal while the first still exists.
    """
    short = re.sub(r"[^A-Za-z0-9-]", "-", principal_arn.rsplit("/", 1)[-1])[:32]
    return f"admin-{short}-{hashlib.sha256(principal_arn.encode()).hexdigest()[:8]}"


def access_entries(principals: list[str], partition: str = "aws") -> dict[str, eks.AccessEntryArgs]:
    """Cluster-admin access entries, one per principal."""
    return {
        access_entry_key(arn): eks.AccessEntryArgs(
            principal_arn=arn,
            access_policies={
                "cluster-admin": eks.AccessPolicyAssociationArgs(
                    policy_arn=f"arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                )
            },
        )
        for arn in principals
    }


def node_role_policy_arns(partition: str = "aws") -> list[str]:
    """The AWS managed policies the kubelet needs, and no more.

    ``AmazonEC2ContainerRegistryPullOnly`` rather than ``...ReadOnly``: nodes
    pull images, they never list repositories.  ``AmazonEKS_CNI_Policy`` is
    not here: the VPC CNI gets it through its own service account
    (:func:`vpc_cni_policy_arn`), so no pod on the node can borrow the right
    to attach network interfaces and IP addresses.
    """
    return [
        f"arn:{partition}:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        f"arn:{partition}:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    ]


VPC_CNI_NAMESPACE = "kube-system"
VPC_CNI_SERVICE_ACCOUNT = "aws-node"
"""The VPC CNI's DaemonSet runs as this service account (EKS user guide ``cni-iam-role``)."""


def vpc_cni_policy_arn(partition: str = "aws") -> str:
    return f"arn:{partition}:iam::aws:policy/AmazonEKS_CNI_Policy"


def vpc_cni_configuration() -> dict[str, str]:
    """VPC CNI add-on values: enforce Kubernetes NetworkPolicy (off by default on EKS),
    so the policies workloads render actually restrict traffic."""
    return {"enableNetworkPolicy": "true"}


_EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def create_node_role(
    name: str, cluster_name: str, policy_arns: Sequence[str], *, tags: dict[str, str], parent: pulumi.Resource
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """The IAM role EKS nodes run as, with ``policy_arns`` attached."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-node-role",
        description=f"EKS node role for {cluster_name}",
        assume_role_policy=json.dumps(_EC2_TRUST, sort_keys=True),
        tags=tags,
        opts=child,
    )
    attachments = [aws.iam.RolePolicyAttachment(f"{name}-node-role-{arn.rsplit('/', 1)[1]}", role=role.name, policy_arn=arn, opts=child) for arn in policy_arns]
    return role, attachments


class MLCluster(EksCluster):
    """An EKS cluster ready for GPU node groups and ML add-ons.

    Outputs: ``cluster_name``, ``kubeconfig`` (secret), ``oidc_provider_arn``,
    ``oidc_issuer``, ``node_role_arn``; attributes ``provider`` (a Kubernetes
    provider for child components) and ``args``.
    """

    def __init__(
        self,
        name: str,
        args: MLClusterArgs,
        *,
        cluster_name: str,
        region: str | None = None,
        vpc_id: pulumi.Input[str],
        private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]],
        tags: dict[str, str] | None = None,
        config_key: str | None = None,
        node_dependencies: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``config_key``: where ``args`` sit in your config (``mleks:cluster``), for warnings.
        ``node_dependencies``: what every node group must wait for beyond the cluster, such as the
        NAT routes nodes need to pull images (:attr:`mleks.network.MLVpc.egress`); the
        control plane itself waits only for the subnets.  ``region``: default, the program's ``aws:region``."""
        region, problems = raised(lambda: check_region(region or configured_region()))
        if region is None:
            raise component_errors([e.under("region") for e in problems], component="MLCluster", name=name, config_key=None)
        super().__init__("mleks:cluster:MLCluster", name, opts)
        support = extended_support_warning(args.kubernetes_version)
        if support is not None:
            pulumi.log.warn(str(support.under(config_key)), resource=self)
        self.args = args
        self.region = region
        self.eks_name = cluster_name
        self.kubernetes_version = args.kubernetes_version
        self.private_subnet_ids = pulumi.Output.from_input(private_subnet_ids).apply(lambda ids: [str(i) for i in ids])
        self.private_subnet_inputs = list(private_subnet_ids) if isinstance(private_subnet_ids, (list, tuple)) else None
        self.node_policy_arns = node_role_policy_arns(partition_of(region))
        self.vpc_id = pulumi.Output.from_input(vpc_id)
        tags = {**(tags or {}), "mleks/cluster": cluster_name}
        self.tags = tags
        child = pulumi.ResourceOptions(parent=self)

        key_arn = kms.key_arn(
            f"{name}-secrets",
            given=args.secrets_kms_key_arn,
            description=f"EKS secrets envelope encryption for {cluster_name}",
            tags=tags,
            parent=self,
            # A key is never worth losing to a refactor that drops it from the program: retained, it
            # costs $1 a month and can still be scheduled for deletion (30-day window) by hand.
            retain_on_delete=True,
        )

        # Created before the cluster so EKS writes into a log group that
        # expires, instead of creating one that keeps logs forever.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=tags,
            # Audit logs outlive the program that made them; they still expire after retention_in_days.
            # A stack re-created under the same cluster name must import it (pulumi import) or delete it.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )

        self.node_role, attachments = create_node_role(name, cluster_name, self.node_policy_arns, tags=tags, parent=self)

        endpoint = args.endpoint
        self.cluster = eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=args.kubernetes_version,
            vpc_id=vpc_id,
            private_subnet_ids=private_subnet_ids,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=access_entries(args.admin_principals, partition_of(region)),
            encryption_config_key_arn=key_arn,
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            endpoint_private_access=True,
            endpoint_public_access=endpoint.public,
            public_access_cidrs=endpoint.public_access_cidrs or None,
            create_oidc_provider=True,
            # The VPC CNI is our own add-on below (its AWS rights on IRSA, not
            # on the node role); pulumi-eks leaves EKS's default in place.
            use_default_vpc_cni=True,
            deletion_protection=args.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        eks_cluster = self.cluster.eks_cluster
        self.cluster_name = eks_cluster.name
        self.cluster_security_group_id = eks_cluster.vpc_config.cluster_security_group_id
        self.oidc_provider_arn = self.cluster.oidc_provider_arn
        self.oidc_issuer = self.cluster.oidc_issuer
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(self.cluster.kubeconfig_json.apply(str))
        self.node_role_arn = self.node_role.arn

        # Made before any node exists: a node starts its aws-node pod at once,
        # and without these rights on the pod it could never become Ready.
        cni_role = ServiceAccountRole.of_cluster(
            f"{name}-vpc-cni",
            self,
            parent=self,
            namespace=VPC_CNI_NAMESPACE,
            service_account=VPC_CNI_SERVICE_ACCOUNT,
            managed_policy_arns=[vpc_cni_policy_arn(partition_of(region))],
        )
        self.vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster_name,
            addon_name="vpc-cni",
            service_account_role_arn=cni_role.role_arn,
            configuration_values=json.dumps(vpc_cni_configuration(), sort_keys=True),
            # Take over the self-managed copy EKS installs with the cluster.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=child,
        )
        self.node_prerequisites: list[pulumi.Resource] = [*attachments, self.vpc_cni, *node_dependencies]
        """What every node group of this cluster waits for: the node role's policies, the VPC CNI and egress."""

        spec = system_node_group_spec(f"{name}-system", args.system_nodes, tags)
        self.system_node_group, _, _ = create_node_group(
            spec,
            parent=self,
            cluster_name=self.cluster_name,
            kubernetes_version=args.kubernetes_version,
            node_role_arn=self.node_role_arn,
            subnet_ids=self.private_subnet_ids,
            security_group_id=self.cluster_security_group_id,
            depends_on=self.node_prerequisites,
        )
        self.node_role_attachments = attachments
        self.addon_prerequisites = [self.system_node_group]

        # Every Kubernetes object goes through this provider; making it depend
        # on the system nodes means no add-on is applied to a cluster that has
        # nowhere to run it.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_node_group]),
        )
        # Every cluster gets the resource metrics API: without it an HPA on CPU or memory never scales.
        # Imported here: the add-on modules import this one for its node labels.

        self.metrics_server = MetricsServer(f"{name}-metrics-server", cluster=self, opts=child)

        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer": self.oidc_issuer,
                "node_role_arn": self.node_role_arn,
            }
        )


def configured_region() -> str:
    """The program's ``aws:region``; a ``ConfigError`` when it is not set."""
    region = pulumi.Config("aws").get("region")
    if region is None:
        raise ConfigError("", None, "an AWS region: pass region=, or set aws:region (pulumi config set aws:region us-west-2)", "missing")
    return region
