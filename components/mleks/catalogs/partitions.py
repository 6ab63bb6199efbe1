"""AWS partitions: which one a region is in, for building ARNs.

Regions outside the commercial partition (China, GovCloud, the isolated
regions, the European Sovereign Cloud) have their own ARN prefix; an ARN with
``arn:aws:`` there names nothing.  Region prefixes from botocore's endpoint
data (see shared/data/dlc-registry-hostnames.txt for the regions we know).
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources

from mleks.errors import ConfigError

PARTITIONS = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("eusc-", "aws-eusc"),
)

PARTITION_PATTERN = "|".join(sorted({"aws", *(p for _, p in PARTITIONS)}))
"""A regex alternation of every partition name, for validating ARNs."""


# Service endpoint DNS suffix per partition, as in each region's ECR host in
# mleks/catalogs/data/dlc_registries.tsv (botocore 1.44.8 endpoint data).
DNS_SUFFIXES = {
    "aws": "amazonaws.com",
    "aws-cn": "amazonaws.com.cn",
    "aws-us-gov": "amazonaws.com",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
    "aws-iso-e": "cloud.adc-e.uk",
    "aws-iso-f": "csp.hci.ic.gov",
    "aws-eusc": "amazonaws.eu",
}


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to, for ARNs (by the region table, else by name prefix)."""
    known = regions().get(region)
    if known is not None:
        return known
    return next((partition for start, partition in PARTITIONS if region.startswith(start)), "aws")


def service_host(service: str, region: str) -> str:
    """A service's regional endpoint host, e.g. ``s3.cn-north-1.amazonaws.com.cn``."""
    return f"{service}.{region}.{DNS_SUFFIXES[partition_of(region)]}"


@cache
def regions() -> dict[str, str]:
    """Every AWS region and its partition (``mleks/catalogs/data/aws_regions.tsv``, from botocore's endpoint data)."""
    lines = resources.files("mleks.catalogs.data").joinpath("aws_regions.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    assert rows[0] == ["region", "partition", "description"], rows[0]
    return {region: partition for region, partition, _ in rows[1:]}


def check_region(region: str) -> str:
    """A known AWS region; ``ConfigError`` (empty key) naming the closest ones otherwise."""
    if region not in regions():
        close = difflib.get_close_matches(region, sorted(regions()), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        by_partition: dict[str, list[str]] = {}
        for name, partition in sorted(regions().items()):
            by_partition.setdefault(partition, []).append(name)
        listed = "; ".join(f"{p}: {', '.join(names)}" for p, names in sorted(by_partition.items()))
        raise ConfigError("", region, f"an AWS region ({listed})", f"not an AWS region{hint}")
    return region
