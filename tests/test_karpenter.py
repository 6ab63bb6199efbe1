"""Karpenter for inference pools: what a Karpenter group renders, who owns what, what it costs, and what is refused.

Renders come from the real program under mocks (``with_karpenter`` moves each stack's spot inference
capacity to a Karpenter pool).  Expected values are written out here, from the upstream release the
project pins (aws/karpenter-provider-aws v1.14.1), not computed with the product's own helpers.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import pytest

from mleks.errors import ConfigError, ConfigErrors
from mleks.testing.mocks import Registration
from mleks.testing.render import plan_document
from stacks import offline
from stacks.offline import RenderResult
from tests.checks import KARPENTER_SIDS, config_errors, error_for, lint_findings, schema_errors, stack_file, with_karpenter

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"


@cache
def karpenter_render(stack: str) -> RenderResult:
    return offline.run(stack, config=with_karpenter(stack, stack_file(stack)))


def _one(result: RenderResult, type_: str, name: str) -> Registration:
    found = [r for r in result.resources if r.type == type_ and (r.inputs.get("metadata") or {}).get("name") == name]
    assert len(found) == 1, [r.urn for r in result.resources if r.type == type_]
    return found[0]


def _karpenter_release(result: RenderResult) -> Registration:
    [release] = [r for r in result.resources if r.type == RELEASE and r.inputs.get("chart") == "oci://public.ecr.aws/karpenter/karpenter"]
    return release


# -- both stacks, with and without a Karpenter group --------------------------------------------------


@pytest.mark.parametrize("stack", ["unified", "dedicated"])
def test_without_a_karpenter_group_no_karpenter_object_is_rendered(stack: str, rendered: dict[str, RenderResult]):
    result = rendered[stack]
    assert not [r for r in result.resources if r.type in (NODEPOOL, NODECLASS) or "karpenter" in r.name]


@pytest.mark.parametrize("stack", ["unified", "dedicated"])
def test_a_karpenter_group_is_a_node_pool_not_a_managed_node_group(stack: str):
    result = karpenter_render(stack)
    pool = "inference-spot" if stack == "unified" else "inference"
    _one(result, NODEPOOL, pool)
    _one(result, NODECLASS, pool)
    groups = [r.inputs.get("labels", {}).get("mleks.io/node-group") for r in result.resources if r.type == "aws:eks/nodeGroup:NodeGroup"]
    assert pool not in groups
    assert len([r for r in result.resources if r.type == RELEASE and "karpenter" in str(r.inputs.get("chart"))]) == 1
    # Karpenter runs in the inference cluster only, never beside the training groups.
    release = _karpenter_release(result)
    assert result.cluster_of(release).name == ("ml-unified" if stack == "unified" else "ml-prod-inference")


# -- the NodePool and EC2NodeClass ----------------------------------------------------------------------


def test_node_pool_keeps_what_a_group_means_labels_taint_types_and_gpu_limit():
    spec = _one(karpenter_render("unified"), NODEPOOL, "inference-spot").inputs["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["role"] == "inference" and labels["mleks.io/node-group"] == "inference-spot"
    assert labels["nvidia.com/gpu.present"] == "true" and labels["mleks.io/gpu-model"] == "l40s" and labels["mleks.io/ami-family"] == "al2023"
    assert spec["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert spec["template"]["spec"]["requirements"] == [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6e.xlarge", "g6e.2xlarge"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    # maxSize 6 nodes of the smallest type (one L40S each): at most 6 GPUs, so never more than 6 nodes.
    assert spec["limits"] == {"nvidia.com/gpu": "6"}
    assert spec["weight"] == 100
    assert spec["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "inference-spot"}


def test_node_pool_disruption_suits_serving_one_node_at_a_time_and_only_empty_nodes():
    spec = _one(karpenter_render("unified"), NODEPOOL, "inference-spot").inputs["spec"]
    assert spec["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "15m", "budgets": [{"nodes": "1"}]}
    assert spec["template"]["spec"]["expireAfter"] == "Never", "expiry ignores budgets: the pinned AMI changes by drift"
    assert spec["template"]["spec"]["terminationGracePeriod"] == "30m"


def test_node_class_pins_the_ami_requires_imdsv2_at_one_hop_and_encrypts_a_provisioned_gp3():
    result = karpenter_render("unified")
    spec = _one(result, NODECLASS, "inference-spot").inputs["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@v20260714"}]
    assert spec["metadataOptions"] == {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": 1, "httpTokens": "required"}
    assert spec["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {"volumeSize": "200Gi", "volumeType": "gp3", "iops": 6000, "throughput": 500, "encrypted": True, "deleteOnTermination": True},
        }
    ]
    assert spec["associatePublicIPAddress"] is False
    # Subnets and the node security group by the cluster's discovery tag, which the stack puts on them.
    tag = {"karpenter.sh/discovery/ml-unified": "ml-unified"}
    assert spec["subnetSelectorTerms"] == [{"tags": tag}] and spec["securityGroupSelectorTerms"] == [{"tags": tag}]
    tags = [r.inputs for r in result.resources if r.type == "aws:ec2/tag:Tag" and r.inputs.get("key") == "karpenter.sh/discovery/ml-unified"]
    subnets = [r for r in result.resources if r.type == "aws:ec2/subnet:Subnet" and "private" in r.name]
    assert len(tags) == len(subnets) + 1 and all(t["value"] == "ml-unified" for t in tags)
    # The node role: the kubelet's policies only, and an EC2_LINUX access entry so its nodes can join.
    [entry] = [r.inputs for r in result.resources if r.type == "aws:eks/accessEntry:AccessEntry"]
    assert entry["type"] == "EC2_LINUX" and entry["clusterName"] == "ml-unified"
    node_role = [r for r in result.resources if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment" and "karpenter-node-role" in r.name]
    assert sorted(r.inputs["policyArn"].rsplit("/", 1)[1] for r in node_role) == ["AmazonEC2ContainerRegistryPullOnly", "AmazonEKSWorkerNodePolicy"]


def test_a_parallel_pull_group_gets_the_same_node_config_on_karpenter():
    cfg = with_karpenter("unified", stack_file("unified"))
    cfg["mleks:nodeGroups"]["inference-spot"] |= {"instanceTypes": ["g6e.2xlarge", "g6e.4xlarge"], "fastStart": {"parallelPull": True}}
    spec = _one(offline.run("unified", config=cfg), NODECLASS, "inference-spot").inputs["spec"]
    assert "FastImagePull: true" in spec["userData"] and "application/node.eks.aws" in spec["userData"]
    assert spec["blockDeviceMappings"][0]["ebs"]["throughput"] == 1000


def test_karpenter_objects_validate_against_the_release_crds_strictly():
    result = karpenter_render("unified")
    objects = [(reg, obj) for reg, obj in result.kube_objects() if obj["kind"] in ("NodePool", "EC2NodeClass", "CustomResourceDefinition")]
    assert len(objects) == 1 + 1 + 5  # one pool in this variant, its node class, the release's five CRDs
    assert [e for _, obj in objects for e in schema_errors(obj, "1.35.0")] == []
    broken = json.loads(json.dumps(_one(result, NODEPOOL, "inference-spot").inputs))
    broken["spec"]["disruption"]["consolidateAfter"] = "ten minutes"
    assert schema_errors({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", **broken}, "1.35.0"), "the CRD schema is applied"


def test_the_crds_installed_are_the_release_files_unchanged():
    # sha256 of charts/karpenter/crds/* (= pkg/apis/crds/*) at aws/karpenter-provider-aws v1.14.1.
    expected = {
        "autoscaling.x-k8s.io_capacitybuffers.yaml": CRD_DIGESTS["capacitybuffers"],
        "karpenter.k8s.aws_ec2nodeclasses.yaml": CRD_DIGESTS["ec2nodeclasses"],
        "karpenter.sh_nodeclaims.yaml": CRD_DIGESTS["nodeclaims"],
        "karpenter.sh_nodeoverlays.yaml": CRD_DIGESTS["nodeoverlays"],
        "karpenter.sh_nodepools.yaml": CRD_DIGESTS["nodepools"],
    }
    folder = resources.files("mleks.catalogs.data").joinpath("karpenter", "crds")
    assert {f: hashlib.sha256(folder.joinpath(f).read_bytes()).hexdigest() for f in expected} == expected
    crds = [r for r in karpenter_render("unified").resources if r.type == "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"]
    assert sorted(r.inputs["metadata"]["name"] for r in crds) == [
        "capacitybuffers.autoscaling.x-k8s.io",
        "ec2nodeclasses.karpenter.k8s.aws",
        "nodeclaims.karpenter.sh",
        "nodeoverlays.karpenter.sh",
        "nodepools.karpenter.sh",
    ]


CRD_DIGESTS = {
    "capacitybuffers": "66fd5680b902b38fb9657ad2b432196a06c42b37d078e53be2e39909200a6342",
    "ec2nodeclasses": "62dec59f01c0972d4503ca3ed25f243ba9c2f561be0d964ce7a14c8df406132f",
    "nodeclaims": "96037dc241031fe0f7a09ddf78183d885ce6a1dfe115f7b3fbf8a12c564be694",
    "nodeoverlays": "6ff6199aff096cc87cd9508f8c5ae62c6d3452aa90c2828ee36380340f3ece62",
    "nodepools": "3bb64a20c80776b77aa19a699ebdaf34480a7b2e7ec4ef890b43225b3517f878",
}


# -- the controller ---------------------------------------------------------------------------------------


def test_controller_is_pinned_on_system_nodes_with_two_replicas_a_pdb_and_irsa():
    release = _karpenter_release(karpenter_render("unified"))
    inputs = release.inputs
    assert inputs["version"] == "1.14.1" and inputs["namespace"] == "kube-system" and inputs["skipCrds"] is True
    values = inputs["values"]
    assert values["controller"]["image"] == {
        "repository": "public.ecr.aws/karpenter/controller",
        "tag": "1.14.1",
        "digest": "sha256:445baefaaa689029cc12ac1f659b916b0b82fb14308ce536f8521fcf079116fa",
    }
    assert values["replicas"] == 2 and values["podDisruptionBudget"] == {"name": "karpenter", "maxUnavailable": 1}
    assert values["nodeSelector"] == {"role": "system"}
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert values["settings"]["clusterName"] == "ml-unified" and values["settings"]["interruptionQueue"]


def _controller_policy(result: RenderResult) -> dict[str, Any]:
    [policy] = [r for r in result.resources if r.type == "aws:iam/rolePolicy:RolePolicy" and "karpenter-irsa" in r.name]
    return dict(json.loads(policy.inputs["policy"]))


def test_controller_policy_is_upstreams_statements_scoped_to_this_cluster_its_node_role_and_queue():
    result = karpenter_render("unified")
    doc = _controller_policy(result)
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert tuple(by_sid) == KARPENTER_SIDS
    text = json.dumps(doc)
    assert "${" not in text, "every CloudFormation variable is filled in"
    # Scoped to this cluster: its tag on everything it creates, tags and deletes.
    assert by_sid["AllowScopedDeletion"]["Condition"]["StringEquals"] == {"aws:ResourceTag/kubernetes.io/cluster/ml-unified": "owned"}
    assert by_sid["AllowScopedEC2InstanceActionsWithTags"]["Condition"]["StringEquals"]["aws:RequestTag/eks:eks-cluster-name"] == "ml-unified"
    assert by_sid["AllowScopedEC2InstanceAccessActions"]["Resource"][0] == "arn:aws:ec2:us-west-2::image/*"
    assert by_sid["AllowAPIServerEndpointDiscovery"]["Resource"] == "arn:aws:eks:us-west-2:123456789012:cluster/ml-unified"
    # It may pass the Karpenter node role and no other, and read its own queue only.
    node_role = [r for r in result.resources if r.type == "aws:iam/role:Role" and r.name.endswith("karpenter-node-role")]
    assert len(node_role) == 1 and by_sid["AllowPassingInstanceRole"]["Resource"].endswith(":role/" + node_role[0].name.rsplit("/", 1)[-1])
    assert by_sid["AllowInterruptionQueueActions"]["Resource"].startswith("arn:aws:sqs:us-west-2:")
    assert by_sid["AllowInterruptionQueueActions"]["Action"] == ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
    # Resource "*" only where upstream has it, on reads that cannot be scoped.
    wildcard = {st["Sid"] for st in doc["Statement"] if st["Resource"] == "*"}
    assert wildcard == {"AllowZonalShiftStatusReadOnly", "AllowRegionalReadActions", "AllowPricingReadActions", "AllowUnscopedInstanceProfileListAction"}
    for sid in wildcard:
        actions = by_sid[sid]["Action"] if isinstance(by_sid[sid]["Action"], list) else [by_sid[sid]["Action"]]
        assert all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in actions), sid
    assert len(json.dumps(doc, separators=(",", ":"))) < 10_240, "an inline role policy is at most 10,240 characters"


def test_controller_policy_passes_the_linter_but_for_what_upstream_accepts():
    doc = _controller_policy(karpenter_render("unified"))
    assert lint_findings(doc, "permissions") == []
    # Exactly these are accepted (tests/checks.py UPSTREAM_KARPENTER_ACCEPTED says why); each shows up.
    raw = lint_findings(doc, "permissions", accept_upstream=False)
    assert sorted({f.split(": [", 1)[0].split(": ", 1)[0] for f in raw}) == [
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "PRIVILEGE_ESCALATION",
        "RESOURCE_MISMATCH",
        "RESOURCE_STAR",
    ]
    assert not [f for f in raw if "sqs:" in f], "the queue statement names the queue's ARN"


def test_interruption_queue_is_encrypted_tls_only_and_fed_by_the_five_upstream_rules():
    result = karpenter_render("unified")
    [queue] = [r for r in result.resources if r.type == "aws:sqs/queue:Queue"]
    assert queue.inputs["sqsManagedSseEnabled"] is True and queue.inputs["messageRetentionSeconds"] == 300
    [policy] = [r for r in result.resources if r.type == "aws:sqs/queuePolicy:QueuePolicy"]
    doc = json.loads(policy.inputs["policy"])
    assert doc["Statement"][0]["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert doc["Statement"][1] | {"Resource": "x"} == {
        "Sid": "DenyHTTP",
        "Effect": "Deny",
        "Action": "sqs:*",
        "Resource": "x",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Principal": "*",
    }
    patterns = sorted(
        (json.loads(r.inputs["eventPattern"])["source"][0], json.loads(r.inputs["eventPattern"])["detail-type"][0])
        for r in result.resources
        if r.type == "aws:cloudwatch/eventRule:EventRule"
    )
    assert patterns == [
        ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
        ("aws.ec2", "EC2 Instance State-change Notification"),
        ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
        ("aws.health", "AWS Health Event"),
    ]
    targets = [r for r in result.resources if r.type == "aws:cloudwatch/eventTarget:EventTarget"]
    assert len(targets) == 5 and all(t.inputs["targetId"] == "KarpenterInterruptionQueueTarget" and ":sqs:" in t.inputs["arn"] for t in targets)


# -- nothing left running ------------------------------------------------------------------------------


def _depends_on(result: RenderResult, reg: Registration) -> set[str]:
    """Every URN ``reg`` waits for, directly or through what it waits for, and through its parents' waits."""
    by_urn = {r.urn: r for r in result.resources}
    seen: set[str] = set()
    todo = list(reg.dependencies)
    while todo:
        urn = todo.pop()
        if urn in seen or urn not in by_urn:
            continue
        seen.add(urn)
        todo.extend(by_urn[urn].dependencies)
        todo.extend(r.urn for r in result.children_of(urn))
    return seen


