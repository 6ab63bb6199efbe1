"""Pulumi mocks that understand pulumi-eks, and the monitor the SDK's mock engine needs.

Two traps of the stock mock engine are handled here
(see ``shared/reference/pulumi-notes.md`` in this project's repository):

* resource references: the stock monitor re-hydrates them on a worker thread
  and fails with "Future attached to a different loop"; :class:`RecordingMonitor`
  tells the SDK it does not support them, so URNs travel instead;
* remote components (``eks:index:Cluster``) return resources as outputs
  (``eksCluster``); :class:`MleksMocks` returns those as resource references
  to a registered fake ``aws:eks/cluster:Cluster``.

An existing cluster (``mleks.ExistingCluster``) is looked up, not created, so
what it reports cannot come from the program: :class:`ExistingClusterFacts`
says what the lookups answer (its version, region, node role and subnets).

:func:`set_mocks` installs both, with the program's config.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2

from mleks.catalogs.eks_versions import kubernetes_version_status, supported_kubernetes_versions
from mleks.catalogs.partitions import PARTITION_PATTERN, check_region, partition_of
from mleks.errors import ConfigError, ConfigErrors

ACCOUNT_ID = "123456789012"
_ZONE_LETTERS = {"us-east-1": "abcdef", "us-west-2": "abcd"}

DEFAULT_EXISTING_CLUSTER_VERSION = "1.35"
"""The version a looked-up cluster reports unless :class:`ExistingClusterFacts` say otherwise (what the mocks always answered)."""

# As IAM names roles (and as mleks.ml_cluster checks principals): partition, 12-digit account, optional path.
_ROLE_ARN = re.compile(rf"^arn:({PARTITION_PATTERN}):iam::\d{{12}}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{{1,64}}$")
# Real ids are subnet-<8 or 17 hex digits>; readable ones (subnet-private-a) are allowed, as the mocks' own are.
_SUBNET_ID = re.compile(r"^subnet-[0-9A-Za-z][0-9A-Za-z-]*$")


@dataclass(frozen=True)
class ExistingClusterFacts:
    """What an existing EKS cluster, looked up by name, reports in an offline run.

    ``mleks.ExistingCluster`` reads its cluster with ``aws.eks.get_cluster``;
    offline, :class:`MleksMocks` answer that lookup (and the ones that follow
    it) from these facts, so a program written for a real cluster renders as
    it would against that cluster.  Every field defaults to what the mocks
    answer without facts, so ``ExistingClusterFacts()`` changes no render.

    Attributes:
        version: the cluster's Kubernetes minor, e.g. ``"1.33"``: one EKS
            supports today (``supported_kubernetes_versions()``).
            ``ExistingCluster`` fails unless its ``kubernetes_version`` matches.
        region: the AWS region the cluster is in: its ARN, API endpoint and
            OIDC issuer name it, and its subnets are in its Availability Zones.
            ``None``: the region the lookup runs in (the ``region`` of the AWS
            provider the lookup uses, else the ``aws:region`` config).
            ``ExistingCluster`` fails unless its ``region`` matches.
        node_role_arn: the IAM role the cluster's nodes run as.  It is what
            ``aws.eks.get_node_group`` answers for any of the cluster's node
            groups, and what ``aws.iam.get_role`` answers for that role's name,
            so a program that reuses its nodes' role gets this ARN.  ``None``:
            a role named after the node group (``<cluster>-<group>-node-role``).
        subnet_ids: the subnets of the cluster's VPC config, where
            ``ExistingCluster`` puts GPU nodes unless given
            ``private_subnet_ids``; at least two, as EKS requires.  The first is
            in the region's first Availability Zone (``<region>a``), the second
            in its second, and so on (Capacity Block groups pick theirs by AZ).
            ``None``: ``subnet-<cluster>-<region>a``, ``...b`` and ``...c``.

    Bad values raise :class:`~mleks.errors.ConfigErrors`, each keyed
    ``ExistingClusterFacts.<field>``.
    """

    version: str = DEFAULT_EXISTING_CLUSTER_VERSION
    region: str | None = None
    node_role_arn: str | None = None
    subnet_ids: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.subnet_ids is not None and not isinstance(self.subnet_ids, str):
            # A tuple, so the facts stay hashable and nobody changes them behind the mocks' back.
            object.__setattr__(self, "subnet_ids", tuple(self.subnet_ids))
        problems = [e.under("ExistingClusterFacts") for e in _fact_errors(self)]
        if problems:
            raise ConfigErrors(problems)


def _facts_argument_errors(existing_cluster: object, existing_clusters: object) -> list[ConfigError]:
    """Problems with the ``existing_cluster``/``existing_clusters`` arguments themselves (the facts check their own fields)."""
    accepted = "mleks.testing.ExistingClusterFacts(version=..., region=..., node_role_arn=..., subnet_ids=...)"
    errors: list[ConfigError] = []
    if existing_cluster is not None and not isinstance(existing_cluster, ExistingClusterFacts):
        errors.append(ConfigError("existing_cluster", existing_cluster, accepted, "not an ExistingClusterFacts"))
    if existing_clusters is None:
        return errors
    if not isinstance(existing_clusters, Mapping):
        errors.append(ConfigError("existing_clusters", existing_clusters, f"a mapping of EKS cluster name to {accepted}", "not a mapping"))
        return errors
    for name, facts in existing_clusters.items():
        if not isinstance(name, str) or not name:
            errors.append(ConfigError("existing_clusters", name, "EKS cluster names (the cluster_name given to ExistingCluster) as keys", "not a cluster name"))
        elif not isinstance(facts, ExistingClusterFacts):
            errors.append(ConfigError(f"existing_clusters[{name!r}]", facts, accepted, "not an ExistingClusterFacts"))
    return errors


def _fact_errors(facts: ExistingClusterFacts) -> list[ConfigError]:
    """What is wrong with each field of ``facts``, keyed by the field's name (``version``, ``subnet_ids[1]``)."""
    errors: list[ConfigError] = []
    supported = supported_kubernetes_versions()
    if not isinstance(facts.version, str):
        errors.append(ConfigError("version", facts.version, f'a quoted minor version, one of {supported} (e.g. "{supported[-1]}")', "not a string"))
    elif kubernetes_version_status(facts.version) == "unsupported":
        errors.append(ConfigError("version", facts.version, f"a minor version EKS supports today, one of {supported}", "not a version EKS supports"))
    if facts.region is not None and not isinstance(facts.region, str):
        errors.append(ConfigError("region", facts.region, 'an AWS region such as "us-west-2"', "not a string"))
    elif facts.region is not None:
        try:
            check_region(facts.region)
        except ConfigError as err:
            errors.append(ConfigError("region", err.value, err.accepted, err.problem))
    if facts.node_role_arn is not None:
        role_accepted = "an IAM role ARN such as arn:aws:iam::123456789012:role/platform-nodes"
        if not isinstance(facts.node_role_arn, str) or not _ROLE_ARN.match(facts.node_role_arn):
            errors.append(ConfigError("node_role_arn", facts.node_role_arn, role_accepted, "not an IAM role ARN"))
        elif facts.region is not None and facts.node_role_arn.split(":")[1] != partition_of(facts.region):
            # A role in another partition cannot be assumed by instances in this region.
            wanted = partition_of(facts.region)
            errors.append(
                ConfigError(
                    "node_role_arn", facts.node_role_arn, f"a role ARN in partition {wanted} (arn:{wanted}:iam::...)", f"not in {facts.region}'s partition"
                )
            )
    if facts.subnet_ids is not None:
        subnet_accepted = "at least two subnet ids, such as subnet-0abc1234 and subnet-0def5678"
        if isinstance(facts.subnet_ids, str):
            errors.append(ConfigError("subnet_ids", facts.subnet_ids, subnet_accepted + ", as a list", "a string, not a list of ids"))
        else:
            if len(facts.subnet_ids) < 2:
                errors.append(
                    ConfigError("subnet_ids", list(facts.subnet_ids), subnet_accepted, "EKS clusters have subnets in at least two Availability Zones")
                )
            for i, sid in enumerate(facts.subnet_ids):
                if not isinstance(sid, str) or not _SUBNET_ID.match(sid):
                    errors.append(ConfigError(f"subnet_ids[{i}]", sid, "a subnet id such as subnet-0abc1234", "not a subnet id"))
                elif sid in facts.subnet_ids[:i]:
                    errors.append(ConfigError(f"subnet_ids[{i}]", sid, "each subnet once", "a duplicate"))
    return errors


