"""Pulumi mocks that understand pulumi-eks, and the monitor the SDK's mock engine needs.

Two traps of the stock mock engine are handled here
(see ``shared/reference/pulumi-notes.md`` in this project's repository):

* resource references: the stock monitor re-hydrates them on a worker thread
  and fails with "Future attached to a different loop"; :class:`RecordingMonitor`
  tells the SDK it does not support them, so URNs travel instead;
* remote components (``eks:index:Cluster``) return resources as outputs
  (``eksCluster``); :class:`MleksMocks` returns those as resource references
  to a registered fake ``aws:eks/cluster:Cluster``.

:func:`set_mocks` installs both, with the program's config.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2

ACCOUNT_ID = "123456789012"
_ZONE_LETTERS = {"us-east-1": "abcdef", "us-west-2": "abcd"}


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


def _arn(service: str, resource: str, region: str = "us-west-2") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


class MleksMocks(pulumi.runtime.Mocks):
    """Deterministic fake outputs for the resource types mleks uses, pulumi-eks's remote components included.

    The stock mocks leave a remote component's outputs empty, so ``MLCluster``
    fails on ``cluster.eks_cluster.name``; these return what pulumi-eks would
    (the cluster as a resource reference, its OIDC issuer, kubeconfig, security
    groups), and ASG names for node groups.  Outputs derive from resource names
    only, so the same program always gives the same values.

    Subclass it to record or assert: override :meth:`new_resource` or
    :meth:`call` and defer to ``super()`` for the rest.
    """

    def __init__(self, region: str | None = None) -> None:
        """``region``: what ARNs and hosts name.  Default: the ``aws:region`` config that :func:`set_mocks` is given."""
        self.region = region or "us-west-2"
        self.existing_cluster_version = "1.35"
        """What a looked-up existing cluster reports as its version."""
        self._monitor: RecordingMonitor | None = None

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
            # Mocked subnet ids end with their AZ (see aws:ec2/subnet:Subnet above).
            filters = {f["name"]: list(f["values"]) for f in args.args.get("filters", [])}
            ids = [s for s in filters.get("subnet-id", []) if any(s.endswith(az) for az in filters.get("availability-zone", []))]
            return {"id": self.region, "ids": ids}, []
        if tok == "aws:eks/getCluster:getCluster":
            # An existing cluster, as ExistingCluster looks it up.
            name = args.args.get("name", "existing")
            minor = self.existing_cluster_version
            return {
                "id": name,
                "name": name,
                "arn": _arn("eks", f"cluster/{name}", self.region),
                "version": minor,
                "endpoint": f"https://{name}.gr7.{self.region}.eks.amazonaws.com",
                "certificateAuthorities": [{"data": "bW9jay1jYQ=="}],
                "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{name.upper().replace('-', '')}"}]}],
                "vpcConfig": {
                    "vpcId": f"vpc-{name}",
                    "subnetIds": [f"subnet-{name}-{self.region}{z}" for z in "abc"],
                    "clusterSecurityGroupId": f"sg-{name}-cluster",
                },
            }, []
        if tok == "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider":
            url = str(args.args.get("url", "")).removeprefix("https://")
            return {"arn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{url}", "url": url}, []
        if tok == "aws:ec2/getSubnet:getSubnet":
            sid = args.args.get("id", "subnet-x")
            return {"id": sid, "availabilityZone": f"{self.region}a"}, []
        raise NotImplementedError(f"offline mocks do not implement the call {tok!r}")

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

    def RegisterResource(self, request):  # noqa: N802
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
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
) -> RecordingMonitor:
    """Run Pulumi resources against ``mocks`` (default: :class:`MleksMocks`) from now on, with ``config``.

    ``config`` keys are as in a stack file (``aws:region``, ``myproject:key``);
    values may be any YAML value.  Returns the monitor, whose ``registrations``
    hold every resource registered so far (type, name, parent, inputs,
    dependencies, options).  A test then builds its resources as a program would::

        monitor = mleks.testing.set_mocks(project="p", stack="dev", config={"aws:region": "us-east-1"})
        cluster = mleks.MLCluster(...)
    """
    config = dict(config or {})
    if mocks is None:
        region = config.get("aws:region")
        mocks = MleksMocks(str(region) if region else None)
    monitor = RecordingMonitor(mocks)
    mocks._monitor = monitor
    pulumi.runtime.config.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}, [])
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    return monitor
