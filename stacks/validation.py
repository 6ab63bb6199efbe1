"""Load the stack config and check it whole: every problem at once, before any resource.

:func:`load` is what the program runs first.  The rules are the library's
(:func:`mleks.platform.load`, the same path a Python program's :class:`mleks.MLPlatform` takes);
this module adds only what is particular to a stack file: the config comes from the engine, the
region is ``aws:region`` (and only that), and keys are spelled ``mleks:...``.
"""

from __future__ import annotations

from typing import Any

from mleks.errors import ConfigError, ConfigErrors
from mleks.platform.load import load as load_platform
from stacks.config import NAMESPACE, StackConfig, config_from_pulumi


def load(raw: dict[str, Any] | None = None) -> StackConfig:
    """The validated stack config; raise ``ConfigErrors`` with every problem of the whole config.

    ``raw``: the ``mleks:`` keys as YAML spells them plus ``region`` (tests);
    default: the program's config from the Pulumi engine, with the look-ups only the engine can make.
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
    if errors and "region" not in data:
        # Nothing between sections can be checked without the region; report what was found.
        raise ConfigErrors(errors)
    return load_platform(data, prefix=f"{NAMESPACE}:", region_key="aws:region", extra=errors, lookups=raw is None)
