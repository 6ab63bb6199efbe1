"""Datasets: FSx for Lustre linked to S3, its claims, and the workloads that mount it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mleks.dataset import DatasetArgs, valid_capacity
from mleks.errors import ConfigErrors
from mleks.review import diff as review
from mleks.testing.render import plan_document
from stacks import offline
from stacks.offline import RenderResult
from tests.checks import config_errors, error_for, stack_file


@pytest.fixture(scope="module")
def unified(rendered: dict[str, RenderResult]) -> RenderResult:
    return rendered["unified"]


def _one(stack: RenderResult, type_: str) -> Any:
    [reg] = stack.of_type(type_)
    return reg


def _objects(stack: RenderResult, kind: str) -> list[dict[str, Any]]:
    return [o for _, o in stack.kube_objects() if o["kind"] == kind]


def test_the_file_system_is_persistent_2_encrypted_and_in_the_capacity_blocks_az(unified: RenderResult):
    fs = _one(unified, "aws:fsx/lustreFileSystem:LustreFileSystem")
    assert fs.inputs["deploymentType"] == "PERSISTENT_2" and fs.inputs["storageCapacity"] == 1200 and fs.inputs["perUnitStorageThroughput"] == 250
    [key] = [k for k in unified.of_type("aws:kms/key:Key") if k.parent == fs.parent]
    assert fs.inputs["kmsKeyId"] == key.outputs["arn"] and key.inputs["enableKeyRotation"] is True
    # The home group is the p5 Capacity Block (the multi-node job's): the file system takes its subnet.
    [group] = [g for g in unified.of_type("aws:eks/nodeGroup:NodeGroup") if g.inputs["labels"].get("mleks.io/node-group") == "train-p5"]
    assert fs.inputs["subnetIds"] == group.inputs["subnetIds"][0]


def test_the_s3_link_imports_the_prefix_and_follows_changes(unified: RenderResult):
    dra = _one(unified, "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation")
    assert dra.inputs["dataRepositoryPath"] == "s3://ml-unified-datasets-123456789012/fineweb-edu/tokenized/"
    assert dra.inputs["batchImportMetaDataOnCreate"] is True and dra.inputs["deleteDataInFilesystem"] is False
    assert dra.inputs["s3"] == {"autoImportPolicy": {"events": ["NEW", "CHANGED", "DELETED"]}}, "no export unless asked"


def test_lustre_ports_are_open_only_between_the_file_system_and_the_nodes(unified: RenderResult):
    fs = _one(unified, "aws:fsx/lustreFileSystem:LustreFileSystem")
    [sg] = [g for g in unified.of_type("aws:ec2/securityGroup:SecurityGroup") if g.parent == fs.parent]
    rules = [r.inputs for r in unified.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if r.parent == fs.parent]
    assert {(r["fromPort"], r["toPort"]) for r in rules} == {(988, 988), (1018, 1023)}
    assert all("cidrIpv4" not in r and r["referencedSecurityGroupId"] for r in rules), "security groups only, never a CIDR"
    assert fs.inputs["securityGroupIds"] == [f"{sg.name}-id"]  # the mock engine's id


def test_the_data_outlives_the_stack_and_the_diff_says_so(unified: RenderResult):
    plan = plan_document(unified)
    kept = {r["type"] for r in plan["resources"] if (r.get("options") or {}).get("retainOnDelete")}
    assert {"aws:fsx/lustreFileSystem:LustreFileSystem", "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"} <= kept
    cfg = stack_file("unified")
    del cfg["mleks:datasets"]
    for job in cfg["mleks:trainingJobs"].values():
        job.pop("datasets", None)
    for nb in cfg["mleks:notebooks"].values():
        nb.pop("datasets", None)
    forecast = review.diff_plans(plan, plan_document(offline.run("unified", config=cfg)), "unified")
    [fs] = [r for r in forecast.resources if r.type == "aws:fsx/lustreFileSystem:LustreFileSystem"]
    assert fs.action == "delete" and fs.retained and "retained on delete" in fs.summary and fs.risk == review.DATA_OR_NODES
    assert "may be lost" not in fs.summary, "a retained resource loses nothing, and the diff says so"
    pvs = [r for r in forecast.resources if r.type == "kubernetes:core/v1:PersistentVolume"]
    assert len(pvs) == 2 and all("storage and data stay" in r.summary for r in pvs)


def test_deletion_delete_lets_the_file_system_go():
    cfg = stack_file("unified")
    cfg["mleks:datasets"]["tokens"]["deletion"] = "delete"
    result = offline.run("unified", config=cfg)
    fs = _one(result, "aws:fsx/lustreFileSystem:LustreFileSystem")
    assert not fs.retain_on_delete


def test_each_namespace_that_mounts_it_gets_a_static_claim_on_the_file_system(unified: RenderResult):
    pvs, pvcs = _objects(unified, "PersistentVolume"), [o for o in _objects(unified, "PersistentVolumeClaim") if o["metadata"]["name"] == "dataset-tokens"]
    assert sorted(c["metadata"]["namespace"] for c in pvcs) == ["ml-training", "notebooks"]
    fs = _one(unified, "aws:fsx/lustreFileSystem:LustreFileSystem")
    for pvc in pvcs:
        [pv] = [p for p in pvs if p["metadata"]["name"] == pvc["spec"]["volumeName"]]
        assert pv["spec"]["claimRef"] == {"namespace": pvc["metadata"]["namespace"], "name": "dataset-tokens"}
        assert pv["spec"]["csi"] == {
            "driver": "fsx.csi.aws.com",
            # One handle per volume (two volumes of one handle are one volume to Kubernetes); the driver mounts by dnsname/mountname.
            "volumeHandle": f"{fs.name}-id::{pvc['metadata']['namespace']}",
            "volumeAttributes": {"dnsname": fs.outputs["dnsName"], "mountname": fs.outputs["mountName"]},
        }
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and pvc["spec"]["storageClassName"] == ""


def test_the_multi_node_job_and_the_notebook_mount_it_read_only(unified: RenderResult):
    for kind, name, path in (("Job", "nccl-allreduce", "/data"), ("StatefulSet", "research", "/home/jovyan/data")):
        [obj] = [o for o in _objects(unified, kind) if o["metadata"]["name"] == name]
        pod = obj["spec"]["template"]["spec"]
        [volume] = [v for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == "dataset-tokens"]
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["mountPath"] == path and mount["readOnly"] is True and volume["persistentVolumeClaim"]["readOnly"] is True


def test_the_csi_driver_mounts_on_gpu_nodes_and_its_controller_may_only_describe(unified: RenderResult):
    [addon] = [a for a in unified.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-fsx-csi-driver"]
    assert json.loads(addon.inputs["configurationValues"]) == {"node": {"tolerateAllTaints": True}}
    [role] = [r for r in unified.of_type("aws:iam/role:Role") if r.outputs.get("arn") == addon.inputs["serviceAccountRoleArn"]]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert "system:serviceaccount:kube-system:fsx-csi-controller-sa" in json.dumps(trust)
    [policy] = [p for p in unified.of_type("aws:iam/rolePolicy:RolePolicy") if p.parent == role.parent]
    assert [s["Action"] for s in json.loads(policy.inputs["policy"])["Statement"]] == [["fsx:DescribeFileSystems"]]


# -- bad input ---------------------------------------------------------------------------------------


def test_a_dataset_used_on_a_group_in_another_az_is_refused():
    cfg = stack_file("unified")
    cfg["mleks:datasets"]["tokens"]["nodeGroup"] = "train-g6e"  # spans the AZs; the p5 job is pinned to its block's
    err = error_for(config_errors("unified", cfg), "mleks:trainingJobs.nccl-allreduce.datasets[0]")
    assert err.value == "tokens" and "Capacity Block" in str(err) and "nodeGroup: train-p5" in err.accepted


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        ("storageCapacityGib", 2000, "1200, 2400, or a multiple of 2400"),
        ("perUnitStorageThroughput", 300, "[125, 250, 500, 1000]"),
    ],
)
def test_sizes_fsx_does_not_accept_are_refused(key: str, value: int, accepted: str):
    cfg = stack_file("unified")
    cfg["mleks:datasets"]["tokens"][key] = value
    err = error_for(config_errors("unified", cfg), f"mleks:datasets.tokens.{key}")
    assert err.value == value and accepted in err.accepted


@pytest.mark.parametrize("uri", ["s3://ml-unified-datasets-123456789012/fineweb-edu", "https://bucket/prefix/", "s3://bucket/a*/"])
def test_an_s3_link_that_is_not_a_folder_uri_is_refused(uri: str):
    cfg = stack_file("unified")
    cfg["mleks:datasets"]["tokens"]["s3"]["uri"] = uri
    err = error_for(config_errors("unified", cfg), "mleks:datasets.tokens.s3.uri")
    assert err.value == uri and ("s3://" in err.accepted or "plain key prefix" in err.accepted)


def test_a_dataset_a_workload_names_must_exist():
    cfg = stack_file("unified")
    cfg["mleks:notebooks"]["research"]["datasets"][0]["name"] = "imagenet"
    err = error_for(config_errors("unified", cfg), "mleks:notebooks.research.datasets[0].name")
    assert err.value == "imagenet" and "tokens" in err.accepted


def test_every_capacity_fsx_accepts_and_no_other():
    assert [g for g in range(1000, 10000, 100) if valid_capacity(g)] == [1200, 2400, 4800, 7200, 9600]


def test_persistent_1_takes_its_own_throughputs_and_no_export():
    with pytest.raises(ConfigErrors) as info:
        DatasetArgs(name="old", deployment_type="PERSISTENT_1", per_unit_storage_throughput=250, s3={"uri": "s3://my-bucket/p/", "export": True})
    assert sorted(e.key for e in info.value.errors) == ["per_unit_storage_throughput", "s3.export"], "Python names, s3 as spelled"
    assert DatasetArgs(name="old", deployment_type="PERSISTENT_1", per_unit_storage_throughput=200).per_unit_storage_throughput == 200
