"""The ground floor: the names, labels, taints and name rules every component writes.

Nothing here imports a component or a manifest helper.  Components, manifest
helpers, the platform checks and the stack all take their shared words from
this module, so each has one home:

* the node labels, the GPU taint and its toleration, the system-node selector,
  the IRSA annotation and the namespaces every cluster already has;

* :func:`label_errors`: Kubernetes label syntax (kubernetes.io, "Labels and
  Selectors"), plus, for node-group labels, the prefixes EKS refuses;
* :class:`ObjectName` and :func:`collisions`: every Kubernetes object a
  component will create, and two components that would create the same one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from mleks.catalogs.gpu import NVIDIA_GPU_RESOURCE
from mleks.errors import ConfigError

# -- roles, node labels, the GPU taint -------------------------------------------------------

Role = Literal["train", "inference"]
"""What a GPU group is for: training jobs (scaled by Escalator) or serving (cluster-autoscaler)."""

AmiFamily = Literal["al2023", "bottlerocket"]
"""The EKS-optimized NVIDIA AMIs a GPU group runs: Amazon Linux 2023 or Bottlerocket."""

ROLE_LABEL = "role"
"""Every node carries its role: ``system`` (the CPU group), ``train`` or ``inference``."""
SYSTEM_ROLE = "system"

SYSTEM_NODE_SELECTOR = {ROLE_LABEL: SYSTEM_ROLE}
"""Controllers run on the CPU system nodes, which no autoscaler scales.  On a node an autoscaler
scales, it can block its own scale-down (escalator #139) or be killed with the node it removes."""

GPU_TAINT = {"key": NVIDIA_GPU_RESOURCE, "value": "true", "effect": "NO_SCHEDULE"}
"""The taint on every GPU node, in EKS API form (kubectl: ``nvidia.com/gpu=true:NoSchedule``)."""

GPU_TOLERATION = {"key": NVIDIA_GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
"""What a pod that belongs on GPU nodes (a GPU workload, a device plugin) tolerates: :data:`GPU_TAINT`."""

# Labels we put on GPU nodes.  ``nvidia.com/gpu.present`` is also what AL2023's
# nodeadm sets; setting it ourselves makes it true from the first moment and on
# Bottlerocket too.
NODE_GROUP_LABEL = "mleks.io/node-group"
"""Every node carries its group's name; a pod that must land on one group (and be counted by its Escalator) selects it."""
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
EFA_PRESENT_LABEL = "vpc.amazonaws.com/efa.present"
AMI_FAMILY_LABEL = "mleks.io/ami-family"
GPU_MODEL_LABEL = "mleks.io/gpu-model"
GPU_COUNT_LABEL = "mleks.io/gpu-count"
GPU_MEMORY_LABEL = "mleks.io/gpu-memory-mib"
# cluster-autoscaler's AWS provider treats a node with this label as a GPU node
# that is still starting, instead of a node without GPUs, while the device
# plugin registers; without it, scale-up from zero can order extra nodes.
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
"""The ServiceAccount annotation through which a pod gets its IAM role (IRSA)."""

PREEXISTING_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
"""Namespaces every cluster has; workloads may use them, mleks never owns them."""


# kubernetes.io "Labels and Selectors" (apimachinery validation.IsQualifiedName / IsValidLabelValue):
# a name part of at most 63 characters, alphanumeric at both ends with - _ . inside, after an
# optional DNS-subdomain prefix of at most 253 characters and a slash; values likewise at most 63, or empty.
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_NAME_MAX = 63
LABEL_PREFIX_MAX = 253

# EKS CreateNodegroup refuses node-group labels under these prefixes ("Label cannot contain reserved
# prefixes"), and takes keys and values of 1 to 63 characters, the prefix counted in the key (EKS API
# reference, CreateNodegroup ``labels``: labelKey and labelValue, length 1-63).
EKS_RESERVED_LABEL_PREFIXES = ("kubernetes.io", "k8s.io", "eks.amazonaws.com")
EKS_LABEL_MAX = 63

LABEL_SYNTAX = (
    "a key of an optional DNS-subdomain prefix (at most 253 characters) and '/', then a name of at most 63 letters, digits,"
    " '-', '_' or '.', starting and ending with a letter or digit; a value of at most 63 such characters, or empty"
)


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "an empty prefix before '/'"
    if slash and (len(prefix) > LABEL_PREFIX_MAX or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"the prefix {prefix!r} is not a DNS subdomain of at most {LABEL_PREFIX_MAX} characters"
    if not name or len(name) > LABEL_NAME_MAX or not _LABEL_NAME.fullmatch(name):
        return f"the name {name!r} is not 1-{LABEL_NAME_MAX} letters, digits, '-', '_' or '.' starting and ending alphanumeric"
    return None


def label_value_problem(value: object) -> str | None:
    """Why ``value`` is not a Kubernetes label value, or None."""
    if not isinstance(value, str):
        return "not a string (quote it in YAML)"
    if value == "":
        return None
    if len(value) > LABEL_NAME_MAX or not _LABEL_NAME.fullmatch(value):
        return f"not at most {LABEL_NAME_MAX} letters, digits, '-', '_' or '.' starting and ending alphanumeric"
    return None


def label_errors(labels: Mapping[str, object], *, node_group: bool = False) -> list[ConfigError]:
    """Every problem with ``labels``, each keyed by the label's key (relative to the label map).

    ``node_group``: also refuse the prefixes EKS refuses on a managed node group's labels.
    """
    errors: list[ConfigError] = []
    for key, value in labels.items():
        problem = label_key_problem(key)
        if problem is not None:
            errors.append(ConfigError(key, key, LABEL_SYNTAX, f"not a Kubernetes label key: {problem}"))
            continue
        prefix = key.rpartition("/")[0]
        reserved = next((p for p in EKS_RESERVED_LABEL_PREFIXES if prefix == p or prefix.endswith("." + p)), None)
        if node_group and reserved is not None:
            errors.append(
                ConfigError(
                    key,
                    key,
                    f"a label key outside the {', '.join(EKS_RESERVED_LABEL_PREFIXES)} prefixes, e.g. mleks.io/gpu",
                    "EKS refuses node-group labels under that prefix",
                )
            )
        elif node_group and len(key) > EKS_LABEL_MAX:
            errors.append(ConfigError(key, key, f"a key of at most {EKS_LABEL_MAX} characters, its prefix included", "EKS limits node-group label keys"))
        if node_group and value == "":
            errors.append(ConfigError(key, value, "a value of 1 to 63 characters", "EKS refuses an empty node-group label value"))
            continue
        problem = label_value_problem(value)
        if problem is not None:
            errors.append(ConfigError(key, value, LABEL_SYNTAX, f"not a Kubernetes label value: {problem}"))
    return errors


# -- object names ------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ObjectName:
    """One Kubernetes object a component will create: its kind, namespace (None if cluster-scoped) and name."""

    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class NamedObjects:
    """What one component (at ``key``, as its user wrote it) creates in ``cluster``."""

    key: str
    cluster: str
    objects: tuple[ObjectName, ...]


def collisions(owners: Iterable[NamedObjects]) -> list[ConfigError]:
    """An error for each object two components would both create in one cluster, naming both keys.

    Two objects of one kind, namespace and name are one object to the API server: the second
    create fails with AlreadyExists, or the second component overwrites the first.
    """
    seen: dict[tuple[str, ObjectName], NamedObjects] = {}
    shared: dict[tuple[str, str], list[ObjectName]] = {}
    clusters: dict[tuple[str, str], str] = {}
    for owner in owners:
        for obj in owner.objects:
            earlier = seen.setdefault((owner.cluster, obj), owner)
            if earlier.key != owner.key:
                shared.setdefault((earlier.key, owner.key), []).append(obj)
                clusters[(earlier.key, owner.key)] = owner.cluster
    errors: list[ConfigError] = []
    for (first, second), objects in shared.items():
        listed = ", ".join(str(o) for o in objects)
        errors.append(
            ConfigError(
                second,
                objects[0].name,
                f"a name whose objects no other component has in cluster {clusters[(first, second)]}: rename this or {first}",
                f"both {first} and {second} would create {listed}",
            )
        )
    return errors
