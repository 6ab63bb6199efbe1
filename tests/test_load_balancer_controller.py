"""The AWS Load Balancer Controller: installed where an internal NLB is asked for, as upstream ships it."""

from __future__ import annotations

import copy
import json

import pytest
from parliament import analyze_policy_string

from mleks import load_balancer_controller as lbc
from mleks.errors import ConfigErrors
from stacks import offline
from stacks.offline import RenderResult
from tests.checks import UPSTREAM_LBC_ACCEPTED, lint_findings

RELEASE = "kubernetes:helm.sh/v3:Release"


def _releases(result: RenderResult):
    return [r for r in result.of_type(RELEASE) if r.inputs["chart"] == lbc.CHART]


def test_the_dedicated_inference_cluster_gets_the_controller_because_its_service_asks_for_an_internal_nlb(rendered):
    [release] = _releases(rendered["dedicated"])
    assert rendered["dedicated"].cluster_of(release).name == "ml-prod-inference"
    assert _releases(rendered["unified"]) == []  # no service there asks for an NLB


def test_the_release_is_the_pinned_chart_on_the_system_nodes_with_irsa_and_a_pdb(rendered):
    result = rendered["dedicated"]
    [release] = _releases(result)
    inputs = release.inputs
    assert (inputs["version"], inputs["repositoryOpts"]["repo"], inputs["namespace"]) == ("3.5.0", "https://aws.github.io/eks-charts", "kube-system")
    values = inputs["values"]
    assert values["nodeSelector"] == {"role": "system"} and values["replicaCount"] == 2
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert values["image"] == {"repository": "public.ecr.aws/eks/aws-load-balancer-controller", "tag": "v3.5.0"}
    # IMDS is closed to pods (hop limit 1), so the controller is told where it runs.
    assert values["region"] == "eu-west-1" and values["vpcId"].startswith("vpc-") and values["clusterName"] == "ml-prod-inference"
    [account_role] = [r for r in result.descendants_of(result.ancestor_of_type(release, lbc.TOKEN).urn) if r.type == "mleks:iam:ServiceAccountRole"]
    assert values["serviceAccount"] == {
        "create": True,
        "name": "aws-load-balancer-controller",
        "annotations": {"eks.amazonaws.com/role-arn": account_role.outputs["role_arn"]},
    }
    assert values["createIngressClassResource"] is False and values["enableServiceMutatorWebhook"] is False and values["keepTLSSecret"] is True
    assert values["securityContext"]["capabilities"] == {"drop": ["ALL"]} and values["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_controllers_role_carries_the_upstream_policy_for_the_partition(rendered):
    result = rendered["dedicated"]
    [policy] = [r for r in result.of_type("aws:iam/rolePolicy:RolePolicy") if "lb-controller" in r.name]
    assert json.loads(policy.inputs["policy"]) == lbc.iam_policy("aws")
    trust = [r for r in result.of_type("aws:iam/role:Role") if "lb-controller" in r.name]
    condition = json.loads(trust[0].inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:aws-load-balancer-controller" in condition.values()


@pytest.mark.parametrize(("partition", "arn_prefix"), [("aws", "arn:aws:"), ("aws-cn", "arn:aws-cn:"), ("aws-us-gov", "arn:aws-us-gov:")])
def test_each_partitions_policy_names_its_own_arns(partition: str, arn_prefix: str):
    arns = [r for st in lbc.iam_policy(partition)["Statement"] for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]) if r != "*"]
    assert arns and all(a.startswith(arn_prefix) for a in arns)


def test_parliament_finds_nothing_in_the_upstream_policy_beyond_the_accepted_findings():
    findings = [f"{f.issue}: {f.detail}" for f in analyze_policy_string(json.dumps(lbc.iam_policy("aws")), include_community_auditors=True).findings]
    assert findings and all(f.startswith(UPSTREAM_LBC_ACCEPTED) for f in findings)
    assert lint_findings(lbc.iam_policy("aws"), "permissions") == []


def test_the_internal_nlb_service_waits_for_the_controller(rendered):
    result = rendered["dedicated"]
    [release] = _releases(result)
    [nlb] = [r for r, o in result.kube_objects() if o["kind"] == "Service" and o["spec"].get("type") == "LoadBalancer"]
    assert release.urn in nlb.dependencies


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1"])
def test_outside_the_commercial_partition_the_image_comes_from_the_regions_addon_registry(region: str):
    repo = lbc.image_repository(region)
    assert repo.endswith("/amazon/aws-load-balancer-controller") and region in repo and "public.ecr.aws" not in repo


def test_asking_for_an_nlb_with_the_controller_turned_off_fails_before_registration():
    cfg = copy.deepcopy(offline.load_stack_file("dedicated"))
    cfg["mleks:loadBalancerController"] = {"install": "never"}
    with pytest.raises(ConfigErrors) as info:
        offline.run("dedicated", config=cfg)
    [err] = [e for e in info.value.errors if e.key.endswith(".exposure")]
    assert err.key == "mleks:inferenceServices.chat.exposure" and err.value == "internal-nlb" and "loadBalancerController.install" in err.accepted
    assert info.value.registered_urns == []  # type: ignore[attr-defined]


def test_install_always_puts_the_controller_in_every_cluster():
    cfg = copy.deepcopy(offline.load_stack_file("dedicated"))
    cfg["mleks:loadBalancerController"] = {"install": "always"}
    result = offline.run("dedicated", config=cfg)
    assert sorted(result.cluster_of(r).name for r in _releases(result)) == ["ml-prod-inference", "ml-prod-train"]
