"""AWS API rules the mock engine does not know, checked on the resource inputs in ``plan.json``.

Sources (read through the search tools; cite them where a rule is used):

* EC2 ``EbsBlockDevice`` / ``CreateVolume`` (the EC2 API model's documentation
  strings, current): gp3 ``VolumeSize`` 1 - 65,536 GiB; ``Iops`` 3,000 - 80,000;
  ``Throughput`` 125 - 2,000 MiB/s.  EBS user guide "General Purpose SSD
  volumes" (gp3 performance): at most 500 IOPS per GiB and 0.25 MiB/s of
  throughput per provisioned IOPS.
* EKS API ``NodeRepairConfig``: ``maxParallelNodesRepairedCount`` and
  ``maxUnhealthyNodeThresholdCount`` minimum 1, the ``...Percentage`` fields
  1 - 100, a count and a percentage of one kind not both;
  ``NodeRepairConfigOverrides``: ``minRepairWaitTimeMins`` minimum 1, "If you
  use this, you must specify all the values", ``repairAction`` one of Replace,
  Reboot, NoAction.  EKS does not check ``nodeMonitoringCondition`` and
  ``nodeUnhealthyReason``: a value the node monitoring agent never reports never
  matches (aws/eks-node-monitoring-agent v1.7.0 ``pkg/reasons/reasons.yaml``,
  copied to ``node_monitoring_reasons.json``).
* EKS service quotas: "Public endpoint access CIDR ranges per cluster" 40, not
  adjustable (L-93A74D60).
* EKS API ``CreateNodegroup``: label keys and values 1 - 63 characters; taint
  keys 1 - 63, values up to 63.  EKS refuses label keys with the reserved
  prefixes ``kubernetes.io/``, ``k8s.io/`` and ``eks.amazonaws.com/`` ("Label
  cannot contain reserved prefixes [kubernetes.io/, k8s.io/, eks.amazonaws.com/]",
  eksctl-io/eksctl#4007; kubernetes/cloud-provider-aws#242).
* Tags (EC2, EKS, IAM ``Tag``): key 1 - 128, value 0 - 256 characters from
  ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``; the ``aws:`` prefix is reserved.  Auto
  Scaling tags: key 1 - 128, value 0 - 256.
* A cluster placement group on a launch template that launches into a
  capacity reservation or a Capacity Block loses instances when the
  reservation was not made in that placement group (eksctl-io/eksctl#7949:
  "we had a reservation for 16 ... only able to get 11";
  terraform-aws-modules/terraform-aws-eks PR #3730, InsufficientInstanceCapacity
  against ODCRs and Capacity Blocks).
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

from tests.cluster.render_output import Obj, Render

GP3_SIZE_GIB = (1, 65536)
GP3_IOPS = (3000, 80000)
GP3_THROUGHPUT_MIBPS = (125, 2000)
GP3_IOPS_PER_GIB = 500
GP3_MIBPS_PER_IOPS = 0.25
MAX_PUBLIC_ACCESS_CIDRS = 40
REPAIR_ACTIONS = {"Replace", "Reboot", "NoAction"}
RESERVED_LABEL_PREFIXES = ("kubernetes.io/", "k8s.io/", "eks.amazonaws.com/")
_TAG_PUNCTUATION = set("_.:/=+-@")


@cache
def node_monitoring_reasons() -> dict[str, list[str]]:
    """Condition -> reason templates the node monitoring agent reports."""
    return json.loads((Path(__file__).parent / "node_monitoring_reasons.json").read_text())["conditions"]


def _reason_matches(reason: str, templates: list[str]) -> bool:
    return any(re.fullmatch(re.escape(t).replace("%d", r"\d+"), reason) for t in templates)


# --- EBS ----------------------------------------------------------------------------------


def gp3_problems(name: str, ebs: Obj) -> list[str]:
    """One gp3 block device mapping against the current EC2 limits."""
    out = []
    size, iops, throughput = ebs.get("volumeSize"), ebs.get("iops"), ebs.get("throughput")
    low, high = GP3_SIZE_GIB
    if size is not None and not low <= int(size) <= high:
        out.append(f"{name}: gp3 volumeSize {size} GiB is outside {low}-{high} GiB")
    if iops is not None:
        low, high = GP3_IOPS
        if not low <= int(iops) <= high:
            out.append(f"{name}: gp3 iops {iops} is outside {low}-{high}")
        if size is not None and int(iops) > GP3_IOPS_PER_GIB * int(size):
            out.append(f"{name}: gp3 iops {iops} exceeds 500 IOPS per GiB of a {size} GiB volume ({500 * int(size)})")
    if throughput is not None:
        low, high = GP3_THROUGHPUT_MIBPS
        if not low <= int(throughput) <= high:
            out.append(f"{name}: gp3 throughput {throughput} MiB/s is outside {low}-{high} MiB/s")
        effective_iops = int(iops) if iops is not None else GP3_IOPS[0]
        if int(throughput) > GP3_MIBPS_PER_IOPS * effective_iops:
            out.append(f"{name}: gp3 throughput {throughput} MiB/s exceeds 0.25 MiB/s per IOPS of {effective_iops} IOPS ({effective_iops // 4} MiB/s)")
    return out


def block_device_problems(render: Render) -> list[str]:
    out = []
    for r in render.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        for mapping in (r.get("inputs") or {}).get("blockDeviceMappings") or []:
            ebs = mapping.get("ebs") or {}
            if ebs.get("volumeType") == "gp3":
                out += gp3_problems(f"launch template {r['name']} {mapping.get('deviceName')}", ebs)
    return out


# --- EKS ----------------------------------------------------------------------------------


def _range_problem(where: str, field: str, value: Any, low: int, high: int | None) -> str | None:
    if value is None:
        return None
    if int(value) < low or (high is not None and int(value) > high):
        return f"{where}: {field} {value} is outside {low}-{high if high is not None else '...'}"
    return None


def node_repair_problems(name: str, repair: Obj) -> list[str]:
    """One node group's ``nodeRepairConfig``."""
    where = f"node group {name} nodeRepairConfig"
    out = [
        p
        for p in (
            _range_problem(where, "maxParallelNodesRepairedCount", repair.get("maxParallelNodesRepairedCount"), 1, None),
            _range_problem(where, "maxParallelNodesRepairedPercentage", repair.get("maxParallelNodesRepairedPercentage"), 1, 100),
            _range_problem(where, "maxUnhealthyNodeThresholdCount", repair.get("maxUnhealthyNodeThresholdCount"), 1, None),
            _range_problem(where, "maxUnhealthyNodeThresholdPercentage", repair.get("maxUnhealthyNodeThresholdPercentage"), 1, 100),
        )
        if p
    ]
    for kind in ("maxParallelNodesRepaired", "maxUnhealthyNodeThreshold"):
        if repair.get(f"{kind}Count") is not None and repair.get(f"{kind}Percentage") is not None:
            out.append(f"{where}: {kind}Count and {kind}Percentage cannot both be set")
    reasons = node_monitoring_reasons()
    for i, override in enumerate(repair.get("nodeRepairConfigOverrides") or []):
        at = f"{where}.nodeRepairConfigOverrides[{i}]"
        missing = [k for k in ("nodeMonitoringCondition", "nodeUnhealthyReason", "minRepairWaitTimeMins", "repairAction") if override.get(k) is None]
        if missing:
            out.append(f"{at}: EKS requires every field of an override; missing {missing}")
        problem = _range_problem(at, "minRepairWaitTimeMins", override.get("minRepairWaitTimeMins"), 1, None)
        if problem:
            out.append(problem)
        if override.get("repairAction") is not None and override["repairAction"] not in REPAIR_ACTIONS:
            out.append(f"{at}: repairAction {override['repairAction']!r} is not one of {sorted(REPAIR_ACTIONS)}")
        condition, reason = override.get("nodeMonitoringCondition"), override.get("nodeUnhealthyReason")
        if condition is not None and condition not in reasons:
            out.append(
                f"{at}: nodeMonitoringCondition {condition!r} is not a condition the node monitoring agent reports ({sorted(reasons)}): it never matches"
            )
        elif condition is not None and reason is not None and not _reason_matches(str(reason), reasons[condition]):
            out.append(f"{at}: nodeUnhealthyReason {reason!r} is not a reason the agent reports for {condition}: it never matches")
    return out


