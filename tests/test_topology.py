"""The two stacks have the shape the design promises, with the settings that matter."""

from __future__ import annotations

import json

from stacks import offline
from stacks.offline import Registration, RenderResult
from tests.checks import stack_file

CLUSTER = "mleks:cluster:MLCluster"
GPU_GROUP = "mleks:nodegroup:GpuNodeGroup"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def node_groups_by_cluster(result: RenderResult) -> dict[str, dict[str, Registration]]:
    """cluster name -> node-group name (its ``mleks.io/node-group`` label, "system" for the system group) -> the aws.eks.NodeGroup registration."""
    out: dict[str, dict[str, Registration]] = {}
    for ng in result.of_type(NODE_GROUP):
        cluster = result.ancestor_of_type(ng, CLUSTER)
        assert cluster is not None, f"{ng.name} is not inside an MLCluster"
        labels = ng.inputs["labels"]
        out.setdefault(cluster.name, {})[labels.get("mleks.io/node-group", labels["role"])] = ng
    return out


def test_unified_is_one_cluster_with_a_system_group_and_a_fleet_of_train_and_inference_groups(rendered):
    groups = node_groups_by_cluster(rendered["unified"])
    assert list(groups) == ["ml-unified"]
    assert sorted(groups["ml-unified"]) == ["inference-ondemand", "inference-spot", "system", "train-g6e", "train-p5"]
    roles = {name: ng.inputs["labels"]["role"] for name, ng in groups["ml-unified"].items()}
    assert roles == {"inference-ondemand": "inference", "inference-spot": "inference", "system": "system", "train-g6e": "train", "train-p5": "train"}


def test_dedicated_is_two_clusters_each_with_a_system_group_and_one_gpu_group(rendered):
    groups = node_groups_by_cluster(rendered["dedicated"])
    assert {name: sorted(roles) for name, roles in groups.items()} == {
        "ml-prod-inference": ["inference", "system"],
        "ml-prod-train": ["system", "train"],
    }


def test_every_gpu_group_is_labelled_with_its_role_and_tainted_for_gpus_only(stack):
    for ng in stack.of_type(NODE_GROUP):
        labels = ng.inputs["labels"]
        if labels["role"] == "system":
            assert ng.inputs.get("taints", []) == []
            assert ng.inputs["amiType"] == "AL2023_x86_64_STANDARD"
            continue
        assert labels["nvidia.com/gpu.present"] == "true"
        assert ng.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
        assert ng.inputs["amiType"] == "AL2023_x86_64_NVIDIA"


def test_gpu_groups_scale_from_zero_and_ignore_desired_size_drift(stack):
    for ng in stack.of_type(NODE_GROUP):
        role = ng.inputs["labels"]["role"]
        scaling = ng.inputs["scalingConfig"]
        if role == "system":
            assert scaling["minSize"] >= 2
            assert ng.ignore_changes == []
        else:
            assert scaling["minSize"] == 0 and scaling["desiredSize"] == 0
            assert ng.ignore_changes == ["scalingConfig.desiredSize"]


def test_gpu_group_labels_carry_the_gpu_facts_of_its_instance_type(rendered):
    groups = node_groups_by_cluster(rendered["unified"])["ml-unified"]
    train = groups["train-p5"].inputs["labels"]
    assert train["mleks.io/gpu-model"] == "h100"
    assert train["mleks.io/gpu-count"] == "8"
    assert train["k8s.amazonaws.com/accelerator"] == "nvidia-h100"
    assert train["vpc.amazonaws.com/efa.present"] == "true"
    assert "vpc.amazonaws.com/efa.present" not in groups["train-g6e"].inputs["labels"]
    assert groups["train-g6e"].inputs["labels"]["mleks.io/gpu-count"] == "4"
    inference = groups["inference-spot"].inputs["labels"]
    assert inference["mleks.io/gpu-model"] == "l40s" and inference["mleks.io/gpu-count"] == "1"
    assert "vpc.amazonaws.com/efa.present" not in inference


