"""mleks as a library: its public API, components that compose on their own, and testing for users' programs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pulumi
import pytest

import mleks
from mleks import cli
from mleks.testing import MleksMocks, Project, run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "Pulumi.yaml").exists())
REGION = {"aws:region": "us-east-1"}


def _cluster(name: str = "lab") -> mleks.MLCluster:
    return mleks.MLCluster(name, mleks.MLClusterArgs(), cluster_name=name, region="us-east-1", vpc_id="vpc-1", private_subnet_ids=["subnet-a", "subnet-b"])


def _train(cluster: mleks.EksCluster, name: str = "lab-train", **args: object) -> mleks.GpuNodeGroup:
    return mleks.GpuNodeGroup(
        name,
        mleks.GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], **args),  # type: ignore[arg-type]
        cluster=cluster,
        opts=pulumi.ResourceOptions(parent=cluster),
    )


# -- the package ---------------------------------------------------------------------------


def test_the_public_api_is_importable_from_the_top_and_listed_in_all():
    for name in mleks.__all__:
        assert hasattr(mleks, name), name
    assert {"MLCluster", "GpuNodeGroup", "EscalatorAddon", "ClusterAutoscalerAddon", "DLCTrainingJob", "InferenceService", "JupyterNotebook"} <= set(
        mleks.__all__
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+", mleks.__version__)
    assert (ROOT / "components" / "mleks" / "py.typed").exists()


def test_the_package_declares_the_ranges_requirements_txt_supports():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith(("#", "-e"))]
    assert sorted(declared) == sorted(lines)


def test_only_mleks_is_installed_as_a_top_level_name():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "components"}
    assert setuptools["packages"]["find"] == {"where": ["components"], "include": ["mleks", "mleks.*"]}
    assert [p.name for p in (ROOT / "components").iterdir() if not p.name.endswith(".egg-info")] == ["mleks"]


def test_arguments_built_in_python_raise_config_errors_naming_every_argument():
    with pytest.raises(mleks.ConfigErrors) as info:
        mleks.GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], min_size=3, max_size=2, disk_throughput_mibps=1000, disk_iops=3000)
    assert {e.key for e in info.value.errors} == {"max_size", "disk_throughput_mibps"}
    with pytest.raises(mleks.ConfigErrors) as info:
        mleks.MLClusterArgs(system_nodes={"instance_types": ["p4d.24xlarge"]})  # type: ignore[arg-type]
    assert [e.key for e in info.value.errors] == ["system_nodes.instance_types[0]"]


# -- components that compose into a working whole -------------------------------------------


def test_a_group_owned_by_an_autoscaler_nobody_deploys_fails_naming_it():
    def program() -> None:
        _train(_cluster())

    with pytest.raises(Exception, match=r"lab-train\.autoscaler = 'escalator' is invalid: nothing scales the group"):
        run(program, project="p", stack="dev", config=REGION)


def test_the_same_group_with_its_escalator_runs():
    def program() -> None:
        cluster = _cluster()
        train = _train(cluster)
        mleks.EscalatorAddon("lab-escalator", mleks.EscalatorArgs(), cluster=cluster, node_groups=[train], opts=pulumi.ResourceOptions(parent=cluster))

    result = run(program, project="p", stack="dev", config=REGION)
    assert result.of_type("mleks:nodegroup:GpuNodeGroup")[0].outputs["autoscaler"] == "escalator"


def test_a_fixed_size_group_needs_no_autoscaler():
    result = run(lambda: _train(_cluster(), autoscaler="none", min_size=1, max_size=1), project="p", stack="dev", config=REGION)
    assert result.of_type("mleks:nodegroup:GpuNodeGroup")[0].outputs["autoscaler"] == "none"


def test_the_cluster_adds_each_device_plugin_once_for_the_groups_that_need_it():
    def program() -> None:
        cluster = _cluster()
        _train(cluster, "a", autoscaler="none", min_size=1, max_size=1)
        _train(cluster, "b", autoscaler="none", min_size=1, max_size=1, efa=True)
        _train(cluster, "c", autoscaler="none", min_size=1, max_size=1, efa=True)

    result = run(program, project="p", stack="dev", config=REGION)
    assert [r.name for r in result.of_type("mleks:addons:NvidiaDevicePlugin")] == ["lab-nvidia"]
    assert [r.name for r in result.of_type("mleks:addons:EfaDevicePlugin")] == ["lab-efa"]


def test_bottlerocket_groups_get_no_nvidia_plugin_and_a_second_copy_is_refused():
    def bottlerocket_only() -> None:
        _train(_cluster(), autoscaler="none", min_size=1, max_size=1, ami_family="bottlerocket")

    assert run(bottlerocket_only, project="p", stack="dev", config=REGION).of_type("mleks:addons:NvidiaDevicePlugin") == []

    def twice() -> None:
        cluster = _cluster()
        _train(cluster, autoscaler="none", min_size=1, max_size=1)
        mleks.NvidiaDevicePlugin("extra", cluster=cluster)

    with pytest.raises(ValueError, match="already runs the nvidia device plugin"):
        run(twice, project="p", stack="dev", config=REGION)


def test_workloads_get_their_namespace_at_the_level_all_of_them_allow():
    def program() -> None:
        cluster = _cluster()
        train = _train(cluster, autoscaler="none", min_size=1, max_size=1)
        mleks.JupyterNotebook(
            "nb", mleks.JupyterNotebookArgs(name="nb", namespace="team"), cluster=cluster, node_group=train.args, region="us-east-1", storage_class="gp3"
        )
        mleks.JupyterNotebook(
            "solo", mleks.JupyterNotebookArgs(name="solo", namespace="quiet"), cluster=cluster, node_group=train.args, region="us-east-1", storage_class="gp3"
        )
        mleks.DLCTrainingJob(
            "job",
            mleks.DLCTrainingJobArgs(name="job", version="2.13", namespace="team", command=["nvidia-smi"]),
            cluster=cluster,
            node_group=train.args,
            region="us-east-1",
        )

    result = run(program, project="p", stack="dev", config=REGION)
    namespaces = {o["metadata"]["name"]: o["metadata"]["labels"] for _, o in result.kube_objects() if o["kind"] == "Namespace"}
    assert sorted(namespaces) == ["quiet", "team"]  # one each, however many workloads
    assert namespaces["team"]["pod-security.kubernetes.io/enforce"] == "baseline"  # the DLC job runs as root
    assert namespaces["quiet"]["pod-security.kubernetes.io/enforce"] == "restricted"
    jobs = [r for r, o in result.kube_objects() if o["kind"] == "Job"]
    [team] = [r for r in result.resources if r.type == "kubernetes:core/v1:Namespace" and r.inputs["metadata"]["name"] == "team"]
    assert team.retain_on_delete and all(team.urn in j.dependencies for j in jobs)


# -- an existing cluster ------------------------------------------------------------------


def _existing(version: str = "1.35") -> None:
    cluster = mleks.ExistingCluster("platform", cluster_name="platform", region="us-east-1", kubernetes_version=version)
    train = _train(cluster, "platform-train")
    mleks.EscalatorAddon("platform-escalator", mleks.EscalatorArgs(), cluster=cluster, node_groups=[train], opts=pulumi.ResourceOptions(parent=cluster))


def test_an_existing_cluster_takes_gpu_groups_and_autoscalers_without_creating_a_control_plane():
    result = run(_existing, project="p", stack="dev", config=REGION)
    assert result.of_type("eks:index:Cluster") == [] and result.of_type("aws:eks/cluster:Cluster") == []
    [group] = result.of_type("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["clusterName"] == "platform" and group.inputs["subnetIds"] == [f"subnet-platform-us-east-1{z}" for z in "abc"]
    policies = {a.inputs["policyArn"].rsplit("/", 1)[1] for a in result.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if "node-role" in a.name}
    assert "AmazonEKS_CNI_Policy" in policies  # the existing CNI takes its rights from the node role
    [provider] = result.of_type("pulumi:providers:kubernetes")
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:2] == ["eks", "get-token"]
    objects = result.kube_objects()
    assert objects and all(result.cluster_of(r).name == "platform" for r, _ in objects)


def test_an_existing_cluster_of_another_minor_fails_the_update():
    mocks = MleksMocks("us-east-1")
    mocks.existing_cluster_version = "1.34"
    with pytest.raises(Exception, match=r"kubernetes_version = '1.35' is invalid: not the cluster's version"):
        run(_existing, project="p", stack="dev", config=REGION, mocks=mocks)


# -- testing for users ----------------------------------------------------------------------


def test_set_mocks_lets_a_users_own_test_build_mleks_resources():
    monitor = mleks.testing.set_mocks(project="p", stack="dev", config=REGION)
    cluster = _cluster("mine")

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        return pulumi.Output.all(cluster.cluster_name, cluster.oidc_issuer).apply(lambda v: _assert_cluster(*v))

    check()
    assert any(r.type == "eks:index:Cluster" for r in monitor.registrations.values())


def _assert_cluster(name: str, issuer: str) -> None:
    assert name == "mine" and issuer.startswith("oidc.eks.us-east-1.amazonaws.com/id/")


class _Recording(MleksMocks):
    def __init__(self) -> None:
        super().__init__("us-east-1")
        self.types: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.types.append(args.typ)
        return super().new_resource(args)


def test_mleks_mocks_can_be_subclassed_to_record():
    mocks = _Recording()
    run(lambda: _train(_cluster(), autoscaler="none", min_size=1, max_size=1), project="p", stack="dev", config=REGION, mocks=mocks)
    assert "aws:eks/nodeGroup:NodeGroup" in mocks.types and "eks:index:Cluster" in mocks.types


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_renders_byte_identically_with_mleks_render(example: str, tmp_path: Path):
    for out in ("a", "b"):
        assert cli.main(["render", "--stack", "dev", "--quiet", "--out", str(tmp_path / out), str(ROOT / "examples" / example)]) == 0
    first = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    second = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert first and first == second


def test_examples_each_have_a_stack_file_requirements_and_a_readme_section():
    readme = (ROOT / "examples" / "README.md").read_text()
    assert EXAMPLES == ["existing-cluster", "inference-cluster", "karpenter-inference", "training-cluster"]
    for example in EXAMPLES:
        project = Project.load(ROOT / "examples" / example)
        assert project.stacks() == ["dev"] and (project.directory / "requirements.txt").exists()
        assert f"## {example}" in readme
