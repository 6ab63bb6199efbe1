"""Atlassian Escalator node-group options: typed model, validation and rendering.

Escalator (https://github.com/atlassian/escalator, pinned to v1.16.2) scales
batch node groups by the CPU and memory *requests* of the pods that select them.
It reads one YAML file, ``node_groups: [...]``, once at start-up.  This module
turns our typed options into that file.  It is plain Python (no Pulumi), so the
tests run it directly; the Escalator component calls it inside ``Output.apply``
once the ASG names are known.

Facts and line references come from ``shared/reference/escalator.md``, which was
read from the Escalator v1.16.2 source (section numbers below point into it).

Design decisions
----------------
* **Keys are Escalator's own snake_case keys** (no camelCase alias), so a block
  of Escalator config can be pasted as is.  Unlike Escalator, which silently
  ignores unknown keys (§1.1), an unknown key or typo is an error here, with a
  "did you mean" hint.
* **Derived keys.** ``name``, ``cloud_provider_group_name``, ``label_key``,
  ``label_value``, ``min_nodes`` and ``max_nodes`` come from the node group the
  options are attached to (:class:`EscalatorGroup`).  ``name`` and
  ``cloud_provider_group_name`` are rejected in the options.  ``label_key``,
  ``label_value``, ``min_nodes`` and ``max_nodes`` may be given, but only so a
  pasted block is checked: each must equal the node group's value, otherwise
  :func:`build_node_group_entries` rejects it.  The rendered file always carries
  the node group's explicit min/max, never the 0/0 auto-discovery form.
* **No fleet path.** ``aws.launch_template_id``, ``aws.launch_template_version``,
  ``aws.fleet_instance_ready_timeout``, ``aws.instance_type_overrides`` and
  ``aws.lifecycle`` only matter for Escalator's EC2 CreateFleet + AttachInstances
  scale-up.  Attaching externally launched instances to an EKS managed node
  group's ASG is untested upstream and fights EKS's own management (§5.3), so
  these keys are rejected.  Only ``aws.resource_tagging`` is kept.
* **Errors.** A single bad options block raises pydantic's error, which
  :func:`mleks.validation.schema.parse` turns into ``ConfigErrors``.  Unknown keys
  and per-key problems are reported together.  The cross-key rules (threshold
  order, grace periods, ...) run once every key is valid, and also report all
  their problems at once.
  :func:`build_node_group_entries` always raises ``ConfigErrors`` listing every
  problem it found.

Caveat for GPU groups
---------------------
Escalator's utilisation is the larger of CPU and memory requests over the
allocatable of untainted nodes (§4.5).  GPU requests are **not** counted.  A
pod that asks for eight GPUs but little CPU and memory does not move
utilisation.  Training pods on Escalator groups must therefore request CPU and
memory in proportion to their GPUs, for example the whole node's allocatable
for a whole-node job.  ``scale_on_starve`` (on by default) covers the pending
pod that does not fit anywhere.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, ValidationError

from mleks.errors import ConfigError, ConfigErrors
from mleks.validation.schema import Model, error_line, raise_all

ESCALATOR_VERSION = "v1.16.2"

# The group name Escalator treats specially: it watches every pod with no
# nodeSelector and no affinity, cluster-wide (§1.2, §5.4).
DEFAULT_GROUP_NAME = "default"

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
TAINT_EFFECTS: tuple[str, ...] = ("NoSchedule", "PreferNoSchedule", "NoExecute")
AWS_LIFECYCLES: tuple[str, ...] = ("on-demand", "spot")

NonNegativeInt = Annotated[StrictInt, Field(ge=0)]

# --------------------------------------------------------------------------
# Go durations
# --------------------------------------------------------------------------

_NANOSECOND = 1
_UNITS_NS: dict[str, int] = {
    "ns": _NANOSECOND,
    "us": 1_000,
    "\u00b5s": 1_000,  # U+00B5 MICRO SIGN
    "\u03bcs": 1_000,  # U+03BC GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_INT64 = (1 << 63) - 1
_DIGITS = frozenset("0123456789")

DURATION_ACCEPTED = 'a Go duration string such as "90s", "5m", "1h30m" or "1.5h" (units ns, us, ms, s, m, h; Go has no day unit, write 24h)'


class GoDurationError(ValueError):
    """A string that Go's ``time.ParseDuration`` would reject."""


