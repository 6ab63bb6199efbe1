"""The pull-request review a reviewer reads: exact changes inside long values, the right words for
deletions and what keeps costing, and tag changes that roll no node.

Each test renders ``unified``, applies one realistic change and reads the Markdown, as a reviewer would.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import mleks
from mleks.errors import ConfigErrors
from mleks.review import diff as review
from mleks.review.values import detail
from mleks.testing import run
from mleks.testing.render import plan_document
from stacks import offline
from tests.checks import stack_file


def _markdown_after(rendered: dict[str, offline.RenderResult], cfg: dict[str, Any]) -> tuple[review.StackDiff, str]:
    d = review.diff_plans(plan_document(rendered["unified"]), plan_document(offline.run("unified", config=cfg)), "unified")
    return d, review.to_markdown([d])


def _section(markdown: str, title: str) -> str:
    """The text under the ``### title`` heading, up to the next heading."""
    start = markdown.index(f"### {title}")
    end = markdown.find("\n### ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_a_larger_max_size_shows_the_changed_line_of_escalators_config(rendered: dict[str, offline.RenderResult]):
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-g6e"]["maxSize"] = 6
    _, markdown = _markdown_after(rendered, cfg)
    assert "`data.nodegroups_config.yaml` (YAML compared as data) *(forces replacement)*:" in markdown
    assert "    - `node_groups[train-g6e].max_nodes`: `4` → `6`" in markdown
    # The truncated before/after that looked the same is gone.
    assert "label_val…" not in markdown


def test_removing_the_notebook_says_its_pods_go_and_its_volume_keeps_costing(rendered: dict[str, offline.RenderResult]):
    cfg = stack_file("unified")
    cfg["mleks:notebooks"] = {}
    d, markdown = _markdown_after(rendered, cfg)
    statefulset = next(r for r in d.resources if r.type == "kubernetes:apps/v1:StatefulSet")
    assert statefulset.action == "delete"
    assert "its pods are deleted" in statefulset.summary and "restart" not in statefulset.summary
    assert "volumes and data stay and keep costing" in statefulset.summary
    # The home volume at us-west-2's gp3 price: the stack total drops, the bill does not.
    home = f"${100 * 0.08 / 730:.4f}/h"
    cost = _section(markdown, "Cost per hour")
    assert f"volume `notebooks/research home` (ml-unified) leaves the stack, not the bill: still {home}" in cost
    assert "| left the stack, still billed (retained) |" in cost
    assert "removed volume" not in cost
    assert f"Cost: leaves the stack, not the bill: {home} goes on" in markdown


def test_removing_the_last_notebook_puts_the_ebs_csi_driver_and_storage_class_under_needs_attention(rendered: dict[str, offline.RenderResult]):
    cfg = stack_file("unified")
    cfg["mleks:notebooks"] = {}
    _, markdown = _markdown_after(rendered, cfg)
    attention = _section(markdown, "Needs attention")
    assert "- **delete** `aws:eks/addon:Addon` — removes EKS add-on `aws-ebs-csi-driver` from the cluster" in attention
    assert "- **delete** `kubernetes:storage.k8s.io/v1:StorageClass` — deletes StorageClass `gp3-encrypted`" in attention
    assert "Addon" not in _section(markdown, "Other replacements and deletions")


def test_a_tag_change_rolls_no_node_group(rendered: dict[str, offline.RenderResult]):
    cfg = stack_file("unified")
    cfg["mleks:tags"] = {**cfg["mleks:tags"], "cost-center": "inference-research", "owner": "ml-platform"}
    d, markdown = _markdown_after(rendered, cfg)
    assert "Needs attention" not in markdown and "replaces every node" not in markdown and "rolls every node" not in markdown
    for r in d.resources:
        if r.type in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:eks/nodeGroup:NodeGroup"):
            assert r.action == "update" and {c.path.split(".")[0] for c in r.changes} == {"tags"}, r.name
    # New instances get the new values through their Auto Scaling groups' tags: a new key is a new
    # tag, a new value is updated in place (aws_autoscaling_group_tag updates tag.value), and neither touches a running node.
    asg_tags = {(r.action, r.name.rsplit("-tag-", 1)[0], r.summary.split(":")[0]) for r in d.resources if r.type == "aws:autoscaling/tag:Tag"}
    groups = {"ml-unified-system", *(f"ml-unified-{g}-gpu" for g in cfg["mleks:nodeGroups"])}
    assert {(a, g) for a, g, _ in asg_tags} == {("create", g) for g in groups} | {("update", g) for g in groups}
    assert "replace" not in {r.action for r in d.resources} and review.gate([d], "replace") == 0


def test_every_instance_and_volume_is_tagged_from_its_first_launch(rendered: dict[str, offline.RenderResult]):
    plan = plan_document(rendered["unified"])
    user = stack_file("unified")["mleks:tags"]
    templates = [r for r in plan["resources"] if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate"]
    for t in templates:
        # All tags, set when the group is made (ignored later, so a tag edit is no new version).
        assert t["options"]["ignoreChanges"] == ["tagSpecifications"], t["name"]
        for spec in t["inputs"]["tagSpecifications"]:
            assert {"Name", "mleks/cluster", *user} <= set(spec["tags"]), t["name"]
    propagated: dict[str, dict[str, str]] = {}
    for r in plan["resources"]:
        if r["type"] == "aws:autoscaling/tag:Tag" and r["inputs"]["tag"]["propagateAtLaunch"]:
            propagated.setdefault(r["name"].rsplit("-tag-", 1)[0], {})[r["inputs"]["tag"]["key"]] = r["inputs"]["tag"]["value"]
    # The user's tags, and the project's two that can change for a group (role, owner), so new nodes carry current values.
    assert len(propagated) == len(templates)
    project = {"mleks/role", "mleks/autoscaler"}
    assert all(tags.keys() - project == user.keys() for tags in propagated.values())
    assert all(project <= tags.keys() for group, tags in propagated.items() if group.endswith("-gpu"))


def test_too_many_tags_for_a_cluster_autoscaler_group_are_refused_naming_mleks_tags():
    cfg = stack_file("unified")
    cfg["mleks:tags"] = {f"k{i}": "v" for i in range(38)}
    with pytest.raises(ConfigErrors) as raised:
        offline.run("unified", config=cfg)
    [err] = raised.value.errors
    assert err.key == "mleks:tags" and err.value == "38 tags" and "inference-spot" in err.accepted and "Auto Scaling group" in err.accepted


def test_a_library_user_gets_the_same_tag_limit_before_the_group_registers_anything():
    refused: list[str] = []

    def program() -> None:
        tags = {f"k{i}": "v" for i in range(38)}
        cluster = mleks.MLCluster("c", mleks.MLClusterArgs(), cluster_name="c", vpc_id="vpc-1", private_subnet_ids=["subnet-a", "subnet-b"], tags=tags)
        args = mleks.GpuNodeGroupArgs(role="inference", instance_types=["g6e.xlarge"], autoscaler="cluster-autoscaler")
        try:
            mleks.GpuNodeGroup("serve", args, cluster=cluster)
        except ConfigErrors as err:
            refused.append(str(err))

    result = run(program, project="p", stack="dev", config={"aws:region": "us-west-2"})
    assert len(refused) == 1 and "GpuNodeGroup('serve').tags = '38 tags' is invalid: too many tags" in refused[0]
    assert not [r.name for r in result.resources if r.name.startswith("serve")]


# -- values inside strings -------------------------------------------------------------------------


def test_a_script_change_is_a_line_diff_with_context():
    old = "\n".join(f"line {i}" for i in range(20))
    new = old.replace("line 10", "line ten")
    d = detail("spec.template.spec.containers[0].args[1]", old, new)
    assert d is not None and d.how == "changed lines"
    assert d.lines == ["@@ -9,5 +9,5 @@", " line 8", " line 9", "-line 10", "+line ten", " line 11", " line 12"]


def test_base64_user_data_is_diffed_decoded():
    old = base64.b64encode(b"#!/bin/bash\nset -e\nulimit -l unlimited\n").decode()
    new = base64.b64encode(b"#!/bin/bash\nset -e\nulimit -l 65536\n").decode()
    d = detail("userData", old, new)
    assert d is not None and d.how.startswith("base64-decoded") and "-ulimit -l unlimited" in d.lines and "+ulimit -l 65536" in d.lines


def test_a_json_policy_is_compared_as_data_so_reformatting_is_no_change():
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}]}
    wider = json.loads(json.dumps(policy))
    wider["Statement"][0]["Action"].append("s3:PutObject")
    d = detail("policy", json.dumps(policy), json.dumps(wider, indent=2))
    assert d is not None and d.how == "JSON compared as data"
    assert [(c.path, c.old, c.new) for c in d.changes] == [("Statement[0].Action", ["s3:GetObject"], ["s3:GetObject", "s3:PutObject"])]
    same = detail("policy", json.dumps(policy), json.dumps(policy, indent=2))
    assert same is not None and same.changes == [] and "only its layout changed" in same.how


