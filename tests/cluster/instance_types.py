"""The oracle's own instance table and the kubelet's allocatable on EKS nodes.

Allocatable (kubernetes.io "Reserve Compute Resources for System Daemons"):
``allocatable = capacity - kube-reserved - system-reserved - eviction-hard``.

* **CPU capacity** is vCPU x 1000.  **kube-reserved CPU** on the EKS AMIs: 6% of
  the first core, 1% of the second, 0.5% of the third and fourth, 0.25% of
  every further core, in integer millicores (awslabs/amazon-eks-ami
  ``nodeadm/internal/kubelet/config.go`` ``getCPUMillicoresToReserve``, main at
  81fec2e, tag v20260724).  No system-reserved is set.
* **Memory capacity** is what the kernel reports, less than the EC2 figure.  We
  estimate it as Karpenter does: EC2 MiB minus ``ceil(EC2 MiB x 0.075)``
  (``settings.vmMemoryOverheadPercent`` default 0.075, Karpenter chart README;
  aws/karpenter-provider-aws ``pkg/providers/instancetype/types.go`` ``memory()``).
* **kube-reserved memory**: ``11 x maxPods + 255`` MiB (nodeadm
  ``getMemoryMebibytesToReserve``; Bottlerocket uses the same formula,
  ``memory_mebibytes_to_reserve``).  **eviction-hard** ``memory.available``: 100Mi
  (nodeadm ``config.go`` defaults).
* **maxPods**: nodeadm computes ``ENIs x (IPv4 per ENI - 1) + 2`` from its
  embedded ``instance-info.jsonl`` (``CalcMaxPods`` in ``eni_max_pods.go``; no
  memory cap on main: the memory-limited variant, commit 5a3ba47, is on no
  branch).  Managed node groups write maxPods into the NodeConfig they inject
  (eksctl-io/eksctl#8037) and cap it at 110 below 30 vCPUs and 250 otherwise
  (EKS user guide "Assign more IP addresses to Amazon EKS nodes with
  prefixes": "Managed node groups enforces a maximum number on the value of
  maxPods").  We take the smaller of the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VM_MEMORY_OVERHEAD = 0.075  # Karpenter settings.vmMemoryOverheadPercent default
EVICTION_HARD_MIB = 100  # nodeadm kubelet evictionHard memory.available: 100Mi

_ACCEL = "vCPU/memory/GPUs/EFA: /work/shared/data/accelerated-instance-types.json (Karpenter instance-types.md, from EC2 DescribeInstanceTypes)"
_GP = "vCPU/memory: EC2 'General purpose instances' specifications (docs.aws.amazon.com/ec2/latest/instancetypes/gp.html)"
_ENI = "ENIs/IPv4: awslabs/amazon-eks-ami nodeadm/internal/kubelet/instance-info.jsonl at 81fec2e (v20260724)"


@dataclass(frozen=True)
class InstanceType:
    """What the oracle knows of one EC2 instance type."""

    name: str
    vcpu: int
    memory_mib: int  # EC2's figure (DescribeInstanceTypes MemoryInfo.SizeInMiB)
    gpus: int  # NVIDIA GPUs
    efa: int  # maximum EFA interfaces
    enis: int  # defaultMaxENIs (the default network card)
    ipv4_per_eni: int
    arch: str
    source: str

    @property
    def eni_max_pods(self) -> int:
        return self.enis * (self.ipv4_per_eni - 1) + 2

    @property
    def max_pods(self) -> int:
        """nodeadm's value, capped as managed node groups cap it."""
        return min(self.eni_max_pods, 110 if self.vcpu < 30 else 250)


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        InstanceType("g5.xlarge", 4, 16384, 1, 0, 4, 15, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("g5.2xlarge", 8, 32768, 1, 0, 4, 15, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("g5.12xlarge", 48, 196608, 4, 1, 15, 50, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("g6e.xlarge", 4, 32768, 1, 0, 4, 15, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("g6e.2xlarge", 8, 65536, 1, 0, 4, 15, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("g6e.4xlarge", 16, 131072, 1, 0, 8, 30, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("g6e.12xlarge", 48, 393216, 4, 1, 10, 30, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("p5.48xlarge", 192, 2097152, 8, 32, 2, 50, "amd64", f"{_ACCEL}; {_ENI}"),
        InstanceType("m7i.large", 2, 8192, 0, 0, 3, 10, "amd64", f"{_GP}; {_ENI}"),
        InstanceType("m6i.large", 2, 8192, 0, 0, 3, 10, "amd64", f"{_GP}; {_ENI}"),
    )
}


def kube_reserved_cpu_millis(vcpu: int) -> int:
    """nodeadm getCPUMillicoresToReserve: per range, ``(reserved - start) * percent / 10000`` in integer millicores."""
    total = vcpu * 1000
    ranges = [0, 1000, 2000, 4000, total]
    percents = [600, 100, 50, 25]  # hundredths of a percent: 6%, 1%, 0.5%, 0.25%
    reserved = 0
    for i, percent in enumerate(percents):
        start, end = ranges[i], ranges[i + 1]
        if total > start:
            reserved += (min(total, end) - start) * percent // 10000
    return reserved


def kube_reserved_memory_mib(instance: InstanceType) -> int:
    return 11 * instance.max_pods + 255


def memory_capacity_mib(instance: InstanceType) -> int:
    """EC2 memory less the VM overhead estimate (Karpenter's rounding: the overhead is rounded up to 1 MiB)."""
    return instance.memory_mib - math.ceil(instance.memory_mib * VM_MEMORY_OVERHEAD)


def allocatable_cpu_millis(instance: InstanceType) -> int:
    return instance.vcpu * 1000 - kube_reserved_cpu_millis(instance.vcpu)


def allocatable_memory_mib(instance: InstanceType) -> int:
    return memory_capacity_mib(instance) - kube_reserved_memory_mib(instance) - EVICTION_HARD_MIB
