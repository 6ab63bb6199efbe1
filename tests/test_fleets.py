"""GPU fleets: several node groups per role, and workloads that land on the group they name.

The scheduler reads a pod's nodeSelector and required node affinity; ``groups_for_pod`` reads
them the same way against the labels of every rendered node group, so these tests check where
pods can really go rather than what the config asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stacks import offline
from stacks.offline import RenderResult
from tests.checks import config_errors, error_for, groups_for_pod, stack_file

WORKLOAD_KINDS = {"Job", "Deployment", "StatefulSet"}


def workload_pods(result: RenderResult) -> list[tuple[Any, dict[str, Any], dict[str, Any]]]:
    """(registration, object, pod spec) for every GPU workload our workload components render."""
    out = []
    for reg, obj in result.kube_objects():
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        pod = obj["spec"]["template"]["spec"]
        limits = [c.get("resources", {}).get("limits", {}) for c in pod["containers"]]
        if any("nvidia.com/gpu" in lim for lim in limits) and "mleks:addons:" not in reg.urn:
            out.append((reg, obj, pod))
    return out


# --- what renders -------------------------------------------------------------------------------


def test_unified_has_four_gpu_groups_in_one_cluster(rendered: dict[str, RenderResult]):
    result = rendered["unified"]
    gpu = [ng for ng in result.of_type("aws:eks/nodeGroup:NodeGroup") if ng.inputs["labels"]["role"] != "system"]
    assert sorted(ng.inputs["labels"]["mleks.io/node-group"] for ng in gpu) == ["inference-ondemand", "inference-spot", "train-g6e", "train-p5"]
    assert {result.cluster_of(ng).urn for ng in gpu} == {result.cluster_of(gpu[0]).urn}


def test_every_gpu_node_carries_its_role_and_a_group_label_no_other_group_has(stack: RenderResult):
    labels = [ng.inputs["labels"] for ng in stack.of_type("aws:eks/nodeGroup:NodeGroup") if ng.inputs["labels"]["role"] != "system"]
    names = [lab["mleks.io/node-group"] for lab in labels]
    assert len(names) == len(set(names))
    assert all(lab["role"] in ("train", "inference") for lab in labels)


def test_jobs_and_notebooks_can_land_on_exactly_the_one_group_they_name(stack: RenderResult):
    expected = {
        "unified": {"gpu-smoke": "train-g6e", "nccl-allreduce": "train-p5", "research": "train-g6e"},
        "dedicated": {"gpu-smoke": "train", "research": "train"},
    }[stack.stack]
    seen = {}
    for reg, obj, pod in workload_pods(stack):
        if obj["kind"] in ("Job", "StatefulSet"):
            seen[obj["metadata"]["name"]] = groups_for_pod(stack, reg, pod)
            # Escalator counts a pod by its selector on the group label, so the label must be in the nodeSelector itself.
            assert pod["nodeSelector"]["mleks.io/node-group"] == seen[obj["metadata"]["name"]][0]
    assert seen == {name: [group] for name, group in expected.items()}


def test_a_service_can_land_on_exactly_the_groups_it_lists_and_no_other(stack: RenderResult):
    # densenet lists spot then on-demand so that cluster-autoscaler's priority expander may pick either.
    expected = {"unified": {"densenet": ["inference-ondemand", "inference-spot"]}, "dedicated": {"chat": ["inference"]}}[stack.stack]
    seen = {obj["metadata"]["name"]: groups_for_pod(stack, reg, pod) for reg, obj, pod in workload_pods(stack) if obj["kind"] == "Deployment"}
    assert seen == expected


def test_a_service_pinned_to_one_group_selects_that_group_by_its_label():
    cfg = stack_file("unified")
    cfg["mleks:inferenceServices"]["densenet"]["nodeGroup"] = "inference-ondemand"
    cfg["mleks:inferenceServices"]["densenet"]["autoscaling"]["maxReplicas"] = 2  # what inference-ondemand alone can hold
    result = offline.run("unified", config=cfg)
    [(reg, _, pod)] = [w for w in workload_pods(result) if w[1]["kind"] == "Deployment"]
    assert pod["nodeSelector"] == {"role": "inference", "mleks.io/node-group": "inference-ondemand"}
    assert groups_for_pod(result, reg, pod) == ["inference-ondemand"]


def test_in_dedicated_every_train_group_goes_to_the_train_cluster():
    cfg = stack_file("dedicated")
    cfg["mleks:nodeGroups"]["train-small"] = {"role": "train", "instanceTypes": ["g6e.12xlarge"], "minSize": 0, "maxSize": 2}
    cfg["mleks:trainingJobs"][0]["nodeGroup"] = "train-small"
    cfg["mleks:notebooks"][0]["nodeGroup"] = "train"
    result = offline.run("dedicated", config=cfg)
    clusters = {ng.inputs["labels"].get("mleks.io/node-group"): result.cluster_of(ng).urn for ng in result.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert clusters["train-small"] == clusters["train"] != clusters["inference"]
    [(reg, _, pod)] = [w for w in workload_pods(result) if w[1]["kind"] == "Job"]
    assert groups_for_pod(result, reg, pod) == ["train-small"]
    # The new group is Escalator's (train groups default to it), with a group of its own.
    [config] = [obj for _, obj in result.kube_objects() if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "escalator-config"]
    assert "train-small" in config["data"]["nodegroups_config.yaml"] and "label_value: train-small" in config["data"]["nodegroups_config.yaml"]


def test_legacy_role_keyed_stack_files_keep_working_without_a_role_key():
    cfg = stack_file("dedicated")
    assert all("role" not in group for group in cfg["mleks:nodeGroups"].values()), "dedicated shows the single-group form"
    result = offline.run("dedicated", config=cfg)
    roles = sorted(ng.inputs["labels"]["role"] for ng in result.of_type("aws:eks/nodeGroup:NodeGroup"))
    assert roles == ["inference", "system", "system", "train"]
    # Resource names are what they were before groups had names: an upgrade replaces nothing.
    names = sorted(ng.name for ng in result.of_type("aws:eks/nodeGroup:NodeGroup"))
    assert names == ["ml-prod-inference-gpu", "ml-prod-inference-system", "ml-prod-train-gpu", "ml-prod-train-system"]


# --- bad input ----------------------------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(cfg: dict[str, Any]) -> None:
        node = cfg
        for part in path[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


_DELETE = object()


def _collide(cfg: dict[str, Any]) -> None:
    cfg["mleks:nodeGroups"]["Train_G6E"] = dict(cfg["mleks:nodeGroups"]["train-g6e"])


def _escalator_option_for_a_ca_group(cfg: dict[str, Any]) -> None:
    cfg["mleks:escalator"]["nodeGroups"]["inference-spot"] = {"scale_up_threshold_percent": 70}


BAD = [
    pytest.param(
        _set(["mleks:trainingJobs", "gpu-smoke", "nodeGroup"], "train-a100"),
        "mleks:trainingJobs.gpu-smoke.nodeGroup",
        "train-a100",
        ["no such node group", "train-p5", "train-g6e"],
        id="job-names-an-unknown-group",
    ),
    pytest.param(
        _set(["mleks:trainingJobs", "gpu-smoke", "nodeGroup"], "inference-spot"),
        "mleks:trainingJobs.gpu-smoke.nodeGroup",
        "inference-spot",
        ["role 'inference', not 'train'", "train-p5"],
        id="job-names-an-inference-group",
    ),
    pytest.param(
        _set(["mleks:notebooks", "research", "nodeGroup"], "inference-ondemand"),
        "mleks:notebooks.research.nodeGroup",
        "inference-ondemand",
        ["not 'train'"],
        id="notebook-names-an-inference-group",
    ),
    pytest.param(
        _set(["mleks:inferenceServices", "densenet", "nodeGroup"], ["inference-spot", "train-p5"]),
        "mleks:inferenceServices.densenet.nodeGroup[1]",
        "train-p5",
        ["role 'train', not 'inference'", "inference-spot"],
        id="service-lists-a-train-group",
    ),
    pytest.param(
        _set(["mleks:inferenceServices", "densenet", "nodeGroup"], "inference-gpu"),
        "mleks:inferenceServices.densenet.nodeGroup",
        "inference-gpu",
        ["no such node group"],
        id="service-names-an-unknown-group",
    ),
    pytest.param(
        _set(["mleks:trainingJobs", "gpu-smoke", "nodeGroup"], _DELETE),
        "mleks:trainingJobs.gpu-smoke.nodeGroup",
        None,
        ["2 train groups", "train-p5", "train-g6e"],
        id="job-role-is-ambiguous",
    ),
    pytest.param(
        _set(["mleks:inferenceServices", "densenet", "nodeGroup"], _DELETE),
        "mleks:inferenceServices.densenet.nodeGroup",
        None,
        ["2 inference groups"],
        id="service-role-is-ambiguous",
    ),
    pytest.param(
        _set(["mleks:notebooks", "research", "nodeGroup"], _DELETE),
        "mleks:notebooks.research.nodeGroup",
        None,
        ["2 train groups"],
        id="notebook-role-is-ambiguous",
    ),
    pytest.param(
        _escalator_option_for_a_ca_group,
        "mleks:escalator.nodeGroups.inference-spot",
        "inference-spot",
        ["cluster-autoscaler", "train-p5", "autoscaler: escalator"],
        id="escalator-option-for-a-group-it-does-not-own",
    ),
    pytest.param(_collide, "mleks:nodeGroups.Train_G6E", "Train_G6E", ["train-g6e", "lower-cased"], id="names-collide-after-normalisation"),
    pytest.param(
        _set(["mleks:clusterAutoscaler", "priority"], ["inference-spot", "inference-gpu"]),
        "mleks:clusterAutoscaler.priority[1]",
        "inference-gpu",
        ["no such node group", "inference-ondemand"],
        id="priority-names-an-unknown-group",
    ),
    pytest.param(
        _set(["mleks:clusterAutoscaler", "priority"], ["inference-spot", "train-p5"]),
        "mleks:clusterAutoscaler.priority[1]",
        "train-p5",
        ["inference-spot", "inference-ondemand"],
        id="priority-names-a-group-cluster-autoscaler-does-not-scale",
    ),
]


@pytest.mark.parametrize(("mutate", "key", "value", "words"), BAD)
def test_bad_fleet_input_fails_before_registration_naming_the_key_and_value(mutate: Any, key: str, value: Any, words: list[str]):
    cfg = stack_file("unified")
    mutate(cfg)
    err = error_for(config_errors("unified", cfg), key)
    assert err.value == value
    text = f"{err.problem} {err.accepted}"
    for word in words:
        assert word in text, (word, text)


def test_a_group_name_too_long_for_aws_names_is_refused_with_every_dependent_problem_reported_too():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-p5-capacity-block"] = cfg["mleks:nodeGroups"].pop("train-p5")
    errors = config_errors("unified", cfg)
    err = next(e for e in errors if e.key.startswith("mleks:nodeGroups.train-p5-capacity-block"))
    assert err.value == "train-p5-capacity-block" and "1-18" in err.accepted


# --- checks follow the chosen group -------------------------------------------------------------


def test_a_job_is_checked_against_the_cuda_support_of_the_group_it_names_not_its_role():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-v100"] = {"role": "train", "instanceTypes": ["p3.8xlarge"], "minSize": 0, "maxSize": 2}
    cfg["mleks:escalator"]["nodeGroups"]["train-v100"] = {"scale_up_threshold_percent": 70}
    cfg["mleks:trainingJobs"]["gpu-smoke"]["nodeGroup"] = "train-v100"
    errors = config_errors("unified", cfg)
    err = error_for(errors, "mleks:trainingJobs.gpu-smoke.cuda")
    assert "Volta" in err.problem and "p3.8xlarge" in err.problem
    # nccl-allreduce uses the same image on train-p5 (H100) and is fine.
    assert not [e for e in errors if e.key.startswith("mleks:trainingJobs.nccl-allreduce")]


def test_a_job_is_checked_against_the_architecture_of_the_group_it_names():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-arm"] = {"role": "train", "instanceTypes": ["g5g.16xlarge"], "minSize": 0, "maxSize": 2}
    cfg["mleks:escalator"]["nodeGroups"]["train-arm"] = {"scale_up_threshold_percent": 70}
    cfg["mleks:trainingJobs"]["gpu-smoke"].update(nodeGroup="train-arm", gpusPerNode=1)
    err = error_for(config_errors("unified", cfg), "mleks:trainingJobs.gpu-smoke.version")
    assert "arm64" in err.problem and "g5g.16xlarge" in err.problem


def test_a_service_on_groups_of_two_architectures_is_refused_because_it_runs_one_image():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["inference-arm"] = {"role": "inference", "instanceTypes": ["g5g.xlarge"], "minSize": 0, "maxSize": 2}
    cfg["mleks:inferenceServices"]["densenet"]["nodeGroup"] = ["inference-spot", "inference-arm"]
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.nodeGroup")
    assert err.value == ["inference-spot", "inference-arm"] and "inference-arm is arm64" in err.problem


def test_a_services_replica_bound_is_what_all_its_groups_hold_together():
    cfg = stack_file("unified")
    # inference-spot holds 6 one-GPU pods and inference-ondemand 2: 8 together, more than either alone.
    cfg["mleks:inferenceServices"]["densenet"]["autoscaling"]["maxReplicas"] = 8
    offline.run("unified", config=cfg)
    cfg["mleks:inferenceServices"]["densenet"]["autoscaling"]["maxReplicas"] = 9
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.autoscaling.maxReplicas")
    assert err.value == 9 and err.accepted.startswith("at most 8 (")
    assert "nodeGroups.inference-spot.maxSize 6" in err.accepted and "nodeGroups.inference-ondemand.maxSize 2" in err.accepted


def test_a_service_whose_pod_fits_only_one_of_its_groups_is_refused_naming_the_other():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["inference-ondemand"]["instanceTypes"] = ["g6e.2xlarge"]
    cfg["mleks:inferenceServices"]["densenet"]["cpu"] = "6"  # fits g6e.2xlarge (8 vCPU), not the g6e.xlarge (4) of inference-spot
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.cpu")
    assert "inference-spot" in f"{err.accepted} {err.problem}"


def test_the_benchmarks_scaled_stack_is_a_valid_config():
    # stacks.bench derives its scale test from the unified example; a change to the example must keep it rendering.
    from stacks.bench import scaled_config

    result = offline.run("unified", config=scaled_config(3))
    jobs = [obj for _, obj in result.kube_objects() if obj["kind"] == "Job"]
    assert len(jobs) == 3
