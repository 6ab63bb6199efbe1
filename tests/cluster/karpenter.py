"""Karpenter NodePools: who provisions each node and pod, and what the API server and Karpenter accept.

A NodePool (``karpenter.sh/v1``) and its EC2NodeClass (``karpenter.k8s.aws/v1``)
are read by :mod:`.render_output`; their nodes are built by :mod:`.scheduling`.
The checks here, each returning human-readable problems:

* :func:`ownership_problems`: a NodePool's group is served by Karpenter alone.
  No managed node group carries its ``mleks.io/node-group`` value;
  cluster-autoscaler's ``--nodes`` and Escalator's node groups name nothing
  the pool owns, and Escalator does not count the pool's nodes by their labels.
* :func:`inference_only_problems`: every NodePool's template is labelled
  ``role=inference``, and no pod that does not select ``role=inference``
  (system, training, notebooks, add-on controllers) can make Karpenter launch
  a node from any pool (its tolerations and node constraints against the pool).
* :func:`double_provisioning_problems`: no pod that Karpenter would launch a
  node for is also scaled for by cluster-autoscaler (a managed group it owns
  and the pod fits) or counted by Escalator (a group whose label the pod selects).
* :func:`label_rule_problems`: template labels, requirements and taints
  against the NodePool CRD's validation (schema patterns and CEL rules of
  ``pkg/apis/crds/karpenter.sh_nodepools.yaml`` at aws/karpenter-provider-aws
  v1.14.1, the target of ``charts/karpenter/crds/karpenter.sh_nodepools.yaml``)
  and against Karpenter's runtime validation, which leaves a NodePool not
  Ready (``ValidationSucceeded`` false) so that nothing launches from it
  (kubernetes-sigs/karpenter 6e7eab7a0f48 ``pkg/apis/v1/nodepool_validation.go``
  ``RuntimeValidate``, ``nodeclaim_validation.go``, ``labels.go IsRestrictedLabel``).
  At v1.14.1 the restricted label domains are ``karpenter.sh`` and
  ``karpenter.k8s.aws`` (apart from the listed well-known keys) and the one
  restricted label ``kubernetes.io/hostname``; ``kubernetes.io`` and ``k8s.io``
  keys are no longer restricted (the provider drops the ones kubelet may not set
  from ``--node-labels`` and the controller sets them: amifamily
  ``resolver.go RejectForbiddenLabels``).
* :func:`node_class_problems`: each ``nodeClassRef`` resolves to an
  EC2NodeClass of the same render; each EC2NodeClass requires IMDSv2 with a hop
  limit of 1, selects its AMI with one pinned ``alias`` (not ``@latest``;
  ``website/content/en/v1.14/concepts/nodeclasses.md`` "spec.amiSelectorTerms"),
  and has gp3, encrypted EBS volumes; plus the CRD's CEL rules on these fields
  (``pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml``).
* :func:`pool_problems`: allowed types Karpenter never launches (architecture,
  limits), capacity types it does not know.
* :func:`controller_problems`: a cluster with NodePools has a Karpenter Helm
  release (``kubernetes:helm.sh/v3:Release`` of the ``karpenter`` chart,
  ``settings.clusterName``), and its pods, placed by the chart's values over
  the chart's defaults (``charts/karpenter/values.yaml`` v1.14.1), land on a
  managed node group and never on a node Karpenter manages.

:func:`karpenter_problems` runs them all; :func:`tests.cluster.scheduling.scheduling_problems` calls it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.cluster import names, quantities
from tests.cluster.aws_rules import gp3_problems
from tests.cluster.instance_types import INSTANCE_TYPES
from tests.cluster.render_output import Cluster, EC2NodeClass, KarpenterPool, NodeGroup, Obj, PodTemplate, Render
from tests.cluster.scheduling import (
    Node,
    build_nodes,
    cluster_autoscaler_asgs,
    cluster_autoscaler_owns,
    escalator_groups,
    escalator_selects,
    fit_problems,
    karpenter_constraint_problems,
    karpenter_fit_problems,
    karpenter_launch_problems,
    karpenter_type_exclusions,
    pod_requests,
)
from tests.cluster.selectors import KARPENTER_WELL_KNOWN_LABELS, NORMALIZED_LABELS, node_selector_terms, pod_matches_node_labels, untolerated_taints

NODE_GROUP_LABEL = "mleks.io/node-group"
INFERENCE = ("role", "inference")

# --- the NodePool CRD (pkg/apis/crds/karpenter.sh_nodepools.yaml, v1.14.1) --------------------
# spec.template.metadata.labels and spec.template.spec.requirements[].key carry the same four CEL rules:
#   label domain "karpenter.sh" is restricted:
#     self in ["karpenter.sh/capacity-type", "karpenter.sh/nodepool"] || !self.find("^([^/]+)").endsWith("karpenter.sh")
#   label "karpenter.sh/nodepool" is restricted:   self != "karpenter.sh/nodepool"
#   label "kubernetes.io/hostname" is restricted:  self != "kubernetes.io/hostname"
#   label domain "karpenter.k8s.aws" is restricted:
#     self in [<the list below>] || !self.find("^([^/]+)").endsWith("karpenter.k8s.aws")
CRD_KARPENTER_SH_ALLOWED = frozenset({"karpenter.sh/capacity-type", "karpenter.sh/nodepool"})
CRD_KARPENTER_K8S_AWS_ALLOWED = frozenset(
    f"karpenter.k8s.aws/{name}"
    for name in (
        "instance-tenancy",
        "capacity-reservation-type",
        "capacity-reservation-id",
        "capacity-reservation-interruptible",
        "ec2nodeclass",
        "instance-encryption-in-transit-supported",
        "instance-category",
        "instance-hypervisor",
        "instance-family",
        "instance-generation",
        "instance-local-nvme",
        "instance-size",
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
        "instance-capability-flex",
        "placement-group-id",
        "placement-group-partition",
    )
)
# labels: additionalProperties maxLength 63, pattern; maxProperties 100.  requirements: key maxLength 316 and
# pattern; operator enum; maxItems 100; minValues 1-50; the three list rules on In / bounds / minValues.
CRD_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CRD_REQUIREMENT_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(\/))?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CRD_OPERATORS = ("Gte", "Lte", "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
CRD_MAX = 100
# Runtime validation (labels.go): RestrictedLabelDomains is {karpenter.sh} plus the provider's {karpenter.k8s.aws};
# RestrictedLabels {kubernetes.io/hostname}; WellKnownValuesForRequirements for the capacity type.
RESTRICTED_DOMAINS = ("karpenter.sh", "karpenter.k8s.aws")
CAPACITY_TYPES = frozenset({"on-demand", "spot", "reserved"})
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute", "")

# --- the EC2NodeClass CRD (pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml, v1.14.1) ------
ALIAS_FAMILIES = ("al2", "al2023", "bottlerocket", "windows2019", "windows2022", "windows2025")
# "The version string can be set to latest, or pinned to a specific AMI using the format of that AMI's
# GitHub release tags": dates for AL2/AL2023 (al2023@v20240703), semantic versions for Bottlerocket
# (bottlerocket@v1.20.4); Windows supports only latest (nodeclasses.md "spec.amiSelectorTerms").
ALIAS_PINS = {"al2": re.compile(r"^v\d{8}$"), "al2023": re.compile(r"^v\d{8}$"), "bottlerocket": re.compile(r"^v\d+\.\d+\.\d+$")}
AMI_FAMILY_OF_ALIAS = {
    "al2": "AL2",
    "al2023": "AL2023",
    "bottlerocket": "Bottlerocket",
    "windows2019": "Windows2019",
    "windows2022": "Windows2022",
    "windows2025": "Windows2025",
}
# metadataOptions default (CRD "default:"): httpEndpoint enabled, httpProtocolIPv6 disabled, httpPutResponseHopLimit 1, httpTokens required.
METADATA_DEFAULTS: Obj = {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": 1, "httpTokens": "required"}
VOLUME_SIZE = re.compile(
    r"^((?:[1-9][0-9]{0,3}|[1-4][0-9]{4}|[5][0-8][0-9]{3}|59000)Gi|(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|[6][0-3][0-9]{3}|64000)G"
    r"|([1-9]||[1-5][0-7]|58)Ti|([1-9]||[1-5][0-9]|6[0-3]|64)T)$"
)
RESTRICTED_TAG_KEYS = ("eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim", "karpenter.k8s.aws/ec2nodeclass")


def _where(cluster: Cluster, pool: KarpenterPool) -> str:
    return f"{cluster.name}: NodePool {pool.name}"


def _workload_pods(cluster: Cluster) -> list[PodTemplate]:
    return [p for p in cluster.pod_templates() if p.owner.get("kind") != "DaemonSet"]


def _names(text: str, name: str) -> bool:
    """``name`` appears in ``text`` as a whole dash/dot/slash-separated part (an ASG or group name naming a node group)."""
    return bool(name) and re.search(rf"(^|[-_./:]){re.escape(name)}($|[-_./:])", text) is not None


# --- (a) one autoscaler per node --------------------------------------------------------------


def ownership_problems(cluster: Cluster) -> list[str]:
    """No managed group, cluster-autoscaler ASG or Escalator group claims what a NodePool owns."""
    out = []
    for pool in cluster.node_pools:
        where = _where(cluster, pool)
        owned = [n for n in (pool.node_group, pool.name) if n]
        for group in cluster.node_groups:
            if pool.node_group and group.labels.get(NODE_GROUP_LABEL) == pool.node_group:
                how = "cluster-autoscaler" if cluster_autoscaler_owns(cluster, group) else "its own autoscaler"
                out.append(
                    f"{where}: managed node group {group.name} carries the same {NODE_GROUP_LABEL}={pool.node_group}: "
                    f"Karpenter and {how} both provision the group's pods"
                )
        by_asg: dict[str, list[NodeGroup]] = {}
        for group in cluster.node_groups:
            if group.asg_name:
                by_asg.setdefault(group.asg_name, []).append(group)
        for asg in sorted(cluster_autoscaler_asgs(cluster)):
            if asg not in by_asg and any(_names(asg, n) for n in owned):
                out.append(
                    f"{where}: cluster-autoscaler --nodes names ASG {asg!r}, which no managed node group of the render has "
                    f"and whose name is the pool's group ({owned}): a leftover of the group Karpenter now owns"
                )
        for eg in escalator_groups(cluster):
            key, value = str(eg["label_key"]), str(eg.get("label_value"))
            label = f"Escalator node group {eg.get('name')!r} ({key}={value}, ASG {eg.get('cloud_provider_group_name')!r})"
            if pool.labels.get(key) == value:
                out.append(
                    f"{where}: {label} counts the pool's nodes and the pods that select them as its own (the pool labels {key}={value}): "
                    "Escalator scales its ASG for pods Karpenter serves"
                )
                continue
            asg = str(eg.get("cloud_provider_group_name") or "")
            if any(_names(str(eg.get("name") or ""), n) for n in owned) or (asg not in by_asg and any(_names(asg, n) for n in owned)):
                out.append(f"{where}: {label} is named for the pool's group ({owned}): two autoscalers for one group")
    return out


# --- (b) only inference pods make a NodePool launch -------------------------------------------


def selects_only(spec: Obj, key: str, value: str) -> bool:
    """The pod can only run where ``key=value``: its nodeSelector says so, or every required affinity term has ``key In [value]``."""
    if str((spec.get("nodeSelector") or {}).get(key)) == value:
        return True
    terms = node_selector_terms(spec)
    return bool(terms) and all(
        any(e.get("key") == key and e.get("operator") == "In" and [str(v) for v in e.get("values") or []] == [value] for e in t.get("matchExpressions") or [])
        for t in terms
    )


def inference_only_problems(cluster: Cluster) -> list[str]:
    """Every NodePool is an inference pool, and Karpenter launches for nothing but inference pods."""
    key, value = INFERENCE
    out = []
    for pool in cluster.node_pools:
        if pool.labels.get(key) != value:
            out.append(f"{_where(cluster, pool)}: template labels {pool.labels} do not include {key}={value}: only inference groups are Karpenter's")
    for pod in _workload_pods(cluster):
        if selects_only(pod.spec, key, value):
            continue
        for pool in cluster.node_pools:
            if not karpenter_constraint_problems(pod.spec, pool):
                out.append(
                    f"{cluster.name}: {pod.label} does not select {key}={value}, yet Karpenter would launch a node from NodePool {pool.name} for it "
                    "when it is Pending (it tolerates the pool's taints and its node constraints are compatible with the template)"
                )
    return out


# --- (c) no pod provisioned for twice -----------------------------------------------------------


def double_provisioning_problems(cluster: Cluster, nodes: list[Node]) -> list[str]:
    """No pod Karpenter launches for is also scaled for by cluster-autoscaler or counted by Escalator."""
    out = []
    escalator = escalator_groups(cluster)
    for pod in _workload_pods(cluster):
        requests = pod_requests(pod.spec)
        pools = [p.name for p in cluster.node_pools if not karpenter_launch_problems(pod.spec, requests, p, nodes)]
        if not pools:
            continue
        where = f"{cluster.name}: {pod.label}: NodePool {', '.join(pools)} and"
        ca_groups = sorted(
            {
                n.group.name
                for n in nodes
                if isinstance(n.group, NodeGroup)
                and cluster_autoscaler_owns(cluster, n.group)
                and pod_matches_node_labels(pod.spec, n.labels)
                and not untolerated_taints(pod.spec, n.taints)
                and not karpenter_fit_problems(requests, n)
            }
        )
        for name in ca_groups:
            out.append(f"{where} cluster-autoscaler's node group {name} would both provision for it: two nodes for one Pending pod")
        for eg in escalator:
            key, value = str(eg["label_key"]), str(eg.get("label_value"))
            if escalator_selects(pod, key, value) and any(g.labels.get(key) == value for g in cluster.node_groups):
                out.append(f"{where} Escalator's node group {eg.get('name')!r} ({key}={value}) would both provision for it: two nodes for one Pending pod")
    return out


# --- (d) the NodePool CRD's label rules and Karpenter's runtime validation ----------------------


def _domain(key: str) -> str:
    """CEL ``key.find("^([^/]+)")``: everything before the first ``/`` (the whole key when it has none)."""
    match = re.match(r"^([^/]+)", key)
    return match.group(1) if match else ""


def crd_label_key_problems(key: str) -> list[str]:
    """The four CEL rules the NodePool CRD puts on template label keys and requirement keys."""
    out = []
    if key not in CRD_KARPENTER_SH_ALLOWED and _domain(key).endswith("karpenter.sh"):
        out.append('label domain "karpenter.sh" is restricted')
    if key == "karpenter.sh/nodepool":
        out.append('label "karpenter.sh/nodepool" is restricted')
    if key == "kubernetes.io/hostname":
        out.append('label "kubernetes.io/hostname" is restricted')
    if key not in CRD_KARPENTER_K8S_AWS_ALLOWED and _domain(key).endswith("karpenter.k8s.aws"):
        out.append('label domain "karpenter.k8s.aws" is restricted')
    return out


def runtime_restricted(key: str) -> bool:
    """labels.go ``IsRestrictedLabel``: not well known, and in a restricted domain (or a subdomain) or ``kubernetes.io/hostname``."""
    if key in KARPENTER_WELL_KNOWN_LABELS:
        return False
    domain = key.split("/", 1)[0] if "/" in key else ""
    return any(domain == d or domain.endswith("." + d) for d in RESTRICTED_DOMAINS) or key == "kubernetes.io/hostname"


def _requirement_problems(at: str, r: Obj) -> list[str]:
    key, op = str(r.get("key") or ""), str(r.get("operator") or "")
    values = [str(v) for v in r.get("values") or []]
    out = [f"{at}: {m} (CRD)" for m in crd_label_key_problems(key)]
    if len(key) > 316 or not CRD_REQUIREMENT_KEY.match(key):
        out.append(f"{at}: key {key!r} does not match the CRD's key pattern (qualified name, at most 316 characters)")
    if op not in CRD_OPERATORS:
        out.append(f"{at}: operator {op!r} is not one of {list(CRD_OPERATORS)} (CRD)")
    if op == "In" and not values:
        out.append(f"{at}: requirements with operator 'In' must have a value defined (CRD)")
    if op in ("Gt", "Lt", "Gte", "Lte") and (len(values) != 1 or not re.fullmatch(r"\d+", values[0])):
        out.append(f"{at}: requirements operator 'Gt', 'Lt', 'Gte', or 'Lte' must have a single positive integer value (CRD)")
    for v in values:
        if len(v) > 63 or not CRD_LABEL_VALUE.match(v):
            out.append(f"{at}: value {v!r} is not a label value (CRD pattern, at most 63 characters)")
    min_values = r.get("minValues")
    if min_values is not None and not 1 <= int(min_values) <= 50:
        out.append(f"{at}: minValues {min_values} is outside 1-50 (CRD)")
    if min_values is not None and op == "In" and len(values) < int(min_values):
        out.append(f"{at}: requirements with 'minValues' must have at least that many values specified in the 'values' field (CRD)")
    normalized = NORMALIZED_LABELS.get(key, key)
    if runtime_restricted(normalized) and not crd_label_key_problems(key):
        out.append(f"{at}: key {key!r} is restricted (Karpenter's runtime validation: the NodePool never becomes Ready)")
    if normalized == "karpenter.sh/capacity-type" and op == "In" and values and not set(values) & CAPACITY_TYPES:
        out.append(f"{at}: no valid values in {values}, expected one of {sorted(CAPACITY_TYPES)} (runtime validation: the NodePool never becomes Ready)")
    return out


def _taint_problems(at: str, taints: list[Obj], seen: set[tuple[str, str]]) -> list[str]:
    """nodeclaim_validation.go ``validateTaintsField``: qualified-name key, qualified-name value when set, a known effect, no duplicate key/effect."""
    out = []
    for t in taints:
        key, value, effect = str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or "")
        problem = names.qualified_name_problem(key) if key else "empty key"
        if problem:
            out.append(f"{at}: taint key {key!r}: {problem}")
        if value and names.qualified_name_problem(value):
            out.append(f"{at}: taint {key!r} value {value!r} is not a qualified name (Karpenter validates taint values as names)")
        if effect not in TAINT_EFFECTS:
            out.append(f"{at}: taint {key!r} effect {effect!r} is not one of NoSchedule, PreferNoSchedule, NoExecute")
        if (key, effect) in seen:
            out.append(f"{at}: duplicate taint key/effect {key}={effect}")
        seen.add((key, effect))
    return out


def label_rule_problems(cluster: Cluster) -> list[str]:
    """Template labels, requirements and taints of every NodePool against the CRD and Karpenter's runtime validation."""
    out = []
    for pool in cluster.node_pools:
        where = _where(cluster, pool)
        labels = pool.labels
        if len(labels) > CRD_MAX:
            out.append(f"{where}: {len(labels)} template labels; the CRD allows {CRD_MAX}")
        for key, value in labels.items():
            at = f"{where}: template label {key!r}"
            out += [f"{at}: {m} (CRD)" for m in crd_label_key_problems(key)]
            problem = names.qualified_name_problem(key)
            if problem:
                out.append(f"{at}: {problem}")
            if len(value) > 63 or not CRD_LABEL_VALUE.match(value):
                out.append(f"{at}: value {value!r} is not a label value (CRD pattern, at most 63 characters)")
            if runtime_restricted(key) and not crd_label_key_problems(key):
                out.append(f"{at} is restricted (Karpenter's runtime validation, IsRestrictedLabel: the NodePool never becomes Ready)")
        requirements = pool.requirements
        if len(requirements) > CRD_MAX:
            out.append(f"{where}: {len(requirements)} requirements; the CRD allows {CRD_MAX}")
        if len(requirements) + len(labels) > CRD_MAX:
            out.append(f"{where}: {len(requirements)} requirements and {len(labels)} labels: a NodeClaim holds at most {CRD_MAX} (nodepools.md)")
        for i, r in enumerate(requirements):
            out += _requirement_problems(f"{where}: requirements[{i}] ({r.get('key')})", r)
        seen: set[tuple[str, str]] = set()
        out += _taint_problems(f"{where}: taints", pool.taints, seen)
        out += _taint_problems(f"{where}: startupTaints", pool.startup_taints, seen)
    return out


