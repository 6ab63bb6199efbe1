"""Escalator's own validation of a node group entry, re-implemented independently: a test oracle.

Written from Escalator v1.16.2's ``pkg/controller/node_group.go`` (``ValidateNodeGroup``)
and its config decoding, as described in ``shared/reference/escalator.md``; only the tests
use it, to check that every config :mod:`mleks.manifests.escalator_config` renders is one
Escalator would accept.  It lives here, not in the package, because it is a second
implementation kept on purpose apart from the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mleks.manifests.escalator_config import GoDurationError, parse_go_duration

# Escalator's own lists (pkg/k8s/taint.go, pkg/cloudprovider/aws), kept apart from the package's.
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
AWS_LIFECYCLES = ("on-demand", "spot")


def _escalator_duration(text: str) -> int:
    """Escalator's lazy ``...Duration()`` getters: a parse error yields 0."""
    try:
        return parse_go_duration(text)
    except GoDurationError:
        return 0


_GO_STRING_KEYS = frozenset(
    {
        "name",
        "label_key",
        "label_value",
        "cloud_provider_group_name",
        "soft_delete_grace_period",
        "hard_delete_grace_period",
        "scale_up_cool_down_period",
        "taint_effect",
        "max_node_age",
        "unhealthy_node_grace_period",
    }
)
_GO_INT_KEYS = frozenset(
    {
        "min_nodes",
        "max_nodes",
        "taint_upper_capacity_threshold_percent",
        "taint_lower_capacity_threshold_percent",
        "scale_up_threshold_percent",
        "slow_node_removal_rate",
        "fast_node_removal_rate",
        "health_check_newest_nodes_percent",
        "max_unhealthy_nodes_percent",
    }
)
_GO_BOOL_KEYS = frozenset({"dry_mode", "scale_on_starve"})
_GO_AWS_STRING_KEYS = frozenset({"launch_template_id", "launch_template_version", "fleet_instance_ready_timeout", "lifecycle"})


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _decode_errors(entry: Mapping[str, Any]) -> list[str]:
    """What encoding/json would refuse when decoding ``entry`` (message approximated).

    Unknown keys and ``null`` values are ignored, as in Go.
    """

    def bad(key: str, value: Any, go_type: str) -> str:
        field = f"NodeGroupOptions.node_groups.{key}"
        return f"json: cannot unmarshal {_json_kind(value)} into Go struct field {field} of type {go_type}"

    for key, value in entry.items():
        if value is None:
            continue
        if key in _GO_STRING_KEYS and not isinstance(value, str):
            return [bad(key, value, "string")]
        if key in _GO_INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
            return [bad(key, value, "int")]
        if key in _GO_BOOL_KEYS and not isinstance(value, bool):
            return [bad(key, value, "bool")]
        if key == "aws":
            if not isinstance(value, Mapping):
                return [bad(key, value, "controller.AWSNodeGroupOptions")]
            for aws_key, aws_value in value.items():
                if aws_value is None:
                    continue
                if aws_key in _GO_AWS_STRING_KEYS and not isinstance(aws_value, str):
                    return [bad(f"aws.{aws_key}", aws_value, "string")]
                if aws_key == "resource_tagging" and not isinstance(aws_value, bool):
                    return [bad(f"aws.{aws_key}", aws_value, "bool")]
                if aws_key == "instance_type_overrides" and not (isinstance(aws_value, list) and all(isinstance(x, str) for x in aws_value)):
                    return [bad(f"aws.{aws_key}", aws_value, "[]string")]
    return []


