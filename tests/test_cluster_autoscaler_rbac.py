"""cluster-autoscaler's RBAC is the upstream chart's, for every minor we render.

From 1.35 cluster-autoscaler lists ResourceSlices, DeviceClasses and
ResourceClaims at start-up and waits for those caches; a ClusterRole without
them leaves it blocked forever, and the inference groups never scale.
"""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from mleks import cluster_autoscaler_addon as ca
from stacks import offline

DATA = json.loads(resources.files("mleks.catalogs.data").joinpath("cluster_autoscaler_rbac.json").read_text())
DRA = {"apiGroups": ["resource.k8s.io"], "resources": ["resourceslices", "deviceclasses", "resourceclaims"], "verbs": ["watch", "list", "get"]}


def _rendered_rbac(version: str) -> dict[str, list[dict]]:
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    cfg["mleks:cluster"]["kubernetesVersion"] = version
    result = offline.run("unified", config=cfg)
    found = {}
    for _, obj in result.kube_objects():
        if obj["metadata"]["name"] == ca.NAME and obj["kind"] in ("ClusterRole", "Role"):
            found[obj["kind"]] = obj["rules"]
    return found


@pytest.mark.parametrize("minor", sorted(ca.RELEASES))
def test_rendered_cluster_role_and_role_equal_the_chart_rules_for_the_minor(minor: str):
    rendered = _rendered_rbac(minor)
    expected = DATA["minors"][minor]
    # The unified example orders its inference groups, so the Role is the chart's priority-expander one.
    assert rendered == {"ClusterRole": expected["clusterRole"], "Role": expected["rolePriorityExpander"]}


def test_without_a_priority_list_the_role_is_the_charts_plain_one():
    assert ca.role("1.35")["rules"] == DATA["minors"]["1.35"]["role"]
    assert ca.role("1.35", priority_expander=True)["rules"] == DATA["minors"]["1.35"]["rolePriorityExpander"]


def test_every_pinned_release_has_chart_rules():
    assert sorted(DATA["minors"]) == sorted(ca.RELEASES)


@pytest.mark.parametrize("minor", ["1.35", "1.36"])
def test_from_1_35_dynamic_resource_allocation_objects_are_readable(minor: str):
    assert DRA in DATA["minors"][minor]["clusterRole"]


@pytest.mark.parametrize("minor", sorted(ca.RELEASES))
def test_no_minor_may_create_or_delete_nodes(minor: str):
    for rule in DATA["minors"][minor]["clusterRole"]:
        if "nodes" in rule["resources"]:
            assert not {"create", "delete"} & set(rule["verbs"]), rule


def test_the_leader_lease_the_flags_name_is_the_one_the_chart_rules_grant():
    command = ca.container_command(ca.ClusterAutoscalerArgs(), [ca.ScaledGroup(0, 2, "asg")])
    assert f"--leader-elect-resource-name={ca.LEASE_NAME}" in command
    lease_rules = [r for r in DATA["minors"]["1.35"]["clusterRole"] if r["resources"] == ["leases"] and r.get("resourceNames")]
    assert lease_rules and lease_rules[0]["resourceNames"] == [ca.LEASE_NAME] and set(lease_rules[0]["verbs"]) == {"get", "update"}
    status = [r for r in DATA["minors"]["1.35"]["role"] if r.get("resourceNames")]
    assert status[0]["resourceNames"] == [ca.STATUS_CONFIG_MAP]
