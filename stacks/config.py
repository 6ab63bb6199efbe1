"""The stack file's config, read from the Pulumi engine: the ``mleks:`` keys and ``aws:region``.

The schema is the library's :class:`mleks.MLPlatformArgs` (every ``mleks:`` key is one of its
fields, camelCase); this module only says where the values come from.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi

from mleks.platform.args import MLPlatformArgs
from mleks.platform.load import parse_args

NAMESPACE = "mleks"

StackConfig = MLPlatformArgs
"""A stack's ``mleks:`` config keys are the platform's arguments."""


def config_from_pulumi() -> tuple[dict[str, Any], str | None]:
    """The program's ``mleks:`` config as YAML would spell it (``{"topology": ..., ...}``), and ``aws:region``."""
    raw: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    # The engine hands config to the program in memory; PULUMI_CONFIG is the
    # environment fallback the SDK also honours.
    every = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    for full_key, value in every.items():
        if full_key.startswith(prefix):
            key = full_key[len(prefix) :]
            try:
                raw[key] = json.loads(value)
            except (TypeError, ValueError):
                raw[key] = value
    return raw, pulumi.Config("aws").get("region")


def parse_config(data: dict[str, Any]) -> MLPlatformArgs:
    """Parse ``data`` (the ``mleks:`` keys plus ``region``) field by field; raise ``ConfigErrors`` naming every bad key.

    Only the schema: checks between sections are :func:`stacks.validation.load`'s.
    """
    return parse_args(data, prefix=f"{NAMESPACE}:", region_key="aws:region")
