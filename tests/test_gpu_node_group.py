"""GpuNodeGroup's pure decisions: AMI type, labels, taints, autoscaler ownership, launch template."""

from __future__ import annotations

import copy

import pytest

from mleks.errors import ConfigError, ConfigErrors
from mleks.gpu_node_group import GpuNodeGroupArgs, cluster_autoscaler_template_tags, node_group_spec, subnets_in_zone
from mleks.infra.managed_node_group import efa_network_interfaces, launch_template_args, node_group_args
from mleks.validation.schema import parse
from stacks import offline


def args(**overrides) -> GpuNodeGroupArgs:
    base = {"role": "train", "instanceTypes": ["g6e.12xlarge"], "maxSize": 3}
    return parse(GpuNodeGroupArgs, {**base, **overrides})


@pytest.mark.parametrize(
    ("types", "family", "ami"),
    [
        (["g6e.xlarge"], "al2023", "AL2023_x86_64_NVIDIA"),
        (["g5g.xlarge"], "al2023", "AL2023_ARM_64_NVIDIA"),
        (["g6e.xlarge"], "bottlerocket", "BOTTLEROCKET_x86_64_NVIDIA"),
        (["g5g.2xlarge"], "bottlerocket", "BOTTLEROCKET_ARM_64_NVIDIA"),
    ],
)
def test_ami_type_follows_architecture_and_family(types, family, ami):
    assert args(instanceTypes=types, amiFamily=family).ami_type == ami


def test_default_owner_is_escalator_for_train_and_cluster_autoscaler_for_inference():
    assert args().owner == "escalator"
    assert args(role="inference").owner == "cluster-autoscaler"
    assert args(autoscaler="none").owner == "none"


def test_an_unowned_group_does_not_ignore_desired_size():
    spec = node_group_spec("g", args(autoscaler="none"), {})
    assert spec.autoscaled is False


def test_labels_keep_only_the_gpu_facts_every_member_type_shares():
    labels = args(instanceTypes=["g6e.xlarge", "g6e.12xlarge"]).node_labels()
    assert labels["mleks.io/gpu-model"] == "l40s"
    assert "mleks.io/gpu-count" not in labels  # 1 vs 4 GPUs: no single truth


def test_user_labels_may_not_override_the_role_label():
    with pytest.raises(ConfigErrors) as info:
        args(labels={"role": "inference"})
    assert info.value.errors[0].key == "labels.role"


def test_smallest_member_sets_the_scale_from_zero_gpu_count():
    tags = cluster_autoscaler_template_tags(args(role="inference", instanceTypes=["g6e.12xlarge", "g6e.xlarge"]))
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == "1"


def test_capacity_block_moves_the_instance_type_into_the_launch_template():
    spec = node_group_spec("g", args(instanceTypes=["p5.48xlarge"], capacityType="capacity-block", capacityReservationId="cr-0123"), {})
    lt = launch_template_args(spec, "sg-1", None)
    assert lt["instance_type"] == "p5.48xlarge"
    assert lt["instance_market_options"] == {"market_type": "capacity-block"}
    assert lt["capacity_reservation_specification"]["capacity_reservation_target"]["capacity_reservation_id"] == "cr-0123"
    ng = node_group_args(spec)
    assert ng["capacity_type"] == "CAPACITY_BLOCK" and "instance_types" not in ng


def test_an_efa_group_whose_types_differ_in_efa_interfaces_is_refused_naming_instance_types():
    # One launch template for both: the p5.48xlarge would get 16 of its 32 interfaces.
    with pytest.raises(ConfigErrors) as info:
        args(instanceTypes=["p5.48xlarge", "p5en.48xlarge"], efa=True)
    [err] = info.value.errors
    assert err.key == "instanceTypes" and err.value == ["p5.48xlarge", "p5en.48xlarge"]
    assert "p5.48xlarge=32" in err.problem and "p5en.48xlarge=16" in err.problem


def test_efa_types_with_the_same_interface_count_may_share_a_group():
    assert args(instanceTypes=["p5.48xlarge", "p5e.48xlarge"], efa=True).efa_interfaces == 32


def test_efa_interfaces_follow_the_ec2_layout_ena_primary_then_efa_only_on_every_card():
    nics = efa_network_interfaces(4, "sg-1")
    layout = [(n["network_card_index"], n["device_index"], n["interface_type"]) for n in nics]
    assert layout == [(0, 0, "interface"), (0, 1, "efa-only"), (1, 0, "efa-only"), (2, 0, "efa-only"), (3, 0, "efa-only")]
    assert sum(n["interface_type"] == "efa-only" for n in nics) == 4
    assert [(n["network_card_index"], n["device_index"], n["interface_type"]) for n in efa_network_interfaces(1, "sg")] == [
        (0, 0, "interface"),
        (0, 1, "efa-only"),
    ]


def test_desired_size_outside_bounds_is_rejected():
    with pytest.raises(ConfigErrors) as info:
        args(minSize=1, maxSize=3, desiredSize=5)
    assert info.value.errors[0].key == "desiredSize"


def test_bottlerocket_puts_the_sized_volume_where_its_images_live():
    spec = node_group_spec("g", args(amiFamily="bottlerocket", diskSizeGib=300), {})
    mappings = launch_template_args(spec, "sg-1", None)["block_device_mappings"]
    by_device = {m["device_name"]: m["ebs"] for m in mappings}
    assert by_device["/dev/xvdb"]["volume_size"] == 300 and by_device["/dev/xvdb"]["encrypted"] == "true"
    assert by_device["/dev/xvda"]["volume_size"] < 300 and by_device["/dev/xvda"]["encrypted"] == "true"


def test_al2023_keeps_images_on_the_sized_root_volume():
    spec = node_group_spec("g", args(diskSizeGib=300), {})
    mappings = launch_template_args(spec, "sg-1", None)["block_device_mappings"]
    assert [(m["device_name"], m["ebs"]["volume_size"]) for m in mappings] == [("/dev/xvda", 300)]


def _capacity_block_train_group(**overrides) -> dict:
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    train = cfg["mleks:nodeGroups"]["train-p5"]
    train.update({"capacityType": "capacity-block", "capacityReservationId": "cr-0123456789abcdef0", **overrides})
    return cfg


def _train_node_group_subnets(cfg: dict) -> list[str]:
    result = offline.run("unified", config=cfg)
    (group,) = [ng for ng in result.of_type("aws:eks/nodeGroup:NodeGroup") if ng.inputs["labels"].get("mleks.io/node-group") == "train-p5"]
    return group.inputs["subnetIds"]


def test_a_capacity_block_group_launches_only_into_subnets_in_the_reservations_zone():
    # The mocked Capacity Block is in us-west-2b; subnets of other AZs would make launches fail.
    assert _train_node_group_subnets(_capacity_block_train_group(efa=False)) == ["subnet-ml-unified-vpc-private-2-us-west-2b"]


def test_an_efa_capacity_block_group_picks_its_one_subnet_in_the_reservations_zone():
    assert _train_node_group_subnets(_capacity_block_train_group()) == ["subnet-ml-unified-vpc-private-2-us-west-2b"]


def test_a_capacity_block_in_a_zone_without_a_cluster_subnet_is_refused():
    with pytest.raises(ConfigError) as info:
        subnets_in_zone(["subnet-a", "subnet-b"], [], "us-west-2d", "cr-0123456789abcdef0")
    assert info.value.key == "capacityReservationId" and "us-west-2d" in str(info.value)