def test_clusters_are_private_encrypted_logged_and_use_access_entries(stack):
    for cluster in stack.of_type("eks:index:Cluster"):
        i = cluster.inputs
        assert i["endpointPrivateAccess"] is True
        assert "0.0.0.0/0" not in (i.get("publicAccessCidrs") or [])
        assert i["encryptionConfigKeyArn"].startswith("arn:aws:kms:")
        assert {"api", "audit", "authenticator"} <= set(i["enabledClusterLogTypes"])
        assert i["authenticationMode"] == "API"
        assert i["createOidcProvider"] is True
        assert i["skipDefaultNodeGroup"] is True
        assert i["accessEntries"], "admin principals get access entries"
    for key in stack.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True


def test_dedicated_example_keeps_the_api_endpoint_private(rendered):
    for cluster in rendered["dedicated"].of_type("eks:index:Cluster"):
        assert cluster.inputs["endpointPublicAccess"] is False


def test_every_launch_template_requires_imdsv2_and_an_encrypted_gp3_root(stack):
    for lt in stack.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        md = lt.inputs["metadataOptions"]
        assert md["httpTokens"] == "required" and md["httpPutResponseHopLimit"] == 1
        ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["volumeType"] == "gp3" and ebs["encrypted"] == "true"


def test_gpu_root_volumes_are_sized_and_provisioned_for_multi_gb_images(stack):
    for ng in stack.of_type(NODE_GROUP):
        if ng.inputs["labels"]["role"] == "system":
            continue
        lt = next(r for r in stack.of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.parent == ng.parent)
        ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["volumeSize"] >= 200 and ebs["throughput"] >= 500


def test_efa_group_gets_every_efa_interface_and_one_subnet(rendered):
    result = rendered["unified"]
    train = node_groups_by_cluster(result)["ml-unified"]["train-p5"]
    lt = next(r for r in result.of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.parent == train.parent)
    nics = lt.inputs["networkInterfaces"]
    # p5.48xlarge has 32 EFA interfaces on 32 network cards: an ENA primary, then EFA-only on card 0 and each other card.
    assert [(n["networkCardIndex"], n["deviceIndex"], n["interfaceType"]) for n in nics] == [
        (0, 0, "interface"),
        (0, 1, "efa-only"),
        *[(card, 0, "efa-only") for card in range(1, 32)],
    ]
    # train-p5 launches into a Capacity Block: a cluster placement group the block was not made
    # with would lose reserved instances (eksctl#7949), so it gets none.
    assert "placement" not in lt.inputs
    assert result.of_type("aws:ec2/placementGroup:PlacementGroup") == []
    assert len(train.inputs["subnetIds"]) == 1


def test_efa_group_on_demand_or_spot_gets_a_cluster_placement_group():
    cfg = stack_file("unified")
    p5 = cfg["mleks:nodeGroups"]["train-p5"]
    for key in ("capacityType", "capacityReservationId"):
        del p5[key]
    result = offline.run("unified", config=cfg)
    groups = result.of_type("aws:ec2/placementGroup:PlacementGroup")
    assert [(g.name, g.inputs["strategy"]) for g in groups] == [("ml-unified-train-p5-gpu-pg", "cluster")]
    lt = next(r for r in result.of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.name == "ml-unified-train-p5-gpu-lt")
    assert lt.inputs["placement"]["groupName"]


def test_cluster_autoscaler_groups_carry_scale_from_zero_template_tags(rendered):
    tags = {
        r.inputs["tag"]["key"]: r.inputs["tag"]["value"]
        for r in rendered["unified"].of_type("aws:autoscaling/tag:Tag")
        if r.parent.endswith("ml-unified-inference-spot-gpu")
    }
    prefix = "k8s.io/cluster-autoscaler/node-template"
    assert tags[f"{prefix}/label/role"] == "inference"
    assert tags[f"{prefix}/taint/nvidia.com/gpu"] == "true:NoSchedule"
    assert tags[f"{prefix}/resources/nvidia.com/gpu"] == "1"


def test_escalator_groups_get_no_cluster_autoscaler_template_tags(rendered):
    for result in rendered.values():
        for tag in result.of_type("aws:autoscaling/tag:Tag"):
            if tag.inputs["tag"]["key"].startswith("k8s.io/cluster-autoscaler/node-template/"):
                assert "-train-" not in tag.name