@dataclass
class Registration:
    """One resource as the program registered it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    provider: str = ""
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    protect: bool = False
    retain_on_delete: bool = False
    additional_secret_outputs: list[str] = field(default_factory=list)
    secret_outputs: list[str] = field(default_factory=list)
    """Keys of the registered (component) outputs that are secrets."""
    aliases: list[str] = field(default_factory=list)
    """URNs the resource had before (its ``aliases`` option), in the mock engine's URN scheme."""
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    """The ``custom_timeouts`` option: ``create``, ``update`` and ``delete`` where set."""


def _arn(service: str, resource: str, region: str = "us-west-2") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


class MleksMocks(pulumi.runtime.Mocks):
    """Deterministic fake outputs for the resource types mleks uses, pulumi-eks's remote components included.

    The stock mocks leave a remote component's outputs empty, so ``MLCluster``
    fails on ``cluster.eks_cluster.name``; these return what pulumi-eks would
    (the cluster as a resource reference, its OIDC issuer, kubeconfig, security
    groups), and ASG names for node groups.  Outputs derive from resource names
    only, so the same program always gives the same values.

    Existing clusters (``aws.eks.get_cluster``) answer from
    :class:`ExistingClusterFacts`: ``existing_clusters[name]`` for the cluster
    named ``name``, else ``existing_cluster``, else the defaults.

    Subclass it to record or assert: override :meth:`new_resource` or
    :meth:`call` and defer to ``super()`` for the rest.
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        existing_cluster: ExistingClusterFacts | None = None,
        existing_clusters: Mapping[str, ExistingClusterFacts] | None = None,
    ) -> None:
        """``region``: what ARNs and hosts name.  Default: the ``aws:region`` config that :func:`set_mocks` is given.

        ``existing_cluster``: what every looked-up EKS cluster reports;
        ``existing_clusters``: per cluster, by its EKS name, for programs that
        look up several (these win over ``existing_cluster``).  Default: the
        :class:`ExistingClusterFacts` defaults.
        """
        self.region = region or "us-west-2"
        problems = _facts_argument_errors(existing_cluster, existing_clusters)
        if problems:
            raise ConfigErrors(problems)
        self.existing_cluster = existing_cluster
        """What a looked-up cluster reports unless ``existing_clusters`` names it (``None``: the defaults)."""
        self.existing_clusters: dict[str, ExistingClusterFacts] = dict(existing_clusters or {})
        """What the cluster of each EKS name reports."""
        # Availability Zones of the subnets the lookups have reported, for the subnet lookups that follow.
        self._subnet_zones: dict[str, str] = {}
        self._monitor: RecordingMonitor | None = None

    @property
    def existing_cluster_version(self) -> str:
        """The version a looked-up cluster reports (``existing_cluster.version``); kept for tests written before the facts."""
        return (self.existing_cluster or ExistingClusterFacts()).version

    @existing_cluster_version.setter
    def existing_cluster_version(self, version: str) -> None:
        self.existing_cluster = replace(self.existing_cluster or ExistingClusterFacts(), version=version)

    def facts_for(self, cluster_name: str) -> ExistingClusterFacts:
        """The facts the EKS cluster named ``cluster_name`` reports."""
        found = self.existing_clusters.get(cluster_name) or self.existing_cluster
        # Built here rather than once: the default version is checked against today's EKS calendar,
        # which only matters to programs that do look a cluster up.
        return found if found is not None else ExistingClusterFacts()

    def _monitor_ref(self) -> RecordingMonitor:
        if self._monitor is None:
            raise RuntimeError("MleksMocks need their monitor: install them with mleks.testing.set_mocks")
        return self._monitor

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        name, inputs = args.name, dict(args.inputs)
        rid = f"{name}-id"
        # Remote components (pulumi-eks) have outputs whose names clash
        # with their inputs but not their types; echo inputs for custom
        # resources only.
        state = dict(inputs) if args.custom else {}
        t = args.typ
        if t == "eks:index:Cluster":
            cluster_name = inputs.get("name") or name
            issuer = f"https://oidc.eks.{self.region}.amazonaws.com/id/{cluster_name.upper().replace('-', '')}"
            eks_urn = self._register_fake(
                "aws:eks/cluster:Cluster",
                f"{name}-eksCluster",
                f"{cluster_name}",
                {
                    "name": cluster_name,
                    "arn": _arn("eks", f"cluster/{cluster_name}", self.region),
                    "version": inputs.get("version"),
                    "endpoint": f"https://{cluster_name}.gr7.{self.region}.eks.amazonaws.com",
                    "certificateAuthority": {"data": "bW9jay1jYQ=="},
                    "identities": [{"oidcs": [{"issuer": issuer}]}],
                    "vpcConfig": {"clusterSecurityGroupId": f"sg-{cluster_name}-cluster"},
                },
            )
            kubeconfig = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": cluster_name, "cluster": {"server": f"https://{cluster_name}.mock"}}],
                "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": "aws"}}],
                "current-context": cluster_name,
                "users": [{"name": "aws", "user": {}}],
            }
            state.update(
                {
                    "eksCluster": self._ref(eks_urn, cluster_name),
                    "kubeconfig": kubeconfig,
                    "kubeconfigJson": json.dumps(kubeconfig, sort_keys=True),
                    "oidcProviderArn": _arn("iam", f"oidc-provider/oidc.eks.{self.region}.amazonaws.com/id/{cluster_name}", "").replace("iam::", "iam::"),
                    "oidcProviderUrl": issuer,
                    "oidcIssuer": issuer.removeprefix("https://"),
                    "clusterSecurityGroupId": f"sg-{cluster_name}-cluster",
                    "nodeSecurityGroupId": f"sg-{cluster_name}-node",
                }
            )
            return f"{cluster_name}-id", state
        if t == "aws:ec2/subnet:Subnet":
            # Ids end with the AZ, so the getSubnets mock below can filter by zone.
            return f"subnet-{name}-{inputs.get('availabilityZone')}", state
        if t == "aws:ec2/vpc:Vpc":
            return f"vpc-{name}", state
        if t == "aws:eks/nodeGroup:NodeGroup":
            asg = f"eks-{name}-asg"
            state.update(
                {
                    "arn": _arn("eks", f"nodegroup/{inputs.get('clusterName')}/{name}", self.region),
                    "resources": [{"autoscalingGroups": [{"name": asg}], "remoteAccessSecurityGroupId": ""}],
                    "nodeGroupName": inputs.get("nodeGroupName") or name,
                }
            )
        elif t in ("aws:iam/role:Role", "aws:iam/policy:Policy"):
            kind = "role" if t.endswith("Role") else "policy"
            state.update({"arn": f"arn:aws:iam::{ACCOUNT_ID}:{kind}/{name}", "name": inputs.get("name") or name})
        elif t == "aws:kms/key:Key":
            state.update({"arn": _arn("kms", f"key/{name}", self.region), "keyId": name})
        elif t == "aws:ec2/launchTemplate:LaunchTemplate":
            state.update({"latestVersion": 1, "arn": _arn("ec2", f"launch-template/{name}", self.region)})
        elif t == "aws:ec2/placementGroup:PlacementGroup":
            state.update({"name": inputs.get("name") or name, "arn": _arn("ec2", f"placement-group/{name}", self.region)})
        elif t == "aws:fsx/lustreFileSystem:LustreFileSystem":
            # As FSx names them: <id>.fsx.<region>.amazonaws.com, and an 8-character mount name.
            state.update({"dnsName": f"{rid}.fsx.{self.region}.amazonaws.com", "mountName": "mockmnt1", "arn": _arn("fsx", f"file-system/{rid}", self.region)})
        elif t == "aws:sqs/queue:Queue":
            queue = inputs.get("name") or name
            state.update({"arn": _arn("sqs", queue, self.region), "name": queue, "url": f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{queue}"})
        elif t == "aws:cloudwatch/eventRule:EventRule":
            state.update({"arn": _arn("events", f"rule/{inputs.get('name') or name}", self.region), "name": inputs.get("name") or name})
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            state.update({"arn": _arn("logs", f"log-group:{inputs.get('name')}", self.region)})
        elif t == "random:index/randomPassword:RandomPassword":
            # Derived from the name so renders stay byte-identical; never a real secret.
            state.update({"result": f"offline-token-{name}", "bcryptHash": f"offline-bcrypt-{name}"})
        elif t.startswith("kubernetes:") and "metadata" in inputs:
            meta = dict(inputs.get("metadata") or {})
            meta.setdefault("name", name)
            state["metadata"] = meta
        state.setdefault("arn", _arn("mock", f"{t}/{name}", self.region))
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        tok = args.token
        if tok == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}, []
        if tok == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock", "userId": "mock"}, []
        if tok == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}, []
        if tok == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # Regular AZs as the region has them: most have three; us-east-1 six and us-west-2 four
            # (AWS Global Infrastructure, "Regions and Availability Zones").
            letters = _ZONE_LETTERS.get(self.region, "abc")
            names = [f"{self.region}{s}" for s in letters]
            return {"names": names, "zoneIds": [f"{self.region}-az{i}" for i in range(1, len(letters) + 1)]}, []
        if tok == "aws:ec2/getManagedPrefixList:getManagedPrefixList":
            return {"id": "pl-mock-" + str(args.args.get("name", "")), "name": args.args.get("name", "")}, []
        if tok == "aws:ec2/getCapacityBlockReservation:getCapacityBlockReservation":
            # Every mocked Capacity Block is in the region's second AZ.
            rid = args.args.get("id", "cr-x")
            return {"id": rid, "availabilityZone": f"{self.region}b", "reservationType": "capacity-block"}, []
        if tok == "aws:ec2/getSubnets:getSubnets":
            # Subnets an existing cluster reported are in the zones it gave them; mocked subnet
            # ids end with their AZ (see aws:ec2/subnet:Subnet above).
            filters = {f["name"]: list(f["values"]) for f in args.args.get("filters", [])}
            zones = filters.get("availability-zone", [])
            ids = [
                s for s in filters.get("subnet-id", []) if (self._subnet_zones[s] in zones if s in self._subnet_zones else any(s.endswith(az) for az in zones))
            ]
            return {"id": self.region, "ids": ids}, []
        if tok == "aws:eks/getCluster:getCluster":
            return self._existing_cluster(str(args.args.get("name", "existing")), self._lookup_region(args)), []
        if tok == "aws:eks/getNodeGroup:getNodeGroup":
            return self._existing_node_group(str(args.args.get("clusterName", "existing")), str(args.args.get("nodeGroupName", "nodes")), args), []
        if tok == "aws:iam/getRole:getRole":
            return self._role(str(args.args.get("name", "role"))), []
        if tok == "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider":
            url = str(args.args.get("url", "")).removeprefix("https://")
            return {"arn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{url}", "url": url}, []
        if tok == "aws:ec2/getSubnet:getSubnet":
            sid = args.args.get("id", "subnet-x")
            return {"id": sid, "availabilityZone": self._subnet_zones.get(sid, f"{self.region}a")}, []
        raise NotImplementedError(f"offline mocks do not implement the call {tok!r}")

    # -- existing clusters -------------------------------------------------
    def _lookup_region(self, args: pulumi.runtime.MockCallArgs) -> str:
        """The region a lookup runs in: its AWS provider's ``region``, else the mocks' (``aws:region``)."""
        # A provider reference is "<urn>::<id>"; programs spanning regions pass one per region.
        urn = args.provider.rsplit("::", 1)[0] if args.provider else ""
        provider = self._monitor.registrations.get(urn) if self._monitor is not None else None
        region = provider.inputs.get("region") if provider is not None and provider.type == "pulumi:providers:aws" else None
        return region if isinstance(region, str) and region else self.region

    def _existing_subnets(self, name: str, facts: ExistingClusterFacts, region: str) -> list[str]:
        if facts.subnet_ids is None:
            return [f"subnet-{name}-{region}{z}" for z in "abc"]
        letters = _ZONE_LETTERS.get(region, "abc")
        subnets = list(facts.subnet_ids)
        for i, sid in enumerate(subnets):
            # In the region's zones in turn, so Capacity Block groups find theirs by AZ.
            self._subnet_zones[sid] = f"{region}{letters[i % len(letters)]}"
        return subnets

    def _existing_cluster(self, name: str, lookup_region: str) -> dict[str, Any]:
        """``aws.eks.get_cluster``: the cluster named ``name`` as its facts describe it."""
        facts = self.facts_for(name)
        region = facts.region or lookup_region
        return {
            "id": name,
            "name": name,
            "arn": _arn("eks", f"cluster/{name}", region),
            "version": facts.version,
            "endpoint": f"https://{name}.gr7.{region}.eks.amazonaws.com",
            "certificateAuthorities": [{"data": "bW9jay1jYQ=="}],
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{name.upper().replace('-', '')}"}]}],
            "vpcConfig": {
                "vpcId": f"vpc-{name}",
                "subnetIds": self._existing_subnets(name, facts, region),
                "clusterSecurityGroupId": f"sg-{name}-cluster",
            },
        }

    def _existing_node_group(self, cluster: str, group: str, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        """``aws.eks.get_node_group``: a running managed group of the cluster, on its facts' role and subnets."""
        facts = self.facts_for(cluster)
        region = facts.region or self._lookup_region(args)
        role = facts.node_role_arn or f"arn:aws:iam::{ACCOUNT_ID}:role/{cluster}-{group}-node-role"
        return {
            "id": f"{cluster}:{group}",
            "arn": _arn("eks", f"nodegroup/{cluster}/{group}/mock", region),
            "clusterName": cluster,
            "nodeGroupName": group,
            "nodeRoleArn": role,
            "subnetIds": self._existing_subnets(cluster, facts, region),
            "version": facts.version,
            "status": "ACTIVE",
            "amiType": "AL2023_x86_64_STANDARD",
            "capacityType": "ON_DEMAND",
            "diskSize": 20,
            "instanceTypes": ["m6i.large"],
            "labels": {},
            "launchTemplates": [],
            "releaseVersion": "",
            "remoteAccesses": [],
            "resources": [{"autoscalingGroups": [{"name": f"eks-{group}-asg"}], "remoteAccessSecurityGroupId": ""}],
            "scalingConfigs": [{"desiredSize": 2, "maxSize": 3, "minSize": 2}],
            "tags": {},
            "taints": [],
        }

    def _role(self, name: str) -> dict[str, Any]:
        """``aws.iam.get_role``: an existing cluster's node role by its name (with its path), else a role of that name."""
        known = [self.existing_cluster, *self.existing_clusters.values()]
        arn = next((f.node_role_arn for f in known if f is not None and f.node_role_arn and f.node_role_arn.rsplit("/", 1)[1] == name), None)
        arn = arn or f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        # arn:...:role/<path>/<name>: IAM reports the path with slashes around it, "/" for none.
        prefix = arn.split(":role/", 1)[1].rpartition("/")[0]
        path = f"/{prefix}/" if prefix else "/"
        return {
            "id": name,
            "name": name,
            "arn": arn,
            "path": path,
            "uniqueId": f"AROAMOCK{name.upper()}"[:32],
            "assumeRolePolicy": json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
            ),
            "description": "",
            "maxSessionDuration": 3600,
            "permissionsBoundary": "",
            "createDate": "2024-01-01T00:00:00Z",
            "roleLastUseds": [],
            "tags": {},
        }

    # -- helpers -----------------------------------------------------------
    def _register_fake(self, type_: str, name: str, id_: str, state: dict) -> str:
        monitor = self._monitor_ref()
        urn = "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])
        monitor.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        return urn

    @staticmethod
    def _ref(urn: str, id_: str) -> dict:
        return {rpc._special_sig_key: rpc._special_resource_sig, "urn": urn, "id": id_}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that records each registration's options and links."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        # The stock monitor deserializes each resource's inputs for the mocks; keep them
        # (per thread: the SDK may call the monitor from several) instead of doing it twice.
        self._seen = threading.local()
        answer = mocks.new_resource

        def new_resource(args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
            self._seen.inputs = args.inputs
            return answer(args)

        self.mocks.new_resource = new_resource  # type: ignore[method-assign]
        self.registrations: dict[str, Registration] = {}
        self._stack_urn = ""
        self.registered_outputs: dict[str, dict[str, Any]] = {}
        self.secret_outputs: dict[str, list[str]] = {}

    def SupportsFeature(self, request):  # noqa: N802 (gRPC method name)
        has = request.id not in ("outputValues", "resourceReferences")
        return type("SupportsFeatureResponse", (object,), {"hasSupport": has})

    def GetDeploymentInfo(self, request):  # noqa: N802
        info = super().GetDeploymentInfo(request)
        features = [f for f in info.supportedFeatures if f != resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES]
        return resource_pb2.DeploymentInfo(supportedFeatures=features)

    def RegisterResourceOutputs(self, request):  # noqa: N802
        raw = rpc.deserialize_properties(request.outputs)
        self.secret_outputs[request.urn] = sorted(k for k, v in raw.items() if _is_secret(v))
        self.registered_outputs[request.urn] = _plain(raw)
        return super().RegisterResourceOutputs(request)

    def _alias_urns(self, request: Any) -> list[str]:
        """The URNs ``request``'s aliases stand for, built as the mock engine builds URNs (the parent's last type, then ``$``)."""
        out = list(request.aliasURNs)
        for alias in request.aliases:
            if alias.urn:
                out.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            # A resource without a parent is the stack's child.
            parent = parent or self._stack_urn
            qualified = f"{parent.split('::')[2].split('$')[-1]}$" if parent else ""
            stack, project = spec.stack or pulumi.get_stack(), spec.project or pulumi.get_project()
            out.append(f"urn:pulumi:{stack}::{project}::{qualified}{spec.type or request.type}::{spec.name or request.name}")
        return sorted(set(out))

    def RegisterResource(self, request):  # noqa: N802
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self._stack_urn = response.urn
            return response
        urn = response.urn
        state = self.resources[urn].state if urn in self.resources else {}
        inputs = getattr(self._seen, "inputs", None)
        self._seen.inputs = None
        if inputs is None:
            inputs = rpc.deserialize_properties(request.object)
        self.registrations[urn] = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            custom=bool(request.custom),
            inputs=_plain(inputs),
            outputs=_plain(state),
            dependencies=sorted(set(request.dependencies)),
            # A provider reference is "<urn>::<id>"; keep the URN.
            provider=request.provider.rsplit("::", 1)[0] if request.provider else "",
            ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            aliases=self._alias_urns(request),
            custom_timeouts={k: v for k in ("create", "update", "delete") if (v := getattr(request.customTimeouts, k, ""))},
        )
        return response