def test_node_pool_goes_before_its_controller_iam_queue_and_subnets_on_destroy():
    result = karpenter_render("unified")
    pool = _one(result, NODEPOOL, "inference-spot")
    waits = {result.by_urn()[u].type for u in _depends_on(result, pool)}
    # Pulumi deletes in reverse dependency order: all of these outlive the pool, so the controller is
    # still running, with its rights, while it drains and terminates the pool's nodes.
    for needed in (
        RELEASE,
        "aws:iam/rolePolicy:RolePolicy",
        "aws:sqs/queue:Queue",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:eks/accessEntry:AccessEntry",
        "aws:ec2/tag:Tag",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/natGateway:NatGateway",
        NODECLASS,
    ):
        assert needed in waits, needed
    assert pool.inputs["metadata"]["annotations"] == {"pulumi.com/deletionPropagationPolicy": "foreground"}
    assert pool.custom_timeouts.get("delete") == "45m", "30m of drain (terminationGracePeriod) and 15m for EC2"


# -- what the tools say ------------------------------------------------------------------------------------


def test_cost_of_a_karpenter_pool_is_nothing_idle_and_its_gpu_limit_at_the_dearest_type():
    from mleks.review.cost import estimate

    est = estimate(plan_document(karpenter_render("unified")))
    [item] = [i for i in est.items if i.kind == "node-pool"]
    assert item.name == "inference-spot" and item.idle == 0.0
    # 6 GPUs: 6 g6e.2xlarge (1 GPU each, the dearer of the two types), at on-demand (spot's upper bound).
    assert "at most 6 × spot g6e.2xlarge" in item.detail
    assert any("spot prices vary" in n for n in item.notes)
    assert item.max is not None and item.max > 6 * 2.0


