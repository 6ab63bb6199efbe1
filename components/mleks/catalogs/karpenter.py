"""Karpenter at the release this project pins: versions, supported clusters, CRDs and the upstream IAM.

Everything here comes from aws/karpenter-provider-aws at one release (``data/karpenter/``, sources in
``data/SOURCES.md``).  Bump :data:`VERSION`, the image digest, the CRDs and the policy files together.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import yaml

from mleks.catalogs.partitions import partition_of
from mleks.errors import ConfigError

# aws/karpenter-provider-aws c88abbbad ("Stable Release updates Release v1.14.1", 2026-08-21):
# charts/karpenter/Chart.yaml version 1.14.1, values.yaml controller.image tag and digest.
VERSION = "1.14.1"
CHART = "oci://public.ecr.aws/karpenter/karpenter"
IMAGE_REPOSITORY = "public.ecr.aws/karpenter/controller"
IMAGE_DIGEST = "sha256:445baefaaa689029cc12ac1f659b916b0b82fb14308ce536f8521fcf079116fa"

# website/content/en/docs/upgrading/compatibility.md at the same commit: the matrix's columns run
# from Kubernetes 1.30 to 1.36, and each needs at most Karpenter 1.13 (1.36 >= 1.13, 1.35 >= 1.9).
SUPPORTED_KUBERNETES = ("1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36")

# The EKS-optimized AL2023 AMI release Karpenter resolves ``al2023@<version>`` to (SSM parameters
# /aws/service/eks/optimized-ami/<k8s>/amazon-linux-2023/<arch>/nvidia/amazon-eks-node-al2023-...-v<date>).
# awslabs/amazon-eks-ami CHANGELOG.md at tag v20260724: release v20260714 built AL2023 NVIDIA AMIs for
# Kubernetes 1.30 to 1.36.  Pinned, never ``latest``: a new AMI is a drift that replaces every node.
AL2023_AMI_VERSION = "v20260714"

# Karpenter's GPU resource name and well-known labels (karpenter.sh/v1 NodePool docs, "Well-Known Labels").
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ARCH_LABEL = "kubernetes.io/arch"
OS_LABEL = "kubernetes.io/os"
DO_NOT_DISRUPT_ANNOTATION = "karpenter.sh/do-not-disrupt"

# Settings defaults of the pinned chart (charts/karpenter/values.yaml settings.batchMaxDuration):
# Karpenter waits at most this long after the first pending pod before it launches for the batch.
BATCH_MAX_DURATION_S = 10.0

# The NodePool and EC2NodeClass duration fields (their CRDs' patterns): Go durations of whole
# seconds, minutes and hours, or Never where the field allows it.
DURATION = re.compile(r"^([0-9]+(s|m|h))+$")
# The NodePool CRD's pattern for a disruption budget's ``nodes``: a count or a percentage.
BUDGET = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")
AMI_VERSION = re.compile(r"^v\d{8}$")
BOTTLEROCKET_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")

CRD_FILES = (
    "autoscaling.x-k8s.io_capacitybuffers.yaml",
    "karpenter.k8s.aws_ec2nodeclasses.yaml",
    "karpenter.sh_nodeclaims.yaml",
    "karpenter.sh_nodeoverlays.yaml",
    "karpenter.sh_nodepools.yaml",
)


def _data() -> Any:
    return resources.files("mleks.catalogs.data").joinpath("karpenter")


@cache
def _crds() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(_data().joinpath("crds", f).read_text()) for f in CRD_FILES)


def crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions the chart of :data:`VERSION` ships in ``crds/``, as objects (copies)."""
    return copy.deepcopy(list(_crds()))


@cache
def _policy_file() -> dict[str, Any]:
    return dict(json.loads(_data().joinpath("controller_policy.json").read_text()))


@cache
def _interruption_file() -> dict[str, Any]:
    return dict(json.loads(_data().joinpath("interruption.json").read_text()))


