"""Read a whole platform from config data (a stack file's ``mleks:`` keys, or a dict): every problem at once.

:func:`load` is what a stack program runs first, before any resource is registered.  It

1. parses the data against :class:`~mleks.platform.args.MLPlatformArgs`; pydantic reports every
   field at once;
2. runs the checks *between* sections (:func:`mleks.platform.checks.cross_check`).  When step 1
   found problems, the checks still run on the parts that did parse: broken entries are left out,
   and so are the checks that depend on them, so a fix never reveals a second round of errors;
3. shows each bad value as the user wrote it, not as it was parsed.

Keys come back as the data spells them, under ``prefix`` (``mleks:nodeGroups.train.maxSize``), and
the region under ``region_key`` (``aws:region`` in a stack).
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_snake

from mleks.errors import ConfigError, ConfigErrors
from mleks.platform.args import MLPlatformArgs
from mleks.platform.checks import cross_check, lookup_errors
from mleks.validation.schema import keyed_entries, parse

# Sections whose entries are named by a key, and the field the key fills.
KEYED_SECTIONS = {"nodeGroups": "name", "trainingJobs": "name", "inferenceServices": "name", "notebooks": "name", "datasets": "name"}
# Without these, nothing between sections can be checked.
REQUIRED = frozenset({"region", "topology", "nodeGroups"})


def parse_args(data: dict[str, Any], *, prefix: str = "", region_key: str = "region") -> MLPlatformArgs:
    """``data`` parsed field by field (no check between sections); raise ``ConfigErrors`` naming every bad key."""
    try:
        return parse(MLPlatformArgs, data, prefix=prefix)
    except ConfigErrors as errors:
        for err in errors.errors:
            if err.key == f"{prefix}region":
                err.key = region_key
        raise


def load(
    data: dict[str, Any], *, prefix: str = "", region_key: str = "region", extra: list[ConfigError] | None = None, lookups: bool = False
) -> MLPlatformArgs:
    """The validated platform; raise ``ConfigErrors`` with every problem of the whole config.

    ``data``: the platform's keys as a stack file spells them, with the region under ``region``.
    ``extra``: problems the caller found in the data already (reported with the rest).
    ``lookups``: also check what only an AWS look-up can tell (the region's AZ count); only a
    program running under the engine can, and only before it registers anything.
    """
    errors: list[ConfigError] = list(extra or [])
    cfg: MLPlatformArgs | None = None
    unchecked: frozenset[str] = frozenset()
    try:
        cfg = parse_args(data, prefix=prefix, region_key=region_key)
    except ConfigErrors as parsed:
        errors += parsed.errors
        cfg, unchecked = _salvage(data, parsed.errors, prefix, region_key)
    if cfg is not None:
        errors += [_prefixed(e, prefix, region_key) for e in cross_check(cfg, unchecked)]
        if lookups:
            errors += [_prefixed(e, prefix, region_key) for e in lookup_errors(cfg)]
    if errors:
        raise ConfigErrors([_as_written(e, data, prefix, region_key) for e in _unique(errors)])
    assert cfg is not None
    return cfg


def _prefixed(err: ConfigError, prefix: str, region_key: str) -> ConfigError:
    """A cross-check error (keyed relative to the platform) with its full key."""
    if err.key == "region":
        return ConfigError(region_key, err.value, err.accepted, err.problem)
    if not prefix or err.key.startswith(("aws:", prefix)):
        return err
    return ConfigError(f"{prefix}{err.key}", err.value, err.accepted, err.problem)


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    seen: dict[str, ConfigError] = {}
    for err in errors:
        seen.setdefault(str(err), err)
    return list(seen.values())


# -- checking what did parse ----------------------------------------------------------


def _section_and_entry(key: str, prefix: str, region_key: str) -> tuple[str, str | None]:
    """``mleks:trainingJobs.smoke.nodes`` -> ("trainingJobs", "smoke"); ``aws:region`` -> ("region", None)."""
    if key == region_key:
        return "region", None
    path = key.removeprefix(prefix)
    head = path.split(".", 1)[0]
    section, bracket, _ = head.partition("[")
    if section in KEYED_SECTIONS and not bracket and "." in path:
        return section, path.split(".", 2)[1].split("[", 1)[0]
    return section, None


def _salvage(data: dict[str, Any], errors: list[ConfigError], prefix: str, region_key: str) -> tuple[MLPlatformArgs | None, frozenset[str]]:
    """The config without what failed to parse, and the node groups left out; (None, ...) when nothing can be checked."""
    failed: dict[str, set[str] | None] = {}
    for err in errors:
        section, entry = _section_and_entry(err.key, prefix, region_key)
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
        return parse_args(pruned, prefix=prefix, region_key=region_key), frozenset(failed.get("nodeGroups") or ())
    except ConfigErrors:
        return None, frozenset()


# -- values as the user wrote them ---------------------------------------------------


def _as_written(err: ConfigError, data: dict[str, Any], prefix: str, region_key: str) -> ConfigError:
    """``err`` showing the value at its key in the data, where that is plainer than the parsed one."""
    if err.key == region_key:
        found, raw = (True, data.get("region")) if "region" in data else (False, None)
    elif err.key == f"{prefix}region":
        return err  # data["region"] is the region key's value, not this one
    elif err.key.startswith(prefix):
        found, raw = _lookup(data, err.key[len(prefix) :])
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
