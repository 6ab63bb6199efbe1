"""Existing clusters offline: what a looked-up EKS cluster reports is set per render (issue 18).

``mleks.ExistingCluster`` reads its cluster with ``aws.eks.get_cluster``; offline
:class:`mleks.testing.ExistingClusterFacts` say what that lookup (and the node
group, role and subnet lookups after it) answers, from Python
(``existing_cluster=``) and from ``mleks render`` (``--existing-cluster-*``).
Everything runs under the mock engine: no AWS, network or Pulumi CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
import yaml

import mleks
from mleks import cli
from mleks.catalogs.eks_versions import supported_kubernetes_versions
from mleks.cluster_base import EksCluster
from mleks.errors import ConfigErrors
from mleks.testing import ExistingClusterFacts, MleksMocks, Project, RenderResult, run, set_mocks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "existing-cluster"
KEY = "mleks-existing-cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ROLE_ARN = "arn:aws:iam::210987654321:role/eks/platform-nodes"
SUBNETS = ("subnet-0aaa1111", "subnet-0bbb2222", "subnet-0ccc3333")


def _example_config(**settings: str) -> dict[str, Any]:
    """The example's stack config with its own keys (``kubernetesVersion=...``) or ``aws:region`` replaced."""
    cfg = Project.load(EXAMPLE).stack_config("dev")
    for key, value in settings.items():
        cfg["aws:region" if key == "region" else f"{KEY}:{key}"] = value
    return cfg


def _render_example(facts: ExistingClusterFacts | None = None, **settings: str) -> RenderResult:
    return Project.load(EXAMPLE).run("dev", _example_config(**settings), existing_cluster=facts)


def _component(result: RenderResult) -> Any:
    [cluster] = result.of_type("mleks:cluster:ExistingCluster")
    return cluster


def _train_group(result: RenderResult) -> Any:
    [group] = result.of_type(NODE_GROUP)
    return group


def _config_errors(err: BaseException) -> ConfigErrors:
    """The ConfigErrors behind ``err`` (the SDK wraps one raised in an apply in a ValueError of its own)."""
    found = cli._config_error_in(err)
    assert isinstance(found, ConfigErrors), repr(err)
    return found


# -- (a) the example at every version EKS supports ----------------------------------------


def test_the_example_reads_its_kubernetes_version_from_the_stack_file():
    assert _example_config()[f"{KEY}:kubernetesVersion"] == "1.35"
    assert 'config.require("kubernetesVersion")' in (EXAMPLE / "__main__.py").read_text()


@pytest.mark.parametrize("version", supported_kubernetes_versions())
def test_the_example_renders_at_every_supported_version(version: str):
    result = _render_example(ExistingClusterFacts(version=version), kubernetesVersion=version)
    assert _component(result).outputs["kubernetes_version"] == version
    # The new GPU group runs the cluster's minor, not the mocks' old fixed one.
    assert _train_group(result).inputs["version"] == version
    assert result.kube_objects() and result.outputs["trainAsg"]


def test_without_facts_the_looked_up_cluster_is_still_1_35():
    mocks = MleksMocks()
    assert mocks.existing_cluster is None and mocks.existing_cluster_version == "1.35" == ExistingClusterFacts().version
    assert _train_group(_render_example()).inputs["version"] == "1.35"


def test_the_version_setter_kept_for_older_tests_sets_the_facts():
    mocks = MleksMocks("us-east-1")
    mocks.existing_cluster_version = "1.34"
    assert mocks.existing_cluster == ExistingClusterFacts(version="1.34")
    with pytest.raises(ConfigErrors, match=r"ExistingClusterFacts\.version = '1\.20' is invalid"):
        mocks.existing_cluster_version = "1.20"


# -- (b) a program written for another version still fails ----------------------------------


@pytest.mark.parametrize("program_version", [v for v in supported_kubernetes_versions() if v != "1.33"])
def test_a_program_for_another_minor_than_the_cluster_fails_naming_kubernetes_version(program_version: str):
    with pytest.raises(ValueError) as caught:
        _render_example(ExistingClusterFacts(version="1.33"), kubernetesVersion=program_version)
    [err] = _config_errors(caught.value).errors
    assert (err.key, err.value, err.problem) == ("kubernetes_version", program_version, "not the cluster's version")
    assert err.accepted.startswith('"1.33"')


