"""Input a live cluster or the AWS APIs would refuse is refused at config load, naming the key as written.

Each test here pins one item of the cluster-grade review: names that collide across components,
labels and tags EKS or Kubernetes refuse, AWS API limits the mock engine does not know, and stack
files Pulumi would read differently.  Every refusal happens before any resource is registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mleks.errors import ConfigErrors
from mleks.platform import checks as platform_checks
from mleks.platform import plan as platform_plan
from mleks.testing import Project
from stacks import offline, validation
from tests.checks import config_errors, error_for, stack_file


def _unified() -> dict[str, Any]:
    return stack_file("unified")


# -- item 5: names that collide across components ---------------------------------------------------------


def test_a_service_beside_another_services_nlb_name_is_refused_naming_both():
    cfg = _unified()
    svc = cfg["mleks:inferenceServices"]["densenet"]
    svc["exposure"] = "internal-nlb"
    cfg["mleks:inferenceServices"]["densenet-internal"] = {**svc, "exposure": "cluster-ip"}
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet-internal")
    assert "inferenceServices.densenet" in err.problem and "Service serving/densenet-internal" in err.problem


def test_a_job_and_a_service_of_one_name_in_one_namespace_are_refused():
    cfg = _unified()
    cfg["mleks:inferenceServices"]["densenet"]["namespace"] = "ml-training"
    cfg["mleks:trainingJobs"]["densenet"] = {**cfg["mleks:trainingJobs"]["gpu-smoke"]}
    errors = config_errors("unified", cfg)
    err = error_for(errors, "mleks:trainingJobs.densenet")
    assert "inferenceServices.densenet" in err.problem and "ServiceAccount ml-training/densenet" in err.problem
    assert "rename this or inferenceServices.densenet" in err.accepted


def test_a_job_and_a_notebook_of_one_name_in_one_namespace_are_refused():
    cfg = _unified()
    cfg["mleks:notebooks"]["research"]["namespace"] = "ml-training"
    cfg["mleks:trainingJobs"]["research"] = {**cfg["mleks:trainingJobs"]["gpu-smoke"]}
    assert "NetworkPolicy ml-training/research" in error_for(config_errors("unified", cfg), "mleks:notebooks.research").problem


def test_datasets_whose_volume_names_meet_across_namespaces_are_refused():
    cfg = _unified()
    tokens = cfg["mleks:datasets"]["tokens"]
    cfg["mleks:datasets"] = {"wiki": dict(tokens), "wiki-ml": dict(tokens)}
    cfg["mleks:trainingJobs"]["nccl-allreduce"]["datasets"] = [{"name": "wiki", "mountPath": "/data"}]
    cfg["mleks:notebooks"]["research"]["namespace"] = "training"
    cfg["mleks:notebooks"]["research"]["datasets"] = [{"name": "wiki-ml", "mountPath": "/home/jovyan/data"}]
    err = error_for(config_errors("unified", cfg), "mleks:datasets.wiki-ml")
    assert "PersistentVolume ml-unified-dataset-wiki-ml-training" in err.problem and "datasets.wiki" in err.problem


def test_the_names_each_component_declares_are_exactly_the_objects_it_renders(rendered):
    from mleks.vocabulary import ObjectName

    for name, result in rendered.items():
        cfg = validation.load(_raw(name))
        declared = {(o.cluster, obj) for o in _owners(cfg) for obj in o.objects}
        workload_types = {
            "mleks:serving:InferenceService",
            "mleks:training:DLCTrainingJob",
            "mleks:notebooks:JupyterNotebook",
            "mleks:storage:FsxLustreDataset",
        }
        made = set()
        for reg in result.resources:
            parent = result.by_urn().get(reg.parent) if reg.parent else None
            if reg.type.startswith("kubernetes:") and parent is not None and parent.type in workload_types:
                meta = reg.inputs["metadata"]
                made.add((result.cluster_of(reg).name, ObjectName(reg.inputs["kind"], meta.get("namespace"), meta["name"])))
            if reg.type == "kubernetes:apps/v1:StatefulSet":
                ns, sts = reg.inputs["metadata"]["namespace"], reg.inputs["metadata"]["name"]
                for template in reg.inputs["spec"].get("volumeClaimTemplates", []):
                    made.add((result.cluster_of(reg).name, ObjectName("PersistentVolumeClaim", ns, f"{template['metadata']['name']}-{sts}-0")))
        assert declared == made, name


def _raw(stack: str) -> dict[str, Any]:
    raw = {k.removeprefix("mleks:"): v for k, v in offline.load_stack_file(stack).items() if k.startswith("mleks:")}
    raw["region"] = offline.load_stack_file(stack)["aws:region"]
    return raw


def _owners(cfg: Any) -> Any:
    return platform_checks.name_owners(cfg)


# -- item 6: labels and tags EKS or Kubernetes refuse ---------------------------------------------------------


def test_node_group_labels_get_kubernetes_syntax_and_the_eks_reserved_prefixes():
    cfg = _unified()
    cfg["mleks:nodeGroups"]["train-g6e"]["labels"] = {"node-role.kubernetes.io/gpu": "true", "team": "a b", "x" * 64: "v", "ok.example.com/tier": "gold"}
    errors = config_errors("unified", cfg)
    keys = sorted(e.key for e in errors)
    assert keys == sorted(
        [
            "mleks:nodeGroups.train-g6e.labels.node-role.kubernetes.io/gpu",
            "mleks:nodeGroups.train-g6e.labels.team",
            f"mleks:nodeGroups.train-g6e.labels.{'x' * 64}",
        ]
    ), [str(e) for e in errors]
    assert "EKS refuses" in error_for(errors, "mleks:nodeGroups.train-g6e.labels.node-role.kubernetes.io/gpu").problem


def test_a_job_label_value_with_spaces_and_equals_is_refused():
    cfg = _unified()
    cfg["mleks:trainingJobs"]["gpu-smoke"]["labels"] = {"hparams": "lr=3e-4 bs=512"}
    err = error_for(config_errors("unified", cfg), "mleks:trainingJobs.gpu-smoke.labels.hparams")
    assert err.value == "lr=3e-4 bs=512" and "63" in err.accepted


@pytest.mark.parametrize("value", ["research\n", "a\tb"])
def test_a_tag_value_with_a_newline_or_tab_is_refused(value: str):
    cfg = _unified()
    cfg["mleks:tags"]["cost-center"] = value
    err = error_for(config_errors("unified", cfg), "mleks:tags.cost-center")
    assert "newline" in err.accepted


def test_tags_in_other_scripts_and_with_spaces_are_accepted():
    cfg = _unified()
    cfg["mleks:tags"]["équipe"] = "Données ML 2026"
    offline.run("unified", config=cfg)


# -- item 7: AWS API limits the mock engine does not know ------------------------------------------------------


def _repair_override(**changes: Any) -> dict[str, Any]:
    cfg = _unified()
    override = cfg["mleks:nodeRepair"]["nodeGroups"]["inference-spot"]["overrides"][0]
    override.update(changes)
    return cfg


def test_a_repair_wait_of_zero_minutes_is_refused():
    errors = config_errors("unified", _repair_override(minRepairWaitTimeMins=0))
    assert any(e.key.endswith("overrides[0].minRepairWaitTimeMins") for e in errors), [str(e) for e in errors]


def test_a_misspelled_repair_condition_or_a_warning_only_reason_is_refused():
    errors = config_errors("unified", _repair_override(nodeMonitoringCondition="AcceleratedHardwareReadiness"))
    [err] = [e for e in errors if e.key.endswith("nodeMonitoringCondition")]
    assert "AcceleratedHardwareReady" in err.accepted
    # Xid 13 is only a Warning to the agent: it never sets the condition, so the override would never fire.
    errors = config_errors("unified", _repair_override(nodeUnhealthyReason="NvidiaXID13Error"))
    [err] = [e for e in errors if e.key.endswith("nodeUnhealthyReason")]
    assert "NvidiaXID79Error" in err.accepted and err.value == "NvidiaXID13Error"


def test_dcgm_health_codes_are_accepted_as_reasons():
    offline.run("unified", config=_repair_override(nodeUnhealthyReason="DCGMHealthCode3"))


def test_more_than_forty_public_access_cidrs_are_refused():
    cfg = _unified()
    cfg["mleks:cluster"]["endpoint"]["publicAccessCidrs"] = [f"203.0.113.{i}/32" for i in range(41)]
    errors = config_errors("unified", cfg)
    assert any(e.key == "mleks:cluster.endpoint.publicAccessCidrs" for e in errors), [str(e) for e in errors]


def test_a_system_disk_beyond_the_gp3_maximum_is_refused():
    cfg = _unified()
    cfg["mleks:cluster"]["systemNodes"]["diskSizeGib"] = 70000
    error_for(config_errors("unified", cfg), "mleks:cluster.systemNodes.diskSizeGib")


def test_gp3_limits_are_the_current_ec2_ones():
    cfg = _unified()
    # 20,000 IOPS and 2,000 MiB/s on a 500 GiB root: valid since the 2025 gp3 increase.
    cfg["mleks:nodeGroups"]["train-p5"].update(diskIops=20000, diskThroughputMibps=2000)
    result = offline.run("unified", config=cfg)
    lt = next(r for r in result.of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.name == "ml-unified-train-p5-gpu-lt")
    assert lt.inputs["blockDeviceMappings"][0]["ebs"]["iops"] == 20000
    cfg["mleks:nodeGroups"]["train-p5"].update(diskSizeGib=100, diskIops=80000)
    errors = config_errors("unified", cfg)
    assert "500 per GiB" in error_for(errors, "mleks:nodeGroups.train-p5.diskIops").accepted


# -- item 8: the stack file and the offline render agree with Pulumi -----------------------------------------


def test_a_key_written_twice_in_a_stack_file_is_refused(tmp_path: Path):
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  aws:region: us-west-2\n  mleks:nodeGroups:\n    train:\n      instanceTypes: [g6e.xlarge]\n    train:\n      instanceTypes: [g5.xlarge]\n"
    )
    with pytest.raises(ConfigErrors) as info:
        Project.load(tmp_path).stack_config("dev")
    [err] = info.value.errors
    assert err.key == "mleks:nodeGroups.train" and "lines 4 and 6" in err.problem


def test_an_availability_zone_count_the_region_lacks_fails_before_anything_is_registered():
    cfg = stack_file("dedicated")  # eu-west-1: three regular AZs
    cfg["mleks:vpc"]["availabilityZoneCount"] = 4
    err = error_for(config_errors("dedicated", cfg), "mleks:vpc.availabilityZoneCount")
    assert err.value == 4 and "at most 3" in err.accepted


def test_an_empty_node_group_list_is_refused_with_the_key_not_an_assertion():
    cfg = _unified()
    cfg["mleks:inferenceServices"]["densenet"]["nodeGroup"] = []
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.nodeGroup")
    assert err.value == [] and "one or more" in err.accepted


# -- item 3: the DaemonSet overhead the workloads leave room for ------------------------------------------------


@pytest.mark.parametrize("stack", ["unified", "dedicated"])
def test_the_add_ons_the_config_predicts_are_the_ones_each_cluster_gets(stack: str):
    from mleks.catalogs.node_daemonsets import NodeAddons

    cfg = validation.load(_raw(stack))
    clusters: dict[str, NodeAddons] = {}
    # What each built cluster got, read from the component tree of a real run.
    result = offline.run(stack)
    for reg in result.of_type("mleks:cluster:MLCluster"):
        kinds = {c.type for c in result.resources if result.cluster_of(c) is reg}
        clusters[reg.name] = NodeAddons(
            observability="cloudwatch"
            if "mleks:observability:CloudWatchObservability" in kinds
            else "prometheus"
            if "mleks:observability:DcgmExporter" in kinds
            else "none",
            ebs_csi="mleks:addons:EbsCsiDriver" in kinds,
            fsx_csi="mleks:addons:FsxCsiDriver" in kinds,
        )
    names = platform_plan.cluster_names(cfg)
    for role, cluster in names.items():
        assert platform_plan.node_addons(cfg, role) == clusters[cluster], (stack, role)


def test_an_add_on_created_after_a_workload_was_sized_is_refused_before_it_registers():
    import pulumi

    from mleks import CloudWatchObservability, DLCTrainingJob, DLCTrainingJobArgs, GpuNodeGroup, GpuNodeGroupArgs, MLCluster, MLClusterArgs
    from mleks.testing import run

    def program() -> None:
        cluster = MLCluster("c", MLClusterArgs(), cluster_name="c", region="us-west-2", vpc_id="vpc-1", private_subnet_ids=["subnet-a", "subnet-b"])
        group = GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], autoscaler="none")
        GpuNodeGroup("c-train", group, cluster=cluster)
        DLCTrainingJob("smoke", DLCTrainingJobArgs(name="smoke", version="2.13", command=["true"]), cluster=cluster, node_group=group, region="us-west-2")
        CloudWatchObservability("c-cloudwatch", cluster=cluster, opts=pulumi.ResourceOptions(parent=cluster))

    with pytest.raises(ConfigErrors) as info:
        run(program, project="p", stack="s", config={"aws:region": "us-west-2"})
    [err] = info.value.errors
    assert err.key == "CloudWatchObservability" and "before any workload" in err.accepted


# -- item 9: FSx and DCGM ------------------------------------------------------------------------------------------


def test_cloudwatch_mode_runs_one_dcgm_engine_per_gpu(rendered):
    for addon in rendered["dedicated"].of_type("aws:eks/addon:Addon"):
        if addon.inputs["addonName"] == "amazon-cloudwatch-observability":
            assert json.loads(addon.inputs["configurationValues"]) == {"dcgmExporter": {"enabled": False}}


def test_a_data_repository_can_reach_s3_over_https_and_nothing_else(rendered):
    [rule] = [r for r in rendered["unified"].of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule") if r.name.endswith("-s3-egress")]
    assert rule.inputs["prefixListId"] == "pl-mock-com.amazonaws.us-west-2.s3"
    assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("tcp", 443, 443)
