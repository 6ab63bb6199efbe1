"""What a pod can get on one node of an instance type, and the CPU and memory that go with its GPUs.

One model for every GPU workload: training jobs, inference services and GPU
notebooks take their default CPU and memory requests from it, and explicit
requests are checked against it.

**What a node can give pods** (:func:`node_budget`) is an estimate of the
kubelet's allocatable, minus what the DaemonSets on that node request.
It is deliberately on the low side, so a request within it always fits:
capacity minus the VM overhead, kubelet's CPU and memory reservations on the
EKS AMIs, the hard eviction threshold, and every DaemonSet pod the cluster's
add-ons put on the group's nodes (:mod:`mleks.catalogs.node_daemonsets`).

**Why requests follow the GPU share.**  Escalator, which scales the train
group, computes a group's utilisation from the CPU and memory *requests* of
its pods over the nodes' allocatable, never from GPUs, and adds a node when
utilisation passes ``scale_up_threshold_percent`` (70 by default,
:data:`ESCALATOR_SCALE_UP_PERCENT`).  A pod asking for 8 GPUs and 1 CPU would
look like 1% of a node, and Escalator would never add a node for the next
one.  So a pod asks for its GPUs' share of the node's CPU and memory, and a
node whose GPUs are all taken reads above 70%.  cluster-autoscaler, on the
inference group, scales on pods that cannot be scheduled; for it the requests
only have to fit, which they do by construction.

* Training jobs (:data:`BATCH`) take the whole share, rounded down to 100m and
  1 GiB: a whole-node job asks for nearly the whole node.  The rounding stays
  as it is, because a changed request changes the Job's spec, which replaces,
  and so re-runs, the job.
* Inference services and GPU notebooks (:data:`SERVING`) keep serving's rule
  of 75% of the share, rounded down to 100m and 256 MiB.  75% still clears
  the 70% threshold when every GPU of a node is taken; the finer rounding
  keeps it clear on 8 GiB types such as g5g.xlarge, where whole GiB would
  drop it to 67% (the tests check every catalogued type).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from mleks.catalogs.gpu import InstanceType
from mleks.catalogs.node_daemonsets import DaemonSetLoad
from mleks.errors import ConfigError
from mleks.manifests.quantity import cpu_millis, cpu_text, memory_bytes, memory_text

_MIB = 2**20
_GIB = 2**30

# Karpenter's default vmMemoryOverheadPercent: the share of the EC2 memory
# figure the hypervisor and kernel keep before kubelet reports capacity.
VM_MEMORY_OVERHEAD = Decimal("0.075")
# kubelet's eviction-hard memory.available on the EKS AMIs.
EVICTION_HARD_MIB = 100

ESCALATOR_SCALE_UP_PERCENT = 70
"""Escalator's default ``scale_up_threshold_percent``: the utilisation that a node full of GPU pods must exceed."""


def kube_reserved_cpu_millis(vcpu: int) -> int:
    """kubelet's CPU reservation on EKS AMIs: 6% of the first core, 1% of the
    second, 0.5% of the third and fourth, 0.25% of every further core."""
    millis = Decimal(60) * min(vcpu, 1) + Decimal(10) * min(max(vcpu - 1, 0), 1)
    millis += Decimal(5) * min(max(vcpu - 2, 0), 2) + Decimal("2.5") * max(vcpu - 4, 0)
    return math.ceil(millis)


def kube_reserved_memory_mib_bound(memory_mib: int) -> int:
    """An upper bound of kubelet's memory reservation on the EKS AL2023 AMIs.

    nodeadm reserves ``11 * maxPods + 255`` MiB and caps maxPods so that this
    stays within ``299`` MiB plus 25% of memory from 0.5 to 4 GiB, 20% from 4 to
    8 GiB, 10% from 8 to 16 GiB and 6% from 16 to 128 GiB
    (awslabs/amazon-eks-ami nodeadm/internal/kubelet/maxpods/maxpods.go,
    GetMaxPodsLimitForMemoryMiB).  The bound is used because maxPods depends on
    ENI limits that are not in our catalog.
    """
    bands = ((512, 4096, 25), (4096, 8192, 20), (8192, 16384, 10), (16384, 131072, 6))
    reserved = Decimal(299)
    for low, high, percent in bands:
        reserved += Decimal(max(0, min(memory_mib, high) - low) * percent) / 100
    return math.ceil(reserved)