def test_the_issue_18_example_passes_once_the_stack_file_and_the_facts_agree():
    # The reported failure: the program set to a real cluster's 1.33 while the mocks said 1.35.
    with pytest.raises(ValueError, match=r"kubernetes_version = '1\.33' is invalid: not the cluster's version\. Accepted: \"1\.35\""):
        _render_example(kubernetesVersion="1.33")
    assert _train_group(_render_example(ExistingClusterFacts(version="1.33"), kubernetesVersion="1.33")).inputs["version"] == "1.33"


# -- (c) node role and subnets ------------------------------------------------------------------


def test_the_facts_subnets_are_where_the_gpu_nodes_go():
    result = _render_example(ExistingClusterFacts(subnet_ids=list(SUBNETS)))
    assert _train_group(result).inputs["subnetIds"] == list(SUBNETS)


def test_the_node_role_of_an_existing_node_group_is_the_facts_role():
    result = _render_example(ExistingClusterFacts(node_role_arn=ROLE_ARN, subnet_ids=SUBNETS[:2]), nodeRoleFromNodeGroup="system")
    group = _train_group(result)
    assert group.inputs["nodeRoleArn"] == ROLE_ARN and group.inputs["subnetIds"] == list(SUBNETS[:2])
    # Sharing a role the cluster already admits: no role of its own.
    assert all("node-role" not in r.name for r in result.of_type("aws:iam/role:Role"))
    assert _component(result).outputs["node_role_arn"] == ROLE_ARN


def test_without_node_role_facts_a_node_group_lookup_answers_a_role_named_after_the_group():
    group = _train_group(_render_example(nodeRoleFromNodeGroup="system"))
    assert group.inputs["nodeRoleArn"] == "arn:aws:iam::123456789012:role/platform-system-node-role"


def test_the_example_without_the_optional_setting_still_makes_its_own_node_role():
    result = _render_example(ExistingClusterFacts(node_role_arn=ROLE_ARN))
    assert _train_group(result).inputs["nodeRoleArn"] == "arn:aws:iam::123456789012:role/platform-node-role"


def test_a_role_looked_up_by_the_facts_roles_name_is_the_facts_role_with_its_path():
    def program() -> None:
        role = aws.iam.get_role_output(name="platform-nodes")
        cluster = mleks.ExistingCluster("platform", cluster_name="platform", region="us-east-1", kubernetes_version="1.35", node_role_arn=role.arn)
        _group(cluster, autoscaler="none", min_size=1, max_size=1)
        pulumi.export("path", role.path)

    result = run(program, project="p", stack="dev", config={"aws:region": "us-east-1"}, existing_cluster=ExistingClusterFacts(node_role_arn=ROLE_ARN))
    assert _train_group(result).inputs["nodeRoleArn"] == ROLE_ARN and result.outputs["path"] == "/eks/"


def test_a_capacity_block_group_takes_the_facts_subnet_in_the_reservations_zone():
    # Mocked Capacity Blocks are in the region's second AZ; the facts' second subnet is there.
    def program() -> None:
        cluster = mleks.ExistingCluster("platform", cluster_name="platform", region="us-east-1", kubernetes_version="1.35")
        _group(
            cluster,
            instance_types=["p5.48xlarge"],
            capacity_type="capacity-block",
            capacity_reservation_id="cr-0123",
            autoscaler="none",
            min_size=1,
            max_size=1,
        )

    result = run(program, project="p", stack="dev", config={"aws:region": "us-east-1"}, existing_cluster=ExistingClusterFacts(subnet_ids=SUBNETS))
    assert _train_group(result).inputs["subnetIds"] == [SUBNETS[1]]