def parse_go_duration(text: str) -> int:
    """Parse ``text`` exactly as Go's ``time.ParseDuration`` does; return nanoseconds.

    Grammar: ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+``, or the bare string ``"0"``.
    Units: ``ns``, ``us`` (also ``µs``/``μs``), ``ms``, ``s``, ``m``, ``h``.
    There is no day unit.  Spaces are not allowed.  A value outside the int64
    nanosecond range (about 292 years) overflows, as in Go.
    """
    if not isinstance(text, str):
        raise GoDurationError(f"time: invalid duration {text!r} (not a string)")
    orig = text
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise GoDurationError(f'time: invalid duration "{orig}"')
    total = 0
    while s:
        if not (s[0] == "." or s[0] in _DIGITS):
            raise GoDurationError(f'time: invalid duration "{orig}"')
        # Integer part [0-9]*
        i = 0
        while i < len(s) and s[i] in _DIGITS:
            i += 1
        pre = i > 0
        whole = int(s[:i]) if pre else 0
        if whole > 1 << 63:
            raise GoDurationError(f'time: invalid duration "{orig}"')
        s = s[i:]
        # Fraction part (\.[0-9]*)?  Go keeps at most what fits in uint64 and
        # drops the remaining digits.
        frac, scale, post = 0, 1.0, False
        if s and s[0] == ".":
            s = s[1:]
            j = 0
            overflow = False
            while j < len(s) and s[j] in _DIGITS:
                if not overflow:
                    if frac > _MAX_INT64 // 10:
                        overflow = True
                    else:
                        y = frac * 10 + int(s[j])
                        if y > 1 << 63:
                            overflow = True
                        else:
                            frac = y
                            scale *= 10
                j += 1
            post = j > 0
            s = s[j:]
        if not pre and not post:
            raise GoDurationError(f'time: invalid duration "{orig}"')
        # Unit: everything up to the next digit or dot.
        k = 0
        while k < len(s) and s[k] != "." and s[k] not in _DIGITS:
            k += 1
        if k == 0:
            raise GoDurationError(f'time: missing unit in duration "{orig}"')
        unit_name, s = s[:k], s[k:]
        unit = _UNITS_NS.get(unit_name)
        if unit is None:
            raise GoDurationError(f'time: unknown unit "{unit_name}" in duration "{orig}"')
        if whole > (1 << 63) // unit:
            raise GoDurationError(f'time: invalid duration "{orig}"')
        value = whole * unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))
            if value > 1 << 63:
                raise GoDurationError(f'time: invalid duration "{orig}"')
        total += value
        if total > 1 << 63:
            raise GoDurationError(f'time: invalid duration "{orig}"')
    if neg:
        return -total
    if total > _MAX_INT64:
        raise GoDurationError(f'time: invalid duration "{orig}"')
    return total


# --------------------------------------------------------------------------
# Error plumbing
# --------------------------------------------------------------------------


def _check_keys(model: type[BaseModel], data: Any, handler: Callable[[Any], Any], rejected: Mapping[str, tuple[str, str]]) -> Any:
    """Body of a wrap validator: explain unknown keys, and still validate the rest.

    ``rejected`` maps a key we deliberately do not accept to (accepted, problem).
    Any other unknown key gets a "did you mean" hint.  When a key is bad, the
    known keys are validated too, so one run reports every problem.
    """
    if not isinstance(data, Mapping):
        return handler(data)
    known = list(model.model_fields)
    errors: list[ConfigError] = []
    for key, value in data.items():
        if key in known:
            continue
        if key in rejected:
            accepted, problem = rejected[key]
            errors.append(ConfigError(str(key), value, accepted, problem))
            continue
        problem = "unknown key (Escalator itself would silently ignore it)"
        hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if hint:
            problem += f"; the closest known key is {hint[0]!r}"
        errors.append(ConfigError(str(key), value, f"one of the known keys {sorted(known)}", problem))
    if not errors:
        return handler(data)
    lines = [error_line(e) for e in errors]
    try:
        handler({k: v for k, v in data.items() if k in known})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            line = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
            if "ctx" in err:
                line["ctx"] = err["ctx"]
            lines.append(line)
    raise ValidationError.from_exception_data(model.__name__, lines)