def test_a_long_single_line_shows_the_part_that_changed():
    old = "arn:aws:iam::123456789012:role/" + "a" * 60 + "-readers-" + "b" * 60
    new = old.replace("-readers-", "-writers-")
    d = detail("roleArn", old, new)
    assert d is not None and d.how == "the changed part"
    assert all("readers" in line or "writers" in line for line in d.lines) and all(len(line) < 80 for line in d.lines)


def test_secrets_inside_text_stay_hidden_but_their_change_shows():
    old = "user: admin\npassword: hunter2-old\nport: 5432\n"
    new = "user: admin\npassword: hunter2-new\nport: 5432\n"
    plan_a = {
        "resources": [
            {"urn": "c", "type": "kubernetes:core/v1:ConfigMap", "name": "c", "custom": True, "inputs": {"kind": "ConfigMap", "data": {"db.yaml": old}}}
        ]
    }
    plan_b = {
        "resources": [
            {"urn": "c", "type": "kubernetes:core/v1:ConfigMap", "name": "c", "custom": True, "inputs": {"kind": "ConfigMap", "data": {"db.yaml": new}}}
        ]
    }
    d = review.diff_plans(plan_a, plan_b, "s")
    for text in (review.to_markdown([d]), review.to_json([d])):
        assert "hunter2" not in text
    [r] = d.resources
    assert r.action == "replace", "the change is still seen"
    text = old.replace("\n", " \n") + "x"  # not YAML any more: the line diff path hides it too
    lines = detail("data.run.sh", text, text.replace("hunter2-old", "hunter2-new"))
    assert lines is not None and not any("hunter2" in line for line in lines.lines)