def test_cold_start_on_a_karpenter_pool_uses_its_batch_window():
    from mleks.review.startup import estimate

    [first] = [e for e in estimate(plan_document(karpenter_render("unified"))) if e.group == "inference-spot"]
    assert first.reaction_s == 10.0 and first.launch_s == 80.0 and first.total_s is not None


def test_diff_says_a_template_change_replaces_the_pools_nodes_and_a_limit_change_does_not():
    from mleks.review.diff import diff_plans

    base = plan_document(karpenter_render("unified"))
    cfg = with_karpenter("unified", stack_file("unified"))
    cfg["mleks:nodeGroups"]["inference-spot"]["diskSizeGib"] = 300
    cfg["mleks:nodeGroups"]["inference-spot"]["maxSize"] = 8
    head = plan_document(offline.run("unified", config=cfg))
    diff = diff_plans(base, head, "unified")
    changed = {(r.type, r.name): r for r in diff.resources}
    assert set(changed) == {(NODECLASS, "inference-spot"), (NODEPOOL, "inference-spot")}, "nothing else changes"
    assert "nodes launched from it drift" in changed[(NODECLASS, "inference-spot")].summary
    pool = changed[(NODEPOOL, "inference-spot")]
    assert pool.action == "update" and "no node is replaced" in pool.summary


