"""Run the real Pulumi program offline, under Pulumi's mock engine.

Tests and ``python -m stacks.render`` share this harness: it loads a stack's
``Pulumi.<stack>.yaml``, sets it as the program's config, runs
:func:`stacks.program.main` with mocks instead of a cloud, and returns every
resource the program registered, with its parent, inputs, dependencies and
resource options.  No AWS account, credentials, network or Pulumi CLI is used.

Two traps of the stock mock monitor are handled here (see
``shared/reference/pulumi-notes.md``):

* resource references: the stock monitor re-hydrates them on a worker thread
  and fails with "Future attached to a different loop"; this monitor tells the
  SDK it does not support them, so URNs travel instead;
* remote components (``eks:index:Cluster``) return resources as outputs
  (``eksCluster``); the mock returns those as resource references to a
  registered fake ``aws:eks/cluster:Cluster``.

Mock outputs are derived from resource names only, so the same config always
gives byte-identical results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _sync_await

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_ID = "123456789012"


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


@dataclass
class RenderResult:
    """Everything one offline run produced."""

    stack: str
    resources: list[Registration]
    outputs: dict[str, Any]
    secret_exports: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.resources}

    def children_of(self, urn: str) -> list[Registration]:
        return [r for r in self.resources if r.parent == urn]

    def descendants_of(self, urn: str) -> list[Registration]:
        out: list[Registration] = []
        frontier = [urn]
        while frontier:
            current = frontier.pop()
            for child in self.children_of(current):
                out.append(child)
                frontier.append(child.urn)
        return out

    def kube_objects(self) -> list[tuple[Registration, dict[str, Any]]]:
        """Every Kubernetes object, as the manifest the provider would apply."""
        out = []
        for reg in self.resources:
            if reg.type.startswith("kubernetes:") and reg.custom and not reg.type.startswith("kubernetes:helm"):
                out.append((reg, {k: v for k, v in reg.inputs.items() if v is not None}))
        return out

    def cluster_of(self, reg: Registration) -> Registration | None:
        """The MLCluster a resource belongs to (through its parents or its provider)."""
        found = self.ancestor_of_type(reg, "mleks:cluster:MLCluster")
        provider = self.by_urn().get(reg.provider)
        if found is None and provider is not None:
            found = self.ancestor_of_type(provider, "mleks:cluster:MLCluster")
        return found

    def ancestor_of_type(self, reg: Registration, type_: str) -> Registration | None:
        index = self.by_urn()
        current = index.get(reg.parent)
        while current is not None:
            if current.type == type_:
                return current
            current = index.get(current.parent)
        return None


def _arn(service: str, resource: str, region: str = "us-west-2") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


class _Mocks(pulumi.runtime.Mocks):
    """Deterministic fake outputs for the resource types our components use."""

    def __init__(self, monitor_ref: Callable[[], RecordingMonitor], region: str) -> None:
        self._monitor_ref = monitor_ref
        self.region = region

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
            names = [f"{self.region}{s}" for s in "abcdef"]
            return {"names": names, "zoneIds": [f"usw2-az{i}" for i in range(1, 7)]}, []
        if tok == "aws:ec2/getCapacityBlockReservation:getCapacityBlockReservation":
            # Every mocked Capacity Block is in the region's second AZ.
            rid = args.args.get("id", "cr-x")
            return {"id": rid, "availabilityZone": f"{self.region}b", "reservationType": "capacity-block"}, []
        if tok == "aws:ec2/getSubnets:getSubnets":
            # Mocked subnet ids end with their AZ (see aws:ec2/subnet:Subnet above).
            filters = {f["name"]: list(f["values"]) for f in args.args.get("filters", [])}
            ids = [s for s in filters.get("subnet-id", []) if any(s.endswith(az) for az in filters.get("availability-zone", []))]
            return {"id": self.region, "ids": ids}, []
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


def load_stack_file(stack: str) -> dict[str, Any]:
    """The ``config:`` mapping of ``stacks/Pulumi.<stack>.yaml``."""
    path = PROJECT_ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.exists():
        available = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in path.parent.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path}; available stacks: {available}")
    return (yaml.safe_load(path.read_text()) or {}).get("config", {}) or {}


def project_name() -> str:
    return str(yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())["name"])


def run(
    stack: str,
    config: dict[str, Any] | None = None,
    program: Callable[[], None] | None = None,
) -> RenderResult:
    """Run ``program`` (default: the real one) for ``stack`` under mocks.

    ``config`` replaces the stack file's config when given (tests use it to
    try bad values).  Keys are as in the YAML file (``mleks:topology``,
    ``aws:region``).
    """
    cfg = load_stack_file(stack) if config is None else config
    project = project_name()
    region = str(cfg.get("aws:region", "us-west-2"))

    monitor_box: list[RecordingMonitor] = []
    mocks = _Mocks(lambda: monitor_box[0], region)
    monitor = RecordingMonitor(mocks)
    monitor_box.append(monitor)

    # Fresh runtime state per run so several runs can share one process.
    pulumi.runtime.config.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in cfg.items()},
        [],
    )
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    # set_mocks makes and closes a root stack; the program needs an open one
    # (so that ``pulumi.export`` lands), which run_in_stack creates.
    pulumi.runtime.settings.ROOT.set(None)

    exported: dict[str, Any] = {}
    if program is None:
        from stacks import program as real_program

        program = real_program.main
    entry = program

    # The SDK's own entry point for a program, driven the way
    # ``pulumi.runtime.test`` drives it: on the thread's default event loop.
    try:
        _sync_await(pulumi.runtime.stack.run_in_stack(entry))
    except Exception as err:
        # Lets tests prove that bad config fails before anything is registered.
        err.registered_urns = sorted(monitor.registrations)  # type: ignore[attr-defined]
        raise

    for urn, outs in monitor.registered_outputs.items():
        if urn.split("::")[2] == "pulumi:pulumi:Stack":
            exported.update(outs)
    secret_exports: list[str] = []
    for urn, outs in monitor.registered_outputs.items():
        if urn.split("::")[2] == "pulumi:pulumi:Stack":
            secret_exports.extend(monitor.secret_outputs.get(urn, []))
        if urn in monitor.registrations:
            monitor.registrations[urn].outputs = outs
            monitor.registrations[urn].secret_outputs = monitor.secret_outputs.get(urn, [])
    resources = sorted(monitor.registrations.values(), key=lambda r: r.urn)
    return RenderResult(stack=stack, resources=resources, outputs=exported, secret_exports=sorted(secret_exports))