def test_a_resource_moved_with_an_alias_is_compared_not_deleted_and_created():
    def plan(urn: str, size: int, aliases: list[str]) -> dict[str, Any]:
        group = {"urn": urn, "type": "aws:eks/nodeGroup:NodeGroup", "name": "g", "custom": True, "inputs": {"scalingConfig": {"maxSize": size}}}
        group["options"] = {"aliases": aliases} if aliases else {}
        return {"resources": [group]}

    before = "urn:pulumi:s::p::pulumi:pulumi:Stack$aws:eks/nodeGroup:NodeGroup::g"
    after = "urn:pulumi:s::p::mleks:platform:MLPlatform$aws:eks/nodeGroup:NodeGroup::g"
    [r] = review.diff_plans(plan(before, 2, []), plan(after, 3, [before]), "s").resources
    assert r.action == "update" and [(c.path, c.old, c.new) for c in r.changes] == [("scalingConfig.maxSize", 2, 3)]
    assert review.diff_plans(plan(before, 2, []), plan(after, 2, [before]), "s").resources == []


def test_the_platform_components_carry_the_alias_of_where_they_were(rendered: dict[str, offline.RenderResult]):
    plan = plan_document(rendered["unified"])
    cluster = next(r for r in plan["resources"] if r["type"] == "mleks:cluster:MLCluster")
    assert cluster["options"]["aliases"] == ["urn:pulumi:unified::mleks::pulumi:pulumi:Stack$mleks:cluster:MLCluster::ml-unified"]