# -- bad input, refused before anything is registered ---------------------------------------------------


def _errors(change: Any) -> list[ConfigError]:
    cfg = with_karpenter("unified", stack_file("unified"))
    change(cfg["mleks:nodeGroups"], cfg)
    return config_errors("unified", cfg)


def test_karpenter_on_a_train_group_is_refused():
    err = error_for(_errors(lambda g, _: g["train-g6e"].update(autoscaler="karpenter")), "mleks:nodeGroups.train-g6e.autoscaler")
    assert err.value == "karpenter" and "#701" in err.problem


def test_a_gpu_limit_below_the_largest_types_gpus_is_refused():
    def change(groups: dict[str, Any], _: Any) -> None:
        groups["inference-spot"]["instanceTypes"] = ["g6e.xlarge", "g6e.12xlarge"]
        groups["inference-spot"]["karpenter"]["maxGpus"] = 2

    err = error_for(_errors(change), "mleks:nodeGroups.inference-spot.karpenter.maxGpus")
    assert err.value == 2 and "g6e.12xlarge" in err.problem and "at least 4" in err.accepted


def test_a_non_gpu_or_mixed_architecture_type_is_refused():
    errors = _errors(lambda g, _: g["inference-spot"].update(instanceTypes=["g6e.xlarge", "m7i.large"]))
    assert error_for(errors, "mleks:nodeGroups.inference-spot.instanceTypes[1]").value == "m7i.large"
    errors = _errors(lambda g, _: g["inference-spot"].update(instanceTypes=["g6e.xlarge", "g5g.xlarge"]))
    assert error_for(errors, "mleks:nodeGroups.inference-spot.instanceTypes").problem