@dataclass(frozen=True)
class NodeBudget:
    """What pods can request on one node, after system reservations (estimate)."""

    instance_type: str
    gpus: int
    cpu_millis: int
    memory_bytes: int


def node_budget(instance: InstanceType, daemonsets: DaemonSetLoad) -> NodeBudget:
    """CPU and memory pods can request on ``instance``: capacity minus the VM
    overhead, kubelet's reservations, the eviction threshold and ``daemonsets``."""
    memory_mib = int(Decimal(int(instance.memory_gib * 1024)) * (1 - VM_MEMORY_OVERHEAD))
    memory_mib -= kube_reserved_memory_mib_bound(memory_mib) + EVICTION_HARD_MIB + daemonsets.memory_mib
    cpu = instance.vcpu * 1000 - kube_reserved_cpu_millis(instance.vcpu) - daemonsets.cpu_millis
    return NodeBudget(instance.instance_type, instance.accelerator_count, cpu, memory_mib * _MIB)


@dataclass(frozen=True)
class RequestShare:
    """How much of its GPU share of a node a pod asks for, and how the result is rounded down."""

    fraction: Decimal
    memory_step: int


BATCH = RequestShare(Decimal(1), _GIB)
"""Training jobs: the whole GPU share, in whole GiB (see the module docstring)."""

SERVING = RequestShare(Decimal("0.75"), 256 * _MIB)
"""Inference services and GPU notebooks: 75% of the GPU share, in 256 MiB steps (see the module docstring)."""


def share_requests(instance: InstanceType, gpus: int, share: RequestShare, daemonsets: DaemonSetLoad) -> tuple[int, int]:
    """(millicores, bytes) for a pod with ``gpus`` of ``instance``'s GPUs: ``share`` of
    their share of :func:`node_budget`, rounded down to 100m and ``share.memory_step``."""
    budget = node_budget(instance, daemonsets)
    # Multiply first, divide last: an exact share stays exact (no 0.333... * 3 < 1).
    cpu = math.floor(budget.cpu_millis * gpus * share.fraction / (budget.gpus * 100)) * 100
    memory = math.floor(budget.memory_bytes * gpus * share.fraction / (budget.gpus * share.memory_step)) * share.memory_step
    return cpu, memory


def gpu_count_error(key: str, gpus: int, instance: InstanceType, group_key: str) -> ConfigError | None:
    """An error keyed ``key`` if a pod of ``gpus`` GPUs fits no node of the group's smallest type."""
    count = instance.accelerator_count
    if gpus <= count:
        return None
    return ConfigError(
        key,
        gpus,
        f"at most {count} (1 to {count}), the GPUs of {instance.instance_type}, the smallest type in {group_key}",
        "more GPUs than a node of the group has, so the pod would never be scheduled",
    )


def fit_errors(cpu: str | None, memory: str | None, instance: InstanceType, group_key: str, daemonsets: DaemonSetLoad) -> list[ConfigError]:
    """Errors, keyed ``cpu`` and ``memory``, for explicit requests that no node of the
    group's smallest type can give a pod (see :func:`node_budget`)."""
    budget = node_budget(instance, daemonsets)
    fits = f"what {instance.instance_type}, the smallest type in {group_key}, can give pods after system reservations and its DaemonSets"
    errors = []
    if cpu is not None and cpu_millis(cpu) > budget.cpu_millis:
        errors.append(ConfigError("cpu", cpu, f"at most {cpu_text(budget.cpu_millis)} ({fits})", "does not fit on one node"))
    if memory is not None and memory_bytes(memory) > budget.memory_bytes:
        errors.append(ConfigError("memory", memory, f"at most {memory_text(budget.memory_bytes // _MIB * _MIB)} ({fits})", "does not fit on one node"))
    return errors
