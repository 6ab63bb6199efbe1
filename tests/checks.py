"""Real-world checks shared by the tests: Kubernetes schema and IAM lint."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from parliament import analyze_policy_string

from mleks.catalogs.node_daemonsets import NodeAddons, gpu_node_load
from mleks.errors import ConfigError, ConfigErrors
from stacks import offline
from stacks.offline import RenderResult

# The heaviest DaemonSet set on an AL2023 GPU node without EFA (CloudWatch, both CSI node drivers):
# 720m and 647Mi with the headroom row.  Pure tests size pods against it; stack tests get theirs from the cluster.
HEAVY_LOAD = gpu_node_load(NodeAddons(observability="cloudwatch", ebs_csi=True, fsx_csi=True), ami_family="al2023", efa=False)

# Findings parliament always raises on a correct IRSA trust policy: trust
# policies have no Resource (parliament reads every policy as an identity
# policy), and its list of federation sources predates EKS OIDC providers.
_TRUST_POLICY_NOISE = {"MALFORMED", "UNKNOWN_FEDERATION_SOURCE"}


def kube_version(result: RenderResult, reg: Any) -> str:
    """The Kubernetes version of the cluster an object is applied to, e.g. "1.35.0"."""
    cluster = result.cluster_of(reg)
    assert cluster is not None, f"{reg.urn} is not inside an MLCluster"
    eks = [c for c in result.children_of(cluster.urn) if c.type == "eks:index:Cluster"]
    return f"{eks[0].inputs['version']}.0"


SCHEMAS = Path(__file__).parent / "fixtures" / "schemas"
# Custom resources and the CRD schema they are checked against (its source is in the file's $comment).
CUSTOM_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
    ("karpenter.sh/v1", "NodePool"): "karpenter-nodepool-v1.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter-ec2nodeclass-v1.json",
    ("kueue.x-k8s.io/v1beta2", "ResourceFlavor"): "kueue-resourceflavor-v1beta2.json",
    ("kueue.x-k8s.io/v1beta2", "ClusterQueue"): "kueue-clusterqueue-v1beta2.json",
    ("kueue.x-k8s.io/v1beta2", "LocalQueue"): "kueue-localqueue-v1beta2.json",
}


def _strict(schema: Any) -> Any:
    """A CRD schema in which unknown fields are errors, as the API server's pruning would drop them silently."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def _custom_validator(file: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(json.loads((SCHEMAS / file).read_text())))


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Violations of the official schema, strict mode (unknown fields are errors); custom resources
    against their CRD's schema."""
    custom = CUSTOM_SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if custom is not None:
        return [f"{obj['kind']}/{obj['metadata'].get('name')}: {'/'.join(map(str, e.path))}: {e.message}" for e in _custom_validator(custom).iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = "/".join(str(p) for p in err.path)
        return [f"{obj['kind']}/{obj['metadata'].get('name')}: {path}: {err.message}"]
    return []


def iam_documents(result: RenderResult) -> list[tuple[str, str, dict[str, Any]]]:
    """Every IAM policy document the stack registers: (resource name, kind, document)."""
    docs = []
    for reg in result.resources:
        if reg.type == "aws:iam/role:Role":
            docs.append((reg.name, "trust", json.loads(reg.inputs["assumeRolePolicy"])))
        elif reg.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
            docs.append((reg.name, "permissions", json.loads(reg.inputs["policy"])))
    return docs


# KMS grant management is a permissions-management action to parliament's
# community auditor.  The EBS CSI controller needs exactly these three on the
# volume key (EKS user guide storage/ebs-csi), and only for grants to an AWS
# service (kms:GrantIsForAWSResource); nothing else of that class is accepted.
_KMS_GRANT_ACTIONS = {"kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"}


def _only_service_grants(doc: dict[str, Any]) -> bool:
    """Every statement that manages KMS grants is the documented one: grants for AWS resources, on named keys."""
    grant_statements = [st for st in doc["Statement"] if _KMS_GRANT_ACTIONS & set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])]
    return bool(grant_statements) and all(
        set(st["Action"]) == _KMS_GRANT_ACTIONS
        and st.get("Condition") == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
        and all(":key/" in r for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]))
        for st in grant_statements
    )


