"""Selectors as the API server and the scheduler evaluate them.

* Label selectors (``matchLabels`` + ``matchExpressions``; a map selector such
  as a Service's ``spec.selector``): kubernetes.io "Labels and Selectors",
  k8s.io/apimachinery ``pkg/apis/meta/v1/helpers.go LabelSelectorAsSelector``.
* Node selectors and required node affinity (terms ORed, expressions ANDed;
  operators In, NotIn, Exists, DoesNotExist, Gt, Lt): kubernetes.io "Assigning
  Pods to Nodes", k8s.io/component-helpers ``scheduling/corev1/nodeaffinity``.
* Taints and tolerations (an empty-key ``Exists`` toleration tolerates every
  taint; an empty effect matches every effect; ``PreferNoSchedule`` never
  blocks): kubernetes.io "Taints and Tolerations", ``ToleratesTaint`` in
  k8s.io/api ``core/v1/toleration.go``.
* Karpenter's requirements (a NodePool's template against a pending pod):
  kubernetes-sigs/karpenter ``pkg/scheduling/requirement.go`` and
  ``requirements.go`` at 6e7eab7a0f48, the commit aws/karpenter-provider-aws
  v1.14.1 pins in its go.mod.  See :class:`Requirement` and :func:`compatible`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def _expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = str(expr.get("key")), expr.get("operator"), [str(v) for v in expr.get("values") or []]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def label_selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A ``LabelSelector`` against labels; an empty selector matches everything."""
    if not selector:
        return True
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        # A map selector (Service spec.selector, ReplicationController).
        return all(labels.get(k) == str(v) for k, v in selector.items())
    if any(labels.get(k) != str(v) for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or [])


def selector_is_empty(selector: Obj | None) -> bool:
    return not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions") and set(selector) <= {"matchLabels", "matchExpressions"})


def node_selector_terms(pod_spec: Obj) -> list[Obj]:
    """The required node affinity terms of a pod (ORed); empty when there are none."""
    affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return list(affinity.get("nodeSelectorTerms") or [])


