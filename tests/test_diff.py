"""``mleks diff``: the forecast of what a config change does, from two offline renders."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mleks import cli
from mleks.review import diff as review
from mleks.review.replacements import replace_paths
from mleks.testing.render import plan_document, write
from stacks import offline
from tests.checks import stack_file


def _changed_unified() -> dict[str, Any]:
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-g6e"]["instanceTypes"] = ["g6e.24xlarge"]
    cfg["mleks:trainingJobs"]["nccl-allreduce"]["command"] = ["bash", "-lc"]
    cfg["mleks:nodeGroups"]["inference-spot"]["maxSize"] = 8
    cfg["mleks:tags"] = {**cfg.get("mleks:tags", {}), "owner": "ml-platform"}
    cfg["mleks:notebooks"]["scratch"] = copy.deepcopy(cfg["mleks:notebooks"]["research"])
    return cfg


@pytest.fixture(scope="module")
def forecast(rendered: dict[str, offline.RenderResult]) -> review.StackDiff:
    head = offline.run("unified", config=_changed_unified())
    return review.diff_plans(plan_document(rendered["unified"]), plan_document(head), "unified")


def _one(d: review.StackDiff, type_: str, name: str) -> review.ResourceChange:
    [r] = [r for r in d.resources if r.type == type_ and r.name == name]
    return r


def test_new_instance_types_replace_the_node_group_and_say_jobs_die(forecast: review.StackDiff):
    r = _one(forecast, "aws:eks/nodeGroup:NodeGroup", "ml-unified-train-g6e-gpu")
    assert r.action == "replace" and r.risk == review.DATA_OR_NODES
    assert [c.path for c in r.changes if c.forces_replacement] == ["instanceTypes[0]"]
    assert "running jobs are killed" in r.summary
    assert forecast.resources[0] is r, "the node group replacement is the first thing a reviewer reads"


def test_a_new_training_command_replaces_the_job_so_it_runs_again(forecast: review.StackDiff):
    r = _one(forecast, "kubernetes:batch/v1:Job", "ml-training/nccl-allreduce")
    assert r.action == "replace" and r.risk == review.JOBS and "runs again" in r.summary
    assert [c.path for c in r.changes] == ["spec.template.spec.containers[trainer].command[1]"]


def test_a_larger_inference_max_size_is_an_in_place_update(forecast: review.StackDiff):
    r = _one(forecast, "aws:eks/nodeGroup:NodeGroup", "ml-unified-inference-spot-gpu")
    assert r.action == "update" and not any(c.forces_replacement for c in r.changes)
    assert ("scalingConfig.maxSize", 6, 8) in [(c.path, c.old, c.new) for c in r.changes]


def test_a_new_tag_updates_tagged_resources_in_place_and_rolls_no_node(forecast: review.StackDiff):
    tag_only = [r for r in forecast.resources if r.changes and all(c.path.startswith("tags.") for c in r.changes)]
    assert len(tag_only) >= 25
    assert {r.action for r in tag_only} == {"update"}
    # Launch templates change only their own tags (no new version); the new tag reaches instances
    # through one propagated Auto Scaling group tag per node group.
    templates = [r for r in forecast.resources if r.type == "aws:ec2/launchTemplate:LaunchTemplate"]
    assert len(templates) == 5 and all(r.risk == review.ROUTINE and [c.path for c in r.changes] == ["tags.owner"] for r in templates)
    new_tags = [r for r in forecast.resources if r.type == "aws:autoscaling/tag:Tag" and r.action == "create"]
    assert len(new_tags) == 5


def test_one_more_notebook_is_created_with_its_cost(forecast: review.StackDiff):
    created = {(r.type, r.name) for r in forecast.resources if r.action == "create"}
    assert ("kubernetes:apps/v1:StatefulSet", "notebooks/scratch") in created
    assert ("kubernetes:core/v1:Service", "notebooks/scratch") in created
    assert all(r.action != "delete" for r in forecast.resources)
    # Its 100 GiB gp3 home volume at us-west-2's $0.08 per GiB-month, 730 hours a month.
    home = 100 * 0.08 / 730
    notebook = _one(forecast, "kubernetes:apps/v1:StatefulSet", "notebooks/scratch")
    assert notebook.cost == f"adds ${home:.4f}/h (1 × 100 GiB gp3 claim retained when the workload is deleted)"
    assert f"Cost: adds ${home:.4f}/h" in review.to_markdown([forecast])


def test_the_cost_table_shows_before_after_and_the_change(forecast: review.StackDiff):
    cost = forecast.cost
    assert cost is not None and cost.before is not None and cost.after is not None
    # Idle: only the notebook volume is new (every GPU group has minSize 0).
    assert cost.after.idle - cost.before.idle == pytest.approx(100 * 0.08 / 730)
    # Max: g6e.12xlarge -> g6e.24xlarge for 4 nodes, and 2 more inference-spot nodes at the dearest type's price.
    spot_node = 2.24208 + (200 * 0.08 + 3000 * 0.005 + 375 * 0.04) / 730
    expected = 4 * (15.06559 - 10.49264) + 2 * spot_node + 100 * 0.08 / 730
    assert cost.after.max - cost.before.max == pytest.approx(expected)
    changed = {(c.kind, c.name) for c in cost.items}
    assert changed == {("node-group", "train-g6e"), ("node-group", "inference-spot"), ("volume", "notebooks/scratch home")}
    markdown = review.to_markdown([forecast])
    assert "| at max size | $60.64 + unknown | $83.55 + unknown | +$22.91 |" in markdown
    assert "node-group `train-g6e` (ml-unified): $0.0000/h idle, $42.38/h at max → $0.0000/h idle, $60.67/h at max" in markdown


def test_every_resource_type_the_stacks_register_is_in_the_replacement_table(stack: offline.RenderResult):
    plan = plan_document(stack)
    missing = sorted({r["type"] for r in plan["resources"] if r.get("custom", True) and replace_paths(r["type"], (r.get("inputs") or {}).get("kind")) is None})
    assert missing == []


def test_a_type_missing_from_the_table_is_unknown_not_an_update():
    base = {"resources": [{"urn": "u1", "type": "aws:sns/topic:Topic", "name": "q", "custom": True, "inputs": {"delaySeconds": 0}}]}
    head = {"resources": [{"urn": "u1", "type": "aws:sns/topic:Topic", "name": "q", "custom": True, "inputs": {"delaySeconds": 5}}]}
    [r] = review.diff_plans(base, head, "s").resources
    assert r.action == "unknown" and "pulumi preview" in r.summary


def _secret_pair() -> tuple[dict[str, Any], dict[str, Any]]:
    def plan(token: str) -> dict[str, Any]:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok", "namespace": "nb"}, "stringData": {"token": token}, "type": "Opaque"}
        env = [{"name": "DB_PASSWORD", "value": token}]
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "env": env}]}}}}
        return {
            "resources": [
                {"urn": "s", "type": "kubernetes:core/v1:Secret", "name": "tok", "custom": True, "inputs": secret},
                {"urn": "j", "type": "kubernetes:batch/v1:Job", "name": "j", "custom": True, "inputs": job},
                {"urn": "p", "type": "random:index/randomPassword:RandomPassword", "name": "p", "custom": True, "inputs": {"length": len(token)}},
            ]
        }

    return plan("hunter2-old"), plan("hunter2-new-value")


def test_secret_values_are_never_printed():
    base, head = _secret_pair()
    diffs = [review.diff_plans(base, head, "s")]
    for text in (review.to_markdown(diffs), review.to_json(diffs)):
        assert "hunter2" not in text
        assert review.SECRET in text


def test_deleting_a_retained_resource_says_it_stays(rendered: dict[str, offline.RenderResult]):
    plan = plan_document(rendered["unified"])
    head = {"resources": [r for r in plan["resources"] if r["name"] != "ml-unified-ebs-csi-volumes"]}
    [r] = review.diff_plans(plan, head, "unified").resources
    assert r.action == "delete" and r.risk == review.DATA_OR_NODES and "retained on delete" in r.summary


def test_the_markdown_says_it_is_a_forecast_and_leads_with_the_risky_changes(forecast: review.StackDiff):
    text = review.to_markdown([forecast])
    assert "forecast" in text and "`pulumi preview` is the authority" in text
    assert text.index("Needs attention") < text.index("Jobs that will run") < text.index("Routine changes")
    assert "replaces node group `ml-unified-train-g6e-gpu`" in text


def test_the_cli_exits_0_by_default_and_1_with_fail_on_replace(rendered: dict[str, offline.RenderResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    write(rendered["unified"], tmp_path / "base")
    write(offline.run("unified", config=_changed_unified()), tmp_path / "head")
    assert cli.main(["diff", str(tmp_path / "base"), str(tmp_path / "head")]) == 0
    assert "# mleks diff" in capsys.readouterr().out
    assert cli.main(["diff", str(tmp_path / "base"), str(tmp_path / "head"), "--fail-on", "replace", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["stacks"]["unified"]["counts"]["replace"] >= 2
    # No change at all passes every gate.
    assert cli.main(["diff", str(tmp_path / "base"), str(tmp_path / "base"), "--fail-on", "change"]) == 0
    assert "No changes." in capsys.readouterr().out


def test_a_folder_without_a_render_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["diff", str(tmp_path), str(tmp_path)]) == 2
    assert "no plan.json" in capsys.readouterr().err


DATA_BEARING = ("aws:kms/key:Key", "aws:cloudwatch/logGroup:LogGroup", "kubernetes:core/v1:Namespace")


def test_data_bearing_resources_are_retained_so_no_diff_can_hide_data_loss(stack: offline.RenderResult):
    plan = plan_document(stack)
    found = [r for r in plan["resources"] if r["type"] in DATA_BEARING]
    assert {r["type"] for r in found} == set(DATA_BEARING)
    assert [r["name"] for r in found if not (r.get("options") or {}).get("retainOnDelete")] == []
    # Notebook home volumes: the StorageClass keeps released volumes and the StatefulSet keeps its claims.
    for r in plan["resources"]:
        if r["type"] == "kubernetes:storage.k8s.io/v1:StorageClass":
            assert r["inputs"]["reclaimPolicy"] == "Retain"
        if r["type"] == "kubernetes:apps/v1:StatefulSet":
            assert r["inputs"]["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    # And the diff says so when one of them leaves the program.
    gone = review.diff_plans(plan, {"resources": [r for r in plan["resources"] if r["type"] not in DATA_BEARING]}, stack.stack).resources
    assert gone and all(r.action == "delete" and "retained on delete" in r.summary for r in gone)