def _group(cluster: EksCluster, **args: Any) -> mleks.GpuNodeGroup:
    settings: dict[str, Any] = {"role": "train", "instance_types": ["g6e.12xlarge"], **args}
    return mleks.GpuNodeGroup("platform-train", mleks.GpuNodeGroupArgs(**settings), cluster=cluster, opts=pulumi.ResourceOptions(parent=cluster))


def test_each_cluster_a_program_looks_up_reports_its_own_facts():
    def program() -> None:
        for name, version in (("blue", "1.33"), ("green", "1.36")):
            cluster = mleks.ExistingCluster(name, cluster_name=name, region="us-east-1", kubernetes_version=version)
            mleks.GpuNodeGroup(
                f"{name}-train",
                mleks.GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], autoscaler="none", min_size=1, max_size=1),
                cluster=cluster,
                opts=pulumi.ResourceOptions(parent=cluster),
            )

    facts = {"blue": ExistingClusterFacts(version="1.33", subnet_ids=SUBNETS[:2]), "green": ExistingClusterFacts(version="1.36")}
    result = run(program, project="p", stack="dev", config={"aws:region": "us-east-1"}, existing_clusters=facts)
    groups = {g.inputs["clusterName"]: g.inputs for g in result.of_type(NODE_GROUP)}
    assert groups["blue"]["version"] == "1.33" and groups["blue"]["subnetIds"] == list(SUBNETS[:2])
    assert groups["green"]["version"] == "1.36" and groups["green"]["subnetIds"] == [f"subnet-green-us-east-1{z}" for z in "abc"]


# -- (e) region -----------------------------------------------------------------------------------


def test_a_cluster_in_the_programs_region_renders_with_that_regions_endpoint_issuer_and_subnets():
    result = _render_example(ExistingClusterFacts(region="eu-west-1"), region="eu-west-1")
    assert _component(result).outputs["region"] == "eu-west-1"
    [provider] = result.of_type("pulumi:providers:kubernetes")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://platform.gr7.eu-west-1.eks.amazonaws.com"
    assert kubeconfig["users"][0]["user"]["exec"]["args"][-2:] == ["--region", "eu-west-1"]
    assert _train_group(result).inputs["subnetIds"] == [f"subnet-platform-eu-west-1{z}" for z in "abc"]
    trust = [r.inputs["assumeRolePolicy"] for r in result.of_type("aws:iam/role:Role") if "oidc" in str(r.inputs.get("assumeRolePolicy"))]
    assert trust and all("oidc.eks.eu-west-1.amazonaws.com/id/PLATFORM" in t for t in trust)


def test_a_program_whose_region_is_not_the_clusters_fails_naming_region():
    with pytest.raises(ValueError) as caught:
        _render_example(ExistingClusterFacts(region="eu-west-1"))  # the stack file says us-west-2
    [err] = _config_errors(caught.value).errors
    assert (err.key, err.value, err.problem) == ("region", "us-west-2", "not the cluster's region")
    assert err.accepted.startswith('"eu-west-1"')


def test_without_region_facts_the_lookup_runs_in_its_providers_region():
    # A program spanning regions looks each cluster up through that region's provider.
    def program() -> None:
        east = aws.Provider("east", region="us-east-1")
        mleks.ExistingCluster("east", cluster_name="east", region="us-east-1", kubernetes_version="1.35", opts=pulumi.ResourceOptions(providers={"aws": east}))

    result = run(program, project="p", stack="dev", config={"aws:region": "us-west-2"})
    assert _component(result).outputs["region"] == "us-east-1"
    with pytest.raises(ValueError) as caught:
        run(program, project="p", stack="dev", config={"aws:region": "us-west-2"}, existing_cluster=ExistingClusterFacts(region="us-east-2"))
    assert _config_errors(caught.value).errors[0].key == "region"


def test_facts_in_a_cn_region_need_a_role_of_that_partition():
    ExistingClusterFacts(region="cn-north-1", node_role_arn="arn:aws-cn:iam::123456789012:role/nodes")
    with pytest.raises(ConfigErrors) as caught:
        ExistingClusterFacts(region="cn-north-1", node_role_arn="arn:aws:iam::123456789012:role/nodes")
    [err] = caught.value.errors
    assert err.key == "ExistingClusterFacts.node_role_arn" and "aws-cn" in err.accepted