def validate_with_escalator_rules(entry: Mapping[str, Any]) -> list[str]:
    """Escalator v1.16.2's ``ValidateNodeGroup`` (pkg/controller/node_group.go), in Python.

    Returns the problems Escalator would log before exiting, in its order and
    with its wording; ``[]`` means Escalator accepts the entry.  It works on
    the plain dict (for example one item of ``yaml.safe_load(text)["node_groups"]``),
    independently of the pydantic model, with Go's zero values for missing keys.
    A value of the wrong JSON type makes Escalator's decoder fail before
    validation; that is reported as a single, approximately worded, decode error.

    Wording: the messages up to ``aws.lifecycle`` are verbatim.  They are
    quoted in escalator.md section 2, and the "failed to parse ..." tail comes
    from an earlier upstream node_group.go with the same checks.  That includes
    the upstream slip that reports a bad ``scale_up_cool_down_period`` as
    ``soft_delete_grace_period``.  The ``max_node_age`` and unhealthy-node
    messages are elided in the reference, so ours follow the same pattern but
    may differ in wording.
    """
    decode = _decode_errors(entry)
    if decode:
        return decode

    def s(key: str) -> str:
        value = entry.get(key)
        return value if isinstance(value, str) else ""

    def i(key: str) -> int:
        value = entry.get(key)
        return value if isinstance(value, int) else 0

    aws = entry.get("aws") or {}
    lifecycle = aws.get("lifecycle") or ""

    problems: list[str] = []

    def check_that(cond: bool, message: str) -> None:
        if not cond:
            problems.append(message)

    parse_failed = "failed to parse into a time.Duration. check your formatting."

    check_that(len(s("name")) > 0, "name cannot be empty")
    check_that(len(s("label_key")) > 0, "label_key cannot be empty")
    check_that(len(s("label_value")) > 0, "label_value cannot be empty")
    check_that(len(s("cloud_provider_group_name")) > 0, "cloud_provider_group_name cannot be empty")

    upper = i("taint_upper_capacity_threshold_percent")
    lower = i("taint_lower_capacity_threshold_percent")
    scale_up = i("scale_up_threshold_percent")
    check_that(upper > 0, "taint_upper_capacity_threshold_percent must be larger than 0")
    check_that(lower > 0, "taint_lower_capacity_threshold_percent must be larger than 0")
    check_that(scale_up > 0, "scale_up_threshold_percent must be larger than 0")
    check_that(lower < upper, "taint_lower_capacity_threshold_percent must be less than taint_upper_capacity_threshold_percent")
    check_that(upper < scale_up, "taint_upper_capacity_threshold_percent must be less than scale_up_threshold_percent")

    min_nodes, max_nodes = i("min_nodes"), i("max_nodes")
    if not (min_nodes == 0 and max_nodes == 0):  # autoDiscoverMinMaxNodeOptions
        check_that(min_nodes < max_nodes, "min_nodes must be less than max_nodes")
        check_that(max_nodes > 0, "max_nodes must be larger than 0")
        check_that(min_nodes >= 0, "min_nodes must be not less than 0")

    check_that(
        i("slow_node_removal_rate") <= i("fast_node_removal_rate"),
        "slow_node_removal_rate must be less than fast_node_removal_rate",
    )

    check_that(len(s("soft_delete_grace_period")) > 0, "soft_delete_grace_period must not be empty")
    check_that(len(s("hard_delete_grace_period")) > 0, "hard_delete_grace_period must not be empty")
    soft = _escalator_duration(s("soft_delete_grace_period"))
    hard = _escalator_duration(s("hard_delete_grace_period"))
    check_that(soft > 0, f"soft_delete_grace_period {parse_failed}")
    check_that(hard > 0, f"hard_delete_grace_period {parse_failed}")
    check_that(soft < hard, "soft_delete_grace_period must be less than hard_delete_grace_period")

    check_that(len(s("scale_up_cool_down_period")) > 0, "scale_up_cool_down_period must not be empty")
    # (sic) upstream names the wrong key in this message.
    check_that(_escalator_duration(s("scale_up_cool_down_period")) > 0, f"soft_delete_grace_period {parse_failed}")

    effect = s("taint_effect")
    check_that(effect == "" or effect in TAINT_EFFECTS, "taint_effect must be valid kubernetes taint")
    check_that(
        lifecycle == "" or lifecycle in AWS_LIFECYCLES,
        f"aws.lifecycle must be '{AWS_LIFECYCLES[0]}' or '{AWS_LIFECYCLES[1]}' if provided.",
    )

    max_node_age = s("max_node_age")
    check_that(max_node_age == "" or _parses(max_node_age), f"max_node_age {parse_failed}")

    if len(s("unhealthy_node_grace_period")) > 0:
        newest = i("health_check_newest_nodes_percent")
        max_unhealthy = i("max_unhealthy_nodes_percent")
        check_that(_escalator_duration(s("unhealthy_node_grace_period")) > 0, f"unhealthy_node_grace_period {parse_failed}")
        check_that(newest > 0, "health_check_newest_nodes_percent must be larger than 0")
        check_that(newest <= 100, "health_check_newest_nodes_percent must be less than or equal to 100")
        check_that(max_unhealthy >= 0, "max_unhealthy_nodes_percent must be not less than 0")
        check_that(max_unhealthy < 100, "max_unhealthy_nodes_percent must be less than 100")
    return problems


def _parses(text: str) -> bool:
    try:
        parse_go_duration(text)
    except GoDurationError:
        return False
    return True
