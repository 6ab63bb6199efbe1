"""Input a new user gets wrong: each case fails before any resource is registered, with every problem at once.

Each message names the key, shows the value as the user wrote it, and says what is accepted.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from mleks.catalogs.eks_versions import extended_support_warning
from mleks.errors import ConfigErrors
from mleks.validation import tags as tag_limits
from stacks import offline


def unified() -> dict[str, Any]:
    return copy.deepcopy(offline.load_stack_file("unified"))


def errors_of(cfg: dict[str, Any], stack: str = "unified") -> list:
    with pytest.raises(ConfigErrors) as info:
        offline.run(stack, config=cfg)
    assert info.value.registered_urns == [], "nothing may be registered before the config is valid"  # type: ignore[attr-defined]
    return info.value.errors


# -- region --------------------------------------------------------------------------------


@pytest.mark.parametrize(("region", "suggestion"), [("eu-wset-1", "eu-west-1"), ("us-wets-2", "us-west-2")])
def test_a_misspelt_region_is_one_error_naming_aws_region_with_the_closest_real_ones(region: str, suggestion: str):
    cfg = unified()
    cfg["aws:region"] = region
    [err] = errors_of(cfg)  # and no DLC errors that follow from it
    assert err.key == "aws:region" and err.value == region
    assert suggestion in err.problem and "aws-cn: cn-north-1, cn-northwest-1" in err.accepted


def test_mleks_region_is_refused_so_one_stack_cannot_mix_two_regions():
    cfg = unified()
    cfg["mleks:region"] = "eu-west-1"
    [err] = errors_of(cfg)
    assert err.key == "mleks:region" and err.value == "eu-west-1" and "aws:region" in err.accepted


def test_an_unknown_mleks_key_is_refused_with_the_known_ones():
    cfg = unified()
    cfg["mleks:nodegroups"] = {}
    [err] = errors_of(cfg)
    assert err.key == "mleks:nodegroups" and "nodeGroups" in err.accepted


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1", "us-isob-east-1", "eusc-de-east-1", "mx-central-1"])
def test_every_partitions_regions_are_known(region: str):
    from mleks.catalogs.partitions import check_region

    assert check_region(region) == region


# -- every problem in one run ---------------------------------------------------------------


def test_problems_in_several_sections_and_between_sections_are_reported_in_one_run():
    cfg = unified()
    cfg["mleks:nodeGroups"]["inference-spot"]["instanceTypes"] = ["g6e.xlarge", "m5.large"]  # schema
    cfg["mleks:nodeGroups"]["inference-spot"].update({"diskThroughputMibps": 1000, "diskIops": 3000})  # the same group's own rule
    cfg["mleks:cluster"]["logRetentionDays"] = 8  # another section
    cfg["mleks:tags"]["aws:owner"] = "me"  # another
    cfg["mleks:trainingJobs"]["gpu-smoke"]["nodes"] = 9  # between sections: more pods than the train group's maxSize
    keys = sorted(e.key for e in errors_of(cfg))
    assert keys == sorted(
        [
            "mleks:nodeGroups.inference-spot.instanceTypes[1]",
            "mleks:cluster.logRetentionDays",
            "mleks:tags.aws:owner",
            "mleks:trainingJobs.gpu-smoke.nodes",
        ]
    )
    # The throughput check needs valid instance types; once they are fixed it is reported with the rest.
    cfg["mleks:nodeGroups"]["inference-spot"]["instanceTypes"] = ["g6e.xlarge"]
    assert "mleks:nodeGroups.inference-spot.diskThroughputMibps" in [e.key for e in errors_of(cfg)]


def test_a_node_groups_own_rules_are_all_reported_together():
    cfg = unified()
    cfg["mleks:nodeGroups"]["train-p5"].update({"minSize": 5, "maxSize": 4, "diskThroughputMibps": 1000, "diskIops": 3000, "labels": {"role": "x"}})
    keys = {e.key for e in errors_of(cfg)}
    assert {"mleks:nodeGroups.train-p5.maxSize", "mleks:nodeGroups.train-p5.diskThroughputMibps", "mleks:nodeGroups.train-p5.labels.role"} <= keys


def test_workloads_on_a_broken_group_wait_for_the_group_to_be_fixed_instead_of_adding_noise():
    cfg = unified()
    cfg["mleks:nodeGroups"]["train-p5"]["instanceTypes"] = ["p4d.24xlargee"]
    keys = [e.key for e in errors_of(cfg)]
    assert keys == ["mleks:nodeGroups.train-p5.instanceTypes[0]"]


def test_an_error_shows_the_value_as_written_not_as_parsed():
    cfg = unified()
    for group in cfg["mleks:nodeGroups"].values():
        group["autoscaler"] = "none"
    cfg["mleks:clusterAutoscaler"] = {"expander": "least-waste"}  # the default, written out
    cfg.pop("mleks:escalator")
    [err] = errors_of(cfg)
    assert err.key == "mleks:clusterAutoscaler" and err.value == {"expander": "least-waste"}


# -- numbers YAML reads as floats ----------------------------------------------------------


def test_an_unquoted_kubernetes_version_is_refused_saying_to_quote_it():
    cfg = unified()
    cfg["mleks:cluster"]["kubernetesVersion"] = 1.30  # what YAML makes of `kubernetesVersion: 1.30`
    [err] = errors_of(cfg)
    assert err.key == "mleks:cluster.kubernetesVersion" and err.value == 1.3
    assert "quote" in err.problem and '"1.3' in err.accepted


def test_an_unquoted_framework_version_is_refused_saying_to_quote_it():
    cfg = unified()
    cfg["mleks:trainingJobs"]["gpu-smoke"]["version"] = 2.10
    [err] = errors_of(cfg)
    assert err.key == "mleks:trainingJobs.gpu-smoke.version" and "YAML reads" in err.problem


# -- AWS tags ------------------------------------------------------------------------------


def test_more_tags_than_aws_allows_beside_ours_are_refused():
    cfg = unified()
    cfg["mleks:tags"] = {f"k{i}": "v" for i in range(tag_limits.MAX_USER_TAGS + 1)}
    [err] = errors_of(cfg)
    assert err.key == "mleks:tags" and f"at most {tag_limits.MAX_USER_TAGS}" in err.accepted
    # The stack's tags also propagate through each group's Auto Scaling group, where cluster-autoscaler's
    # node-template tags take room: fewer fit while a cluster-autoscaler group exists.
    cfg["mleks:tags"] = {f"k{i}": "v" for i in range(tag_limits.MAX_USER_TAGS)}
    [err] = errors_of(cfg)
    assert err.key == "mleks:tags" and err.value == "40 tags" and "at most 33 tags" in err.accepted
    assert "'inference-spot', 'inference-ondemand'" in err.accepted
    cfg["mleks:tags"] = {f"k{i}": "v" for i in range(33)}
    assert offline.run("unified", config=cfg).resources


def test_the_user_tag_allowance_leaves_room_for_the_tags_added_to_node_instances():
    assert tag_limits.MAX_USER_TAGS + len(tag_limits.PROJECT_TAG_KEYS) + len(tag_limits.SERVICE_TAG_KEYS) == 50


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("k" * 129, "v", "129 characters"),
        ("team", "v" * 257, "257 characters"),
        ("AWS:team", "v", "reserved prefix"),
        ("team#1", "v", "character AWS does not allow"),
        ("team", "a;b", "character AWS does not allow"),
        ("Name", "x", "sets that tag itself"),
        ("cost-center", 1234, "not a string"),
    ],
)
def test_tags_aws_would_refuse_are_refused_naming_the_tag(key: str, value: Any, problem: str):
    cfg = unified()
    cfg["mleks:tags"] = {key: value}
    [err] = errors_of(cfg)
    assert err.key == f"mleks:tags.{key}" and problem in err.problem


def test_every_tag_problem_is_reported_at_once():
    cfg = unified()
    cfg["mleks:tags"] = {"aws:a": "1", "b": "x" * 300, "c#": "1"}
    assert len(errors_of(cfg)) == 3


# -- system node instance types ------------------------------------------------------------


def test_a_gpu_type_in_the_system_group_is_refused():
    cfg = unified()
    cfg["mleks:cluster"]["systemNodes"]["instanceTypes"] = ["p4d.24xlarge"]
    [err] = errors_of(cfg)
    assert err.key == "mleks:cluster.systemNodes.instanceTypes[0]" and err.value == "p4d.24xlarge" and "a100" in err.problem


def test_a_misspelt_system_type_is_refused_with_the_closest_real_ones():
    cfg = unified()
    cfg["mleks:cluster"]["systemNodes"]["instanceTypes"] = ["m7i.large", "m7i.lage"]
    [err] = errors_of(cfg)
    assert err.key == "mleks:cluster.systemNodes.instanceTypes[1]" and "m7i.large" in err.problem


# -- EFA where no add-on registry is known -------------------------------------------------


def test_efa_in_a_region_without_an_eks_addon_registry_fails_before_registration_naming_the_group():
    cfg = unified()
    cfg["aws:region"] = "mx-central-1"
    cfg["mleks:trainingJobs"] = {}
    cfg["mleks:inferenceServices"] = {}
    cfg["mleks:notebooks"] = {}
    [err] = errors_of(cfg)
    assert err.key == "mleks:nodeGroups.train-p5.efa" and "mx-central-1" in err.problem


# -- warnings ------------------------------------------------------------------------------


def test_a_version_in_extended_support_warns_with_the_price_difference(caplog: pytest.LogCaptureFixture):
    cfg = unified()
    cfg["mleks:cluster"]["kubernetesVersion"] = "1.33"  # extended support since 2026-07-29
    with caplog.at_level(logging.WARNING):
        offline.run("unified", config=cfg)
    [message] = [r.getMessage() for r in caplog.records if "extended support" in r.getMessage()]
    assert message.startswith("mleks:cluster.kubernetesVersion = '1.33': in EKS extended support until 2027-07-29")
    assert "$0.60 per hour instead of $0.10" in message and "+$0.50 an hour" in message


def test_a_standard_support_version_does_not_warn():
    assert extended_support_warning("1.35") is None


def test_warnings_name_the_key_a_user_sets(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        offline.run("unified")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("mleks:inferenceServices.densenet.image.dlc.version = '2.6'") and "(image.uri)" in m for m in messages)
    assert not any("image_override" in m for m in messages)