def node_group_problems(render: Render) -> list[str]:
    """Labels, taints and repair config of every managed node group."""
    out = []
    for cluster in render.clusters.values():
        for group in cluster.node_groups:
            where = f"{cluster.name}: node group {group.name}"
            for key, value in group.labels.items():
                if not 1 <= len(key) <= 63:
                    out.append(f"{where}: label key {key!r} must be 1-63 characters (EKS CreateNodegroup)")
                if not 1 <= len(str(value)) <= 63:
                    out.append(f"{where}: label {key!r} value {value!r} must be 1-63 characters (EKS CreateNodegroup)")
                if any(prefix in key for prefix in RESERVED_LABEL_PREFIXES):
                    out.append(f"{where}: label {key!r} uses a prefix EKS refuses ({', '.join(RESERVED_LABEL_PREFIXES)})")
            for taint in group.inputs.get("taints") or []:
                if not 1 <= len(str(taint.get("key") or "")) <= 63 or len(str(taint.get("value") or "")) > 63:
                    out.append(f"{where}: taint {taint} key must be 1-63 and value at most 63 characters")
            if len(group.inputs.get("taints") or []) > 50:
                out.append(f"{where}: more than 50 taints")
            if group.inputs.get("nodeRepairConfig"):
                out += [f"{cluster.name}: {p}" for p in node_repair_problems(group.name, group.inputs["nodeRepairConfig"])]
            version = group.inputs.get("version")
            if version and cluster.version and tuple(map(int, str(version).split("."))) > tuple(map(int, cluster.version.split("."))):
                out.append(f"{where}: version {version} is newer than the cluster's {cluster.version}")
    return out


