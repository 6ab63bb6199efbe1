"""Shared fixtures: each stack is rendered once per test session, offline."""

from __future__ import annotations

import pytest

from stacks import offline

STACKS = ("unified", "dedicated")


@pytest.fixture(scope="session")
def rendered() -> dict[str, offline.RenderResult]:
    """Both example stacks, run through the real program under mocks."""
    return {name: offline.run(name) for name in STACKS}


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest, rendered: dict[str, offline.RenderResult]) -> offline.RenderResult:
    """Each example stack in turn."""
    return rendered[request.param]
