"""The created VPC, and a first create whose control plane waits for nothing it does not need."""

from __future__ import annotations

import copy

import pytest

from mleks.network import subnet_plan
from stacks import critical_path, offline
from stacks.offline import RenderResult


def test_private_subnets_take_an_eighth_each_and_public_ones_a_64th_from_the_last_eighth():
    plan = subnet_plan("10.40.0.0/16", 3)
    assert plan.private == ("10.40.0.0/19", "10.40.32.0/19", "10.40.64.0/19")
    assert plan.public == ("10.40.224.0/22", "10.40.228.0/22", "10.40.232.0/22")
    six = subnet_plan("10.0.0.0/22", 6)
    assert six.public[-1] == "10.0.3.208/28"  # the smallest subnet AWS allows


def _transitive(result: RenderResult, urn: str) -> set[str]:
    index, seen, todo = result.by_urn(), set(), [urn]
    while todo:
        for dep in index[todo.pop()].dependencies:
            if dep not in seen and dep in index:
                seen.add(dep)
                todo.append(dep)
    return {index[u].type for u in seen}


def test_the_control_plane_waits_for_subnets_but_never_for_nat_gateways(stack: RenderResult):
    for cluster in stack.of_type("eks:index:Cluster"):
        needs = _transitive(stack, cluster.urn)
        assert "aws:ec2/subnet:Subnet" in needs
        assert not needs & {"aws:ec2/natGateway:NatGateway", "aws:ec2/route:Route", "aws:ec2/eip:Eip"}


def test_every_node_group_waits_for_egress(stack: RenderResult):
    for group in stack.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert "aws:ec2/natGateway:NatGateway" in _transitive(stack, group.urn), group.name


def test_nat_gateways_follow_the_config(rendered):
    assert len(rendered["unified"].of_type("aws:ec2/natGateway:NatGateway")) == 1  # single
    assert len(rendered["dedicated"].of_type("aws:ec2/natGateway:NatGateway")) == 3  # one-per-az


def test_public_subnets_give_no_public_addresses_and_carry_the_load_balancer_role_tags(stack: RenderResult):
    subnets = stack.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if "-public-" in s.name]
    private = [s for s in subnets if "-private-" in s.name]
    assert public and private and len(public) == len(private)
    assert all(s.inputs["mapPublicIpOnLaunch"] is False and s.inputs["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)


@pytest.mark.parametrize("stack_name", ["unified", "dedicated"])
def test_the_longest_creation_chain_is_within_a_tenth_of_the_floor(rendered, stack_name: str):
    path = critical_path.critical_path(rendered[stack_name])
    assert path.ratio <= 1.10, [(s.type, s.name) for s in path.steps]
    # The unified stack's dataset (a file system and its S3 link) takes longer than the cluster: it sets the floor.
    if stack_name == "unified":
        assert "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation" in path.floor
        assert [s.type for s in path.steps][2:4] == ["aws:fsx/lustreFileSystem:LustreFileSystem", "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"]
    else:
        assert [s.type for s in path.steps][:3] == ["aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "eks:index:Cluster"]


def test_workloads_that_mount_a_dataset_wait_for_its_claim_and_its_s3_link(rendered):
    result = rendered["unified"]
    [association] = result.of_type("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation")
    claims = {
        (c.inputs["metadata"]["namespace"], c.urn)
        for c in result.of_type("kubernetes:core/v1:PersistentVolumeClaim")
        if c.inputs["metadata"]["name"] == "dataset-tokens"
    }
    mounting = [
        r
        for kind in ("kubernetes:batch/v1:Job", "kubernetes:apps/v1:StatefulSet")
        for r in result.of_type(kind)
        if any((v.get("persistentVolumeClaim") or {}).get("claimName") == "dataset-tokens" for v in r.inputs["spec"]["template"]["spec"].get("volumes", []))
    ]
    assert mounting, "the example mounts its dataset somewhere"
    for r in mounting:
        claim = next(urn for ns, urn in claims if ns == r.inputs["metadata"]["namespace"])
        assert {association.urn, claim} <= set(r.dependencies), r.name


def test_a_vpc_too_small_for_a_public_subnet_per_az_is_refused():
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    cfg["mleks:vpc"]["cidrBlock"] = "10.0.0.0/24"
    from mleks.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as info:
        offline.run("unified", config=cfg)
    [err] = info.value.errors
    assert err.key == "mleks:vpc.cidrBlock" and "/22" in err.accepted