# --- (e) node classes ------------------------------------------------------------------------------


def _volume_gib(size: Any) -> int | None:
    try:
        return int(quantities.value(size) / 2**30)
    except ValueError:
        return None


def node_class_problems(cluster: Cluster) -> list[str]:
    """Every nodeClassRef resolves; every EC2NodeClass has IMDSv2 with hop limit 1, one pinned alias, gp3 encrypted volumes."""
    out = []
    classes = {c.name for c in cluster.node_classes}
    for pool in cluster.node_pools:
        ref = pool.node_class_ref
        where = _where(cluster, pool)
        if ref.get("group") != "karpenter.k8s.aws" or ref.get("kind") != "EC2NodeClass":
            out.append(f"{where}: nodeClassRef {ref} is not group karpenter.k8s.aws, kind EC2NodeClass")
        elif ref.get("name") not in classes:
            out.append(
                f"{where}: nodeClassRef names EC2NodeClass {ref.get('name')!r}, which the render does not create: "
                "the pool is never Ready and Karpenter launches nothing from it"
            )
    for nc in cluster.node_classes:
        out += _node_class_problems(f"{cluster.name}: EC2NodeClass {nc.name}", nc)
    return out


def _node_class_problems(where: str, nc: EC2NodeClass) -> list[str]:
    spec = nc.spec
    out = []
    metadata = METADATA_DEFAULTS | dict(spec.get("metadataOptions") or {})
    if metadata["httpTokens"] != "required":
        out.append(f"{where}: metadataOptions.httpTokens is {metadata['httpTokens']!r}: IMDSv1 lets pods read the node role's credentials; set 'required'")
    if str(metadata["httpPutResponseHopLimit"]) != "1":
        out.append(f"{where}: metadataOptions.httpPutResponseHopLimit is {metadata['httpPutResponseHopLimit']}: above 1, pods reach IMDS; set 1")
    terms = [t for t in spec.get("amiSelectorTerms") or [] if isinstance(t, dict)]
    aliases = [t for t in terms if t.get("alias")]
    if not terms:
        out.append(f"{where}: amiSelectorTerms is required (CRD)")
    elif not aliases:
        out.append(f"{where}: amiSelectorTerms select no alias: the AMI is not an EKS-optimized one pinned to a release")
    if aliases and len(terms) != 1:
        out.append(f"{where}: 'alias' is mutually exclusive, cannot be set with a combination of other amiSelectorTerms (CRD)")
    for term in aliases:
        alias = str(term["alias"])
        if set(term) - {"alias"}:
            out.append(f"{where}: 'alias' is mutually exclusive, cannot be set with a combination of other fields in amiSelectorTerms (CRD)")
        if not re.match(r"^[a-zA-Z0-9]+@.+$", alias):
            out.append(f"{where}: alias {alias!r} is improperly formatted, must match the format 'family@version' (CRD)")
            continue
        family, version = alias.split("@", 1)
        if family not in ALIAS_FAMILIES:
            out.append(f"{where}: alias family {family!r} is not one of {list(ALIAS_FAMILIES)} (CRD)")
        elif version == "latest":
            out.append(f"{where}: alias {alias!r} is not pinned: every new EKS AMI release replaces every node (drift); pin a release")
        elif family in ALIAS_PINS and not ALIAS_PINS[family].match(version):
            out.append(f"{where}: alias {alias!r}: version {version!r} is not a {family} release tag (e.g. al2023@v20240807, bottlerocket@v1.20.4)")
        if spec.get("amiFamily") and spec["amiFamily"] not in ("Custom", AMI_FAMILY_OF_ALIAS.get(family)):
            out.append(f"{where}: amiFamily {spec['amiFamily']!r} must be {AMI_FAMILY_OF_ALIAS.get(family)!r} or 'Custom' with alias {alias!r} (CRD)")
    if ("role" in spec) == ("instanceProfile" in spec):
        out.append(f"{where}: must specify exactly one of ['role', 'instanceProfile'] (CRD)")
    for field, allowed in (("subnetSelectorTerms", ("tags", "id")), ("securityGroupSelectorTerms", ("tags", "id", "name"))):
        selector = [t for t in spec.get(field) or [] if isinstance(t, dict)]
        if not selector:
            out.append(f"{where}: {field} cannot be empty (CRD)")
        for t in selector:
            if not any(t.get(k) for k in allowed):
                out.append(f"{where}: {field} term {t}: expected at least one of {list(allowed)} (CRD)")
            if any(k == "" or v == "" for k, v in (t.get("tags") or {}).items()):
                out.append(f"{where}: {field} term {t}: empty tag keys or values aren't supported (CRD)")
    mappings = [m for m in spec.get("blockDeviceMappings") or [] if isinstance(m, dict)]
    if sum(1 for m in mappings if m.get("rootVolume")) > 1:
        out.append(f"{where}: must have only one blockDeviceMappings with rootVolume (CRD)")
    for m in mappings:
        ebs = dict(m.get("ebs") or {})
        at = f"{where}: blockDeviceMappings {m.get('deviceName')}"
        if ebs.get("volumeType") != "gp3":
            out.append(f"{at}: volumeType {ebs.get('volumeType')!r}, not gp3")
        if ebs.get("encrypted") is not True:
            out.append(f"{at}: not encrypted (set ebs.encrypted: true)")
        size = ebs.get("volumeSize")
        if size is None and not ebs.get("snapshotID"):
            out.append(f"{at}: snapshotID or volumeSize must be defined (CRD)")
        if size is not None and not VOLUME_SIZE.match(str(size)):
            out.append(f"{at}: volumeSize {size!r} does not match the CRD's pattern (a whole number of Gi, G, Ti or T)")
        if ebs.get("volumeType") == "gp3":
            out += gp3_problems(at, ebs | {"volumeSize": _volume_gib(size) if size is not None else None})
    for key in spec.get("tags") or {}:
        if key == "" or key in RESTRICTED_TAG_KEYS or str(key).startswith("kubernetes.io/cluster"):
            out.append(f"{where}: tag {key!r} is restricted (CRD)")
    return out