def test_a_service_asking_more_gpus_than_the_pools_largest_type_is_refused():
    def change(_: Any, cfg: dict[str, Any]) -> None:
        cfg["mleks:inferenceServices"]["densenet"] |= {"gpus": 2, "nodeGroup": "inference-spot"}

    assert error_for(_errors(change), "mleks:inferenceServices.densenet.gpus").value == 2


def test_a_service_on_a_karpenter_pool_and_a_cluster_autoscaler_group_is_refused():
    def change(groups: dict[str, Any], cfg: dict[str, Any]) -> None:
        groups["inference-ondemand"] |= {"autoscaler": "cluster-autoscaler", "minSize": 0}

    err = error_for(_errors(change), "mleks:inferenceServices.densenet.nodeGroup")
    assert "two autoscalers" in err.problem and "inference-spot is scaled by karpenter" in err.problem


def test_karpenter_on_a_version_the_release_does_not_support_is_refused():
    from mleks.catalogs import karpenter

    [err] = karpenter.cluster_errors(kubernetes_version="1.29", region="us-west-2", version_key="cluster.kubernetesVersion", region_key="region")
    assert err.key == "cluster.kubernetesVersion" and "1.30" in err.accepted
    [err] = karpenter.cluster_errors(kubernetes_version="1.35", region="cn-north-1", version_key="v", region_key="region")
    assert err.value == "cn-north-1" and "ECR Public" in err.problem