# --------------------------------------------------------------------------
# The options model
# --------------------------------------------------------------------------

_FLEET_KEYS = (
    "launch_template_id",
    "launch_template_version",
    "fleet_instance_ready_timeout",
    "instance_type_overrides",
    "lifecycle",
)

_FLEET_PROBLEM = (
    "part of Escalator's EC2 CreateFleet scale-up path, which this component does not "
    "use: attaching externally launched instances to an EKS managed node group's ASG is untested "
    "upstream and conflicts with EKS's own management of that ASG (escalator.md 5.3); instance "
    "types and spot/on-demand come from the node group itself"
)


class EscalatorAwsOptions(Model):
    """The ``aws:`` block of an Escalator node group, without the fleet keys."""

    model_config = ConfigDict(alias_generator=None)

    resource_tagging: StrictBool = False
    """Tag the ASG with ``k8s.io/atlassian-escalator/enabled=true`` (PropagateAtLaunch).

    Off by default: the tag is informational, and turning it on needs
    ``autoscaling:CreateOrUpdateTags`` in Escalator's IAM policy.
    """

    @model_validator(mode="wrap")
    @classmethod
    def _reject_fleet_and_unknown_keys(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        return _check_keys(cls, data, handler, {key: ("leave it out", _FLEET_PROBLEM) for key in _FLEET_KEYS})


# Keys of an Escalator node group that the options block does not accept, with
# (accepted, problem) for the error message.
_OPTIONS_REJECTED_KEYS: dict[str, tuple[str, str]] = {
    "name": ("leave it out", "set automatically: the Escalator group name is the node group's name"),
    "cloud_provider_group_name": (
        "leave it out",
        "set automatically: the ASG name is read from the node group this block is attached to",
    ),
    "scale_up_cool_down_timeout": (
        "leave it out",
        "removed from Escalator in PR #83 (Escalator silently ignores it); the scale-up lock lasts " + "scale_up_cool_down_period",
    ),
    **{key: ("leave it out", f"belongs under aws: and is {_FLEET_PROBLEM}") for key in _FLEET_KEYS},
}


class EscalatorNodeGroupOptions(Model):
    """Escalator options for one node group, with defaults tuned for ML training.

    Training jobs run for hours and lose their work when killed, so these
    defaults never evict running pods, delete only empty nodes early,
    and scale up readily, because GPU nodes take minutes to boot.  Percent
    thresholds compare against the larger of CPU and memory *requests* over
    the allocatable of untainted nodes (escalator.md 4.5).
    """

    model_config = ConfigDict(alias_generator=None)

    # -- optional overrides: only checked against the node group ------------

    label_key: str | None = None
    """Node label key.  Derived from the node group; if given it must equal it."""

    label_value: str | None = None
    """Node label value.  Derived from the node group; if given it must equal it."""

    min_nodes: NonNegativeInt | None = None
    """Node count.  Derived from the node group's min size; if given it must equal it."""

    max_nodes: NonNegativeInt | None = None
    """Node count.  Derived from the node group's max size; if given it must equal it.

    Escalator clamps a scale-up at the ASG MaxSize, not at ``max_nodes``.  It
    force-taints nodes above ``max_nodes``.  So a mismatch makes it scale up
    and then taint, over and over (escalator.md 4.5).
    """

    # -- behaviour -----------------------------------------------------------

    dry_mode: StrictBool = False
    """Log decisions without acting.  Off: the component exists to scale; turn it
    on to watch Escalator's decisions on a new group first."""

    scale_on_starve: StrictBool = True
    """Scale up by at least 1 node when a pending pod is larger than the largest free
    space on any untainted node, even below ``scale_up_threshold_percent``.

    On for training: a whole-node GPU job cannot fit in the fragments left on
    busy nodes.  Group utilisation can still sit below the threshold, so
    without this the job would wait indefinitely.
    """

    taint_upper_capacity_threshold_percent: StrictInt = 40
    """Percent of requests over capacity.  Below it, taint ``slow_node_removal_rate``
    nodes per loop.

    40 leaves a wide stable band up to the scale-up threshold (70), so the
    group does not flap between tainting and scaling.  Expensive idle GPU
    capacity beyond about 60 % slack is still trimmed.
    """

    taint_lower_capacity_threshold_percent: StrictInt = 10
    """Percent.  Below it, taint ``fast_node_removal_rate`` nodes per loop.

    At 10 % the group is essentially idle (for example, all jobs have
    finished), and idle GPU nodes are the largest cost to cut quickly.
    """

    scale_up_threshold_percent: StrictInt = 70
    """Percent.  Scale up when utilisation is strictly above this.

    At 70 there is headroom, so the next job's pods often find room without
    waiting for a GPU node to boot (several minutes).  The talk's advice is
    to scale up aggressively to cut queue time.
    """

    slow_node_removal_rate: NonNegativeInt = 1
    """Nodes tainted per loop while utilisation is between the lower and upper taint
    thresholds.

    One at a time: GPU groups are small (a handful of nodes), and tainting is
    only undone by a later scale-up.
    """

    fast_node_removal_rate: NonNegativeInt = 2
    """Nodes tainted per loop while utilisation is below the lower taint threshold.

    Two per loop (a loop runs every 30 to 60 s) marks all of an idle 8-node
    group within minutes.  ``min_nodes`` and the ASG MinSize still clamp it.
    """

    soft_delete_grace_period: str = "10m"
    """Go duration.  A tainted node that is **empty** is deleted once its taint is this old.

    10 minutes keeps a tainted node as a warm spare.  Escalator untaints it
    instantly on the next scale-up, instead of booting a new GPU node (about
    5 minutes).  That covers the usual gap while a job is resubmitted, and
    costs at most 10 idle minutes per node.
    """

    hard_delete_grace_period: str = "24h"
    """Go duration.  A tainted node is terminated once its taint is this old, **with
    whatever pods are still running on it**.  There is no drain or eviction.

    Escalator taints the *oldest* untainted nodes, and those can be running a
    job.  It untaints them only when it scales up again.  So a tainted node
    can keep running a job until this deadline, when the job is killed.  24 h
    protects day-long training runs.  For longer runs, raise it or annotate
    the node ``atlassian.com/no-delete``.  An empty node is not held this
    long: the soft grace period removes it.
    """

    scale_up_cool_down_period: str = "5m"
    """Go duration.  After a cloud scale-up the group is locked this long: no further
    scale-up, taint, untaint or deletion.

    5 minutes is roughly the time a GPU node needs to boot, load the NVIDIA
    driver and register.  A shorter lock sees the same pending pods before the
    new nodes count, and orders a second scale-up.
    """

    taint_effect: TaintEffect = "NoSchedule"
    """Effect of Escalator's ``atlassian.com/escalator`` taint.

    ``NoSchedule`` never evicts pods that are already running, so training
    jobs on a node marked for removal finish (upstream issue #142).
    ``NoExecute`` would kill them at once.  ``PreferNoSchedule`` lets new jobs
    land on nodes that are about to be deleted.
    """

    max_node_age: str = ""
    """Go duration, or "" (disabled).  Rotates nodes older than this by forcing a
    scale-up.  This only happens when the group sits at ``min_nodes`` > 0.

    Disabled: rotation adds a node so that the oldest one is tainted next, and
    the hard delete grace period then kills any job still running there.  With ``min_nodes`` 0 an
    idle group empties itself anyway.
    """

    unhealthy_node_grace_period: str = ""
    """Go duration, or "" (disabled).  Minimum node age before a NotReady node counts as
    unhealthy.  When enabled, too many unhealthy nodes freeze scaling, and the
    unhealthy nodes are tainted and removed.

    Disabled by default, as upstream: it needs tuning per group.  With
    ``max_unhealthy_nodes_percent`` 0, one bad node freezes all scaling of the
    group.  When you set it, also set ``health_check_newest_nodes_percent``
    (1 to 100).
    """

    health_check_newest_nodes_percent: StrictInt = 0
    """Percent (1 to 100) of the newest nodes that are older than the grace period
    to health-check.  Read only when ``unhealthy_node_grace_period`` is set."""

    max_unhealthy_nodes_percent: StrictInt = 0
    """Percent (0 to 99).  Above this share of unhealthy nodes, scaling is frozen.
    Read only when ``unhealthy_node_grace_period`` is set."""

    aws: EscalatorAwsOptions = EscalatorAwsOptions()
    """The ``aws:`` block; only ``resource_tagging`` is supported (no fleet path)."""

    # -- validators ------------------------------------------------------------

    @model_validator(mode="wrap")
    @classmethod
    def _reject_unknown_keys(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        return _check_keys(cls, data, handler, _OPTIONS_REJECTED_KEYS)

    @field_validator(
        "taint_upper_capacity_threshold_percent",
        "taint_lower_capacity_threshold_percent",
        "scale_up_threshold_percent",
    )
    @classmethod
    def _percent_positive(cls, value: int, info: ValidationInfo) -> int:
        if value <= 0:
            raise ConfigError("", value, "an integer percentage larger than 0", f"{info.field_name} must be larger than 0")
        return value

    @field_validator("label_key", "label_value")
    @classmethod
    def _label_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ConfigError("", value, "a non-empty string, or leave it out to take it from the node group")
        return value

    @field_validator("soft_delete_grace_period", "hard_delete_grace_period", "scale_up_cool_down_period")
    @classmethod
    def _positive_duration(cls, value: str) -> str:
        require_duration(value, positive=True)
        return value

    @field_validator("max_node_age")
    @classmethod
    def _optional_duration(cls, value: str) -> str:
        if value:
            require_duration(value, positive=False)
        return value

    @field_validator("unhealthy_node_grace_period")
    @classmethod
    def _optional_positive_duration(cls, value: str) -> str:
        if value:
            require_duration(value, positive=True)
        return value

    @model_validator(mode="after")
    def _escalator_cross_checks(self) -> EscalatorNodeGroupOptions:
        errors = _cross_field_errors(self)
        if errors:
            raise_all(type(self).__name__, errors)
        return self


def require_duration(value: str, *, positive: bool) -> int:
    """Nanoseconds of a Go duration, or a ``ConfigError`` (with an empty key) saying what is accepted.

    ``positive``: the duration must be > 0; otherwise it must be >= 0.
    """
    try:
        ns = parse_go_duration(value)
    except GoDurationError as exc:
        raise ConfigError("", value, DURATION_ACCEPTED, str(exc)) from None
    if positive and ns <= 0:
        raise ConfigError("", value, "a duration greater than 0, " + DURATION_ACCEPTED, "must be greater than 0")
    if not positive and ns < 0:
        raise ConfigError("", value, '"" or "0" to disable, or ' + DURATION_ACCEPTED, "must not be negative")
    return ns


def _cross_field_errors(o: EscalatorNodeGroupOptions) -> list[ConfigError]:
    """Escalator's ``ValidateNodeGroup`` relations between keys, in its order (§2)."""
    errors: list[ConfigError] = []
    lower = o.taint_lower_capacity_threshold_percent
    upper = o.taint_upper_capacity_threshold_percent
    up = o.scale_up_threshold_percent
    if not lower < upper:
        errors.append(
            ConfigError(
                "taint_lower_capacity_threshold_percent",
                lower,
                f"a percentage less than taint_upper_capacity_threshold_percent ({upper})",
                "taint_lower_capacity_threshold_percent must be less than taint_upper_capacity_threshold_percent",
            )
        )
    if not upper < up:
        errors.append(
            ConfigError(
                "taint_upper_capacity_threshold_percent",
                upper,
                f"a percentage less than scale_up_threshold_percent ({up})",
                "taint_upper_capacity_threshold_percent must be less than scale_up_threshold_percent",
            )
        )
    if o.min_nodes is not None and o.max_nodes is not None and (o.min_nodes, o.max_nodes) != (0, 0):
        errors.extend(_min_max_errors(o.min_nodes, o.max_nodes))
    if o.slow_node_removal_rate > o.fast_node_removal_rate:
        errors.append(
            ConfigError(
                "slow_node_removal_rate",
                o.slow_node_removal_rate,
                f"a node count no larger than fast_node_removal_rate ({o.fast_node_removal_rate})",
                "slow_node_removal_rate must not exceed fast_node_removal_rate",
            )
        )
    soft = parse_go_duration(o.soft_delete_grace_period)
    hard = parse_go_duration(o.hard_delete_grace_period)
    if not soft < hard:
        errors.append(
            ConfigError(
                "soft_delete_grace_period",
                o.soft_delete_grace_period,
                f"a duration shorter than hard_delete_grace_period ({o.hard_delete_grace_period!r})",
                "soft_delete_grace_period must be less than hard_delete_grace_period",
            )
        )
    if o.unhealthy_node_grace_period:
        if not 1 <= o.health_check_newest_nodes_percent <= 100:
            errors.append(
                ConfigError(
                    "health_check_newest_nodes_percent",
                    o.health_check_newest_nodes_percent,
                    "an integer percentage from 1 to 100",
                    "required when unhealthy_node_grace_period is set",
                )
            )
        if not 0 <= o.max_unhealthy_nodes_percent <= 99:
            errors.append(
                ConfigError(
                    "max_unhealthy_nodes_percent",
                    o.max_unhealthy_nodes_percent,
                    "an integer percentage from 0 to 99",
                    "out of range while unhealthy_node_grace_period is set",
                )
            )
    return errors


def _min_max_errors(min_nodes: int, max_nodes: int, key_prefix: str = "", note: str = "") -> list[ConfigError]:
    """Escalator's rule for explicit sizes: ``0 <= min_nodes < max_nodes`` (so ``max_nodes > 0``).

    Escalator also accepts 0/0 as "discover from the ASG"; callers decide
    whether that form is allowed before calling this.
    """
    errors: list[ConfigError] = []
    if min_nodes < 0:
        errors.append(ConfigError(f"{key_prefix}min_nodes", min_nodes, "0 or more", "min_nodes must be not less than 0" + note))
    if max_nodes <= 0:
        errors.append(ConfigError(f"{key_prefix}max_nodes", max_nodes, "1 or more", "max_nodes must be larger than 0" + note))
    elif not min_nodes < max_nodes:
        errors.append(
            ConfigError(
                f"{key_prefix}min_nodes",
                min_nodes,
                f"less than max_nodes ({max_nodes}), e.g. min 0 max {max_nodes}",
                "min_nodes must be less than max_nodes; Escalator rejects min_nodes == max_nodes" + note,
            )
        )
    return errors


# --------------------------------------------------------------------------
# Combining options with node groups
# --------------------------------------------------------------------------

# Key order of one rendered entry: the order of escalator.md section 1.2.
ENTRY_KEYS: tuple[str, ...] = (
    "name",
    "label_key",
    "label_value",
    "cloud_provider_group_name",
    "min_nodes",
    "max_nodes",
    "dry_mode",
    "scale_on_starve",
    "taint_upper_capacity_threshold_percent",
    "taint_lower_capacity_threshold_percent",
    "scale_up_threshold_percent",
    "slow_node_removal_rate",
    "fast_node_removal_rate",
    "soft_delete_grace_period",
    "hard_delete_grace_period",
    "scale_up_cool_down_period",
    "taint_effect",
    "max_node_age",
    "unhealthy_node_grace_period",
    "health_check_newest_nodes_percent",
    "max_unhealthy_nodes_percent",
    "aws",
)
AWS_KEYS: tuple[str, ...] = ("resource_tagging",)

_UNHEALTHY_KEYS = ("unhealthy_node_grace_period", "health_check_newest_nodes_percent", "max_unhealthy_nodes_percent")


@dataclass(frozen=True)
class EscalatorGroup:
    """One node group as Escalator should manage it.

    Attributes:
        name: the Escalator group name (metrics label, log field); never ``default``.
        label_key: the node label key the node group sets, e.g. ``role``.
        label_value: that label's value, e.g. ``train``.  Pods select the group with it.
        min_nodes: the node group's (ASG's) minimum size.
        max_nodes: the node group's (ASG's) maximum size.
        asg_name: the name of the node group's underlying ASG.
        options: the validated Escalator options for the group.
        config_key: the config path of the options, for error messages,
            e.g. ``escalator.nodeGroups.train``.
    """

    name: str
    label_key: str
    label_value: str
    min_nodes: int
    max_nodes: int
    asg_name: str
    options: EscalatorNodeGroupOptions
    config_key: str


def _group_errors(g: EscalatorGroup) -> list[ConfigError]:
    k = f"{g.config_key}." if g.config_key else ""
    o = g.options
    errors: list[ConfigError] = []
    if not g.name:
        errors.append(ConfigError(f"{k}name", g.name, "a non-empty group name", "name cannot be empty"))
    elif g.name == DEFAULT_GROUP_NAME:
        errors.append(
            ConfigError(
                f"{k}name",
                g.name,
                "any name other than 'default' (rename the node group)",
                "Escalator's 'default' group counts every pod in the cluster that has no nodeSelector and no "
                "affinity, which inflates this group's utilisation with pods that never run on it",
            )
        )
    if not g.label_key:
        errors.append(ConfigError(f"{k}label_key", g.label_key, "the node group's non-empty label key", "label_key cannot be empty"))
    if not g.label_value:
        errors.append(
            ConfigError(
                f"{k}label_value",
                g.label_value,
                "the node group's non-empty label value",
                "label_value cannot be empty",
            )
        )
    if not g.asg_name:
        errors.append(
            ConfigError(
                f"{k}cloud_provider_group_name",
                g.asg_name,
                "the node group's ASG name",
                "cloud_provider_group_name cannot be empty",
            )
        )
    for key, given, actual in (("label_key", o.label_key, g.label_key), ("label_value", o.label_value, g.label_value)):
        if given is not None and given != actual:
            errors.append(
                ConfigError(
                    f"{k}{key}",
                    given,
                    f"{actual!r} (the node group's label), or leave {key} out",
                    "Escalator counts the pods and nodes that carry this label, so it must be the label the node group puts on its nodes",
                )
            )
    for key, given_size, size in (("min_nodes", o.min_nodes, g.min_nodes), ("max_nodes", o.max_nodes, g.max_nodes)):
        if given_size is not None and given_size != size:
            why = (
                "Escalator clamps scale-up at the ASG max size, not max_nodes, so a different max_nodes makes it scale up and then force-taint in a loop"
                if key == "max_nodes"
                else "a different min_nodes would make Escalator and the ASG disagree about the floor"
            )
            errors.append(ConfigError(f"{k}{key}", given_size, f"{size} (the node group's size), or leave {key} out", why))
    errors.extend(
        _min_max_errors(
            g.min_nodes,
            g.max_nodes,
            k,
            " (both come from the node group's min and max size; a fixed-size group has nothing to scale)",
        )
    )
    return errors


def _entry(g: EscalatorGroup) -> dict[str, Any]:
    o = g.options
    entry: dict[str, Any] = {
        "name": g.name,
        "label_key": g.label_key,
        "label_value": g.label_value,
        "cloud_provider_group_name": g.asg_name,
        "min_nodes": g.min_nodes,
        "max_nodes": g.max_nodes,
    }
    for key in ENTRY_KEYS[len(entry) : -1]:
        entry[key] = getattr(o, key)
    # Escalator's own defaults for the optional features are "" (disabled);
    # leave them out rather than render empty strings.
    if not o.max_node_age:
        del entry["max_node_age"]
    if not o.unhealthy_node_grace_period:
        for key in _UNHEALTHY_KEYS:
            del entry[key]
    aws = {key: getattr(o.aws, key) for key in AWS_KEYS if getattr(o.aws, key)}
    if aws:
        entry["aws"] = aws
    return entry


def build_node_group_entries(groups: Sequence[EscalatorGroup]) -> list[dict[str, Any]]:
    """Combine each group's options with its node group into Escalator entries.

    Checks, beyond the options' own validation: names are non-empty, unique and
    never ``default``; ASG names are unique; each (label_key, label_value) pair
    is used by one group only (Escalator maps one label to one group); label
    and min/max overrides match the node group; the node group's min/max obey
    Escalator's ``min_nodes < max_nodes``, ``max_nodes > 0`` rule.

    Returns the entries sorted by name, so reordering the node groups in the
    stack config does not change the ConfigMap (and does not restart Escalator).
    Raises ``ConfigErrors`` listing every problem found.
    """
    errors: list[ConfigError] = []
    # (what must be unique, its value) -> the first group that used it
    first_user: dict[tuple[str, object], tuple[int, EscalatorGroup]] = {}
    for index, g in enumerate(groups):
        errors.extend(_group_errors(g))
        k = f"{g.config_key}." if g.config_key else ""
        unique = (
            (
                "name",
                g.name,
                g.name,
                "a group name no other Escalator group uses",
                "Escalator would silently keep only one",
            ),
            (
                "cloud_provider_group_name",
                g.asg_name,
                g.asg_name,
                "an ASG no other Escalator group manages",
                "Escalator's AWS provider keys its groups by ASG name",
            ),
            (
                "label_value",
                (g.label_key, g.label_value),
                g.label_value,
                "a node label no other Escalator group uses",
                f"both groups would count the same pods and nodes ({g.label_key}={g.label_value}) and scale together",
            ),
        )
        for key, identity, value, accepted, why in unique:
            if not value:
                continue  # reported by _group_errors
            first_index, first = first_user.setdefault((key, identity), (index, g))
            if first_index != index:
                where = first.config_key or repr(first.name)
                errors.append(ConfigError(f"{k}{key}", value, accepted, f"already used by {where}; {why}"))
    if errors:
        raise ConfigErrors(errors)
    return sorted((_entry(g) for g in groups), key=lambda e: str(e["name"]))


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _ordered(entry: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ValueError(f"not Escalator node-group keys: {unknown}")
    out = {key: entry[key] for key in ENTRY_KEYS if key in entry}
    if "aws" in out:
        aws = out["aws"]
        unknown_aws = sorted(set(aws) - set(AWS_KEYS))
        if unknown_aws:
            raise ValueError(f"not supported aws keys: {unknown_aws}")
        out["aws"] = {key: aws[key] for key in AWS_KEYS if key in aws}
    return out


def render_config_yaml(entries: Sequence[Mapping[str, Any]]) -> str:
    """The ConfigMap payload (key ``nodegroups_config.yaml``) for ``entries``.

    Deterministic: keys follow :data:`ENTRY_KEYS` whatever order the mappings
    have, entries keep the given order (``build_node_group_entries`` sorts them
    by name), and the same input renders byte-identical text.  Numbers stay
    YAML ints, booleans stay booleans, and durations are strings (quoted
    wherever YAML would otherwise read them as numbers, e.g. ``'0'``).
    """
    document = {"node_groups": [_ordered(e) for e in entries]}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)


def config_checksum(text: str) -> str:
    """SHA-256 hex digest of the rendered config.

    Use it as a pod-template annotation (e.g. ``checksum/config``).  Escalator
    reads its config only at start-up, so a changed config must roll the pods.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = [
    "AWS_KEYS",
    "DEFAULT_GROUP_NAME",
    "DURATION_ACCEPTED",
    "ENTRY_KEYS",
    "ESCALATOR_VERSION",
    "EscalatorAwsOptions",
    "EscalatorGroup",
    "EscalatorNodeGroupOptions",
    "GoDurationError",
    "build_node_group_entries",
    "config_checksum",
    "parse_go_duration",
    "render_config_yaml",
    "require_duration",
]
