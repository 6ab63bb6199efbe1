"""AWS tags: the limits AWS enforces, checked before anything is created.

Limits from the EC2 user guide, "Tag restrictions" (``Using_Tags``), which
every service these stacks use follows: at most 50 user tags per resource,
keys of 1-128 and values of 0-256 characters, made of letters, digits,
spaces and ``+ - = . _ : / @``, and no key starting with ``aws:`` (reserved,
and tags with it do not count towards the 50).

The 50 is per resource, so the tags this project and AWS services add to the
same resources count too; a stack file may carry only what is left.
"""

from __future__ import annotations

import unicodedata

from mleks.errors import ConfigError

MAX_TAGS_PER_RESOURCE = 50
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256

PROJECT_TAG_KEYS = ("mleks/cluster", "mleks/role", "mleks/node-group", "mleks/autoscaler", "Name")
"""What this project adds: the cluster on everything, role, group and owner on node groups, Name on instances and volumes."""

PROPAGATED_PROJECT_KEYS = ("mleks/role", "mleks/autoscaler")
"""The project's tags that can change for a node group: they also go on its Auto Scaling group, so new nodes carry the current values."""

SERVICE_TAG_KEYS = (
    "eks:cluster-name",
    "eks:nodegroup-name",
    "kubernetes.io/cluster/<cluster>",
    "k8s.io/cluster-autoscaler/enabled",
    "k8s.io/cluster-autoscaler/<cluster>",
)
"""The most any AWS service adds to a resource that also carries ours (EKS on a managed node
group's instances; the EBS CSI driver adds as many to the volumes it creates)."""

MAX_USER_TAGS = MAX_TAGS_PER_RESOURCE - len(PROJECT_TAG_KEYS) - len(SERVICE_TAG_KEYS)

# Keys other software owns on the resources our tags reach.  The EBS CSI driver refuses to start with
# one of these among its extra volume tags (aws-ebs-csi-driver v1.64, pkg/driver/validation.go
# validateExtraTags: CSIVolumeName, CSIVolumeSnapshotName, ebs.csi.aws.com/cluster-name and the
# kubernetes.io and ebs.csi.aws.com/ prefixes); EKS and cluster-autoscaler own eks: and k8s.io/ tags on the
# Auto Scaling groups, and a user tag of the same key would overwrite theirs, or delete it when removed.
RESERVED_KEYS = ("CSIVolumeName", "CSIVolumeSnapshotName")
# Karpenter owns karpenter.sh/ and karpenter.k8s.aws/ tags on what it launches (its EC2NodeClass CRD
# refuses karpenter.sh/nodepool, karpenter.sh/nodeclaim and karpenter.k8s.aws/ec2nodeclass in spec.tags).
RESERVED_PREFIXES = ("kubernetes.io", "ebs.csi.aws.com/", "k8s.io/", "eks:", "karpenter.sh/", "karpenter.k8s.aws/")

# The AWS tag pattern ``^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`` (EC2 API reference, Tag): letters, separators (a
# space, not a newline or tab, which are control characters), numbers and _ . : / = + - @.
_ALLOWED_PUNCTUATION = frozenset("_.:/=+-@")


def _allowed(text: str) -> bool:
    return all(unicodedata.category(c)[0] in "LZN" or c in _ALLOWED_PUNCTUATION for c in text)


def tag_errors(tags: dict[str, object]) -> list[ConfigError]:
    """Every problem with ``tags``; keys relative to the tag map (``<tag key>``, or empty for the whole map)."""
    errors: list[ConfigError] = []
    if len(tags) > MAX_USER_TAGS:
        errors.append(
            ConfigError(
                "",
                f"{len(tags)} tags",
                f"at most {MAX_USER_TAGS} tags: AWS allows {MAX_TAGS_PER_RESOURCE} per resource, and this project ({len(PROJECT_TAG_KEYS)})"
                f" and EKS ({len(SERVICE_TAG_KEYS)}) add theirs to the same resources",
                "too many tags",
            )
        )
    reserved = {k.lower() for k in PROJECT_TAG_KEYS}
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            errors.append(ConfigError(key, key, f"a key of 1 to {MAX_KEY_LENGTH} characters", f"{len(key)} characters"))
        elif key.lower().startswith("aws:"):
            errors.append(ConfigError(key, key, "a key that does not start with aws: (AWS reserves it)", "a reserved prefix"))
        elif key.lower() in reserved:
            errors.append(ConfigError(key, value, f"a key other than {list(PROJECT_TAG_KEYS)}", "this project sets that tag itself"))
        elif key in RESERVED_KEYS or key.startswith(RESERVED_PREFIXES):
            errors.append(
                ConfigError(
                    key,
                    value,
                    f"a key other than {list(RESERVED_KEYS)} and not starting with {list(RESERVED_PREFIXES)}",
                    "the EBS CSI driver, EKS or cluster-autoscaler owns that key on the volumes and Auto Scaling groups these tags reach",
                )
            )
        elif not _allowed(key):
            errors.append(ConfigError(key, key, "letters, digits, spaces and + - = . _ : / @", "a character AWS does not allow in a tag key"))
        if not isinstance(value, str):
            errors.append(ConfigError(key, value, f'a string; quote it in YAML, e.g. "{value}"', "not a string"))
        elif len(value) > MAX_VALUE_LENGTH:
            errors.append(ConfigError(key, value, f"a value of at most {MAX_VALUE_LENGTH} characters", f"{len(value)} characters"))
        elif not _allowed(value):
            errors.append(
                ConfigError(
                    key,
                    value,
                    "letters, digits, spaces and + - = . _ : / @ (no newline or tab; in YAML, a folded or literal block adds a newline)",
                    "a character AWS does not allow in a tag value",
                )
            )
    return errors
