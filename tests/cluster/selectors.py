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
"""

from __future__ import annotations

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