# --- pools -------------------------------------------------------------------------------------------


def pool_problems(cluster: Cluster) -> list[str]:
    """Allowed types Karpenter never launches, and capacity types it does not know."""
    out = []
    for pool in cluster.node_pools:
        where = _where(cluster, pool)
        launchable = []
        for type_name in pool.instance_types:
            instance = INSTANCE_TYPES.get(type_name)
            if instance is None:
                continue  # reported by build_nodes
            reasons = karpenter_type_exclusions(pool, instance)
            if reasons:
                out.append(f"{where}: allows {type_name}, which Karpenter never launches from it: " + "; ".join(reasons))
            else:
                launchable.append(type_name)
        if pool.instance_types and not launchable and all(t in INSTANCE_TYPES for t in pool.instance_types):
            out.append(f"{where}: Karpenter can launch none of its instance types {pool.instance_types}")
        unknown = [c for c in pool.capacity_types if c not in CAPACITY_TYPES]
        if unknown:
            out.append(f"{where}: capacity types {unknown} are not among {sorted(CAPACITY_TYPES)}")
        if "reserved" in pool.capacity_types and pool.node_class and not pool.node_class.spec.get("capacityReservationSelectorTerms"):
            out.append(f"{where}: allows capacity type reserved but EC2NodeClass {pool.node_class.name} selects no capacity reservation")
    return out


