"""Team GPU queues with Kueue: the queue objects, the queued jobs, all-or-nothing starts, per-team cost, bad input.

The ``unified`` stack ships two teams sharing its train groups.  Expected values are written out here
from Kueue v0.19.2 (the release the project pins) and the stack file, not computed with the product's
own helpers; the Kueue objects are validated against the release's CRD schemas and its Configuration
schema (tests/fixtures/schemas/kueue-*).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mleks.errors import ConfigErrors
from mleks.testing.render import plan_document
from stacks import offline
from stacks.offline import RenderResult
from tests.checks import config_errors, error_for, schema_errors, stack_file
from tests.cluster import quantities

SCHEMAS = Path(__file__).parent / "fixtures" / "schemas"
RELEASE = "kubernetes:helm.sh/v3:Release"


@cache
def unified() -> RenderResult:
    return offline.run("unified")


def _objects(result: RenderResult, kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for _, obj in result.kube_objects() if obj["kind"] == kind}


def _kueue_release(result: RenderResult) -> Any:
    [release] = [r for r in result.resources if r.type == RELEASE and r.inputs.get("chart") == "oci://registry.k8s.io/kueue/charts/kueue"]
    return release


def _manager_config(result: RenderResult) -> dict[str, Any]:
    return dict(yaml.safe_load(_kueue_release(result).inputs["values"]["managerConfig"]["controllerManagerConfigYaml"]))


# -- the install -------------------------------------------------------------------------------------------------


def test_kueue_is_pinned_on_system_nodes_with_two_replicas_and_a_pdb():
    release = _kueue_release(unified())
    inputs = release.inputs
    assert inputs["version"] == "0.19.2" and inputs["namespace"] == "kueue-system"
    manager = inputs["values"]["controllerManager"]
    assert manager["manager"]["image"]["repository"] == "registry.k8s.io/kueue/kueue" and manager["manager"]["image"]["tag"] == "v0.19.2"
    assert manager["replicas"] == 2 and manager["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert manager["nodeSelector"] == {"role": "system"}
    # Prometheus mode with ServiceMonitors (unified's observability): the chart's ServiceMonitor too.
    assert inputs["values"]["enablePrometheus"] is True
    # Its namespace is created by the stack, at the restricted Pod Security level the manager meets.
    ns = _objects(unified(), "Namespace")["kueue-system"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_no_kueue_without_teams(rendered: dict[str, RenderResult]):
    for r in rendered["dedicated"].resources:
        assert "kueue" not in r.type and "kueue" not in str(r.inputs.get("chart", ""))


def test_the_manager_configuration_is_a_valid_kueue_configuration_with_all_or_nothing_starts():
    config = _manager_config(unified())
    schema = json.loads((SCHEMAS / "kueue-configuration-v1beta2.json").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(config)) == []
    assert config["waitForPodsReady"] == {
        "timeout": "900s",  # unified's podsReadyTimeout: 15m
        "blockAdmission": False,
        "requeuingStrategy": {"timestamp": "Eviction", "backoffBaseSeconds": 60, "backoffMaxSeconds": 3600},
        "recoveryTimeout": "900s",
    }
    # Jobs only (services and notebooks stay outside the queue), and only in the teams' namespaces, so a
    # Kueue outage never blocks a Job anywhere else (its webhooks fail closed).
    assert config["integrations"] == {"frameworks": ["batch/job"]}
    assert config["managedJobsNamespaceSelector"] == {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["applied", "ml-training"]}]
    }
    broken = dict(config) | {"waitForPodsReady": {"timeout": "900s", "enable": True}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken)), "the schema catches a key v1beta2 does not have"


# -- the queue objects ---------------------------------------------------------------------------------------------


def test_each_train_group_is_a_flavor_with_its_labels_and_the_gpu_toleration():
    flavors = _objects(unified(), "ResourceFlavor")
    assert sorted(flavors) == ["train-g6e", "train-p5"]
    for name, flavor in flavors.items():
        assert flavor["spec"] == {
            "nodeLabels": {"role": "train", "mleks.io/node-group": name},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }


def test_each_team_has_a_cluster_queue_in_one_cohort_for_its_namespace_and_a_local_queue():
    queues = _objects(unified(), "ClusterQueue")
    assert sorted(queues) == ["applied", "research"]
    assert {q["spec"]["cohortName"] for q in queues.values()} == {"ml-unified-teams"}
    assert queues["research"]["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ml-training"}}
    gpus = {
        team: {
            f["name"]: next((x["nominalQuota"], x["borrowingLimit"]) for x in f["resources"] if x["name"] == "nvidia.com/gpu")
            for f in q["spec"]["resourceGroups"][0]["flavors"]
        }
        for team, q in queues.items()
    }
    assert gpus == {"research": {"train-p5": (8, 8), "train-g6e": (6, 8)}, "applied": {"train-p5": (8, 4), "train-g6e": (6, 4)}}
    # EFA interfaces are counted too, since the p5 jobs request them (an uncovered resource is never admitted).
    assert queues["research"]["spec"]["resourceGroups"][0]["coveredResources"] == ["cpu", "memory", "nvidia.com/gpu", "vpc.amazonaws.com/efa"]
    locals_ = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"] for _, o in unified().kube_objects() if o["kind"] == "LocalQueue"}
    assert locals_ == {("ml-training", "research"): {"clusterQueue": "research"}, ("applied", "applied"): {"clusterQueue": "applied"}}


def test_preemption_stops_no_running_job_unless_the_team_opted_in():
    queues = _objects(unified(), "ClusterQueue")
    assert queues["research"]["spec"]["preemption"] == {
        "reclaimWithinCohort": "Never",
        "withinClusterQueue": "Never",
        "borrowWithinCohort": {"policy": "Never"},
    }
    # applied opted in: it takes back its own quota from borrowers, never borrows by preempting.
    assert queues["applied"]["spec"]["preemption"] == {
        "reclaimWithinCohort": "Any",
        "withinClusterQueue": "LowerPriority",
        "borrowWithinCohort": {"policy": "Never"},
    }


def test_kueue_objects_validate_against_the_release_crds_strictly():
    objects = [obj for _, obj in unified().kube_objects() if obj["apiVersion"] == "kueue.x-k8s.io/v1beta2"]
    assert len(objects) == 2 + 2 + 2
    assert [e for obj in objects for e in schema_errors(obj, "1.35.0")] == []


def test_every_quota_fits_its_group_and_every_job_fits_its_teams_quota_with_borrowing():
    result = unified()
    groups = {r.inputs["labels"].get("mleks.io/node-group"): r.inputs for r in result.resources if r.type == "aws:eks/nodeGroup:NodeGroup"}
    gpus_per_node = {"train-p5": 8, "train-g6e": 4}  # p5.48xlarge, g6e.12xlarge
    totals: dict[str, int] = {}
    for queue in _objects(result, "ClusterQueue").values():
        for flavor in queue["spec"]["resourceGroups"][0]["flavors"]:
            gpu = next(x for x in flavor["resources"] if x["name"] == "nvidia.com/gpu")
            totals[flavor["name"]] = totals.get(flavor["name"], 0) + int(gpu["nominalQuota"])
    for name, total in totals.items():
        assert total <= groups[name]["scalingConfig"]["maxSize"] * gpus_per_node[name], name
    # Each queued job asks, in all its pods, for no more than its team's quota plus what it may borrow.
    queues = _objects(result, "ClusterQueue")
    for _, job in result.kube_objects():
        if job["kind"] != "Job":
            continue
        team = job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
        pod = job["spec"]["template"]["spec"]
        flavor = pod["nodeSelector"]["mleks.io/node-group"]
        limits = {x["name"]: x for f in queues[team]["spec"]["resourceGroups"][0]["flavors"] if f["name"] == flavor for x in f["resources"]}
        requests = pod["containers"][0]["resources"]["requests"]
        pods = job["spec"]["parallelism"]
        assert pods * quantities.millicores(requests["cpu"]) <= quantities.millicores(limits["cpu"]["nominalQuota"]) + quantities.millicores(
            limits["cpu"]["borrowingLimit"]
        )
        assert pods * quantities.mebibytes(requests["memory"]) <= quantities.mebibytes(limits["memory"]["nominalQuota"]) + quantities.mebibytes(
            limits["memory"]["borrowingLimit"]
        )
        assert pods * int(requests["nvidia.com/gpu"]) <= int(limits["nvidia.com/gpu"]["nominalQuota"]) + int(limits["nvidia.com/gpu"]["borrowingLimit"])


# -- jobs through the queue ------------------------------------------------------------------------------------------


def test_jobs_are_created_suspended_in_their_teams_queue_and_leave_kueues_fields_to_kueue():
    result = unified()
    jobs = {reg.name: (reg, obj) for reg, obj in result.kube_objects() if obj["kind"] == "Job"}
    assert len(jobs) == 2
    local = [r for r in result.resources if r.type == "kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue" and r.inputs["metadata"]["name"] == "research"]
    for reg, obj in jobs.values():
        assert obj["spec"]["suspend"] is True
        assert obj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "research"
        # A pulumi up after admission must neither re-suspend the running job nor replace it over what Kueue changed.
        # Only spec.suspend: Kueue's flavor labels equal the job's own selector, and ignoring more would hide
        # real edits (moving a job to another group of the same type changes only its nodeSelector).
        assert reg.ignore_changes == ["spec.suspend"]
        assert reg.replace_on_changes == ["spec"]
        # `pulumi up` still never waits on a job.
        assert obj["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
        assert local[0].urn in reg.dependencies
    # Notebooks and inference services stay outside the queue.
    for _, obj in result.kube_objects():
        if obj["kind"] in ("StatefulSet", "Deployment"):
            assert "kueue.x-k8s.io/queue-name" not in (obj["metadata"].get("labels") or {})


def test_pods_ready_timeout_covers_every_queued_jobs_cold_start():
    from mleks.review.startup import estimate

    timeout = int(_manager_config(unified())["waitForPodsReady"]["timeout"].removesuffix("s"))
    starts = [e for e in estimate(plan_document(unified())) if e.kind == "Job"]
    assert starts and all(e.total_s is not None and e.total_s < timeout for e in starts), [(e.workload, e.total_s) for e in starts]


# -- the tools know about teams -------------------------------------------------------------------------------------


def test_cost_gives_each_teams_most_per_hour_with_and_without_borrowing():
    from mleks.review.cost import estimate

    teams = {t.name: t for t in estimate(plan_document(unified())).teams}
    g6e = next(i for i in estimate(plan_document(unified())).items if i.name == "train-g6e")
    per_node = g6e.max / 4  # maxSize 4
    # research: 6 GPUs = 2 nodes of 4 GPUs.  It may borrow 8, but applied has only 6 to lend: 12 -> 3 nodes.
    assert teams["research"].max == pytest.approx(2 * per_node) and teams["research"].max_with_borrowing == pytest.approx(3 * per_node)
    assert teams["applied"].max_with_borrowing == pytest.approx(3 * per_node)
    # p5 is a Capacity Block, paid up front: named, not guessed.
    assert any("train-p5" in u and "Capacity Block" in u for u in teams["research"].unpriced)


def test_diff_calls_out_quota_changes_as_jobs_that_will_run():
    from mleks.review.consequences import JOBS
    from mleks.review.diff import diff_plans

    cfg = stack_file("unified")
    cfg["mleks:teams"]["research"]["quotas"]["train-g6e"] = 2
    diff = diff_plans(plan_document(unified()), plan_document(offline.run("unified", config=cfg)), "unified")
    [queue] = [r for r in diff.resources if r.type.endswith(":ClusterQueue")]
    assert queue.risk == JOBS and "train-g6e 6→2 GPUs" in queue.summary and "keep running" in queue.summary


# -- bad input ----------------------------------------------------------------------------------------------------


def _errors(change: Any) -> list[Any]:
    cfg = stack_file("unified")
    change(cfg)
    return config_errors("unified", cfg)


def test_a_quota_on_an_unknown_or_inference_group_is_refused():
    errors = _errors(lambda c: c["mleks:teams"]["research"]["quotas"].update({"train-h100": 8, "inference-spot": 1}))
    assert error_for(errors, "mleks:teams.research.quotas.train-h100").problem == "no such node group"
    assert "queues are for training" in error_for(errors, "mleks:teams.research.quotas.inference-spot").problem


def test_quotas_adding_up_to_more_than_a_group_can_hold_are_refused_unless_oversubscribed():
    def change(c: dict[str, Any]) -> None:
        c["mleks:teams"]["applied"]["quotas"]["train-p5"] = 16

    err = error_for(_errors(change), "mleks:teams.*.quotas.train-p5")
    assert err.value == 24 and "at most 16 GPUs" in err.accepted
    cfg = stack_file("unified")
    change(cfg)
    cfg["mleks:kueue"]["oversubscribe"] = True
    offline.run("unified", config=cfg)


def test_a_job_naming_an_unknown_team_or_outside_its_teams_namespace_is_refused():
    errors = _errors(lambda c: c["mleks:trainingJobs"]["gpu-smoke"].update(team="vision"))
    assert error_for(errors, "mleks:trainingJobs.gpu-smoke.team").accepted == "one of the teams ['applied', 'research']"
    errors = _errors(lambda c: c["mleks:trainingJobs"]["gpu-smoke"].update(team="applied"))
    assert "'applied', the namespace of team 'applied'" in error_for(errors, "mleks:trainingJobs.gpu-smoke.namespace").accepted


def test_a_team_namespace_that_collides_with_another_components_is_refused():
    def change(c: dict[str, Any]) -> None:
        c["mleks:teams"]["applied"]["namespace"] = "kube-system"
        c["mleks:teams"]["vision"] = {"namespace": "ml-training"}
        c["mleks:inferenceServices"]["densenet"]["namespace"] = "serving"
        c["mleks:teams"]["serving"] = {"namespace": "serving"}

    errors = _errors(change)
    assert "belongs to the cluster" in error_for(errors, "mleks:teams.applied.namespace").problem
    assert "team 'research' has it already" in error_for(errors, "mleks:teams.vision.namespace").problem
    assert "inferenceServices.densenet" in error_for(errors, "mleks:teams.serving.namespace").problem


def test_a_kueue_addon_without_teams_is_refused():
    from mleks.kueue_addon import KueueArgs, team_errors

    [err] = [e for e in team_errors({}, [], KueueArgs()) if e.key == "teams"]
    assert "no team" in err.problem


def test_kueue_settings_are_checked_and_refused_without_teams():
    errors = _errors(lambda c: c["mleks:kueue"].update(podsReadyTimeout="5 minutes"))
    assert error_for(errors, "mleks:kueue.podsReadyTimeout").value == "5 minutes"
    errors = _errors(lambda c: c.pop("mleks:teams"))
    assert error_for(errors, "mleks:kueue").problem == "no team uses them"


def _library_program(job_namespace: str) -> Any:
    def program() -> None:
        import mleks

        cluster = mleks.MLCluster("c", mleks.MLClusterArgs(), cluster_name="c", region="us-west-2", vpc_id="vpc-1", private_subnet_ids=["subnet-1", "subnet-2"])
        group = mleks.GpuNodeGroup("g", mleks.GpuNodeGroupArgs(name="train", role="train", instance_types=["g6e.12xlarge"], max_size=2), cluster=cluster)
        mleks.EscalatorAddon("esc", mleks.EscalatorArgs(), cluster=cluster, node_groups=[group])
        mleks.KueueAddon("q", teams={"vision": mleks.TeamArgs(quotas={"train": 4})}, cluster=cluster, node_groups=[group])
        args = mleks.DLCTrainingJobArgs(name="j", version="2.13", namespace=job_namespace, command=["nvidia-smi"])
        mleks.DLCTrainingJob("j", args, cluster=cluster, node_group=group)

    return program


def test_library_refuses_a_job_outside_every_teams_namespace_before_registering_it():
    from mleks.testing.harness import run

    with pytest.raises(ConfigErrors) as info:
        run(_library_program("elsewhere"), project="p", stack="s", config={"aws:region": "us-west-2"})
    [err] = info.value.errors
    assert err.key.endswith("args.namespace") and "vision (vision)" in err.accepted
    assert not [u for u in info.value.registered_urns if "batch/v1:Job" in u]  # type: ignore[attr-defined]


def test_library_job_in_a_teams_namespace_joins_its_queue():
    from mleks.testing.harness import run

    result = run(_library_program("vision"), project="p", stack="s", config={"aws:region": "us-west-2"})
    [job] = [obj for _, obj in result.kube_objects() if obj["kind"] == "Job"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "vision" and job["spec"]["suspend"] is True
    assert len([o for _, o in result.kube_objects() if o["kind"] == "ClusterQueue"]) == 1
