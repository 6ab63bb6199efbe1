"""Workloads that share a namespace share one Namespace object; cluster namespaces are never owned."""

from __future__ import annotations

import copy

from stacks import offline


def namespaces(result: offline.RenderResult) -> list[tuple[str, str]]:
    return sorted((result.cluster_of(reg).name, obj["metadata"]["name"]) for reg, obj in result.kube_objects() if obj["kind"] == "Namespace")  # type: ignore[union-attr]


def test_a_notebook_in_the_training_namespace_shares_one_namespace_object():
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    for nb in cfg["mleks:notebooks"].values():
        nb["namespace"] = "ml-training"
    names = namespaces(offline.run("unified", config=cfg))
    assert names.count(("ml-unified", "ml-training")) == 1


def test_a_shared_namespace_takes_the_pod_security_level_every_workload_can_run_under():
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    for nb in cfg["mleks:notebooks"].values():
        nb["namespace"] = "ml-training"
    result = offline.run("unified", config=cfg)
    ns = next(obj for _, obj in result.kube_objects() if obj["kind"] == "Namespace" and obj["metadata"]["name"] == "ml-training")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"  # DLC jobs run as root


def test_workloads_in_default_never_make_the_stack_own_the_default_namespace():
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    # Team queues take jobs from the teams' own namespaces only, never default.
    cfg.pop("mleks:teams")
    cfg.pop("mleks:kueue")
    for nb in cfg["mleks:notebooks"].values():
        nb["namespace"] = "default"
    for job in cfg["mleks:trainingJobs"].values():
        job["namespace"] = "default"
    assert ("ml-unified", "default") not in namespaces(offline.run("unified", config=cfg))


def test_namespaces_are_retained_on_delete(rendered):
    for result in rendered.values():
        for reg, obj in result.kube_objects():
            if obj["kind"] == "Namespace":
                assert reg.retain_on_delete, obj["metadata"]["name"]
