"""Bad stack config fails before any resource is registered, naming the key.

Each case changes one value of a valid stack file and checks that the error
names the full config key, shows the bad value and says what is accepted.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mleks.errors import ConfigErrors
from stacks import offline


def unified() -> dict[str, Any]:
    return copy.deepcopy(offline.load_stack_file("unified"))


def run_bad(cfg: dict[str, Any]) -> ConfigErrors:
    with pytest.raises(ConfigErrors) as info:
        offline.run("unified", config=cfg)
    assert info.value.registered_urns == [], "nothing may be registered before the config is valid"  # type: ignore[attr-defined]
    return info.value


def single_error(cfg: dict[str, Any]) -> str:
    errors = run_bad(cfg)
    assert len(errors.errors) >= 1
    return str(errors.errors[0])


def test_a_cpu_instance_type_in_a_gpu_group_is_rejected_naming_the_key():
    cfg = unified()
    cfg["mleks:nodeGroups"]["train-p5"]["instanceTypes"] = ["m5.large"]
    msg = single_error(cfg)
    assert msg.startswith("mleks:nodeGroups.train-p5.instanceTypes[0] = 'm5.large' is invalid")
    assert "Accepted: an NVIDIA GPU instance type" in msg


@pytest.mark.parametrize(
    ("instance_type", "problem"),
    [
        ("g4ad.xlarge", "amd.com/gpu"),
        ("inf2.xlarge", "aws.amazon.com/neuron"),
        ("g6f.large", "fractional"),
        ("p2.xlarge", "not supported by the current EKS NVIDIA AMIs"),
        ("g3.4xlarge", "not supported by the current EKS NVIDIA AMIs"),
    ],
)
def test_accelerators_that_are_not_whole_nvidia_gpus_on_current_amis_are_rejected(instance_type: str, problem: str):
    cfg = unified()
    cfg["mleks:nodeGroups"]["inference-spot"]["instanceTypes"] = [instance_type]
    msg = single_error(cfg)
    assert "mleks:nodeGroups.inference-spot.instanceTypes[0]" in msg and instance_type in msg and problem in msg


def test_mixed_architectures_in_one_group_are_rejected():
    cfg = unified()
    cfg["mleks:nodeGroups"]["inference-spot"]["instanceTypes"] = ["g5.xlarge", "g5g.xlarge"]
    msg = single_error(cfg)
    assert "mleks:nodeGroups.inference-spot.instanceTypes" in msg and "mixed architectures" in msg


def test_efa_on_a_type_without_efa_is_rejected():
    cfg = unified()
    cfg["mleks:nodeGroups"]["inference-spot"]["efa"] = True  # g6e.xlarge has no EFA
    msg = single_error(cfg)
    assert "mleks:nodeGroups.inference-spot.efa" in msg and "g6e.xlarge" in msg


def test_min_size_above_max_size_is_rejected():
    cfg = unified()
    cfg["mleks:nodeGroups"]["train-p5"].update({"minSize": 5, "maxSize": 2})
    msg = single_error(cfg)
    assert "mleks:nodeGroups.train-p5.maxSize = 2" in msg and "minSize" in msg


def test_capacity_block_without_a_reservation_is_rejected():
    cfg = unified()
    del cfg["mleks:nodeGroups"]["train-p5"]["capacityReservationId"]
    msg = single_error(cfg)
    assert "mleks:nodeGroups.train-p5.capacityReservationId" in msg and "cr-" in msg


def test_an_unknown_key_is_rejected_with_the_known_keys():
    cfg = unified()
    cfg["mleks:nodeGroups"]["train-p5"]["maxNodes"] = 4  # the key is maxSize
    msg = single_error(cfg)
    assert "mleks:nodeGroups.train-p5.maxNodes = 4 is invalid: unknown key" in msg and "maxSize" in msg


def test_an_unknown_topology_is_rejected_listing_both():
    cfg = unified()
    cfg["mleks:topology"] = "hybrid"
    msg = single_error(cfg)
    assert "mleks:topology = 'hybrid'" in msg and "'dedicated'" in msg and "'unified'" in msg


def test_an_unsupported_kubernetes_version_is_rejected_listing_supported_ones():
    cfg = unified()
    cfg["mleks:cluster"]["kubernetesVersion"] = "1.29"
    msg = single_error(cfg)
    assert "mleks:cluster.kubernetesVersion = '1.29'" in msg and "1.35" in msg


def test_an_api_endpoint_open_to_the_world_needs_an_explicit_opt_in():
    cfg = unified()
    cfg["mleks:cluster"]["endpoint"]["publicAccessCidrs"] = ["0.0.0.0/0"]
    msg = single_error(cfg)
    assert "mleks:cluster.endpoint.publicAccessCidrs[0] = '0.0.0.0/0'" in msg and "allowPublicFromAnywhere" in msg


def test_the_world_opt_in_is_honoured():
    cfg = unified()
    cfg["mleks:cluster"]["endpoint"] = {"publicAccessCidrs": ["0.0.0.0/0"], "allowPublicFromAnywhere": True}
    result = offline.run("unified", config=cfg)
    cluster = result.of_type("eks:index:Cluster")[0]
    assert cluster.inputs["publicAccessCidrs"] == ["0.0.0.0/0"]


def test_a_malformed_cidr_is_rejected():
    cfg = unified()
    cfg["mleks:cluster"]["endpoint"]["publicAccessCidrs"] = ["10.0.0.300/24"]
    assert "mleks:cluster.endpoint.publicAccessCidrs[0] = '10.0.0.300/24'" in single_error(cfg)


def test_an_admin_principal_that_is_not_an_iam_arn_is_rejected():
    cfg = unified()
    cfg["mleks:cluster"]["adminPrincipals"] = ["alice"]
    assert "mleks:cluster.adminPrincipals[0] = 'alice'" in single_error(cfg)


def test_subnets_without_a_vpc_id_are_rejected():
    cfg = unified()
    cfg["mleks:vpc"]["privateSubnetIds"] = ["subnet-1", "subnet-2"]
    assert "mleks:vpc.privateSubnetIds" in single_error(cfg)


def test_an_existing_vpc_needs_two_private_subnets():
    cfg = unified()
    cfg["mleks:vpc"] = {"id": "vpc-0abc", "privateSubnetIds": ["subnet-1"]}
    msg = single_error(cfg)
    assert "mleks:vpc.privateSubnetIds = ['subnet-1']" in msg and "at least two" in msg


def test_an_existing_vpc_is_used_instead_of_creating_one():
    cfg = unified()
    # (Mocked subnet lookups find a subnet's AZ at the end of its id; the Capacity Block is in us-west-2b.)
    subnets = ["subnet-a-us-west-2a", "subnet-b-us-west-2b"]
    cfg["mleks:vpc"] = {"id": "vpc-0abc", "privateSubnetIds": subnets}
    result = offline.run("unified", config=cfg)
    assert result.of_type("mleks:network:MLVpc") == [] and result.of_type("aws:ec2/vpc:Vpc") == []
    cluster = result.of_type("eks:index:Cluster")[0]
    assert cluster.inputs["vpcId"] == "vpc-0abc" and cluster.inputs["privateSubnetIds"] == subnets


def test_a_missing_region_is_reported_as_aws_region():
    cfg = unified()
    del cfg["aws:region"]
    assert single_error(cfg).startswith("aws:region is not set")


def test_a_group_named_after_a_role_must_have_that_role():
    cfg = unified()
    cfg["mleks:nodeGroups"]["train"] = {**cfg["mleks:nodeGroups"].pop("train-g6e"), "role": "inference"}
    assert "mleks:nodeGroups.train.role = 'inference'" in single_error(cfg)


def test_a_group_whose_name_is_not_a_role_needs_one():
    cfg = unified()
    del cfg["mleks:nodeGroups"]["train-g6e"]["role"]
    errors = run_bad(cfg)
    assert [e.key for e in errors.errors] == ["mleks:nodeGroups.train-g6e.role"]


@pytest.mark.parametrize("section", ["mleks:trainingJobs", "mleks:inferenceServices", "mleks:notebooks"])
def test_a_section_given_as_a_list_names_each_entry_by_its_name_in_errors(section: str):
    cfg = unified()
    entries = [{"name": name, **body} for name, body in cfg[section].items()]
    first = entries[0]["name"]
    entries[0]["noSuchKey"] = 1
    cfg[section] = entries
    assert f"{section}.{first}.noSuchKey" in {e.key for e in run_bad(cfg).errors}


@pytest.mark.parametrize("section", ["mleks:trainingJobs", "mleks:inferenceServices", "mleks:notebooks"])
def test_a_list_entry_without_a_name_or_with_a_used_one_is_rejected_naming_its_position(section: str):
    cfg = unified()
    entries = [{"name": name, **body} for name, body in cfg[section].items()]
    cfg[section] = [*entries, {k: v for k, v in entries[0].items() if k != "name"}]
    assert f"{section}[{len(entries)}].name" in {e.key for e in run_bad(cfg).errors}
    cfg[section] = [*entries, entries[0]]
    assert f"{section}[{len(entries)}].name" in {e.key for e in run_bad(cfg).errors}


def test_node_groups_may_be_a_list_of_named_groups():
    cfg = unified()
    as_list = copy.deepcopy(cfg)
    as_list["mleks:nodeGroups"] = [{"name": name, **body} for name, body in cfg["mleks:nodeGroups"].items()]
    assert offline.run("unified", config=as_list).resources == offline.run("unified", config=cfg).resources
    as_list["mleks:nodeGroups"][0]["efa"] = "maybe"
    assert "mleks:nodeGroups.train-p5.efa" in {e.key for e in run_bad(as_list).errors}


def test_several_problems_are_reported_together():
    cfg = unified()
    cfg["mleks:topology"] = "hybrid"
    cfg["mleks:nodeGroups"]["train-p5"]["instanceTypes"] = ["m5.large"]
    errors = run_bad(cfg)
    keys = {e.key for e in errors.errors}
    assert {"mleks:topology", "mleks:nodeGroups.train-p5.instanceTypes[0]"} <= keys


def test_gp3_throughput_above_the_iops_ratio_is_rejected():
    cfg = unified()
    cfg["mleks:nodeGroups"]["inference-spot"].update({"diskThroughputMibps": 1000, "diskIops": 3000})
    msg = single_error(cfg)
    assert "mleks:nodeGroups.inference-spot.diskThroughputMibps = 1000" in msg and "750" in msg


def test_an_sts_session_admin_principal_is_rejected_because_access_entries_refuse_sessions():
    # CreateAccessEntry refuses STS session principals; the cluster would be
    # created and `pulumi up` would then fail on its access entry.
    cfg = unified()
    cfg["mleks:cluster"]["adminPrincipals"] = ["arn:aws:sts::123456789012:assumed-role/PlatformAdmins/alice"]
    msg = single_error(cfg)
    assert "mleks:cluster.adminPrincipals[0]" in msg and "STS session" in msg
    assert "arn:aws:iam::123456789012:role/PlatformAdmins" in msg


@pytest.mark.parametrize("arn", ["arn:aws:sts::123456789012:role/Admins", "arn:aws:iam::123456789012:assumed-role/Admins/alice"])
def test_an_admin_principal_mixing_iam_and_sts_forms_is_rejected(arn: str):
    cfg = unified()
    cfg["mleks:cluster"]["adminPrincipals"] = [arn]
    assert "mleks:cluster.adminPrincipals[0]" in single_error(cfg)


def test_an_admin_principal_listed_twice_is_rejected_because_eks_allows_one_access_entry_per_principal():
    cfg = unified()
    arn = "arn:aws:iam::123456789012:role/PlatformAdmins"
    cfg["mleks:cluster"]["adminPrincipals"] = [arn, "arn:aws:iam::123456789012:user/ops", arn]
    msg = single_error(cfg)
    assert "mleks:cluster.adminPrincipals[2]" in msg and "already listed at [0]" in msg


def test_admin_roles_with_a_path_and_users_are_accepted():
    cfg = unified()
    cfg["mleks:cluster"]["adminPrincipals"] = [
        "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123456789abcdef",
        "arn:aws:iam::123456789012:user/ops",
    ]
    result = offline.run("unified", config=cfg)
    entries = result.of_type("eks:index:Cluster")[0].inputs["accessEntries"]
    assert sorted(e["principalArn"] for e in entries.values()) == sorted(cfg["mleks:cluster"]["adminPrincipals"])


def test_an_ipv6_block_for_the_public_endpoint_is_rejected():
    cfg = unified()
    cfg["mleks:cluster"]["endpoint"]["publicAccessCidrs"] = ["2001:db8::/32"]
    msg = single_error(cfg)
    assert "mleks:cluster.endpoint.publicAccessCidrs[0] = '2001:db8::/32'" in msg and "IPv4" in msg


def test_a_system_group_mixing_graviton_and_x86_is_rejected():
    cfg = unified()
    cfg["mleks:cluster"]["systemNodes"]["instanceTypes"] = ["m7g.large", "m7i.large"]
    assert "mleks:cluster.systemNodes.instanceTypes" in single_error(cfg)


def test_a_graviton_system_group_gets_the_arm_ami():
    cfg = unified()
    cfg["mleks:cluster"]["systemNodes"]["instanceTypes"] = ["m7g.large"]
    result = offline.run("unified", config=cfg)
    system = next(ng for ng in result.of_type("aws:eks/nodeGroup:NodeGroup") if ng.inputs["labels"]["role"] == "system")
    assert system.inputs["amiType"] == "AL2023_ARM_64_STANDARD"


def test_the_european_sovereign_cloud_region_is_accepted():
    cfg = unified()
    cfg["aws:region"] = "eusc-de-east-1"
    # No EKS add-on registry is recorded for EUSC, so no EFA device plugin image either.
    cfg["mleks:nodeGroups"]["train-p5"]["efa"] = False
    result = offline.run("unified", config=cfg)
    assert result.of_type("eks:index:Cluster")


def test_access_entries_follow_their_principal_when_the_list_changes():
    from mleks.ml_cluster import access_entries

    a, b = "arn:aws:iam::123456789012:role/Admins", "arn:aws:iam::123456789012:role/OnCall"
    assert access_entries([a, b]).keys() >= access_entries([b]).keys()
    assert list(access_entries([b, a])) == list(reversed(list(access_entries([a, b]))))