def cluster_problems(render: Render) -> list[str]:
    out = []
    for r in render.of_type("eks:index:Cluster") + render.of_type("aws:eks/cluster:Cluster"):
        inputs = r.get("inputs") or {}
        cidrs = inputs.get("publicAccessCidrs") or (inputs.get("vpcConfig") or {}).get("publicAccessCidrs") or []
        if len(cidrs) > MAX_PUBLIC_ACCESS_CIDRS:
            out.append(f"cluster {r['name']}: {len(cidrs)} publicAccessCidrs; EKS allows {MAX_PUBLIC_ACCESS_CIDRS} (not adjustable)")
    return out


# --- tags ---------------------------------------------------------------------------------


def _tag_characters_ok(text: str) -> bool:
    return all(unicodedata.category(ch)[0] in "LZN" or ch in _TAG_PUNCTUATION for ch in text)


def tag_problems_of(where: str, tags: dict[str, Any]) -> list[str]:
    """A resource's ``tags`` map against the EC2/EKS/IAM tag rules."""
    out = []
    for key, value in tags.items():
        key, value = str(key), "" if value is None else str(value)
        if not 1 <= len(key) <= 128:
            out.append(f"{where}: tag key {key!r} must be 1-128 characters")
        if len(value) > 256:
            out.append(f"{where}: tag {key!r} value is longer than 256 characters")
        if not _tag_characters_ok(key) or not _tag_characters_ok(value):
            out.append(f"{where}: tag {key!r}={value!r} has characters outside letters, digits, spaces and _.:/=+-@ (a newline or tab is refused)")
        if key.lower().startswith("aws:"):
            out.append(f"{where}: tag key {key!r} uses the reserved aws: prefix")
    return out


def tag_problems(render: Render) -> list[str]:
    out = []
    for r in render.resources:
        inputs = r.get("inputs") or {}
        where = f"{r.get('type')} {r.get('name')}"
        if r.get("type") == "aws:autoscaling/tag:Tag":
            tag = inputs.get("tag") or {}
            if not 1 <= len(str(tag.get("key") or "")) <= 128 or len(str(tag.get("value") or "")) > 256:
                out.append(f"{where}: Auto Scaling tag key must be 1-128 and value at most 256 characters")
            continue
        if not r.get("type", "").startswith("aws:") and r.get("type") != "eks:index:Cluster":
            continue
        if isinstance(inputs.get("tags"), dict):
            out += tag_problems_of(where, inputs["tags"])
        for spec in inputs.get("tagSpecifications") or []:
            out += tag_problems_of(f"{where} tagSpecifications[{spec.get('resourceType')}]", spec.get("tags") or {})
    return out


# --- placement ----------------------------------------------------------------------------


def placement_problems(render: Render) -> list[str]:
    """No cluster placement group on a launch template that targets a reservation or a Capacity Block."""
    out = []
    for cluster in render.clusters.values():
        for group in cluster.node_groups:
            lt = group.launch_template or {}
            if not (lt.get("placement") or {}).get("groupName"):
                continue
            strategy = (group.placement_group or {}).get("strategy")
            reservation = ((lt.get("capacityReservationSpecification") or {}).get("capacityReservationTarget") or {}).get("capacityReservationId")
            capacity_block = (lt.get("instanceMarketOptions") or {}).get("marketType") == "capacity-block"
            if strategy in ("cluster", None) and (reservation or capacity_block):
                what = "a Capacity Block" if capacity_block else f"capacity reservation {reservation}"
                out.append(
                    f"{cluster.name}: node group {group.name}: launch template puts instances in {strategy or 'an unknown'} placement group "
                    f"{lt['placement']['groupName']!r} while launching into {what}: instances of a reservation not made in that group fail to launch"
                )
    return out


def aws_api_problems(render: Render) -> list[str]:
    """Every AWS API problem of the render."""
    return block_device_problems(render) + node_group_problems(render) + cluster_problems(render) + tag_problems(render) + placement_problems(render)