# -- validation of the facts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "key", "value", "accepted"),
    [
        ({"version": "1.30"}, "version", "1.30", "1.35"),
        ({"version": 1.33}, "version", 1.33, "quoted"),
        ({"region": "eu-west-9"}, "region", "eu-west-9", "eu-west-1"),
        ({"node_role_arn": "platform-nodes"}, "node_role_arn", "platform-nodes", "arn:aws:iam::"),
        ({"node_role_arn": "arn:aws:iam::123456789012:user/me"}, "node_role_arn", "arn:aws:iam::123456789012:user/me", "role"),
        ({"subnet_ids": ["subnet-a"]}, "subnet_ids", ["subnet-a"], "at least two"),
        ({"subnet_ids": "subnet-a,subnet-b"}, "subnet_ids", "subnet-a,subnet-b", "as a list"),
        ({"subnet_ids": ["subnet-a", "sn-b"]}, "subnet_ids[1]", "sn-b", "subnet-"),
        ({"subnet_ids": ["subnet-a", "subnet-a"]}, "subnet_ids[1]", "subnet-a", "once"),
    ],
)
def test_bad_facts_raise_config_errors_naming_the_argument_the_value_and_what_is_accepted(facts: dict[str, Any], key: str, value: Any, accepted: str):
    with pytest.raises(ConfigErrors) as caught:
        ExistingClusterFacts(**facts)
    [err] = caught.value.errors
    assert (err.key, err.value) == (f"ExistingClusterFacts.{key}", value) and accepted in err.accepted


def test_every_bad_fact_is_reported_at_once():
    with pytest.raises(ConfigErrors) as caught:
        ExistingClusterFacts(version="1.31", region="mars-1", subnet_ids=["x"])
    assert [e.key for e in caught.value.errors] == [
        "ExistingClusterFacts.version",
        "ExistingClusterFacts.region",
        "ExistingClusterFacts.subnet_ids",
        "ExistingClusterFacts.subnet_ids[0]",
    ]


def test_facts_are_frozen_and_hashable():
    facts = ExistingClusterFacts(subnet_ids=list(SUBNETS))
    assert facts.subnet_ids == SUBNETS and hash(facts) == hash(ExistingClusterFacts(subnet_ids=SUBNETS))
    with pytest.raises(AttributeError):
        facts.version = "1.33"  # type: ignore[misc]


def test_the_mocks_refuse_what_is_not_facts():
    with pytest.raises(ConfigErrors) as caught:
        MleksMocks(existing_cluster="1.33", existing_clusters={"blue": {"version": "1.33"}})  # type: ignore[arg-type, dict-item]
    assert [e.key for e in caught.value.errors] == ["existing_cluster", "existing_clusters['blue']"]
    with pytest.raises(TypeError, match="MleksMocks"):
        set_mocks(MleksMocks(), project="p", stack="dev", existing_cluster=ExistingClusterFacts())


# -- (d) mleks render ----------------------------------------------------------------------------


def _example_copy(tmp_path: Path, **settings: str) -> Path:
    """The example in ``tmp_path/program`` with stack settings changed, as a user edits their stack file."""
    program = tmp_path / "program"
    shutil.copytree(EXAMPLE, program, ignore=shutil.ignore_patterns("render-out", "__pycache__"))
    stack_file = program / "Pulumi.dev.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"].update({f"{KEY}:{k}": v for k, v in settings.items()})
    stack_file.write_text(yaml.safe_dump(doc))
    return program


def _plan(out: Path) -> dict[str, Any]:
    return json.loads((out / "dev" / "plan.json").read_text())