def _substitute(node: Any, values: dict[str, str]) -> Any:
    """CloudFormation ``!Sub`` over a parsed document: every ``${Name}`` in every string, keys included."""
    if isinstance(node, dict):
        return {_substitute(k, values): _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, str):

        def one(m: re.Match[str]) -> str:
            if m.group(1) not in values:
                raise KeyError(f"no value for ${{{m.group(1)}}} in the Karpenter policy template")
            return values[m.group(1)]

        return re.sub(r"\$\{([A-Za-z:.]+)\}", one, node)
    return node


def controller_policy_names() -> list[str]:
    """The upstream managed policies, by their CloudFormation names, in the template's order."""
    return list(_policy_file()["policies"])


def controller_policy(*, partition: str, region: str, account_id: str, cluster_name: str, node_role_arn: str, queue_arn: str) -> dict[str, Any]:
    """Upstream's controller policies as one document: every statement of every managed policy, filled in.

    One inline policy instead of upstream's six managed ones: the statements are upstream's, unchanged,
    and an inline policy dies with its role (upstream's ``KarpenterController*-<cluster>`` names would
    also clash between two stacks with one cluster name).
    """
    values = {
        "AWS::Partition": partition,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "ClusterName": cluster_name,
        "KarpenterNodeRole.Arn": node_role_arn,
        "KarpenterInterruptionQueue.Arn": queue_arn,
    }
    statements = [st for doc in _policy_file()["policies"].values() for st in doc["Statement"]]
    return {"Version": "2012-10-17", "Statement": _substitute(statements, values)}


def interruption_rules() -> dict[str, dict[str, Any]]:
    """The EventBridge rules that feed the interruption queue: CloudFormation name -> event pattern."""
    return copy.deepcopy(dict(_interruption_file()["rules"]))


def interruption_queue_settings() -> dict[str, Any]:
    """The queue's upstream properties (message retention, SQS-managed encryption)."""
    return copy.deepcopy(dict(_interruption_file()["queue"]))


def _strings(node: Any) -> Any:
    """Booleans as IAM writes them ("false"): CloudFormation turns the template's YAML booleans into strings."""
    if isinstance(node, dict):
        return {k: _strings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_strings(v) for v in node]
    return str(node).lower() if isinstance(node, bool) else node


def interruption_queue_policy(queue_arn: str, *, source_arns: Sequence[str] = ()) -> dict[str, Any]:
    """Upstream's queue policy: EventBridge (and SQS) may send, nobody may use the queue over plain HTTP.

    With the policy language version stated (upstream's template leaves it out, which means 2008-10-17),
    and, given ``source_arns``, sending allowed from those EventBridge rules only."""
    policy = _strings(_substitute(_interruption_file()["queuePolicy"], {"KarpenterInterruptionQueue.Arn": queue_arn}))
    if source_arns:
        send = policy["Statement"][0]
        send["Condition"] = {"ArnEquals": {"aws:SourceArn": sorted(source_arns)}}
    return {"Version": "2012-10-17", **policy}


def cluster_errors(*, kubernetes_version: str, region: str, version_key: str, region_key: str) -> list[ConfigError]:
    """Why Karpenter :data:`VERSION` cannot run in a cluster of this version and region."""
    errors = []
    unsupported = check_kubernetes_version(kubernetes_version, version_key)
    if unsupported is not None:
        errors.append(unsupported)
    partition = partition_of(region)
    if partition != "aws":
        errors.append(
            ConfigError(
                region_key,
                region,
                "a region of the commercial partition (aws), or managed node groups with cluster-autoscaler",
                f"Karpenter's chart and image are published on ECR Public only, which the {partition} partition cannot reach",
            )
        )
    return errors


def check_kubernetes_version(version: str, key: str = "kubernetesVersion") -> ConfigError | None:
    """Why Karpenter :data:`VERSION` cannot run on a cluster of ``version``, or None."""
    if version in SUPPORTED_KUBERNETES:
        return None
    return ConfigError(
        key,
        version,
        f"one of {list(SUPPORTED_KUBERNETES)} (Karpenter {VERSION}'s compatibility matrix), or no Karpenter group in this cluster",
        f"Karpenter {VERSION} does not support Kubernetes {version}",
    )
