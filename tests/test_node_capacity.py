"""The one model of what a pod can get on a node, and the requests that go with a GPU share."""

from __future__ import annotations

import pytest

from mleks.catalogs.gpu import catalog, supported_gpu_types
from mleks.manifests.node_capacity import BATCH, ESCALATOR_SCALE_UP_PERCENT, SERVING, RequestShare, fit_errors, gpu_count_error, node_budget, share_requests
from tests.checks import HEAVY_LOAD

# Every way to fill a node with equal GPU pods: (type, GPUs per pod).
FULL_NODES = [
    (name, gpus) for name in supported_gpu_types() for gpus in range(1, catalog()[name].accelerator_count + 1) if catalog()[name].accelerator_count % gpus == 0
]


@pytest.mark.parametrize("share", [BATCH, SERVING], ids=["batch", "serving"])
@pytest.mark.parametrize(("name", "gpus"), FULL_NODES)
def test_a_node_full_of_gpu_pods_reads_above_escalators_threshold_and_the_pods_fit(name: str, gpus: int, share: RequestShare) -> None:
    instance = catalog()[name]
    budget = node_budget(instance, HEAVY_LOAD)
    pods = instance.accelerator_count // gpus
    cpu, memory = share_requests(instance, gpus, share, HEAVY_LOAD)
    assert 0 < pods * cpu <= budget.cpu_millis and 0 < pods * memory <= budget.memory_bytes
    # Escalator counts CPU and memory requests, never GPUs: every GPU taken must read as a full node.
    assert pods * cpu * 100 > ESCALATOR_SCALE_UP_PERCENT * budget.cpu_millis
    assert pods * memory * 100 > ESCALATOR_SCALE_UP_PERCENT * budget.memory_bytes


def test_explicit_requests_are_checked_against_what_a_node_can_give_pods_not_its_nominal_size() -> None:
    instance = catalog()["g6e.xlarge"]  # 4 vCPU, 32 GiB; 3200m and 25894Mi for pods beside the heaviest DaemonSets
    assert fit_errors("3200m", "25894Mi", instance, "nodeGroups.inference", HEAVY_LOAD) == []
    errors = fit_errors("3300m", "32Gi", instance, "nodeGroups.inference", HEAVY_LOAD)
    assert [e.key for e in errors] == ["cpu", "memory"]
    assert "at most 3200m" in errors[0].accepted and "g6e.xlarge" in errors[0].accepted and "nodeGroups.inference" in errors[0].accepted


def test_a_pod_with_more_gpus_than_the_smallest_type_has_is_named() -> None:
    instance = catalog()["p4d.24xlarge"]
    assert gpu_count_error("gpus", 8, instance, "nodeGroups.train") is None
    error = gpu_count_error("gpus", 9, instance, "nodeGroups.train")
    assert error is not None and error.key == "gpus" and "at most 8" in error.accepted and "p4d.24xlarge" in error.accepted