def test_pool_settings_that_karpenter_would_refuse_are_refused_with_every_problem_at_once():
    def change(groups: dict[str, Any], _: Any) -> None:
        groups["inference-spot"] |= {"minSize": 1, "karpenter": {"consolidateAfter": "10 minutes", "disruptionBudget": "all", "weight": 500}}

    errors = _errors(change)
    keys = {e.key for e in errors}
    assert {
        "mleks:nodeGroups.inference-spot.minSize",
        "mleks:nodeGroups.inference-spot.karpenter.consolidateAfter",
        "mleks:nodeGroups.inference-spot.karpenter.disruptionBudget",
        "mleks:nodeGroups.inference-spot.karpenter.weight",
    } <= keys, keys


def test_bottlerocket_pools_must_pin_their_release():
    err = error_for(_errors(lambda g, _: g["inference-spot"].update(amiFamily="bottlerocket")), "mleks:nodeGroups.inference-spot.karpenter.amiVersion")
    assert "v1.50.0" in err.accepted


def test_node_repair_settings_for_a_karpenter_group_are_refused():
    def change(_: Any, cfg: dict[str, Any]) -> None:
        cfg["mleks:nodeRepair"]["nodeGroups"]["inference-spot"] = {"maxParallelNodesRepairedCount": 2}

    assert "Karpenter replaces its own" in error_for(_errors(change), "mleks:nodeRepair.nodeGroups.inference-spot").problem


