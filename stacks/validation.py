"""Load the stack config and check it whole: every problem at once, before any resource.

:func:`load` is what the program runs first.  It

1. parses the ``mleks:`` keys and ``aws:region`` against the schema
   (:mod:`stacks.config`); pydantic reports every field at once;
2. runs the checks *between* sections (a job against its node group, an
   Escalator option against the group it names, ...) from
   :mod:`stacks.autoscaling`, :mod:`stacks.training` and :mod:`stacks.serving`.
   When step 1 found problems, the checks still run on the parts that did
   parse: broken entries are left out, and so are the checks that depend on
   them, so a fix never reveals a second round of errors;
3. shows each bad value as the user wrote it in the stack file, not as it
   was parsed.

This module sits above every section module and nothing imports it but the
program and the tools, so the sections never import each other through it.
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_snake

from mleks.errors import ConfigError, ConfigErrors
from mleks.validation.schema import keyed_entries
from stacks import autoscaling, datasets, naming, operations, serving, topology, training
from stacks.config import NAMESPACE, StackConfig, config_from_pulumi, parse_config

# Sections whose entries are named by a key, and the field the key fills.
KEYED_SECTIONS = {"nodeGroups": "name", "trainingJobs": "name", "inferenceServices": "name", "notebooks": "name", "datasets": "name"}
# Without these, nothing between sections can be checked.
REQUIRED = frozenset({"region", "topology", "nodeGroups"})


def cross_check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """The checks between sections; ``unchecked`` names node groups that did not parse (their dependants are skipped).

    Keys come back relative to ``mleks:``; the same problem reported for two
    clusters is said once.
    """
    errors = [*topology.check(cfg, unchecked), *autoscaling.check(cfg, unchecked), *training.check(cfg, unchecked), *serving.check(cfg, unchecked)]
    errors += operations.check(cfg, unchecked)
    errors += datasets.check(cfg, unchecked)
    errors += naming.check(cfg, unchecked)
    unique: dict[str, ConfigError] = {}
    for err in errors:
        unique.setdefault(str(err), err)
    return list(unique.values())


def load(raw: dict[str, Any] | None = None) -> StackConfig:
    """The validated stack config; raise ``ConfigErrors`` with every problem of the whole config.

    ``raw``: the ``mleks:`` keys as YAML spells them plus ``region`` (tests);
    default: the program's config from the Pulumi engine.
    """
    errors: list[ConfigError] = []
    if raw is None:
        data, region = config_from_pulumi()
        if "region" in data:
            # Only aws:region says where the provider creates resources; a second spelling would let the two disagree.
            errors.append(ConfigError("mleks:region", data.pop("region"), "no mleks:region: set the region once, as aws:region", "unknown key"))
        if region is None:
            errors.append(ConfigError("aws:region", None, "an AWS region such as us-west-2 (pulumi config set aws:region us-west-2)", "missing"))
        else:
            data["region"] = region
    else:
        data = dict(raw)
        if "region" not in data:
            errors.append(ConfigError("aws:region", None, "an AWS region such as us-west-2", "missing"))

    cfg: StackConfig | None = None
    unchecked: frozenset[str] = frozenset()
    if not errors:
        try:
            cfg = parse_config(data)
        except ConfigErrors as parsed:
            errors += parsed.errors
            cfg, unchecked = _salvage(data, parsed.errors)
    if cfg is not None:
        errors += [_in_namespace(e) for e in cross_check(cfg, unchecked)]
        if raw is None:
            # Under the engine: what only a look-up can tell, still before anything is registered.
            errors += [_in_namespace(e) for e in topology.lookup_errors(cfg)]
    if errors:
        raise ConfigErrors([_as_written(e, data) for e in _unique(errors)])
    assert cfg is not None
    return cfg


def _in_namespace(err: ConfigError) -> ConfigError:
    """A cross-check error (keyed relative to ``mleks:``) with its full key."""
    if err.key.startswith(("aws:", NAMESPACE + ":")):
        return err
    return ConfigError(f"{NAMESPACE}:{err.key}", err.value, err.accepted, err.problem)


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    seen: dict[str, ConfigError] = {}
    for err in errors:
        seen.setdefault(str(err), err)
    return list(seen.values())


# -- checking what did parse ----------------------------------------------------------


def _section_and_entry(key: str) -> tuple[str, str | None]:
    """``mleks:trainingJobs.smoke.nodes`` -> ("trainingJobs", "smoke"); ``aws:region`` -> ("region", None)."""
    if key == "aws:region":
        return "region", None
    path = key.removeprefix(NAMESPACE + ":")
    head = path.split(".", 1)[0]
    section, bracket, _ = head.partition("[")
    if section in KEYED_SECTIONS and not bracket and "." in path:
        return section, path.split(".", 2)[1].split("[", 1)[0]
    return section, None


def _salvage(data: dict[str, Any], errors: list[ConfigError]) -> tuple[StackConfig | None, frozenset[str]]:
    """The config without what failed to parse, and the node groups left out; (None, ...) when nothing can be checked."""
    failed: dict[str, set[str] | None] = {}
    for err in errors:
        section, entry = _section_and_entry(err.key)
        if entry is None or failed.get(section, set()) is None:
            failed[section] = None
        else:
            failed.setdefault(section, set()).add(entry)  # type: ignore[union-attr]
    if any(section in REQUIRED and entries is None for section, entries in failed.items()):
        return None, frozenset()
    pruned = dict(data)
    for section, entries in failed.items():
        if entries is None:
            pruned.pop(section, None)
            continue
        try:
            body = keyed_entries(pruned.get(section), KEYED_SECTIONS[section], null_is_empty=True)
        except ConfigError:
            pruned.pop(section, None)
            continue
        pruned[section] = {k: v for k, v in body.items() if k not in entries} if isinstance(body, dict) else body
    if not pruned.get("nodeGroups"):
        return None, frozenset()
    try:
        return parse_config(pruned), frozenset(failed.get("nodeGroups") or ())
    except ConfigErrors:
        return None, frozenset()


# -- values as the user wrote them ---------------------------------------------------


def _as_written(err: ConfigError, data: dict[str, Any]) -> ConfigError:
    """``err`` showing the value at its key in the stack file, where that is plainer than the parsed one."""
    if err.key == "aws:region":
        found, raw = (True, data.get("region")) if "region" in data else (False, None)
    elif err.key == f"{NAMESPACE}:region":
        return err  # data["region"] is aws:region's value, not this one
    elif err.key.startswith(NAMESPACE + ":"):
        found, raw = _lookup(data, err.key[len(NAMESPACE) + 1 :])
    else:
        return err
    if not found or err.value == "<hidden>":
        return err
    scalar = isinstance(raw, (str, int, float, bool))
    empty = err.value is None or err.value == {} or err.value == []
    if (scalar and raw != err.value) or (empty and raw not in (None, {}, [])):
        return ConfigError(err.key, raw, err.accepted, err.problem)
    return err


def _lookup(node: Any, path: str) -> tuple[bool, Any]:
    """The value at a dotted key path such as ``trainingJobs.smoke.args[0]`` (keys may contain dots)."""
    while path:
        if path.startswith("["):
            index, _, path = path[1:].partition("]")
            path = path.removeprefix(".")
            if not (isinstance(node, list) and index.isdigit() and int(index) < len(node)):
                return False, None
            node = node[int(index)]
            continue
        if isinstance(node, list):
            # A keyed section written as a list: entries are named by their name (or role).
            name = path.split(".", 1)[0].split("[", 1)[0]
            match = [e for e in node if isinstance(e, dict) and name in (e.get("name"), e.get("role"))]
            if not match:
                return False, None
            node, path = match[0], path[len(name) :].removeprefix(".")
            continue
        if not isinstance(node, dict):
            return False, None
        # The longest key that the path starts with (label and tag keys hold dots).
        candidates = [k for k in node if isinstance(k, str) and (path == k or path.startswith((k + ".", k + "[")))]
        if not candidates:
            snake = {to_snake(k): k for k in node if isinstance(k, str)}
            head = path.split(".", 1)[0].split("[", 1)[0]
            if to_snake(head) in snake and snake[to_snake(head)] != head:
                candidates = [head]
                node = {head: node[snake[to_snake(head)]]}
            else:
                return False, None
        key = max(candidates, key=len)
        node, path = node[key], path[len(key) :].removeprefix(".")
    return True, node