@pytest.mark.parametrize("change", ["no notebooks", "prometheus metrics", "no dataset"])
def test_adding_or_removing_an_add_on_re_runs_no_training_job(rendered: dict[str, offline.RenderResult], change: str):
    cfg = stack_file("unified")
    # A job that mounted the removed dataset changes for that reason; the others must not.
    unchanged = {f"ml-training/{name}" for name, job in cfg["mleks:trainingJobs"].items() if not (change == "no dataset" and job.get("datasets"))}
    if change == "no notebooks":
        cfg["mleks:notebooks"] = {}
    elif change == "prometheus metrics":
        cfg["mleks:observability"] = "prometheus"
    else:
        cfg["mleks:datasets"] = {}
        for workload in [*cfg["mleks:trainingJobs"].values(), *cfg["mleks:notebooks"].values()]:
            workload.pop("datasets", None)
    d, _ = _markdown_after(rendered, cfg)
    assert unchanged, "the example has a job that the change should leave alone"
    assert [r.name for r in d.resources if r.type == "kubernetes:batch/v1:Job" and r.name in unchanged] == []


def test_widening_who_reaches_a_service_is_a_security_change(rendered: dict[str, offline.RenderResult]):
    cfg = stack_file("dedicated")
    cfg["mleks:inferenceServices"][0]["loadBalancerSourceCidrs"] = ["0.0.0.0/0"]
    d = review.diff_plans(plan_document(rendered["dedicated"]), plan_document(offline.run("dedicated", config=cfg)), "dedicated")
    markdown = review.to_markdown([d])
    security = _section(markdown, "Security")
    assert '`spec.loadBalancerSourceRanges[0]`: `"10.50.0.0/16"` → `"0.0.0.0/0"`' in security
    assert "### Routine changes" not in markdown or "Service" not in _section(markdown, "Routine changes")


def test_a_tag_change_is_not_a_security_change(rendered: dict[str, offline.RenderResult]):
    cfg = stack_file("unified")
    cfg["mleks:tags"] = {**cfg["mleks:tags"], "owner": "ml-platform"}
    d, markdown = _markdown_after(rendered, cfg)
    assert review.SECURITY not in {r.risk for r in d.resources} and "### Security" not in markdown


def _job_plan(args: list[str]) -> dict[str, Any]:
    container = {"name": "c", "args": args}
    inputs = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [container]}}}}
    return {"resources": [{"urn": "d", "type": "kubernetes:apps/v1:Deployment", "name": "d", "custom": True, "inputs": inputs}]}


def test_a_rotated_flag_value_shows_as_changed_but_is_never_printed():
    base = _job_plan(["serve", "--api-key", "sk-OLD-AAAA", "--db", "postgres://app:hunter2@db:5432/x"])
    head = _job_plan(["serve", "--api-key", "sk-NEW-BBBB", "--db", "postgres://app:hunter3@db:5432/x"])
    d = review.diff_plans(base, head, "s")
    for text in (review.to_markdown([d]), review.to_json([d])):
        assert "sk-OLD" not in text and "sk-NEW" not in text and "hunter" not in text
    [r] = d.resources
    assert {c.path for c in r.changes} == {"spec.template.spec.containers[c].args[2]", "spec.template.spec.containers[c].args[4]"}


def test_a_boolean_flag_that_names_a_token_hides_nothing_after_it():
    d = review.diff_plans(_job_plan(["serve", "--disable-token-auth"]), _job_plan(["serve", "--disable-token-auth", "--ncs"]), "s")
    assert '`"--ncs"`' in review.to_markdown([d])