def test_library_refuses_a_karpenter_group_in_a_cluster_without_the_controller():
    """A Python user gets the same check before anything is registered."""
    from mleks.testing.harness import run

    def program() -> None:
        from mleks import GpuNodeGroup, GpuNodeGroupArgs, MLCluster, MLClusterArgs

        cluster = MLCluster("c", MLClusterArgs(), cluster_name="c", region="us-west-2", vpc_id="vpc-1", private_subnet_ids=["subnet-1", "subnet-2"])
        GpuNodeGroup("pool", GpuNodeGroupArgs(role="inference", instance_types=["g6e.xlarge"], autoscaler="karpenter"), cluster=cluster)

    with pytest.raises(ConfigErrors) as info:
        run(program, project="p", stack="s", config={"aws:region": "us-west-2"})
    assert info.value.registered_urns == [] or all("GpuNodeGroup" not in u for u in info.value.registered_urns)  # type: ignore[attr-defined]
    [err] = info.value.errors
    assert err.key.endswith("cluster") and "no Karpenter controller" in err.problem


# -- second look: what the review found ---------------------------------------------------------------


def test_do_not_disrupt_annotates_the_pods_of_a_service_on_a_karpenter_pool():
    cfg = with_karpenter("unified", stack_file("unified"))
    cfg["mleks:inferenceServices"]["densenet"]["doNotDisrupt"] = True
    result = offline.run("unified", config=cfg)
    [deployment] = [obj for _, obj in result.kube_objects() if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "densenet"]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}
    # Only Karpenter reads it: on groups it does not own, it is refused.
    plain = stack_file("unified")
    plain["mleks:inferenceServices"]["densenet"]["doNotDisrupt"] = True
    assert error_for(config_errors("unified", plain), "mleks:inferenceServices.densenet.doNotDisrupt").value is True


def test_a_pod_grace_period_longer_than_the_pools_drain_is_refused():
    def change(_: Any, cfg: dict[str, Any]) -> None:
        cfg["mleks:inferenceServices"]["densenet"]["terminationGracePeriodSeconds"] = 1800

    err = error_for(_errors(change), "mleks:inferenceServices.densenet.terminationGracePeriodSeconds")
    assert "less than 1800" in err.accepted and "inference-spot" in err.accepted


def test_only_the_clusters_own_rules_may_send_to_the_interruption_queue():
    result = karpenter_render("unified")
    [policy] = [r for r in result.resources if r.type == "aws:sqs/queuePolicy:QueuePolicy"]
    send = json.loads(policy.inputs["policy"])["Statement"][0]
    rules = sorted(r.outputs["arn"] for r in result.resources if r.type == "aws:cloudwatch/eventRule:EventRule")
    assert send["Action"] == "sqs:SendMessage" and send["Condition"] == {"ArnEquals": {"aws:SourceArn": rules}} and len(rules) == 5


def test_controller_is_told_its_region_since_imds_is_out_of_a_pods_reach():
    env = _karpenter_release(karpenter_render("unified")).inputs["values"]["controller"]["env"]
    assert env == [{"name": "AWS_REGION", "value": "us-west-2"}]


def test_adding_an_instance_type_is_worded_as_replacing_only_nodes_that_no_longer_match():
    from mleks.review.diff import diff_plans

    base = plan_document(karpenter_render("unified"))
    cfg = with_karpenter("unified", stack_file("unified"))
    cfg["mleks:nodeGroups"]["inference-spot"]["instanceTypes"] = ["g6e.xlarge", "g6e.2xlarge", "g6e.4xlarge"]
    diff = diff_plans(base, plan_document(offline.run("unified", config=cfg)), "unified")
    [pool] = [r for r in diff.resources if r.type == NODEPOOL]
    assert "replaces the nodes that no longer meet them" in pool.summary


def test_karpenters_own_tag_keys_are_refused_in_mleks_tags():
    cfg = stack_file("unified")
    cfg["mleks:tags"]["karpenter.sh/nodepool"] = "x"
    assert error_for(config_errors("unified", cfg), "mleks:tags.karpenter.sh/nodepool").value == "x"
