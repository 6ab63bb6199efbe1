"""Regenerate ``mleks/catalogs/data/prices.json`` from the public AWS Price List offer files.

    python -m stacks.prices                         # download and rewrite the table (needs internet, no AWS account)
    python -m stacks.prices --offers-dir DIR        # read DIR/<offer>/<region>.csv instead (how the tests run it)
    python -m stacks.prices --regions us-west-2,eu-west-1 --out /tmp/prices.json

It reads the CSV form of three offers per region, streaming, so a regional EC2 file of
several hundred MB needs little memory:

- ``AmazonEC2``: Linux on-demand instance hours (shared tenancy, no pre-installed
  software or licence), NAT gateway hours, EBS gp3/gp2 storage and gp3 IOPS/throughput;
- ``AmazonEKS``: cluster hours in standard and extended support;
- ``AmazonVPC``: in-use public IPv4 address hours;
- ``AmazonFSx``: FSx for Lustre SSD storage per GB-month, by deployment type and
  throughput tier (PERSISTENT_1 at 50/100/200, PERSISTENT_2 at 125/250/500/1000
  MB/s/TiB, SCRATCH_2).

from ``https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/<offer>/current/<region>/index.csv``.
The instance types priced are those of the GPU catalog plus those already in the
table (the example stacks' system types); ``--extra-types`` adds more.  A type the
region's file does not price goes into that region's ``unpriced`` list.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import sys
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from mleks.catalogs.gpu import catalog

TABLE = Path(__file__).resolve().parent.parent / "components" / "mleks" / "catalogs" / "data" / "prices.json"
URL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/{offer}/current/{region}/index.csv"
OFFERS = ("AmazonEC2", "AmazonEKS", "AmazonVPC", "AmazonFSx")
# FSx for Lustre SSD throughput tiers per deployment type (FSx for Lustre user guide, "Deployment options"):
# the offer file says only "Persistent" and the tier, and the two persistent generations have disjoint tiers.
LUSTRE_TIERS = {"PERSISTENT_1": (50, 100, 200), "PERSISTENT_2": (125, 250, 500, 1000)}
SOURCE = "price-list"

Reader = Callable[[str, str], Iterable[str]]


def download(offer: str, region: str) -> Iterator[str]:
    """The lines of one offer file, streamed from AWS."""
    with urllib.request.urlopen(URL.format(offer=offer, region=region), timeout=300) as response:
        yield from io.TextIOWrapper(response, encoding="utf-8", newline="")


def from_folder(folder: Path) -> Reader:
    def read(offer: str, region: str) -> Iterator[str]:
        with (folder / offer / f"{region}.csv").open(encoding="utf-8", newline="") as f:
            yield from f

    return read


def rows(lines: Iterable[str]) -> tuple[dict[str, str], Iterator[dict[str, str]]]:
    """The offer file's metadata (``Publication Date``, ``Version``, ...) and its price rows.

    The CSV form starts with a few ``"Key","Value"`` lines, then the header row, which starts with ``SKU``.
    """
    it = iter(csv.reader(lines))
    meta: dict[str, str] = {}
    for record in it:
        if record and record[0] == "SKU":
            header = record
            break
        if len(record) >= 2:
            meta[record[0]] = record[1]
    else:
        raise ValueError("not an AWS Price List CSV offer file: no header row starting with SKU")
    return meta, (dict(zip(header, r, strict=False)) for r in it)


def _usd(row: dict[str, str]) -> float | None:
    if row.get("Currency") != "USD" or row.get("TermType") != "OnDemand":
        return None
    try:
        value = float(row.get("PricePerUnit") or "")
    except ValueError:
        return None
    return value if value > 0 else None


def _entry(usd: float) -> dict[str, Any]:
    return {"usd": round(usd, 6), "src": SOURCE}


def _is_linux_on_demand_instance(row: dict[str, str]) -> bool:
    # Dedicated hosts, Windows/RHEL, SQL images, reservations and capacity-block rows all share the instance type.
    return (
        row.get("Product Family") == "Compute Instance"
        and row.get("Unit") == "Hrs"
        and row.get("Operating System") == "Linux"
        and row.get("Tenancy") == "Shared"
        and row.get("Pre Installed S/W") in ("NA", "")
        and row.get("License Model") in ("No License required", "")
        and row.get("CapacityStatus") in ("Used", "")
        and row.get("MarketOption", "OnDemand") in ("OnDemand", "")
    )


def ec2_prices(lines: Iterable[str], types: set[str]) -> tuple[dict[str, Any], str]:
    meta, records = rows(lines)
    out: dict[str, Any] = {"ec2": {}, "ebs": {}}
    for row in records:
        usd = _usd(row)
        if usd is None:
            continue
        family, usage, api = row.get("Product Family"), row.get("usageType", ""), row.get("Volume API Name")
        if _is_linux_on_demand_instance(row) and row.get("Instance Type") in types:
            out["ec2"][row["Instance Type"]] = _entry(usd)
        elif family == "NAT Gateway" and usage.endswith("NatGateway-Hours"):
            out["natGatewayHour"] = _entry(usd)
        elif family == "Storage" and api in ("gp3", "gp2") and row.get("Unit") == "GB-Mo":
            out["ebs"][f"{api}GbMonth"] = _entry(usd)
        elif api == "gp3" and "VolumeP-IOPS.gp3" in usage and row.get("Unit") == "IOPS-Mo":
            out["ebs"]["gp3IopsMonth"] = _entry(usd)
        elif api == "gp3" and "VolumeP-Throughput.gp3" in usage:
            # Billed per MiB/s-month; the offer file states the unit, in GiB/s or MiB/s.
            unit = row.get("Unit", "").lower()
            out["ebs"]["gp3MibpsMonth"] = _entry(usd / 1024 if unit.startswith("gibps") else usd)
    return out, meta.get("Publication Date", "?")


def eks_prices(lines: Iterable[str]) -> tuple[dict[str, Any], str]:
    meta, records = rows(lines)
    out: dict[str, Any] = {}
    for row in records:
        usd, usage = _usd(row), row.get("usageType", "")
        if usd is None or row.get("Unit") != "Hrs":
            continue
        if usage.endswith("AmazonEKS-Hours:perCluster"):
            out["standard"] = _entry(usd)
        elif usage.endswith("AmazonEKS-Hours:extendedSupport"):
            out["extended"] = _entry(usd)
    return ({"eksClusterHour": out} if out else {}), meta.get("Publication Date", "?")


def vpc_prices(lines: Iterable[str]) -> tuple[dict[str, Any], str]:
    meta, records = rows(lines)
    for row in records:
        usd = _usd(row)
        if usd is not None and row.get("Unit") == "Hrs" and row.get("usageType", "").endswith("PublicIPv4:InUseAddress"):
            return {"publicIpv4Hour": _entry(usd)}, meta.get("Publication Date", "?")
    return {}, meta.get("Publication Date", "?")


def _field(row: dict[str, str], name: str) -> str:
    """A column by name, whatever its capitals: the offer files' attribute columns have varied in case
    (``File system type`` in the FSx offer, ``Deployment Option`` in others)."""
    if name in row:
        return row[name]
    lowered = name.lower()
    return next((v for k, v in row.items() if k.lower() == lowered), "")


def fsx_prices(lines: Iterable[str]) -> tuple[dict[str, Any], str]:
    """FSx for Lustre SSD storage prices, keyed ``<deployment type>-<MB/s/TiB>`` as the table has them (``SCRATCH_2-0``)."""
    meta, records = rows(lines)
    out: dict[str, Any] = {}
    for row in records:
        usd = _usd(row)
        if usd is None or row.get("Product Family") != "Storage" or row.get("Unit") != "GB-Mo":
            continue
        if _field(row, "File system type") != "Lustre" or _field(row, "Storage type") != "SSD" or "Backup" in row.get("usageType", ""):
            continue
        option, tier_text = _field(row, "Deployment option"), _field(row, "Throughput capacity")
        if option.startswith("Scratch"):
            out["SCRATCH_2-0"] = _entry(usd)
            continue
        if option != "Persistent" or not tier_text.isdigit():
            continue
        tier = int(tier_text)
        kind = next((k for k, tiers in LUSTRE_TIERS.items() if tier in tiers), None)
        if kind is not None:
            out[f"{kind}-{tier}"] = _entry(usd)
    return ({"fsxLustreGbMonth": dict(sorted(out.items()))} if out else {}), meta.get("Publication Date", "?")


def build(regions: list[str], read: Reader, types: set[str], today: datetime.date) -> dict[str, Any]:
    """The whole table for ``regions``, in ``prices.json``'s layout."""
    gpu_types = set(catalog())
    table: dict[str, Any] = {}
    published: list[str] = []
    for region in regions:
        ec2, ec2_date = ec2_prices(read("AmazonEC2", region), types)
        eks, eks_date = eks_prices(read("AmazonEKS", region))
        vpc, vpc_date = vpc_prices(read("AmazonVPC", region))
        fsx, fsx_date = fsx_prices(read("AmazonFSx", region))
        entry = {**ec2, **eks, **vpc, **fsx}
        entry["ec2"] = dict(sorted(entry["ec2"].items()))
        if not entry["ebs"]:
            del entry["ebs"]
        entry["unpriced"] = sorted(gpu_types - entry["ec2"].keys())
        table[region] = entry
        published.append(f"{region}: EC2 {ec2_date}, EKS {eks_date}, VPC {vpc_date}, FSx {fsx_date}")
    return {
        "_about": "On-demand Linux list prices in USD, shared tenancy, per region. Regenerate with `python -m stacks.prices`;"
        " a type or item missing from a region is unknown, never guessed.",
        "retrieved": today.isoformat(),
        "sources": {SOURCE: f"AWS Price List offer files ({URL}), publication dates: " + "; ".join(published)},
        "hoursPerMonth": 730,
        "regions": table,
    }


def main(argv: list[str] | None = None) -> int:
    current = json.loads(TABLE.read_text())
    parser = argparse.ArgumentParser(prog="python -m stacks.prices", description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", default=",".join(sorted(current["regions"])), help="comma-separated (default: the table's regions)")
    parser.add_argument("--offers-dir", type=Path, help="read <dir>/<offer>/<region>.csv instead of downloading")
    parser.add_argument("--extra-types", default="", help="comma-separated instance types to price besides the GPU catalog and the table's")
    parser.add_argument("--out", type=Path, default=TABLE, help="where to write (default: the shipped mleks/catalogs/data/prices.json)")
    args = parser.parse_args(argv)
    known = {t for r in current["regions"].values() for t in r.get("ec2", {})}
    types = set(catalog()) | known | {t for t in args.extra_types.split(",") if t}
    read = from_folder(args.offers_dir) if args.offers_dir else download
    doc = build([r for r in args.regions.split(",") if r], read, types, datetime.date.today())
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    for region, entry in doc["regions"].items():
        print(f"{region}: {len(entry['ec2'])} instance types priced, {len(entry['unpriced'])} GPU catalog types unpriced", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