# --- the controller -----------------------------------------------------------------------------------

# charts/karpenter/values.yaml at v1.14.1: where the controller's pods go unless the release's values say otherwise.
_NOT_ON_A_NODEPOOL = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "karpenter.sh/nodepool", "operator": "DoesNotExist"}]}]}
CHART_PLACEMENT: Obj = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": _NOT_ON_A_NODEPOOL}},
    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
}


def _merge(base: Any, override: Any) -> Any:
    """Helm's values merge: maps merge key by key, anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return copy.deepcopy(override)


def karpenter_releases(render: Render, cluster: Cluster) -> list[Obj]:
    """Inputs of the Helm releases of the ``karpenter`` chart for this cluster.

    A release names its cluster in ``settings.clusterName``; when that is not a cluster name of
    the render (unset, or an unresolved output), the release is the cluster's if it depends on the
    cluster's EKS resource, or if the render has only that cluster.
    """
    eks_urns = {
        r["urn"]
        for r in render.resources
        if r.get("type") in ("eks:index:Cluster", "aws:eks/cluster:Cluster") and (r.get("inputs") or {}).get("name") == cluster.name
    }
    out = []
    for r in render.of_type("kubernetes:helm.sh/v3:Release"):
        inputs = r.get("inputs") or {}
        if str(inputs.get("chart") or "").rstrip("/").rsplit("/", 1)[-1] != "karpenter":
            continue
        named = ((inputs.get("values") or {}).get("settings") or {}).get("clusterName")
        ours = eks_urns & set(r.get("dependencies") or []) or list(render.clusters) == [cluster.name]
        if named == cluster.name or (named not in render.clusters and ours):
            out.append(inputs)
    return out


def controller_problems(render: Render, cluster: Cluster, nodes: list[Node]) -> list[str]:
    """NodePools need a Karpenter controller, which must run on a managed group and never on a node it manages."""
    if not cluster.node_pools:
        return []
    releases = karpenter_releases(render, cluster)
    if not releases:
        return [f"{cluster.name}: {len(cluster.node_pools)} NodePools but no Helm release of the karpenter chart for the cluster: nothing launches their nodes"]
    out = []
    for inputs in releases:
        values = inputs.get("values") or {}
        spec = {k: _merge(CHART_PLACEMENT[k], values[k]) if k in values else CHART_PLACEMENT[k] for k in CHART_PLACEMENT}
        landing = [n for n in nodes if not untolerated_taints(spec, n.taints) and pod_matches_node_labels(spec, n.labels)]
        where = f"{cluster.name}: Karpenter controller (Helm release {inputs.get('name')})"
        on_pools = sorted({n.group.name for n in landing if n.pool})
        if on_pools:
            out.append(f"{where} may run on nodes of NodePool {', '.join(on_pools)}: the controller would manage, and may remove, its own node")
        managed = [n for n in landing if n.pool is None]
        if not managed:
            out.append(f"{where}: its nodeSelector/affinity/tolerations match no managed node group: its pods stay Pending")
            continue
        requests = pod_requests({"containers": [{"resources": (values.get("controller") or {}).get("resources") or {}}]})
        if all(fit_problems(requests, n) for n in managed):
            out.append(f"{where}: does not fit any managed node it may run on: " + "; ".join(fit_problems(requests, managed[0])) + f" on {managed[0].label}")
    return out


def karpenter_problems(render: Render) -> list[str]:
    """Every Karpenter problem of every cluster of the render (none for a cluster without NodePools or EC2NodeClasses)."""
    out = []
    for cluster in render.clusters.values():
        if not cluster.node_pools and not cluster.node_classes:
            continue
        nodes, _ = build_nodes(cluster)
        out += ownership_problems(cluster)
        out += inference_only_problems(cluster)
        out += double_provisioning_problems(cluster, nodes)
        out += label_rule_problems(cluster)
        out += node_class_problems(cluster)
        out += pool_problems(cluster)
        out += controller_problems(render, cluster, nodes)
    return out
