"""The offline render: readable tree, machine-readable plan, Kubernetes YAML, byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mleks import cli
from mleks.testing.render import kube_documents, manifest_yaml, tree_lines
from stacks import offline, render
from tests import render_digests


def test_two_renders_of_the_same_config_are_byte_identical(tmp_path: Path):
    assert render.main(["unified", "--quiet", "--out", str(tmp_path / "a")]) == 0
    assert render.main(["unified", "--quiet", "--out", str(tmp_path / "b")]) == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_plan_lists_type_name_parent_inputs_and_dependencies(tmp_path: Path):
    render.main(["dedicated", "--quiet", "--out", str(tmp_path)])
    plan = json.loads((tmp_path / "dedicated" / "plan.json").read_text())
    assert plan["resourceCount"] == len(plan["resources"])
    node_groups = [r for r in plan["resources"] if r["type"] == "aws:eks/nodeGroup:NodeGroup"]
    assert len(node_groups) == 4
    for r in node_groups:
        assert {"urn", "type", "name", "parent", "inputs", "dependencies", "options"} <= set(r)
        assert r["parent"].endswith(("-gpu", "ml-prod-train", "ml-prod-inference"))


def test_kubernetes_objects_are_written_per_cluster(tmp_path: Path):
    render.main(["dedicated", "--quiet", "--out", str(tmp_path)])
    files = sorted(p.name for p in (tmp_path / "dedicated" / "kubernetes").glob("*.yaml"))
    assert files == ["ml-prod-inference.yaml", "ml-prod-train.yaml"]
    docs = list(yaml.safe_load_all((tmp_path / "dedicated" / "kubernetes" / "ml-prod-train.yaml").read_text()))
    assert all({"apiVersion", "kind", "metadata"} <= set(d) for d in docs)


def test_tree_nests_gpu_groups_under_their_cluster_under_the_platform(rendered):
    lines = tree_lines(rendered["unified"])
    assert lines[0] == "mleks:platform:MLPlatform  ml-unified"
    cluster_line = next(i for i, line in enumerate(lines) if line.startswith("  mleks:cluster:MLCluster  ml-unified"))
    train_line = next(i for i, line in enumerate(lines) if "mleks:nodegroup:GpuNodeGroup  ml-unified-train-p5-gpu" in line)
    assert train_line > cluster_line and lines[train_line].startswith("    ")


def test_bad_config_exits_2_with_the_message(tmp_path: Path, capsys):
    stacks_dir = tmp_path / "stacks"
    stacks_dir.mkdir()
    (stacks_dir / "Pulumi.broken.yaml").write_text("config:\n  aws:region: us-west-2\n  mleks:topology: hybrid\n")
    (tmp_path / "Pulumi.yaml").write_text("name: mleks\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "__main__.py").write_text("from stacks.program import main\n\nmain()\n")
    assert cli.main(["render", "--stack", "broken", "--out", str(tmp_path / "out"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mleks:topology = 'hybrid'" in err and "mleks:nodeGroups" in err


def test_an_unknown_stack_exits_2_listing_the_available_ones(capsys):
    assert render.main(["nosuch", "--quiet"]) == 2
    assert "stacks with a file: ['dedicated', 'unified']" in capsys.readouterr().err


def test_tree_shows_the_resolved_image_of_each_training_job(rendered):
    lines = tree_lines(rendered["unified"])
    job = next(line for line in lines if "Job ml-training/gpu-smoke" in line)
    assert "image=763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.13.0-cu133-amzn2023" in job


@pytest.mark.parametrize("stack_name", ["unified", "dedicated"])
def test_a_render_is_byte_identical_to_the_pinned_one(stack_name: str):
    # After a deliberate change to what a render writes: python -m tests.render_digests, and commit the fixture.
    assert render_digests.digests(stack_name) == json.loads(render_digests.FIXTURE.read_text())[stack_name]


def test_both_yaml_emitters_write_the_same_bytes_and_the_yaml_reads_back_as_the_objects(rendered: dict[str, offline.RenderResult]):
    assert yaml.__with_libyaml__, "the pinned PyYAML wheel carries libyaml; without it renders are only slower"
    for result in rendered.values():
        for objs in kube_documents(result).values():
            text = manifest_yaml(objs)
            assert text == manifest_yaml(objs, pure_python=True)
            assert list(yaml.safe_load_all(text)) == objs


def test_scripts_in_manifests_read_as_literal_blocks(rendered: dict[str, offline.RenderResult]):
    [(_, config)] = [(r, o) for r, o in rendered["unified"].kube_objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "escalator-config"]
    text = manifest_yaml([config])
    assert "  nodegroups_config.yaml: |\n    node_groups:\n    - name: train-g6e\n" in text
