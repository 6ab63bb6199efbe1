"""S3 access for workloads: locations, the AWS partition of a region, and IRSA policies.

Training jobs read data prefixes and write one checkpoint prefix; inference
services read one model prefix.  Both give a pod exactly that through its IRSA
role (:class:`~mleks.workload_identity.ServiceAccountRole`), with the
policy :func:`s3_policy` writes from the locations :func:`parse_s3_uri` reads.
Everything here is a plain function, so tests call it without the engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mleks.catalogs.partitions import PARTITION_PATTERN, partition_of, service_host
from mleks.errors import ConfigError

# Region name prefixes and their partitions, most specific first (``us-iso-``
# would also match ``us-isob-``).  Every other region is in ``aws``.
_S3_URI = re.compile(r"s3://(?P<bucket>[^/]+)(?:/(?P<prefix>.*))?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A key id is a UUID, or ``mrk-`` and 32 hex digits for a multi-Region key.
_KMS_KEY_ARN = re.compile(rf"arn:({PARTITION_PATTERN}):kms:[a-z0-9-]+:\d{{12}}:key/([0-9a-f-]{{36}}|mrk-[0-9a-f]{{32}})")


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``: a bucket and a key prefix, as written ("" for the whole bucket).

    The prefix is a plain key prefix: ``datasets/imagenet`` also covers
    ``datasets/imagenet-21k/``.  A *folder* (:meth:`as_folder`) ends with ``/``
    and covers only what is inside it; listing the folder's own name (without
    the slash) is allowed too, as S3 clients do to find the folder.
    """

    bucket: str
    prefix: str
    folder: bool = False

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def as_folder(self) -> S3Location:
        """The same place as a folder: ``s3://b/llm`` and ``s3://b/llm/`` both become ``llm/``."""
        inner = self.prefix.strip("/")
        return S3Location(self.bucket, f"{inner}/" if inner else "", folder=True)

    def object_arn(self, partition: str) -> str:
        return f"arn:{partition}:s3:::{self.bucket}/{self.prefix}*"

    @property
    def list_prefixes(self) -> list[str]:
        """The ``s3:prefix`` values ListBucket may be called with; none needed for a whole bucket."""
        if not self.prefix:
            return []
        own = [self.prefix.rstrip("/")] if self.folder else []
        return [*own, f"{self.prefix}*"]


def parse_s3_uri(uri: str) -> S3Location:
    """``s3://bucket/prefix`` -> :class:`S3Location`, the prefix kept as written.

    The prefix goes into an IAM policy, so whatever would widen or bend it is
    refused: wildcards (``*``, ``?``), ``$`` (IAM policy variables such as
    ``${aws:username}``) and empty path segments (``a//b``).
    """
    match = _S3_URI.fullmatch(uri)
    if match is None or not _BUCKET.fullmatch(match["bucket"]) or ".." in match["bucket"]:
        raise ConfigError("", uri, "an S3 URI such as s3://my-bucket/datasets/imagenet/ (a bucket and an optional key prefix)", "not an s3://bucket/prefix URI")
    prefix = match["prefix"] or ""
    if any(c in prefix for c in "*?$") or "//" in prefix.strip("/"):
        accepted = "a plain key prefix, with no wildcards (* ?), no $ and no empty path segments (//); every key under it is covered"
        raise ConfigError("", uri, accepted, "the prefix would widen or bend the IAM policy")
    return S3Location(match["bucket"], prefix)


def check_kms_key_arn(value: str | None) -> str | None:
    """A KMS key ARN of any partition, or ``None``."""
    if value is not None and not _KMS_KEY_ARN.fullmatch(value):
        raise ConfigError("", value, "a KMS key ARN such as arn:aws:kms:us-west-2:123456789012:key/<uuid>", "not a KMS key ARN")
    return value


def s3_policy(
    read: Sequence[S3Location],
    write: S3Location | None = None,
    *,
    region: str,
    kms_key_arn: str | None = None,
) -> dict[str, Any] | None:
    """The IRSA permissions of a workload: read the ``read`` locations, read and write ``write``.

    * ``s3:ListBucket`` on each bucket, limited by an ``s3:prefix`` condition
      to the given prefixes (unconditional only for a whole-bucket location);
    * ``s3:GetObject`` under every location, ``write`` included: a workload
      reads back what it wrote (a retried training job resumes from its last
      checkpoint);
    * ``s3:PutObject`` (which also authorises CreateMultipartUpload, UploadPart
      and CompleteMultipartUpload), ``s3:AbortMultipartUpload`` and
      ``s3:ListMultipartUploadParts`` under ``write`` only (today the one writer
      is a training job, on its checkpoint prefix);
    * with ``kms_key_arn``, ``kms:Decrypt`` on that key through S3 only, for
      buckets encrypted with a customer managed key, and ``kms:GenerateDataKey``
      too when there is a ``write`` location (S3 asks KMS for a data key on
      every SSE-KMS upload).

    Deliberately absent: ``s3:DeleteObject`` (rotate old objects with an S3
    lifecycle rule), anything on other buckets, and KMS without a named key.
    ``None`` when the workload touches no S3.
    """
    readable = [*read, *([write] if write else [])]
    if not readable:
        return None
    partition = partition_of(region)
    statements: list[dict[str, Any]] = []
    for i, bucket in enumerate(sorted({loc.bucket for loc in readable})):
        here = sorted((loc for loc in readable if loc.bucket == bucket), key=lambda loc: loc.prefix)
        statement: dict[str, Any] = {"Sid": f"ListPrefixes{i}", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:{partition}:s3:::{bucket}"}
        if all(loc.prefix for loc in here):
            prefixes = list(dict.fromkeys(p for loc in here for p in loc.list_prefixes))
            statement["Condition"] = {"StringLike": {"s3:prefix": prefixes}}
        statements.append(statement)
    objects = sorted({loc.object_arn(partition) for loc in readable})
    statements.append({"Sid": "ReadObjects", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects[0] if len(objects) == 1 else objects})
    if write is not None:
        statements.append(
            {
                "Sid": "WriteCheckpoints",
                "Effect": "Allow",
                "Action": ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"],
                "Resource": write.object_arn(partition),
            }
        )
    if kms_key_arn:
        statements.append(
            {
                "Sid": "UseBucketKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"] if write is not None else "kms:Decrypt",
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": service_host("s3", region)}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