def _is_secret(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return True
        return any(_is_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_is_secret(v) for v in value)
    return False


def _plain(value: Any) -> Any:
    """Strip SDK wrappers (secrets, unknowns) so values are plain JSON data."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _plain(value.get("value"))
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        # The mock engine returns every number as a float (4.0).
        return int(value)
    return value


def set_mocks(
    mocks: MleksMocks | None = None,
    *,
    project: str,
    stack: str,
    config: dict[str, Any] | None = None,
    preview: bool = False,
    existing_cluster: ExistingClusterFacts | None = None,
    existing_clusters: Mapping[str, ExistingClusterFacts] | None = None,
) -> RecordingMonitor:
    """Run Pulumi resources against ``mocks`` (default: :class:`MleksMocks`) from now on, with ``config``.

    ``config`` keys are as in a stack file (``aws:region``, ``myproject:key``);
    values may be any YAML value.  ``existing_cluster`` / ``existing_clusters``:
    what looked-up EKS clusters report (see :class:`MleksMocks`); give them to
    ``MleksMocks(...)`` instead when you pass ``mocks``.  Returns the monitor,
    whose ``registrations`` hold every resource registered so far (type, name,
    parent, inputs, dependencies, options).  A test then builds its resources
    as a program would::

        monitor = mleks.testing.set_mocks(project="p", stack="dev", config={"aws:region": "us-east-1"})
        cluster = mleks.MLCluster(...)
    """
    config = dict(config or {})
    if mocks is None:
        region = config.get("aws:region")
        mocks = MleksMocks(str(region) if region else None, existing_cluster=existing_cluster, existing_clusters=existing_clusters)
    elif existing_cluster is not None or existing_clusters is not None:
        # Silently changing (or ignoring) facts on mocks the caller built would hide which ones a test runs with.
        raise TypeError("set_mocks: give existing_cluster/existing_clusters to MleksMocks(...) when you pass mocks, not both")
    monitor = RecordingMonitor(mocks)
    mocks._monitor = monitor
    pulumi.runtime.config.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}, [])
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    return monitor