def pod_matches_node_labels(pod_spec: Obj, node_labels: dict[str, str]) -> bool:
    """``nodeSelector`` AND (any required node affinity term)."""
    if any(node_labels.get(k) != str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    terms = node_selector_terms(pod_spec)
    if not terms:
        return True
    # matchFields (metadata.name) is not decidable before a node exists; treat it as matching.
    return any(all(_expression_matches(e, node_labels) for e in term.get("matchExpressions") or []) for term in terms)


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """One toleration against one taint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    op = toleration.get("operator") or "Equal"
    if not key:
        return op == "Exists"
    if key != taint.get("key"):
        return False
    return op == "Exists" or str(toleration.get("value") or "") == str(taint.get("value") or "")


def untolerated_taints(pod_spec: Obj, taints: list[Obj]) -> list[Obj]:
    """Taints that keep the pod off the node (NoSchedule and NoExecute ones it does not tolerate)."""
    tolerations = pod_spec.get("tolerations") or []
    return [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(tol, t) for tol in tolerations)]


# --- Karpenter requirements ---------------------------------------------------------------

# Labels Karpenter knows values for (core pkg/apis/v1/labels.go WellKnownLabels, with what
# aws/karpenter-provider-aws v1.14.1 pkg/apis/v1/labels.go init() inserts).  A pod may constrain
# these without the NodePool naming them ("Well Known Labels must intersect, but if not defined,
# are allowed"); any other key must be a NodePool label or requirement, or Karpenter launches nothing
# ("If you specify a nodeSelector or a required nodeAffinity using a label that is not well-known to
# Karpenter, it will not launch nodes with these labels", v1.14 concepts/scheduling.md "User-Defined Labels").
KARPENTER_WELL_KNOWN_LABELS = frozenset(
    {
        "karpenter.sh/nodepool",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "karpenter.sh/capacity-type",
        "node.kubernetes.io/windows-build",
        "topology.k8s.aws/zone-id",
    }
    | {
        f"karpenter.k8s.aws/{name}"
        for name in (
            "capacity-reservation-id",
            "capacity-reservation-type",
            "capacity-reservation-interruptible",
            "instance-hypervisor",
            "instance-encryption-in-transit-supported",
            "instance-category",
            "instance-capability-flex",
            "instance-family",
            "instance-generation",
            "instance-size",
            "instance-local-nvme",
            "instance-cpu",
            "instance-cpu-manufacturer",
            "instance-cpu-sustained-clock-speed-mhz",
            "instance-memory",
            "instance-ebs-bandwidth",
            "instance-network-bandwidth",
            "instance-gpu-name",
            "instance-gpu-manufacturer",
            "instance-gpu-count",
            "instance-gpu-memory",
            "instance-accelerator-name",
            "instance-accelerator-manufacturer",
            "instance-accelerator-count",
            "instance-tenancy",
            "placement-group-id",
            "placement-group-partition",
        )
    }
)

# Deprecated keys Karpenter reads as their stable names (core labels.go NormalizedLabels).
NORMALIZED_LABELS = {
    "failure-domain.beta.kubernetes.io/zone": "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region": "topology.kubernetes.io/region",
    "beta.kubernetes.io/arch": "kubernetes.io/arch",
    "beta.kubernetes.io/os": "kubernetes.io/os",
    "beta.kubernetes.io/instance-type": "node.kubernetes.io/instance-type",
}


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _within(value: str, gte: int | None, lte: int | None) -> bool:
    if gte is None and lte is None:
        return True
    number = _int(value)
    return number is not None and (gte is None or number >= gte) and (lte is None or number <= lte)


@dataclass(frozen=True)
class Requirement:
    """Karpenter's ``Requirement``: a value set or its complement, with inclusive integer bounds.

    ``In`` is the set; ``NotIn`` its complement; ``Exists`` the complement of nothing;
    ``DoesNotExist`` the empty set; ``Gt n``/``Lt n``/``Gte n``/``Lte n`` an ``Exists`` with bounds
    ``>= n+1``/``<= n-1``/``>= n``/``<= n`` (requirement.go ``NewRequirementWithFlexibility``).
    """

    key: str
    complement: bool
    values: frozenset[str]
    gte: int | None = None
    lte: int | None = None

    @classmethod
    def of(cls, key: str, operator: str, values: Iterable[Any] = ()) -> Requirement:
        key = NORMALIZED_LABELS.get(key, key)
        vals = [str(v) for v in values]
        if operator == "In":
            return cls(key, False, frozenset(vals))
        if operator == "NotIn":
            return cls(key, True, frozenset(vals))
        if operator == "DoesNotExist":
            return cls(key, False, frozenset())
        bound = _int(vals[0]) if vals else None
        if operator in ("Gt", "Gte") and bound is not None:
            return cls(key, True, frozenset(), gte=bound + (1 if operator == "Gt" else 0))
        if operator in ("Lt", "Lte") and bound is not None:
            return cls(key, True, frozenset(), lte=bound - (1 if operator == "Lt" else 0))
        return cls(key, True, frozenset())  # Exists (and an unparsable bound, which the CRD refuses)

    @property
    def operator(self) -> str:
        if self.complement:
            return "NotIn" if self.values else "Exists"
        return "In" if self.values else "DoesNotExist"

    def intersection(self, other: Requirement) -> Requirement:
        """Both constraints at once (requirement.go ``Intersection``)."""
        gte = max((b for b in (self.gte, other.gte) if b is not None), default=None)
        lte = min((b for b in (self.lte, other.lte) if b is not None), default=None)
        if gte is not None and lte is not None and gte > lte:
            return Requirement(self.key, False, frozenset())
        complement = self.complement and other.complement
        if self.complement and other.complement:
            values = self.values | other.values
        elif self.complement:
            values = other.values - self.values
        elif other.complement:
            values = self.values - other.values
        else:
            values = self.values & other.values
        values = frozenset(v for v in values if _within(v, gte, lte))
        if not complement:
            gte = lte = None
        return Requirement(self.key, complement, values, gte, lte)

    def has_intersection(self, other: Requirement) -> bool:
        """Some value satisfies both (requirement.go ``HasIntersection``)."""
        gte = max((b for b in (self.gte, other.gte) if b is not None), default=None)
        lte = min((b for b in (self.lte, other.lte) if b is not None), default=None)
        if gte is not None and lte is not None and gte > lte:
            return False
        if self.complement and other.complement:
            return True
        if self.complement:
            return any(v not in self.values and _within(v, gte, lte) for v in other.values)
        if other.complement:
            return any(v not in other.values and _within(v, gte, lte) for v in self.values)
        return any(v in other.values and _within(v, gte, lte) for v in self.values)

    def __str__(self) -> str:
        text = f"{self.key} {self.operator}" + (f" {sorted(self.values)}" if self.values else "")
        text += f" >={self.gte}" if self.gte is not None else ""
        return text + (f" <={self.lte}" if self.lte is not None else "")


Requirements = dict[str, Requirement]


def add_requirements(into: Requirements, *more: Requirement) -> Requirements:
    """``Requirements.Add``: a key constrained twice keeps the intersection."""
    out = dict(into)
    for r in more:
        out[r.key] = out[r.key].intersection(r) if r.key in out else r
    return out


def requirements_of(expressions: Iterable[Obj]) -> Requirements:
    """Node selector requirements (``key``/``operator``/``values``) as Karpenter reads them."""
    return add_requirements({}, *(Requirement.of(str(e.get("key")), str(e.get("operator")), e.get("values") or []) for e in expressions))


def label_requirements(labels: dict[str, Any]) -> Requirements:
    """Labels as ``In [value]`` requirements (``NewLabelRequirements``)."""
    return add_requirements({}, *(Requirement.of(k, "In", [v]) for k, v in labels.items()))


def pod_requirement_alternatives(pod_spec: Obj) -> list[Requirements]:
    """The pod's nodeSelector with each required node affinity term in turn.

    Karpenter takes the first term and, when no NodePool can satisfy it, drops it and tries
    the next (requirements.go ``newPodRequirements``, "An outer loop will iteratively remove OR
    requirements if unsatisfiable"), so a NodePool can serve the pod when it can serve any term.
    Preferred affinity is relaxed away when unsatisfiable and is ignored here.
    """
    base = label_requirements(dict(pod_spec.get("nodeSelector") or {}))
    terms = node_selector_terms(pod_spec)
    if not terms:
        return [base]
    return [add_requirements(base, *requirements_of(t.get("matchExpressions") or []).values()) for t in terms]


def intersects_problems(existing: Requirements, incoming: Requirements) -> list[str]:
    """``Requirements.Intersects``: every key both constrain has a common value."""
    out = []
    for key in existing.keys() & incoming.keys():
        a, b = existing[key], incoming[key]
        if a.has_intersection(b):
            continue
        if b.operator in ("NotIn", "DoesNotExist") and a.operator in ("NotIn", "DoesNotExist"):
            continue
        out.append(f"{b} does not intersect {a}")
    return sorted(out)


def compatible_problems(pool: Requirements, pod: Requirements) -> list[str]:
    """``Requirements.Compatible`` with ``AllowUndefinedWellKnownLabels``: why Karpenter cannot serve the pod from the pool.

    A key the pod constrains must be one the pool labels or requires, unless it is well known
    to Karpenter or the pod only excludes values (NotIn, DoesNotExist); then every shared key
    must intersect.  Empty when compatible.
    """
    for key, r in sorted(pod.items()):
        if key in KARPENTER_WELL_KNOWN_LABELS or key in pool or r.operator in ("NotIn", "DoesNotExist"):
            continue
        return [f"label {key!r} does not have known values (the NodePool neither labels nor requires it, and it is not well known to Karpenter)"]
    return intersects_problems(pool, pod)
