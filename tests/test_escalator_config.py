"""Escalator node-group options: validation, cross-checks, rendering, Escalator's own rules."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import yaml

from mleks.errors import ConfigError, ConfigErrors
from mleks.manifests.escalator_config import (
    ENTRY_KEYS,
    EscalatorGroup,
    EscalatorNodeGroupOptions,
    GoDurationError,
    build_node_group_entries,
    config_checksum,
    parse_go_duration,
    render_config_yaml,
)
from mleks.validation.schema import parse
from tests.escalator_oracle import validate_with_escalator_rules

PREFIX = "escalator.nodeGroups.train"
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


def options(**kwargs: Any) -> EscalatorNodeGroupOptions:
    return parse(EscalatorNodeGroupOptions, kwargs, PREFIX)


def group(name: str = "train", **kwargs: Any) -> EscalatorGroup:
    fields: dict[str, Any] = {
        "name": name,
        "label_key": "role",
        "label_value": name,
        "min_nodes": 0,
        "max_nodes": 4,
        "asg_name": f"eks-{name}-0ac6f2d1",
        "options": EscalatorNodeGroupOptions(),
        "config_key": f"escalator.nodeGroups.{name}",
    }
    fields.update(kwargs)
    return EscalatorGroup(**fields)


def option_errors(data: dict[str, Any]) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        parse(EscalatorNodeGroupOptions, data, PREFIX)
    return info.value.errors


def group_errors(*groups: EscalatorGroup) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        build_node_group_entries(groups)
    return info.value.errors


def only(errors: list[ConfigError], key: str) -> ConfigError:
    matching = [e for e in errors if e.key == key]
    assert len(matching) == 1, [str(e) for e in errors]
    return matching[0]


def round_trip(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    loaded = yaml.safe_load(render_config_yaml(entries))
    assert list(loaded) == ["node_groups"]
    groups: list[dict[str, Any]] = loaded["node_groups"]
    return groups


# --------------------------------------------------------------------------
# Go durations
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("90s", 90 * SECOND),
        ("2m", 2 * MINUTE),
        ("1h30m", 90 * MINUTE),
        ("1.5h", 90 * MINUTE),
        ("4h0m0s", 4 * HOUR),
        ("300ms", 300_000_000),
        ("2us", 2_000),
        ("2\u00b5s", 2_000),
        ("2\u03bcs", 2_000),
        ("7ns", 7),
        (".5s", 500_000_000),
        ("1.s", SECOND),
        ("+5s", 5 * SECOND),
        ("-1m", -MINUTE),
        ("1m1m", 2 * MINUTE),
        ("2562047h", 2562047 * HOUR),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
    ],
)
def test_go_duration_parser_accepts_what_go_accepts(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "1.5",
        "m",
        ".",
        "-",
        "1d",
        "1w",
        "5 m",
        "1h 30m",
        " 5m",
        "5M",
        "abc",
        "1e3s",
        ".s",
        "2562048h",
        "2562047.9h",
        "9223372036854775808ns",
        "0.0.1s",
    ],
)
def test_go_duration_parser_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(GoDurationError):
        parse_go_duration(text)


def test_go_duration_error_names_the_unknown_unit() -> None:
    with pytest.raises(GoDurationError, match='unknown unit "d"'):
        parse_go_duration("1d")


# --------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------


def test_defaults_pass_escalator_rules_after_rendering() -> None:
    entries = build_node_group_entries([group()])
    (rendered,) = round_trip(entries)
    assert validate_with_escalator_rules(rendered) == []


def test_defaults_never_evict_running_training_jobs() -> None:
    o = EscalatorNodeGroupOptions()
    assert o.taint_effect == "NoSchedule"
    assert o.max_node_age == ""
    assert parse_go_duration(o.hard_delete_grace_period) >= 24 * HOUR


def test_defaults_keep_escalator_threshold_order_and_rates() -> None:
    o = EscalatorNodeGroupOptions()
    assert 0 < o.taint_lower_capacity_threshold_percent < o.taint_upper_capacity_threshold_percent < o.scale_up_threshold_percent
    assert o.slow_node_removal_rate <= o.fast_node_removal_rate
    assert o.scale_on_starve is True
    assert parse_go_duration(o.soft_delete_grace_period) < parse_go_duration(o.hard_delete_grace_period)


def test_every_option_field_has_a_documented_reason() -> None:
    undocumented = [name for name, f in EscalatorNodeGroupOptions.model_fields.items() if not f.description]
    assert undocumented == []


def test_pasted_escalator_block_is_accepted_with_its_own_keys() -> None:
    pasted = yaml.safe_load(
        """
        min_nodes: 0
        max_nodes: 4
        label_key: role
        label_value: train
        dry_mode: false
        scale_on_starve: false
        taint_upper_capacity_threshold_percent: 40
        taint_lower_capacity_threshold_percent: 10
        scale_up_threshold_percent: 70
        slow_node_removal_rate: 2
        fast_node_removal_rate: 5
        scale_up_cool_down_period: 2m
        soft_delete_grace_period: 1m
        hard_delete_grace_period: 2h
        taint_effect: NoSchedule
        max_node_age: 24h
        """
    )
    o = parse(EscalatorNodeGroupOptions, pasted, PREFIX)
    (entry,) = build_node_group_entries([group(options=o)])
    assert entry["fast_node_removal_rate"] == 5
    assert entry["max_node_age"] == "24h"
    assert validate_with_escalator_rules(entry) == []


# --------------------------------------------------------------------------
# Option validation: one bad input per test
# --------------------------------------------------------------------------


def test_lower_taint_threshold_not_below_upper_is_rejected() -> None:
    err = only(
        option_errors({"taint_lower_capacity_threshold_percent": 40}),
        f"{PREFIX}.taint_lower_capacity_threshold_percent",
    )
    assert err.value == 40
    assert "taint_upper_capacity_threshold_percent (40)" in err.accepted
    assert "40" in str(err)


def test_upper_taint_threshold_not_below_scale_up_is_rejected() -> None:
    errors = option_errors({"taint_upper_capacity_threshold_percent": 80, "scale_up_threshold_percent": 80})
    err = only(errors, f"{PREFIX}.taint_upper_capacity_threshold_percent")
    assert err.value == 80
    assert "scale_up_threshold_percent (80)" in err.accepted


def test_zero_threshold_is_rejected_like_escalator() -> None:
    err = only(option_errors({"taint_lower_capacity_threshold_percent": 0}), f"{PREFIX}.taint_lower_capacity_threshold_percent")
    assert err.value == 0
    assert "larger than 0" in str(err)


def test_min_nodes_not_below_max_nodes_is_rejected() -> None:
    err = only(option_errors({"min_nodes": 3, "max_nodes": 3}), f"{PREFIX}.min_nodes")
    assert err.value == 3
    assert "min_nodes must be less than max_nodes" in str(err)


def test_slow_removal_rate_above_fast_is_rejected() -> None:
    err = only(option_errors({"slow_node_removal_rate": 3, "fast_node_removal_rate": 2}), f"{PREFIX}.slow_node_removal_rate")
    assert err.value == 3
    assert "fast_node_removal_rate (2)" in err.accepted


def test_equal_removal_rates_are_allowed_like_escalator() -> None:
    assert options(slow_node_removal_rate=2, fast_node_removal_rate=2).slow_node_removal_rate == 2


def test_soft_grace_not_shorter_than_hard_grace_is_rejected() -> None:
    errors = option_errors({"soft_delete_grace_period": "2h", "hard_delete_grace_period": "120m"})
    err = only(errors, f"{PREFIX}.soft_delete_grace_period")
    assert err.value == "2h"
    assert "'120m'" in err.accepted


@pytest.mark.parametrize("key", ["soft_delete_grace_period", "hard_delete_grace_period", "scale_up_cool_down_period"])
@pytest.mark.parametrize("bad", ["1d", "5", "5 minutes", ""])
def test_unparseable_duration_is_rejected_naming_key_and_value(key: str, bad: str) -> None:
    err = only(option_errors({key: bad}), f"{PREFIX}.{key}")
    assert err.value == bad
    assert "Go duration" in err.accepted
    assert f"{PREFIX}.{key} = {bad!r}" in str(err)


@pytest.mark.parametrize("key", ["soft_delete_grace_period", "scale_up_cool_down_period"])
def test_zero_or_negative_required_duration_is_rejected(key: str) -> None:
    for bad in ("0", "0s", "-5m"):
        err = only(option_errors({key: bad}), f"{PREFIX}.{key}")
        assert err.value == bad


def test_duration_given_as_a_number_is_rejected() -> None:
    err = only(option_errors({"scale_up_cool_down_period": 120}), f"{PREFIX}.scale_up_cool_down_period")
    assert err.value == 120


def test_bad_max_node_age_is_rejected_but_empty_and_zero_disable_it() -> None:
    err = only(option_errors({"max_node_age": "7d"}), f"{PREFIX}.max_node_age")
    assert err.value == "7d"
    assert only(option_errors({"max_node_age": "-1h"}), f"{PREFIX}.max_node_age").value == "-1h"
    assert options(max_node_age="").max_node_age == ""
    assert options(max_node_age="0").max_node_age == "0"


def test_unknown_key_typo_is_rejected_with_the_right_spelling() -> None:
    err = only(option_errors({"scale_up_cooldown_period": "2m"}), f"{PREFIX}.scale_up_cooldown_period")
    assert err.value == "2m"
    assert err.problem is not None
    assert "closest known key is 'scale_up_cool_down_period'" in err.problem


def test_unknown_key_does_not_hide_other_problems() -> None:
    errors = option_errors({"scale_up_cooldown_period": "2m", "taint_effect": "Evict"})
    assert {e.key for e in errors} == {f"{PREFIX}.scale_up_cooldown_period", f"{PREFIX}.taint_effect"}


def test_camel_case_keys_are_not_accepted() -> None:
    err = only(option_errors({"scaleUpThresholdPercent": 70}), f"{PREFIX}.scaleUpThresholdPercent")
    assert err.problem is not None
    assert "unknown key" in err.problem


def test_removed_cool_down_timeout_key_is_rejected_with_reason() -> None:
    err = only(option_errors({"scale_up_cool_down_timeout": "10m"}), f"{PREFIX}.scale_up_cool_down_timeout")
    assert "PR #83" in str(err)


@pytest.mark.parametrize("key", ["name", "cloud_provider_group_name"])
def test_keys_set_from_the_node_group_are_rejected(key: str) -> None:
    err = only(option_errors({key: "x"}), f"{PREFIX}.{key}")
    assert err.value == "x"
    assert "set automatically" in str(err)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("launch_template_id", "lt-0123"),
        ("launch_template_version", "1"),
        ("fleet_instance_ready_timeout", "1m"),
        ("instance_type_overrides", ["p4d.24xlarge"]),
        ("lifecycle", "spot"),
    ],
)
def test_fleet_path_keys_are_rejected_with_reason(key: str, value: Any) -> None:
    err = only(option_errors({"aws": {key: value}}), f"{PREFIX}.aws.{key}")
    assert err.value == value
    assert "CreateFleet" in str(err)


def test_bad_taint_effect_is_rejected() -> None:
    err = only(option_errors({"taint_effect": "NoExecuteNow"}), f"{PREFIX}.taint_effect")
    assert err.value == "NoExecuteNow"
    assert "NoSchedule" in err.accepted


@pytest.mark.parametrize(
    ("key", "bad"),
    [("dry_mode", "false"), ("scale_on_starve", 1), ("min_nodes", True), ("scale_up_threshold_percent", "70")],
)
def test_values_of_the_wrong_type_are_not_coerced(key: str, bad: Any) -> None:
    err = only(option_errors({key: bad}), f"{PREFIX}.{key}")
    assert err.value == bad


def test_unhealthy_node_check_requires_the_newest_nodes_percent() -> None:
    err = only(option_errors({"unhealthy_node_grace_period": "10m"}), f"{PREFIX}.health_check_newest_nodes_percent")
    assert err.value == 0
    assert "1 to 100" in err.accepted


def test_unhealthy_node_check_rejects_max_unhealthy_of_100() -> None:
    data = {
        "unhealthy_node_grace_period": "10m",
        "health_check_newest_nodes_percent": 50,
        "max_unhealthy_nodes_percent": 100,
    }
    err = only(option_errors(data), f"{PREFIX}.max_unhealthy_nodes_percent")
    assert err.value == 100


def test_every_cross_field_problem_is_reported_at_once() -> None:
    errors = option_errors(
        {
            "taint_lower_capacity_threshold_percent": 50,
            "slow_node_removal_rate": 5,
            "soft_delete_grace_period": "48h",
        }
    )
    assert {e.key for e in errors} == {
        f"{PREFIX}.taint_lower_capacity_threshold_percent",
        f"{PREFIX}.slow_node_removal_rate",
        f"{PREFIX}.soft_delete_grace_period",
    }


# --------------------------------------------------------------------------
# Cross-checks against the node groups
# --------------------------------------------------------------------------


def test_group_named_default_is_rejected() -> None:
    err = only(group_errors(group("default")), "escalator.nodeGroups.default.name")
    assert err.value == "default"
    assert "nodeSelector" in str(err)


def test_duplicate_group_names_are_rejected() -> None:
    first = group("train")
    second = group("train", config_key="escalator.nodeGroups.train2", asg_name="eks-other", label_value="train2")
    err = only(group_errors(first, second), "escalator.nodeGroups.train2.name")
    assert err.value == "train"
    assert "escalator.nodeGroups.train" in str(err)


def test_duplicate_asg_names_are_rejected() -> None:
    errors = group_errors(group("train"), group("infer", asg_name="eks-train-0ac6f2d1"))
    err = only(errors, "escalator.nodeGroups.infer.cloud_provider_group_name")
    assert err.value == "eks-train-0ac6f2d1"


def test_two_groups_on_the_same_label_are_rejected() -> None:
    errors = group_errors(group("train"), group("train-big", label_value="train"))
    err = only(errors, "escalator.nodeGroups.train-big.label_value")
    assert err.value == "train"


def test_label_override_that_differs_from_the_node_group_is_rejected() -> None:
    errors = group_errors(group(options=options(label_value="training")))
    err = only(errors, "escalator.nodeGroups.train.label_value")
    assert err.value == "training"
    assert "'train'" in err.accepted


def test_label_key_override_that_differs_from_the_node_group_is_rejected() -> None:
    err = only(group_errors(group(options=options(label_key="nodegroup"))), "escalator.nodeGroups.train.label_key")
    assert err.value == "nodegroup"
    assert "'role'" in err.accepted


def test_max_nodes_override_that_differs_from_the_node_group_is_rejected() -> None:
    errors = group_errors(group(max_nodes=4, options=options(max_nodes=8)))
    err = only(errors, "escalator.nodeGroups.train.max_nodes")
    assert err.value == 8
    assert "4" in err.accepted
    assert "ASG max" in str(err)


def test_matching_overrides_are_accepted_and_rendered_from_the_node_group() -> None:
    o = options(label_key="role", label_value="train", min_nodes=0, max_nodes=4)
    (entry,) = build_node_group_entries([group(options=o)])
    assert (entry["label_key"], entry["label_value"], entry["min_nodes"], entry["max_nodes"]) == ("role", "train", 0, 4)


def test_node_group_with_min_equal_to_max_is_rejected() -> None:
    err = only(group_errors(group(min_nodes=2, max_nodes=2)), "escalator.nodeGroups.train.min_nodes")
    assert err.value == 2
    assert "min_nodes must be less than max_nodes" in str(err)


def test_node_group_with_max_zero_is_rejected() -> None:
    err = only(group_errors(group(min_nodes=0, max_nodes=0)), "escalator.nodeGroups.train.max_nodes")
    assert err.value == 0


def test_empty_asg_name_is_rejected() -> None:
    err = only(group_errors(group(asg_name="")), "escalator.nodeGroups.train.cloud_provider_group_name")
    assert err.value == ""


def test_every_group_problem_is_reported_at_once() -> None:
    errors = group_errors(
        group("default", min_nodes=3, max_nodes=3),
        group("infer", asg_name="eks-default-0ac6f2d1"),
    )
    assert {e.key for e in errors} == {
        "escalator.nodeGroups.default.name",
        "escalator.nodeGroups.default.min_nodes",
        "escalator.nodeGroups.infer.cloud_provider_group_name",
    }


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def two_groups() -> list[EscalatorGroup]:
    return [
        group("train", max_nodes=8, options=options(max_node_age="0", aws={"resource_tagging": True})),
        group("batch", min_nodes=1, max_nodes=3),
    ]


def test_rendering_is_byte_identical_across_calls() -> None:
    first = render_config_yaml(build_node_group_entries(two_groups()))
    second = render_config_yaml(build_node_group_entries(two_groups()))
    assert first == second
    assert config_checksum(first) == config_checksum(second)


def test_rendering_does_not_depend_on_group_or_key_order() -> None:
    entries = build_node_group_entries(two_groups())
    reversed_groups = build_node_group_entries(list(reversed(two_groups())))
    shuffled_keys = [dict(reversed(list(e.items()))) for e in entries]
    assert render_config_yaml(entries) == render_config_yaml(reversed_groups) == render_config_yaml(shuffled_keys)


def test_rendered_yaml_parses_back_to_the_expected_structure() -> None:
    batch, train = round_trip(build_node_group_entries(two_groups()))
    assert batch == {
        "name": "batch",
        "label_key": "role",
        "label_value": "batch",
        "cloud_provider_group_name": "eks-batch-0ac6f2d1",
        "min_nodes": 1,
        "max_nodes": 3,
        "dry_mode": False,
        "scale_on_starve": True,
        "taint_upper_capacity_threshold_percent": 40,
        "taint_lower_capacity_threshold_percent": 10,
        "scale_up_threshold_percent": 70,
        "slow_node_removal_rate": 1,
        "fast_node_removal_rate": 2,
        "soft_delete_grace_period": "10m",
        "hard_delete_grace_period": "24h",
        "scale_up_cool_down_period": "5m",
        "taint_effect": "NoSchedule",
    }
    assert list(batch) == [k for k in ENTRY_KEYS if k in batch]
    assert train["name"] == "train"
    assert train["max_nodes"] == 8
    assert train["aws"] == {"resource_tagging": True}


def test_durations_stay_strings_and_counts_stay_ints_after_yaml() -> None:
    (train,) = round_trip(build_node_group_entries([group(options=options(max_node_age="0"))]))
    assert train["max_node_age"] == "0"
    assert "max_node_age: '0'" in render_config_yaml(build_node_group_entries([group(options=options(max_node_age="0"))]))
    for key in ("soft_delete_grace_period", "hard_delete_grace_period", "scale_up_cool_down_period"):
        assert isinstance(train[key], str)
    for key in ("min_nodes", "max_nodes", "scale_up_threshold_percent", "fast_node_removal_rate"):
        assert type(train[key]) is int
    assert type(train["dry_mode"]) is bool


def test_aws_block_and_disabled_features_are_omitted_when_empty() -> None:
    (train,) = round_trip(build_node_group_entries([group()]))
    for key in ("aws", "max_node_age", "unhealthy_node_grace_period", "health_check_newest_nodes_percent"):
        assert key not in train


def test_unhealthy_node_settings_are_rendered_when_enabled() -> None:
    o = options(unhealthy_node_grace_period="10m", health_check_newest_nodes_percent=50, max_unhealthy_nodes_percent=20)
    (train,) = round_trip(build_node_group_entries([group(options=o)]))
    assert (train["unhealthy_node_grace_period"], train["health_check_newest_nodes_percent"]) == ("10m", 50)
    assert train["max_unhealthy_nodes_percent"] == 20
    assert validate_with_escalator_rules(train) == []


def test_render_refuses_keys_escalator_does_not_know() -> None:
    (entry,) = build_node_group_entries([group()])
    with pytest.raises(ValueError, match="scale_up_cooldown_period"):
        render_config_yaml([{**entry, "scale_up_cooldown_period": "2m"}])


def test_checksum_is_sha256_and_changes_with_the_config() -> None:
    text = render_config_yaml(build_node_group_entries([group()]))
    other = render_config_yaml(build_node_group_entries([group(max_nodes=5)]))
    assert re.fullmatch(r"[0-9a-f]{64}", config_checksum(text))
    assert config_checksum(text) != config_checksum(other)
    assert config_checksum("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"taint_effect": "NoExecute", "dry_mode": True},
        {
            "taint_lower_capacity_threshold_percent": 1,
            "taint_upper_capacity_threshold_percent": 2,
            "scale_up_threshold_percent": 3,
        },
        {"soft_delete_grace_period": "1ns", "hard_delete_grace_period": "2ns", "scale_up_cool_down_period": "1.5h"},
        {"slow_node_removal_rate": 0, "fast_node_removal_rate": 0, "scale_on_starve": False},
        {"max_node_age": "72h", "aws": {"resource_tagging": True}},
        {
            "unhealthy_node_grace_period": "1m",
            "health_check_newest_nodes_percent": 100,
            "max_unhealthy_nodes_percent": 99,
        },
    ],
)
def test_whatever_validates_renders_to_something_escalator_accepts(overrides: dict[str, Any]) -> None:
    o = options(**overrides)
    for rendered in round_trip(build_node_group_entries([group(options=o), group("batch", min_nodes=1, max_nodes=2)])):
        assert validate_with_escalator_rules(rendered) == []


# --------------------------------------------------------------------------
# Escalator's own rules, independent of the model
# --------------------------------------------------------------------------


def escalator_entry(**changes: Any) -> dict[str, Any]:
    (entry,) = build_node_group_entries([group()])
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": None}, "name cannot be empty"),
        ({"label_key": ""}, "label_key cannot be empty"),
        ({"cloud_provider_group_name": None}, "cloud_provider_group_name cannot be empty"),
        ({"scale_up_threshold_percent": 0}, "scale_up_threshold_percent must be larger than 0"),
        (
            {"taint_lower_capacity_threshold_percent": 40},
            "taint_lower_capacity_threshold_percent must be less than taint_upper_capacity_threshold_percent",
        ),
        (
            {"scale_up_threshold_percent": 40},
            "taint_upper_capacity_threshold_percent must be less than scale_up_threshold_percent",
        ),
        ({"min_nodes": 3, "max_nodes": 3}, "min_nodes must be less than max_nodes"),
        ({"min_nodes": -1, "max_nodes": 3}, "min_nodes must be not less than 0"),
        ({"slow_node_removal_rate": 3}, "slow_node_removal_rate must be less than fast_node_removal_rate"),
        ({"hard_delete_grace_period": None}, "hard_delete_grace_period must not be empty"),
        (
            {"soft_delete_grace_period": "1d"},
            "soft_delete_grace_period failed to parse into a time.Duration. check your formatting.",
        ),
        ({"soft_delete_grace_period": "48h"}, "soft_delete_grace_period must be less than hard_delete_grace_period"),
        ({"taint_effect": "Evict"}, "taint_effect must be valid kubernetes taint"),
        ({"aws": {"lifecycle": "reserved"}}, "aws.lifecycle must be 'on-demand' or 'spot' if provided."),
        ({"max_node_age": "1w"}, "max_node_age failed to parse into a time.Duration. check your formatting."),
        ({"unhealthy_node_grace_period": "5m"}, "health_check_newest_nodes_percent must be larger than 0"),
    ],
)
def test_escalator_rules_report_escalators_own_message(changes: dict[str, Any], message: str) -> None:
    assert message in validate_with_escalator_rules(escalator_entry(**changes))


def test_escalator_rules_reuse_the_upstream_wrong_key_for_a_bad_cool_down() -> None:
    problems = validate_with_escalator_rules(escalator_entry(scale_up_cool_down_period="2 minutes"))
    assert problems == ["soft_delete_grace_period failed to parse into a time.Duration. check your formatting."]


def test_escalator_rules_accept_auto_discovery_but_not_equal_sizes() -> None:
    assert validate_with_escalator_rules(escalator_entry(min_nodes=0, max_nodes=0)) == []
    assert validate_with_escalator_rules(escalator_entry(min_nodes=2, max_nodes=2)) == ["min_nodes must be less than max_nodes"]


def test_escalator_rules_ignore_unknown_keys_like_escalator() -> None:
    assert validate_with_escalator_rules(escalator_entry(scale_up_cooldown_period="2m")) == []


def test_escalator_rules_report_a_decode_error_for_a_wrongly_typed_value() -> None:
    (problem,) = validate_with_escalator_rules(escalator_entry(max_node_age=0))
    assert "cannot unmarshal number 0" in problem
    assert "max_node_age of type string" in problem


def test_escalator_rules_report_a_decode_error_for_a_quoted_count() -> None:
    (problem,) = validate_with_escalator_rules(escalator_entry(min_nodes="1"))
    assert "cannot unmarshal string" in problem
    assert "min_nodes of type int" in problem


def test_escalator_rules_list_every_problem_in_source_order() -> None:
    problems = validate_with_escalator_rules({})
    assert problems[:4] == [
        "name cannot be empty",
        "label_key cannot be empty",
        "label_value cannot be empty",
        "cloud_provider_group_name cannot be empty",
    ]
    assert problems[-1] == "soft_delete_grace_period failed to parse into a time.Duration. check your formatting."
    assert len(problems) == 16


@pytest.mark.parametrize(
    "bad",
    [
        {"taint_lower_capacity_threshold_percent": 40},
        {"taint_upper_capacity_threshold_percent": 70},
        {"slow_node_removal_rate": 3},
        {"soft_delete_grace_period": "24h"},
        {"hard_delete_grace_period": "1d"},
        {"scale_up_cool_down_period": "0"},
        {"taint_effect": "Evict"},
        {"max_node_age": "1w"},
        {"unhealthy_node_grace_period": "5m"},
        {"min_nodes": 4, "max_nodes": 4},
    ],
)
def test_what_escalator_rejects_our_model_rejects_too(bad: dict[str, Any]) -> None:
    assert validate_with_escalator_rules(escalator_entry(**bad)) != []
    with pytest.raises(ConfigErrors):
        parse(EscalatorNodeGroupOptions, bad, PREFIX)


def test_escalator_group_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        group().max_nodes = 9  # type: ignore[misc]
