"""The Pulumi program: read the stack file into the platform's arguments, then build the platform.

``__main__.py`` calls :func:`main`; so does the offline harness (:mod:`stacks.offline`), which is
how tests and ``python -m stacks.render`` run exactly what ``pulumi up`` runs.  Everything else,
the checks included, is the library's :class:`mleks.MLPlatform`.
"""

from __future__ import annotations

import pulumi

from mleks.platform import MLPlatform
from stacks import validation


def main() -> None:
    cfg = validation.load()  # raises, with every problem, before any resource is registered
    platform = MLPlatform(cfg.name_prefix, cfg, config_key="mleks")
    for name, value in platform.exports.items():
        pulumi.export(name, value)