# The AWS Load Balancer Controller's IAM policy is upstream's, verbatim
# (docs/install/iam_policy*.json at the pinned release), so that it keeps
# working as the controller does.  What parliament says of it, and why each
# is accepted (tests/test_load_balancer_controller.py pins the exact list):
# * RESOURCE_STAR: the describe calls cannot be scoped; the create, tag and
#   modify calls are scoped by conditions on the elbv2.k8s.aws/cluster tag
#   instead of ARNs (the names are the controller's to choose), which
#   parliament does not read;
# * UNKNOWN_ACTION elasticloadbalancing:ModifyIpPools and
#   UNKNOWN_CONDITION_FOR_ACTION elasticloadbalancing:CreateAction: both newer
#   than parliament 1.6.4's IAM definitions.
UPSTREAM_LBC_ACCEPTED = (
    "RESOURCE_STAR",
    "UNKNOWN_ACTION: Unknown action elasticloadbalancing:ModifyIpPools",
    "UNKNOWN_CONDITION_FOR_ACTION: Unknown condition elasticloadbalancing:CreateAction",
)


def _is_upstream_lbc_policy(doc: dict[str, Any]) -> bool:
    from mleks.load_balancer_controller import _POLICY_FILES, iam_policy

    return any(doc == iam_policy(partition) for partition in _POLICY_FILES)


# Karpenter's controller policy is upstream's statements, unchanged (the six managed policies of the
# getting-started CloudFormation template at v1.14.1, tests/test_karpenter.py UPSTREAM_SIDS).  What
# parliament says of them, and why each is accepted (test_karpenter pins the exact list):
# * PERMISSIONS_MANAGEMENT_ACTIONS and PRIVILEGE_ESCALATION: iam:PassRole (to the Karpenter node role
#   only) with ec2:RunInstances, and the instance-profile actions: Karpenter launches nodes with that role
#   and manages their instance profiles, scoped by cluster tags parliament does not read;
# * RESOURCE_MISMATCH on ec2:RunInstances / CreateFleet / CreateLaunchTemplate: upstream splits the
#   resources of one call across statements with different conditions, which parliament reads one by one;
# * RESOURCE_MISMATCH on ssm:GetParameter: the public parameters' ARN has no account (upstream's form);
# * RESOURCE_STAR arc-zonal-shift:GetManagedResource: scoped by its ResourceIdentifier condition instead.
UPSTREAM_KARPENTER_ACCEPTED = (
    "PERMISSIONS_MANAGEMENT_ACTIONS",
    "PRIVILEGE_ESCALATION",
    "RESOURCE_MISMATCH: [{'action': 'ec2:RunInstances'",
    "RESOURCE_MISMATCH: [{'action': 'ec2:CreateFleet'",
    "RESOURCE_MISMATCH: [{'action': 'ec2:CreateLaunchTemplate'",
    "RESOURCE_MISMATCH: [{'action': 'ssm:GetParameter'",
    "RESOURCE_STAR: ['arc-zonal-shift:GetManagedResource']",
)
KARPENTER_SIDS = (
    "AllowScopedEC2InstanceAccessActions",
    "AllowScopedEC2LaunchTemplateAccessActions",
    "AllowScopedEC2InstanceActionsWithTags",
    "AllowScopedResourceCreationTagging",
    "AllowScopedResourceTagging",
    "AllowScopedDeletion",
    "AllowPassingInstanceRole",
    "AllowScopedInstanceProfileCreationActions",
    "AllowScopedInstanceProfileTagActions",
    "AllowScopedInstanceProfileActions",
    "AllowAPIServerEndpointDiscovery",
    "AllowInterruptionQueueActions",
    "AllowZonalShiftStatusReadOnly",
    "AllowRegionalReadActions",
    "AllowSSMReadActions",
    "AllowPricingReadActions",
    "AllowUnscopedInstanceProfileListAction",
    "AllowInstanceProfileReadActions",
)
"""The 18 statements of the six controller policies of upstream's getting-started CloudFormation template
(website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml at c88abbbad), in order."""


def _is_upstream_karpenter_policy(doc: dict[str, Any]) -> bool:
    return {st.get("Sid") for st in doc["Statement"]} == set(KARPENTER_SIDS)


