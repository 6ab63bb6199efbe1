"""On-demand list prices per region (``data/prices.json``; sources and date inside).

A lookup returns ``None`` when the table has no price: the caller says "unknown"
instead of guessing, because a type missing from a region is often one that
region does not offer.  ``python -m stacks.prices`` regenerates the table from the
public AWS Price List offer files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal


@dataclass(frozen=True)
class Price:
    """One list price in US dollars, with the key of its source in ``PriceTable.sources``."""

    usd: float
    source: str


@dataclass(frozen=True)
class PriceTable:
    retrieved: str
    sources: dict[str, str]
    hours_per_month: int
    regions: dict[str, dict[str, Any]]

    def _entry(self, region: str, *path: str) -> Price | None:
        node: Any = self.regions.get(region)
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return Price(float(node["usd"]), str(node["src"]))

    def instance_hour(self, region: str, instance_type: str) -> Price | None:
        return self._entry(region, "ec2", instance_type)

    def nat_gateway_hour(self, region: str) -> Price | None:
        return self._entry(region, "natGatewayHour")

    def public_ipv4_hour(self, region: str) -> Price | None:
        return self._entry(region, "publicIpv4Hour")

    def eks_cluster_hour(self, region: str, tier: Literal["standard", "extended"]) -> Price | None:
        return self._entry(region, "eksClusterHour", tier)

    def fsx_lustre_month(self, region: str, deployment_type: str, throughput: int) -> Price | None:
        """Per GiB-month of an SSD FSx for Lustre file system of that deployment type and MB/s/TiB tier."""
        return self._entry(region, "fsxLustreGbMonth", f"{deployment_type}-{throughput}")

    def ebs_month(self, region: str, item: Literal["gp3GbMonth", "gp3IopsMonth", "gp3MibpsMonth", "gp2GbMonth"]) -> Price | None:
        """A per-month EBS rate (divide by ``hours_per_month`` for an hourly figure)."""
        return self._entry(region, "ebs", item)


def table_from(doc: dict[str, Any]) -> PriceTable:
    return PriceTable(
        retrieved=str(doc["retrieved"]),
        sources=dict(doc["sources"]),
        hours_per_month=int(doc["hoursPerMonth"]),
        regions=dict(doc["regions"]),
    )


@cache
def prices() -> PriceTable:
    """The shipped table."""
    return table_from(json.loads(resources.files("mleks.catalogs.data").joinpath("prices.json").read_text()))
