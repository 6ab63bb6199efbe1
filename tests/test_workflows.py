"""The GitHub workflows keep the properties the linters cannot see: what runs where, with which rights."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}
REVIEW_ACTION = ROOT / ".github" / "actions" / "review"
ACTION_FILES = {"review/action.yml": REVIEW_ACTION / "action.yml"}
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def _on(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads a bare `on:` key as True.
    return workflow.get("on") or workflow.get(True) or {}


def test_the_three_workflows_exist():
    assert set(WORKFLOWS) == {"ci.yml", "preview.yml", "deploy.yml"}


@pytest.mark.parametrize("path", [ROOT / ".github" / "workflows" / n for n in sorted(WORKFLOWS)] + list(ACTION_FILES.values()), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_tag_beside_it(path: Path):
    uses = [line.split("uses:", 1)[1].strip() for line in path.read_text().splitlines() if "uses:" in line]
    # This repository's own actions ($/: GitHub's self-repository syntax) are at the caller's commit already.
    assert uses and all(PINNED.match(u) or u.startswith("$/.github/actions/") for u in uses), uses


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
    # It is the review action users call, so what users get is what this repository runs.
    assert any(step.get("uses") == "$/.github/actions/review" for step in jobs["offline"]["steps"])
    checkout = jobs["offline"]["steps"][0]
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
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
    assert ".venv/bin/actionlint" in script and ".venv/bin/zizmor --offline --persona=auditor .github/workflows .github/actions" in script


# -- the review action users call ------------------------------------------------------------------


def test_the_review_action_comments_only_where_the_token_may_write_and_passes_inputs_through_env():
    action = yaml.safe_load((REVIEW_ACTION / "action.yml").read_text())
    steps = action["runs"]["steps"]
    comment = next(s for s in steps if s.get("name") == "Keep the PR comment up to date")
    assert "github.event.pull_request.head.repo.full_name == github.repository" in comment["if"]
    for step in steps:
        # An input spliced into a script could run as code: every one goes through the environment.
        assert "${{" not in step.get("run", ""), step.get("name")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A user's repository: the training-cluster example as its base commit, one more GPU node at head, and a new stack."""
    repo = tmp_path_factory.mktemp("user-repo")
    program = repo / "infra"
    shutil.copytree(ROOT / "examples" / "training-cluster", program)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
    base = _git(repo, "rev-parse", "HEAD")
    main = program / "__main__.py"
    assert "max_size=2" in main.read_text()
    main.write_text(main.read_text().replace("max_size=2", "max_size=3"))
    shutil.copy(program / "Pulumi.dev.yaml", program / "Pulumi.staging.yaml")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "head")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "staging")
    return repo, base


def _review(repo: Path, base: str, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    mleks = str(Path(sys.executable).with_name("mleks"))
    return subprocess.run(
        ["bash", str(REVIEW_ACTION / "review.sh")],
        cwd=repo,
        env={**os.environ, "BASE_SHA": base, "OUT": str(out), "HEAD_MLEKS": mleks, "PROGRAM_DIR": "infra", **env},
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_the_review_script_renders_a_users_program_at_base_and_head_and_forecasts_the_change(user_repo: tuple[Path, str], tmp_path: Path):
    repo, base = user_repo
    done = _review(repo, base, tmp_path)
    assert done.returncode == 0, done.stderr
    diff = (tmp_path / "diff.md").read_text()
    assert diff.startswith("# mleks diff")
    # The larger group is an in-place update with its cost; the new stack is all new.
    assert "## Stack `dev`" in diff and "`scalingConfig.maxSize`: `2` → `3`" in diff
    assert "## Stack `staging`" in diff and "stack staging is new in this pull request" in done.stdout
    assert sorted(p.name for p in (tmp_path / "base-render").iterdir()) == ["dev"]


@pytest.mark.slow
def test_the_review_script_fails_the_gate_after_writing_the_forecast(user_repo: tuple[Path, str], tmp_path: Path):
    repo, base = user_repo
    done = _review(repo, base, tmp_path, STACKS="dev", FAIL_ON="change")
    assert done.returncode == 1
    assert "scalingConfig.maxSize" in (tmp_path / "diff.md").read_text()
    # A broken program is an error (2), not a gate: the action fails before commenting.
    broken = _review(repo, base, tmp_path / "broken", STACKS="dev", RENDER_ARGS="--existing-cluster-version 0.1")
    assert broken.returncode == 2 and "--existing-cluster-version" in broken.stderr
