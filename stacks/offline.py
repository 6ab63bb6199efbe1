"""This repository's stacks, run offline: a thin layer over :mod:`mleks.testing`.

Tests and ``python -m stacks.render`` use :func:`run`, which runs this repo's
Pulumi program (:func:`stacks.program.main`) for one of its stack files under
mleks's mocks and returns every registered resource.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mleks.testing import Project, Registration, RenderResult
from mleks.testing import run as run_program

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT = Project.load(PROJECT_ROOT)
ACCOUNT_ID = "123456789012"

__all__ = ["ACCOUNT_ID", "PROJECT_ROOT", "Registration", "RenderResult", "load_stack_file", "project_name", "run"]


def load_stack_file(stack: str) -> dict[str, Any]:
    """The ``config:`` mapping of ``stacks/Pulumi.<stack>.yaml``."""
    return PROJECT.stack_config(stack)


def project_name() -> str:
    return PROJECT.name


def run(stack: str, config: dict[str, Any] | None = None, program: Callable[[], None] | None = None) -> RenderResult:
    """Run ``program`` (default: this repo's) for ``stack`` under mocks.

    ``config`` replaces the stack file's config when given (tests use it to
    try bad values).  Keys are as in the YAML file (``mleks:topology``, ``aws:region``).
    """
    if program is None:
        from stacks import program as real_program

        program = real_program.main
    cfg = load_stack_file(stack) if config is None else config
    return run_program(program, project=PROJECT.name, stack=stack, config=cfg)