def test_mleks_render_renders_the_example_against_a_real_clusters_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    program = _example_copy(tmp_path, kubernetesVersion="1.33", nodeRoleFromNodeGroup="system")
    out = tmp_path / "out"
    argv = ["render", "--quiet", "--out", str(out), "--existing-cluster-version", "1.33", "--existing-cluster-region", "us-west-2"]
    argv += ["--existing-cluster-node-role-arn", ROLE_ARN, "--existing-cluster-subnets", " subnet-0aaa1111, subnet-0bbb2222", str(program)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    [group] = [r for r in _plan(out)["resources"] if r["type"] == NODE_GROUP]
    assert group["inputs"]["version"] == "1.33" and group["inputs"]["nodeRoleArn"] == ROLE_ARN
    assert group["inputs"]["subnetIds"] == ["subnet-0aaa1111", "subnet-0bbb2222"]
    assert "stack dev:" in capsys.readouterr().out


def test_mleks_render_without_the_options_renders_as_before(tmp_path: Path):
    for out, extra in (("plain", []), ("defaults", ["--existing-cluster-version", "1.35"])):
        assert cli.main(["render", "--quiet", "--out", str(tmp_path / out), *extra, str(EXAMPLE)]) == 0
    assert (tmp_path / "plain" / "dev" / "plan.json").read_bytes() == (tmp_path / "defaults" / "dev" / "plan.json").read_bytes()


def test_mleks_render_reports_a_version_mismatch_in_the_stack_it_chose(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # No --stack: the example's only stack file, named in the message (never "None").
    assert cli.main(["render", "--quiet", "--out", str(tmp_path), "--existing-cluster-version", "1.33", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: stack 'dev': ") and "kubernetes_version = '1.35' is invalid: not the cluster's version" in err
    assert "None" not in err and "While processing input" not in err and "Traceback" not in err
    assert not (tmp_path / "dev").exists()


def test_mleks_render_without_stack_says_it_is_needed_when_there_are_several(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    program = _example_copy(tmp_path)
    shutil.copy(program / "Pulumi.dev.yaml", program / "Pulumi.prod.yaml")
    assert cli.main(["render", "--quiet", "--out", str(tmp_path / "out"), str(program)]) == 2
    err = capsys.readouterr().err
    assert "['dev', 'prod']" in err and "--stack" in err and "None" not in err
    (program / "Pulumi.dev.yaml").unlink()
    (program / "Pulumi.prod.yaml").unlink()
    assert cli.main(["render", "--quiet", "--out", str(tmp_path / "out"), str(program)]) == 2
    err = capsys.readouterr().err
    assert "no stack file" in err and "None" not in err


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--existing-cluster-version", "1.30", "'1.30' is invalid: not a version EKS supports"),
        ("--existing-cluster-version", "latest", "'latest' is invalid"),
        ("--existing-cluster-region", "us-west-9", "'us-west-9' is invalid: not an AWS region; did you mean"),
        ("--existing-cluster-node-role-arn", "platform-nodes", "'platform-nodes' is invalid: not an IAM role ARN"),
        ("--existing-cluster-subnets", "subnet-a", "'subnet-a' is invalid: EKS clusters have subnets in at least two"),
        ("--existing-cluster-subnets", "subnet-a,,subnet-c", "'' (item 2) is invalid: not a subnet id"),
    ],
)
def test_mleks_render_refuses_bad_option_values_in_one_line_naming_the_option(
    option: str, value: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert cli.main(["render", "--quiet", "--out", str(tmp_path), option, value, str(EXAMPLE)]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith(f"mleks render: error: argument {option}: ") and says in line and "Accepted: " in line
    assert captured.out == "" and not any(tmp_path.iterdir())


def test_mleks_render_reports_every_bad_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    argv = ["render", "--out", str(tmp_path), "--existing-cluster-version", "1.2", "--existing-cluster-subnets", "a,b", str(EXAMPLE)]
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[2].strip() for line in lines] == [
        "argument --existing-cluster-version",
        "argument --existing-cluster-subnets",
        "argument --existing-cluster-subnets",
    ]


def test_mleks_render_help_documents_the_options(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        cli.main(["render", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in (
        "--existing-cluster-version MINOR",
        "--existing-cluster-region REGION",
        "--existing-cluster-node-role-arn ARN",
        "--existing-cluster-subnets ID,ID",
    ):
        assert option in text
    assert "default: the program's only stack file" in text
