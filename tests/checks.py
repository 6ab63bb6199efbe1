"""Real-world checks shared by the tests: Kubernetes schema and IAM lint."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
from parliament import analyze_policy_string

from stacks.offline import RenderResult

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


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Violations of the official schema, strict mode (unknown fields are errors)."""
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


def lint_findings(doc: dict[str, Any], kind: str) -> list[str]:
    """Parliament's findings for one document, minus the known trust-policy noise."""
    policy = analyze_policy_string(json.dumps(doc), include_community_auditors=True)
    findings = [f"{f.issue}: {f.detail}" for f in policy.findings]
    if kind == "trust":
        findings = [f for f in findings if f.split(":", 1)[0] not in _TRUST_POLICY_NOISE]
    return findings