def test_nvidia_device_plugin_is_pinned_and_can_only_run_on_al2023_gpu_nodes(stack):
    daemonsets = [obj for _, obj in stack.kube_objects() if obj["kind"] == "DaemonSet" and obj["metadata"]["name"] == "nvidia-device-plugin"]
    assert len(daemonsets) == len(stack.of_type(CLUSTER))
    for ds in daemonsets:
        pod = ds["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert len(terms) == 1, "several terms are ORed; one term keeps every expression required"
        required = {(e["key"], e["operator"], tuple(e["values"])) for e in terms[0]["matchExpressions"]}
        assert ("nvidia.com/gpu.present", "In", ("true",)) in required
        assert ("mleks.io/ami-family", "In", ("al2023",)) in required
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_no_system_node_matches_the_device_plugin_affinity(stack):
    for ng in stack.of_type(NODE_GROUP):
        if ng.inputs["labels"]["role"] == "system":
            assert "nvidia.com/gpu.present" not in ng.inputs["labels"]


def test_efa_device_plugin_exists_only_where_an_efa_group_does(rendered):
    def efa_plugins(result: RenderResult) -> list[str]:
        return [r.name for r in result.of_type("mleks:addons:EfaDevicePlugin")]

    assert efa_plugins(rendered["unified"]) == ["ml-unified-efa"]
    assert efa_plugins(rendered["dedicated"]) == []


def test_node_role_has_only_what_the_kubelet_needs(stack):
    arns = sorted(a.inputs["policyArn"].rsplit("/", 1)[1] for a in stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if "node-role" in a.name)
    clusters = len(stack.of_type(CLUSTER))
    assert arns == sorted(["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"] * clusters)


def test_the_vpc_cni_gets_its_aws_rights_through_its_own_service_account(stack):
    index = stack.by_urn()
    addons = [a for a in stack.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni"]
    assert len(addons) == len(stack.of_type(CLUSTER))
    for addon in addons:
        cluster = stack.cluster_of(addon)
        [account_role] = [r for r in stack.children_of(cluster.urn) if r.type == "mleks:iam:ServiceAccountRole" and r.name.endswith("-vpc-cni")]
        assert addon.inputs["serviceAccountRoleArn"] == account_role.outputs["role_arn"]
        [role] = [c for c in stack.children_of(account_role.urn) if c.type == "aws:iam/role:Role"]
        condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
        assert "system:serviceaccount:kube-system:aws-node" in condition.values()
        [attachment] = [c for c in stack.children_of(account_role.urn) if c.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"]
        assert attachment.inputs["policyArn"].endswith(":iam::aws:policy/AmazonEKS_CNI_Policy")
        assert addon.inputs["resolveConflictsOnCreate"] == "OVERWRITE"
        # Every node group of the cluster starts only once the CNI has its rights.
        groups = [g for g in stack.of_type(NODE_GROUP) if stack.cluster_of(g) is not None and stack.cluster_of(g).urn == cluster.urn]
        assert groups and all(addon.urn in g.dependencies for g in groups), [index[d].name for g in groups for d in g.dependencies]
    for eks in stack.of_type("eks:index:Cluster"):
        assert eks.inputs["useDefaultVpcCni"] is True and "vpcCniOptions" not in eks.inputs


def test_kubeconfig_is_exported_as_a_secret(stack):
    for cluster in stack.of_type(CLUSTER):
        assert "kubeconfig" in cluster.secret_outputs
    assert set(stack.outputs["kubeconfigs"]) == {c.name for c in stack.of_type(CLUSTER)}
    assert "kubeconfigs" in stack.secret_exports


def test_control_plane_log_group_exists_before_the_cluster_with_retention(stack):
    for cluster in stack.of_type("eks:index:Cluster"):
        name = cluster.inputs["name"]
        group = next(r for r in stack.of_type("aws:cloudwatch/logGroup:LogGroup") if r.inputs["name"] == f"/aws/eks/{name}/cluster")
        assert group.urn in cluster.dependencies
        assert group.inputs["retentionInDays"] in (90, 365)