def test_a_new_rbac_rule_is_listed_leaf_by_leaf_not_cut():
    def role(rules: list[dict[str, Any]]) -> dict[str, Any]:
        inputs = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ca"}, "rules": rules}
        return {"resources": [{"urn": "r", "type": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "name": "ca", "custom": True, "inputs": inputs}]}

    events = {"apiGroups": [""], "resources": ["events", "endpoints"], "verbs": ["create", "patch"]}
    templates = {"apiGroups": [""], "resources": ["podtemplates"], "verbs": ["create", "delete", "update"]}
    d = review.diff_plans(role([events]), role([events, templates]), "s")
    markdown = review.to_markdown([d])
    assert "### Security" in markdown
    assert '`rules[1] (added).resources`: `(none)` → `["podtemplates"]`' in markdown
    assert '`rules[1] (added).verbs`: `(none)` → `["create", "delete", "update"]`' in markdown


def test_an_explicit_job_request_only_has_to_fit_beside_what_the_cluster_runs():
    # Defaults leave room for every add-on a cluster could have; an explicit request is checked against
    # today's DaemonSets (47290m on a g6e.12xlarge of the example), not that ceiling (47090m).
    cfg = stack_file("unified")
    cfg["mleks:trainingJobs"]["gpu-smoke"]["cpu"] = "47250m"
    result = offline.run("unified", config=cfg)
    [job] = [o for _, o in result.kube_objects() if o["kind"] == "Job" and o["metadata"]["name"] == "gpu-smoke"]
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "47250m"
    cfg["mleks:trainingJobs"]["gpu-smoke"]["cpu"] = "47300m"
    with pytest.raises(ConfigErrors, match="at most 47290m"):
        offline.run("unified", config=cfg)


def test_cluster_changes_need_attention_and_a_downgrade_is_called_one(rendered: dict[str, offline.RenderResult]):
    cfg = stack_file("unified")
    cfg["mleks:cluster"]["adminPrincipals"] = [*cfg["mleks:cluster"].get("adminPrincipals", []), "arn:aws:iam::123456789012:role/Contractor"]
    d, markdown = _markdown_after(rendered, cfg)
    [cluster] = [r for r in d.resources if r.type == "eks:index:Cluster"]
    assert cluster.risk == review.DATA_OR_NODES and "who may administer the cluster" in cluster.summary
    assert "Contractor" in _section(markdown, "Needs attention")

    def plan(version: str) -> dict[str, Any]:
        return {"resources": [{"urn": "c", "type": "eks:index:Cluster", "name": "c", "custom": False, "inputs": {"name": "c", "version": version}}]}

    [down] = review.diff_plans(plan("1.35"), plan("1.34"), "s").resources
    assert "downgrade" in down.summary and "EKS refuses it" in down.summary
    [up] = review.diff_plans(plan("1.35"), plan("1.36"), "s").resources
    assert "1.35 → 1.36" in up.summary and "cannot be undone" in up.summary


def test_which_iam_role_a_pod_assumes_is_a_security_change():
    def plan(role: str) -> dict[str, Any]:
        meta = {"name": "sa", "namespace": "n", "annotations": {"eks.amazonaws.com/role-arn": role}}
        sa = {"urn": "s", "type": "kubernetes:core/v1:ServiceAccount", "name": "sa", "custom": True, "inputs": {"kind": "ServiceAccount", "metadata": meta}}
        return {"resources": [sa]}

    [r] = review.diff_plans(plan("arn:aws:iam::1:role/a"), plan("arn:aws:iam::1:role/admin"), "s").resources
    assert r.risk == review.SECURITY


def test_a_password_in_a_url_inside_yaml_data_is_hidden_but_its_change_shows():
    d = detail("data.cfg.yaml", "db:\n  url: postgres://app:hunter2@db/x\n  port: 1\n", "db:\n  url: postgres://app:hunter3@db/x\n  port: 1\n")
    assert d is not None and [(c.path, c.old, c.new) for c in d.changes] == [("db.url", "postgres://app:(secret)@db/x", "postgres://app:(secret)@db/x")]