def lint_findings(doc: dict[str, Any], kind: str, *, accept_upstream: bool = True) -> list[str]:
    """Parliament's findings for one document, minus the known trust-policy noise, the documented EBS KMS
    grants and the accepted findings of the upstream load balancer controller policy."""
    policy = analyze_policy_string(json.dumps(doc), include_community_auditors=True)
    findings = [f"{f.issue}: {f.detail}" for f in policy.findings]
    if kind == "trust":
        findings = [f for f in findings if f.split(":", 1)[0] not in _TRUST_POLICY_NOISE]
    elif _only_service_grants(doc):
        findings = [f for f in findings if f.split(":", 1)[0] != "PERMISSIONS_MANAGEMENT_ACTIONS"]
    elif _is_upstream_lbc_policy(doc):
        findings = [f for f in findings if not f.startswith(UPSTREAM_LBC_ACCEPTED)]
    elif accept_upstream and _is_upstream_karpenter_policy(doc):
        findings = [f for f in findings if not f.startswith(UPSTREAM_KARPENTER_ACCEPTED)]
    return findings


def _term_matches(labels: dict[str, str], term: dict[str, Any]) -> bool:
    for expr in term.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        ok = {
            "In": value in expr.get("values", []),
            "NotIn": value not in expr.get("values", []),
            "Exists": value is not None,
            "DoesNotExist": value is None,
        }[op]
        if not ok:
            return False
    return True


def groups_for_pod(result: RenderResult, reg: Any, pod: dict[str, Any]) -> list[str]:
    """The GPU node groups in ``reg``'s cluster a pod can land on: its nodeSelector and required node affinity, as the scheduler reads them."""
    terms = (((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    cluster = result.cluster_of(reg)
    out = []
    for group in result.of_type("aws:eks/nodeGroup:NodeGroup"):
        labels = group.inputs.get("labels") or {}
        if result.cluster_of(group) != cluster or labels.get("role") == "system":
            continue
        if not all(labels.get(k) == v for k, v in (pod.get("nodeSelector") or {}).items()):
            continue
        # Terms are ORed; expressions within a term are ANDed.
        if terms and not any(_term_matches(labels, t) for t in terms):
            continue
        out.append(labels["mleks.io/node-group"])
    return sorted(out)


def stack_file(stack: str) -> dict[str, Any]:
    """A private copy of an example stack's config, to change one value of."""
    return copy.deepcopy(offline.load_stack_file(stack))


def config_errors(stack: str, cfg: dict[str, Any]) -> list[ConfigError]:
    """The errors running ``stack`` with ``cfg`` raises; fails the test if anything was registered first."""
    with pytest.raises(ConfigErrors) as info:
        offline.run(stack, config=cfg)
    assert info.value.registered_urns == [], "nothing may be registered before the config is valid"  # type: ignore[attr-defined]
    return info.value.errors


def error_for(errors: list[ConfigError], key: str) -> ConfigError:
    """The first error at ``key``; fails the test, listing every error, when there is none."""
    matching = [e for e in errors if e.key == key]
    assert matching, [str(e) for e in errors]
    return matching[0]


def with_karpenter(stack: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` (a copy of ``stack``'s file) with its spot inference capacity on a Karpenter pool.

    unified: ``inference-spot`` becomes a Karpenter pool (weight 100), ``inference-ondemand`` an
    always-on floor of one managed node with no autoscaler, the mix the docs recommend.  dedicated: the
    one inference group becomes a Karpenter pool.  Either way cluster-autoscaler has no group left.
    """
    groups = cfg["mleks:nodeGroups"]
    if stack == "unified":
        groups["inference-spot"] |= {"autoscaler": "karpenter", "karpenter": {"weight": 100, "consolidateAfter": "15m"}}
        groups["inference-ondemand"] |= {"autoscaler": "none", "minSize": 1}
        repairs = cfg.get("mleks:nodeRepair", {}).get("nodeGroups", {})
        repairs.pop("inference-spot", None)
    else:
        groups["inference"] |= {"autoscaler": "karpenter", "capacityType": "spot"}
    cfg.pop("mleks:clusterAutoscaler", None)
    return cfg
