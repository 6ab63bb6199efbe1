"""The GitHub workflows keep the properties the linters cannot see: what runs where, with which rights."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def _on(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads a bare `on:` key as True.
    return workflow.get("on") or workflow.get(True) or {}


def test_the_three_workflows_exist():
    assert set(WORKFLOWS) == {"ci.yml", "preview.yml", "deploy.yml"}


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_every_action_is_pinned_to_a_commit_with_its_tag_beside_it(name: str):
    text = (ROOT / ".github" / "workflows" / name).read_text()
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]
    assert uses and all(PINNED.match(u) for u in uses), uses


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflows_grant_nothing_by_default_and_never_run_pr_code_with_write_tokens(name: str):
    workflow = WORKFLOWS[name]
    assert workflow["permissions"] == {}
    assert "pull_request_target" not in _on(workflow)
    for job in workflow["jobs"].values():
        assert "permissions" in job, "each job says what it needs"


def test_ci_runs_the_ci_script():
    steps = WORKFLOWS["ci.yml"]["jobs"]["ci"]["steps"]
    assert {"run": "bash .ci/run"} in steps


def test_the_offline_preview_needs_no_secrets_and_the_real_one_only_runs_for_same_repo_prs():
    jobs = WORKFLOWS["preview.yml"]["jobs"]
    assert "secrets." not in yaml.safe_dump(jobs["offline"])
    assert "if" not in jobs["offline"], "the offline diff runs for forks too"
    assert jobs["preview"]["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    pulumi = next(s for s in jobs["preview"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["comment-on-pr"] is True and pulumi["with"]["diff"] is True
    assert jobs["preview"]["permissions"]["id-token"] == "write"
    aws = next(s for s in jobs["preview"]["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
    assert "role-to-assume" in aws["with"] and not any("key" in k for k in aws["with"])


def test_deploy_runs_up_per_stack_behind_an_environment_one_at_a_time():
    job = WORKFLOWS["deploy.yml"]["jobs"]["up"]
    assert _on(WORKFLOWS["deploy.yml"]) == {"push": {"branches": ["main"]}}
    assert job["environment"] == "${{ matrix.stack }}"
    assert job["concurrency"] == {"group": "deploy-${{ matrix.stack }}", "cancel-in-progress": False}
    assert sorted(job["strategy"]["matrix"]["stack"]) == sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
    pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "up"


def test_ci_lints_the_workflows():
    script = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/actionlint" in script and ".venv/bin/zizmor --offline" in script
