"""Accelerated EC2 instance facts, and the checks a GPU node group needs.

The data lives in ``mleks/catalogs/data/gpu_instances.json`` (source and retrieval
date inside the file).  Everything here is a plain function over that data, so
tests call it without the Pulumi engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from mleks.errors import ConfigError

Architecture = Literal["amd64", "arm64"]

NVIDIA_GPU_RESOURCE = "nvidia.com/gpu"
EFA_RESOURCE = "vpc.amazonaws.com/efa"

# Families the current EKS NVIDIA AMIs (AL2023 and Bottlerocket) no longer
# support.  Source: EKS user guide ml-eks-optimized-ami.adoc, via
# shared/reference/dlc-and-gpu.md section 3 ("p2 (K80), g3, g4ad are not
# supported by current EKS GPU AMIs").
UNSUPPORTED_BY_NVIDIA_AMIS = {"p2": "NVIDIA K80 (Kepler)", "g3": "NVIDIA M60 (Maxwell)"}

# GPU models of the Volta generation (sm_70).  CUDA 13 dropped Volta, which
# matters when choosing a DLC image for these groups.
VOLTA_MODELS = frozenset({"v100"})


@dataclass(frozen=True)
class InstanceType:
    """Facts about one accelerated instance type (units in the field names)."""

    instance_type: str
    arch: Architecture
    vcpu: int
    memory_gib: float
    accelerator_count: int
    accelerator_model: str
    accelerator_memory_mib: int
    manufacturer: str
    resource: str
    max_efa_interfaces: int

    @property
    def family(self) -> str:
        return self.instance_type.split(".", 1)[0]

    @property
    def is_nvidia_gpu(self) -> bool:
        """True when the type exposes whole NVIDIA GPUs as ``nvidia.com/gpu``."""
        return self.resource == NVIDIA_GPU_RESOURCE and self.accelerator_count > 0

    @property
    def efa_capable(self) -> bool:
        return self.max_efa_interfaces > 0

    @property
    def is_volta(self) -> bool:
        return self.accelerator_model in VOLTA_MODELS


@cache
def catalog() -> dict[str, InstanceType]:
    """All known accelerated instance types, by name."""
    raw = json.loads(resources.files("mleks.catalogs.data").joinpath("gpu_instances.json").read_text())
    out: dict[str, InstanceType] = {}
    for row in raw["instance_types"]:
        out[row["instance_type"]] = InstanceType(
            instance_type=row["instance_type"],
            arch=row["arch"],
            vcpu=row["vcpu"],
            memory_gib=row["memory_gib"],
            accelerator_count=row["accelerator_count"],
            accelerator_model=row["accelerator_model"],
            accelerator_memory_mib=row["accelerator_memory_mib"],
            manufacturer=row["manufacturer"],
            resource=row["resource"],
            max_efa_interfaces=row["max_efa_interfaces"],
        )
    return out


def supported_gpu_types() -> list[str]:
    """Names of every type a GPU node group accepts, sorted."""
    return sorted(n for n, t in catalog().items() if t.is_nvidia_gpu and t.family not in UNSUPPORTED_BY_NVIDIA_AMIS)


def _accepted_summary() -> str:
    families = sorted({catalog()[n].family for n in supported_gpu_types()})
    return f"an NVIDIA GPU instance type from the families {families} (see mleks/catalogs/data/gpu_instances.json)"


def nvidia_gpu_type(name: str) -> InstanceType:
    """Look up a type and check that it gives whole NVIDIA GPUs on current EKS AMIs.

    Raises ``ConfigError`` (with an empty key, for the caller to fill in) for
    CPU-only, AMD, Neuron, Qualcomm and fractional-GPU types, and for families
    the current NVIDIA AMIs dropped.
    """
    family = name.split(".", 1)[0]
    if family in UNSUPPORTED_BY_NVIDIA_AMIS:
        raise ConfigError(
            "",
            name,
            _accepted_summary(),
            f"{family} ({UNSUPPORTED_BY_NVIDIA_AMIS[family]}) is not supported by the current EKS NVIDIA AMIs",
        )
    info = catalog().get(name)
    if info is None:
        raise ConfigError("", name, _accepted_summary(), "not a known GPU instance type")
    if info.resource != NVIDIA_GPU_RESOURCE:
        if info.accelerator_count == 0 or not info.resource:
            problem = f"{name} has a fractional {info.accelerator_model} GPU and exposes no whole nvidia.com/gpu"
        else:
            problem = f"{name} carries {info.accelerator_model} accelerators exposed as {info.resource}, not {NVIDIA_GPU_RESOURCE}"
        raise ConfigError("", name, _accepted_summary(), problem)
    return info


def common_architecture(types: list[InstanceType]) -> Architecture:
    """The one CPU architecture shared by ``types``; raise if they mix."""
    arches = sorted({t.arch for t in types})
    if len(arches) != 1:
        detail = ", ".join(f"{t.instance_type}={t.arch}" for t in types)
        raise ConfigError(
            "",
            [t.instance_type for t in types],
            "instance types of one architecture (all amd64 or all arm64)",
            f"mixed architectures in one node group ({detail})",
        )
    return arches[0]


def smallest(types: list[InstanceType]) -> InstanceType:
    """The type with the least GPUs, then vCPU, then memory.

    Schedulers and capacity checks must assume the smallest member of a mixed
    group, because any node may be that type.
    """
    return min(types, key=lambda t: (t.accelerator_count, t.vcpu, t.memory_gib, t.instance_type))
