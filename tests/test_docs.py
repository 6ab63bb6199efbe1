"""The README's promises stay true: quick start, CI, links, generated reference."""

from __future__ import annotations

import re
from pathlib import Path

from stacks import config_reference

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_is_exactly_two_commands_one_render_one_test():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "-m stacks.render unified" in commands[0]
    assert "-m pytest" in commands[1]
    for command in commands:
        assert command.startswith("python3 -m venv .venv && "), "each command installs what it needs"


def test_ci_runs_the_readme_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in quick_start_commands():
        assert command in ci


def test_every_relative_link_in_the_readme_points_to_a_file():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target


def test_config_reference_is_regenerated_from_the_schema():
    on_disk = (ROOT / "docs" / "config-reference.md").read_text()
    assert on_disk == config_reference.render(), "run: python -m stacks.config_reference"


def test_every_dependency_range_has_an_exact_tested_pin():
    pins = {line.split("==")[0].lower().replace("_", "-") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    for req in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / req).read_text().splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "-r", "-e")):
                continue
            name = re.split(r"[<>=~! ]", line, maxsplit=1)[0].lower().replace("_", "-")
            assert name in pins, f"{name} from {req} is not pinned in constraints.txt"


def _code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.+?)\n```", README, flags=re.S)


def test_the_readme_python_example_is_the_training_cluster_example_verbatim():
    # The other Python block is the README's test file, which tests/test_wheel.py runs as written.
    example, test_file = _code_blocks("python")
    assert example + "\n" == (ROOT / "examples" / "training-cluster" / "__main__.py").read_text()
    assert test_file.startswith("import pulumi\nimport pytest\n")


def test_the_readme_python_example_builds_a_train_group_that_escalator_scales():
    from mleks.testing import Project

    result = Project.load(ROOT / "examples" / "training-cluster").run("dev")
    types = {r.type for r in result.resources}
    assert {"mleks:cluster:MLCluster", "mleks:nodegroup:GpuNodeGroup", "mleks:addons:EscalatorAddon", "mleks:addons:NvidiaDevicePlugin"} <= types
    [group] = result.of_type("mleks:nodegroup:GpuNodeGroup")
    assert group.outputs["autoscaler"] == "escalator"  # checked once the program ran: an EscalatorAddon watches it
    [config] = [o for _, o in result.kube_objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "escalator-config"]
    assert "research-train" in config["data"]["nodegroups_config.yaml"]
    assert "trainAsg" in result.outputs


def test_the_readme_training_job_example_is_valid_config():
    import yaml

    from stacks import offline, validation

    (snippet,) = [b for b in _code_blocks("yaml") if "mleks:trainingJobs" in b]
    raw = {k.split(":", 1)[1]: v for k, v in offline.load_stack_file("unified").items() if k.startswith("mleks:")}
    raw["region"] = "us-west-2"
    raw["trainingJobs"] = yaml.safe_load(snippet)["mleks:trainingJobs"]
    cfg = validation.load(raw)
    assert list(cfg.training_jobs) == ["gpu-smoke"]
