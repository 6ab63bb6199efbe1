"""What a rendered stack costs per hour: idle (every group at its min size) and at its max.

The estimate reads a plan (``plan.json`` of ``mleks render``) and the price table
(:mod:`mleks.catalogs.prices`).  It covers the EKS control plane, every managed node
group's instances and root volumes, every Karpenter pool (nothing idle; at most its GPU limit
in nodes of its dearest type), NAT gateways and their public IPv4 addresses,
EBS volumes claimed by Kubernetes workloads, and FSx for Lustre datasets.  An item without a price is
reported as unknown, and the totals say they are incomplete; nothing is guessed.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mleks.catalogs.eks_versions import end_of_standard_support, kubernetes_version_status
from mleks.catalogs.gpu import catalog
from mleks.catalogs.prices import Price, PriceTable, prices
from mleks.review.consequences import gpu_quotas, retained_on_delete

# What the estimate leaves out, said in cost.json and the diff so nobody reads the totals as a bill.
EXCLUDES = (
    "data transfer and NAT data processing, load balancers, CloudWatch metrics and logs, "
    "KMS keys and requests, S3, taxes, and any Savings Plan, Reserved Instance or EDP discount"
)
SPOT_NOTE = "spot prices vary by hour and pool; shown at the on-demand price of the dearest listed type, an upper bound"

# gp3 includes 3,000 IOPS and 125 MiB/s per volume; only provisioning above that is billed (EBS pricing page).
GP3_FREE_IOPS = 3000
GP3_FREE_MIBPS = 125


@dataclass
class Item:
    """One priced thing, per hour in US dollars; ``None`` where the table has no price."""

    kind: str
    name: str
    urn: str
    idle: float | None
    max: float | None
    detail: str
    notes: list[str] = field(default_factory=list)
    outlives: str | None = None
    """Why it keeps costing after its resource leaves the stack (retained on delete, a claim Kubernetes keeps), or None."""
    missing: str | None = None
    """A part the figures leave out, and why (a GPU group priced without its volumes when the region's EBS price is unknown)."""

    def incomplete(self, which: str) -> bool:
        """Whether the ``idle`` or ``max`` figure is unknown or leaves a part out."""
        value = self.idle if which == "idle" else self.max
        return value is None or (self.missing is not None and value > 0)


@dataclass
class Section:
    """A cluster's items, or the stack's network."""

    name: str
    items: list[Item] = field(default_factory=list)

    @property
    def idle(self) -> float:
        return sum(i.idle or 0.0 for i in self.items)

    @property
    def max(self) -> float:
        return sum(i.max or 0.0 for i in self.items)


@dataclass
class TeamCost:
    """What one team's queue can have running at once, per hour: its nominal quota, and with borrowing.

    Not added to the totals: the teams' nodes are the train groups' nodes, priced there."""

    name: str
    max: float
    max_with_borrowing: float
    detail: str
    unpriced: list[str] = field(default_factory=list)
    """Groups left out of the figures, and why (a Capacity Block is paid up front, outside the stack)."""


@dataclass
class Estimate:
    stack: str
    region: str | None
    prices_retrieved: str
    spot_discount: float | None
    sections: list[Section]
    sources: dict[str, str]
    teams: list[TeamCost] = field(default_factory=list)
    """Each Kueue team's most per hour: its quota's nodes at their price, and with what it may borrow."""

    @property
    def items(self) -> list[Item]:
        return [i for s in self.sections for i in s.items]

    @property
    def idle(self) -> float:
        return sum(s.idle for s in self.sections)

    @property
    def max(self) -> float:
        return sum(s.max for s in self.sections)

    @property
    def unknown(self) -> list[Item]:
        """Items whose figures are unknown or leave a part out."""
        return [i for i in self.items if i.incomplete("idle") or i.incomplete("max")]

    def document(self) -> dict[str, Any]:
        """The ``cost.json`` content."""
        used = {n.removeprefix("source ") for i in self.items for n in i.notes if n.startswith("source ")}
        return {
            "stack": self.stack,
            "region": self.region,
            "currency": "USD",
            "per": "hour",
            "pricing": "on-demand list prices" + (f", spot at {self.spot_discount:.0%} off" if self.spot_discount else ""),
            "pricesRetrieved": self.prices_retrieved,
            "idle": {"usd": round(self.idle, 4), "complete": not any(i.incomplete("idle") for i in self.items)},
            "max": {"usd": round(self.max, 4), "complete": not any(i.incomplete("max") for i in self.items)},
            "sections": {s.name: {"idle": round(s.idle, 4), "max": round(s.max, 4), "items": [_rounded(asdict(i)) for i in s.items]} for s in self.sections},
            "unknown": [f"{i.kind} {i.name}: {i.detail}" for i in self.unknown],
            # The same, for machines: which items are left out of the totals, where, and why.
            "unpriced": [
                {"section": s.name, "kind": i.kind, "name": i.name, "part": "left out of the figures" if i.missing else "all", "why": i.missing or i.detail}
                for s in self.sections
                for i in s.items
                if i in self.unknown
            ],
            "excludes": EXCLUDES,
            "sources": {k: v for k, v in self.sources.items() if k in used} or self.sources,
            **({"teams": {t.name: _rounded(asdict(t)) for t in self.teams}} if self.teams else {}),
        }


def _retained(r: dict[str, Any]) -> str | None:
    return "retained on delete" if retained_on_delete(r) else None


def _claim_outlives(r: dict[str, Any], storage_class: dict[str, Any]) -> str | None:
    """Why a claimed volume keeps costing once the StatefulSet or claim leaves the stack (Kubernetes docs:
    StatefulSet ``persistentVolumeClaimRetentionPolicy`` defaults to Retain; a StorageClass's ``reclaimPolicy``
    decides whether a released volume is deleted)."""
    if _retained(r):
        return _retained(r)
    spec = (r.get("inputs") or {}).get("spec") or {}
    if r["type"] == "kubernetes:apps/v1:StatefulSet" and (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted", "Retain") == "Retain":
        return "Kubernetes keeps a StatefulSet's claims when it is deleted"
    if storage_class.get("reclaimPolicy") == "Retain":
        return "its StorageClass retains released volumes"
    return None


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def money(usd: float | None) -> str:
    return "unknown" if usd is None else f"${usd:,.2f}" if usd >= 1 else f"${usd:.4f}"


def _src(p: Price) -> str:
    return f"source {p.source}"


def _gib(quantity: Any) -> float | None:
    """A Kubernetes storage quantity in GiB (EBS bills per GiB-month)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?", str(quantity).strip())
    if not m:
        return None
    binary = {"Ki": -20, "Mi": -10, "Gi": 0, "Ti": 10, "Pi": 20}
    decimal = {"": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15}
    unit = m.group(2) or ""
    factor = 2.0 ** binary[unit] if unit in binary else 10.0 ** decimal[unit] / 2**30
    return float(m.group(1)) * factor


def launch_template_inputs(group: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The inputs of the launch template a planned node group depends on ({} if none)."""
    for urn in group.get("dependencies", []):
        if by_urn.get(urn, {}).get("type") == "aws:ec2/launchTemplate:LaunchTemplate":
            return dict(by_urn[urn].get("inputs") or {})
    return {}


def instance_types(group: dict[str, Any], launch_template: dict[str, Any]) -> list[str]:
    """A planned node group's instance types: its own list, or its launch template's one type (Capacity Blocks)."""
    own = (group.get("inputs") or {}).get("instanceTypes")
    return list(own or ([launch_template["instanceType"]] if launch_template.get("instanceType") else []))


class _Pricer:
    def __init__(self, plan: dict[str, Any], table: PriceTable, spot_discount: float | None) -> None:
        self.plan, self.table, self.spot_discount = plan, table, spot_discount
        self.region = plan.get("region")
        self.by_urn = {r["urn"]: r for r in plan.get("resources", [])}
        # The support tier is the one the cluster is in when the bill comes, not when the prices were read.
        self.today = datetime.date.today()
        self.node_prices: dict[str, tuple[float | None, int, int, str]] = {}
        """Group name -> (per node-hour, GPUs per node of its smallest type, max nodes, capacity type)."""

    def per_hour(self, p: Price | None) -> float | None:
        return None if p is None else p.usd / self.table.hours_per_month

    def volume(self, size_gib: float, volume_type: str, iops: Any = None, throughput: Any = None) -> tuple[float | None, str, list[str]]:
        """Hourly cost of one EBS volume, its description and its sources."""
        region = str(self.region)
        desc = f"{size_gib:g} GiB {volume_type}"
        if volume_type == "gp3":
            parts = [(self.table.ebs_month(region, "gp3GbMonth"), size_gib)]
            if iops and int(iops) > GP3_FREE_IOPS:
                parts.append((self.table.ebs_month(region, "gp3IopsMonth"), int(iops) - GP3_FREE_IOPS))
                desc += f" {int(iops)} IOPS"
            if throughput and int(throughput) > GP3_FREE_MIBPS:
                parts.append((self.table.ebs_month(region, "gp3MibpsMonth"), int(throughput) - GP3_FREE_MIBPS))
                desc += f" {int(throughput)} MiB/s"
        elif volume_type == "gp2":
            parts = [(self.table.ebs_month(region, "gp2GbMonth"), size_gib)]
        else:
            return None, desc + " (no price for this volume type in the table)", []
        if any(p is None for p, _ in parts):
            return None, desc + f" (no EBS {volume_type} price for {region} in the table)", []
        hourly = sum(p.usd * qty for p, qty in parts if p) / self.table.hours_per_month
        return hourly, desc, sorted({_src(p) for p, _ in parts if p})

    def no_price(self, types: str) -> str:
        return f"no on-demand price for {types} in {self.region} in the table of {self.table.retrieved} (the type may not be offered there)"

    def control_plane(self, r: dict[str, Any]) -> Item:
        inputs = r.get("inputs") or {}
        name, version = str(inputs.get("name") or r["name"]), str(inputs.get("version"))
        status = kubernetes_version_status(version, self.today)
        tier: Literal["standard", "extended"] = "standard" if status == "standard" else "extended"
        price = self.table.eks_cluster_hour(str(self.region), tier)
        ends = end_of_standard_support(version)
        detail = f"EKS control plane, Kubernetes {version}, {tier} support" + (f" (standard support ends {ends})" if ends and tier == "standard" else "")
        notes = [_src(price)] if price else []
        hourly = price.usd if price else None
        return Item("control-plane", name, r["urn"], hourly, hourly, detail if price else detail + f": no EKS price for {self.region}", notes)

    def node_group(self, r: dict[str, Any]) -> Item:
        inputs = r.get("inputs") or {}
        labels = inputs.get("labels") or {}
        name = str(labels.get("mleks.io/node-group") or labels.get("role") or r["name"])
        scaling = inputs.get("scalingConfig") or {}
        low, high = int(scaling.get("minSize") or 0), int(scaling.get("maxSize") or 0)
        lt = launch_template_inputs(r, self.by_urn)
        types = instance_types(r, lt)
        capacity = str(inputs.get("capacityType") or "ON_DEMAND")
        notes: list[str] = []
        node: float | None
        if not types:
            node, what = None, "no instance type in the plan"
        elif capacity == "CAPACITY_BLOCK":
            node, what = None, f"{types[0]} from an EC2 Capacity Block, paid up front when the block is bought (outside this stack)"
        elif capacity == "SPOT":
            found = [self.table.instance_hour(str(self.region), t) for t in types]
            if any(p is None for p in found):
                missing = [t for t, p in zip(types, found, strict=True) if p is None]
                node, what = None, f"spot {', '.join(types)}: " + self.no_price(", ".join(missing))
            else:
                dearest = max((p for p in found if p), key=lambda p: p.usd)
                node = dearest.usd * (1 - self.spot_discount) if self.spot_discount else dearest.usd
                what = f"spot {', '.join(types)} at {money(node)}/node-hour" + (
                    f" ({self.spot_discount:.0%} below on-demand)" if self.spot_discount else " (spot varies: priced at on-demand)"
                )
                notes += [_src(dearest)] + ([f"spot priced at {self.spot_discount:.0%} below on-demand (your discount)"] if self.spot_discount else [SPOT_NOTE])
        else:
            # EKS launches on-demand nodes in the listed order of priority, so the first type is the one billed.
            price = self.table.instance_hour(str(self.region), types[0])
            if price is None:
                node, what = None, self.no_price(types[0])
            else:
                node, what = price.usd, f"on-demand {types[0]} at {money(price.usd)}/node-hour"
                notes.append(_src(price))
        # Every EBS volume a node gets: the root, and on Bottlerocket the data volume that holds the images.
        volumes = [(m.get("ebs") or {}) for m in lt.get("blockDeviceMappings") or []]
        priced = [
            self.volume(float(v["volumeSize"]), str(v.get("volumeType") or "gp3"), v.get("iops"), v.get("throughput")) for v in volumes if v.get("volumeSize")
        ]
        if priced:
            costs = [c for c, _, _ in priced]
            disk = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
            disk_desc = " + ".join(d for _, d, _ in priced)
            disk_src = sorted({src for _, _, srcs in priced for src in srcs})
        else:
            disk, disk_desc, disk_src = None, "volume sizes not in the plan", []
        notes += disk_src
        detail = f"{low}..{high} nodes; {what}; {'volumes' if len(priced) > 1 else 'root'} {disk_desc}"
        left_out = None
        if node is not None and disk is None:
            # A missing EBS price must not hide a $13/h instance: price the instances, and say the volumes are left out.
            per_node: float | None = node
            left_out = f"its volumes ({disk_desc}): no EBS price for them in {self.region} in the table of {self.table.retrieved}"
        else:
            per_node = None if node is None or disk is None else node + disk
        if per_node is None and node is None and disk is not None:
            # The instances are unpriced, but what the stack itself adds (the disks) is still known.
            notes.append(f"root volumes alone: idle {money(low * disk)}, max {money(high * disk)}")
        gpus = [catalog()[t].accelerator_count for t in types if t in catalog()]
        self.node_prices[name] = (per_node, min(gpus, default=0), high, capacity)
        idle = None if per_node is None else low * per_node
        peak = None if per_node is None else high * per_node
        if low == 0 and per_node is None:
            idle = 0.0  # no nodes at min size, whatever one costs
        return Item("node-group", name, r["urn"], idle, peak, detail, sorted(set(notes), key=notes.index), missing=left_out)

    def node_pool(self, r: dict[str, Any], node_class: dict[str, Any]) -> Item:
        """A Karpenter pool: nothing while idle (it has no minimum), at most its GPU limit's worth of nodes."""
        spec = (r.get("inputs") or {}).get("spec") or {}
        template = spec.get("template") or {}
        name = str(((template.get("metadata") or {}).get("labels") or {}).get("mleks.io/node-group") or r["name"])
        requirements = {q.get("key"): q for q in (template.get("spec") or {}).get("requirements") or []}
        types = list((requirements.get("node.kubernetes.io/instance-type") or {}).get("values") or [])
        capacity = list((requirements.get("karpenter.sh/capacity-type") or {}).get("values") or ["on-demand"])
        limit = int(str((spec.get("limits") or {}).get("nvidia.com/gpu") or 0))
        volumes = [(m.get("ebs") or {}) for m in (node_class.get("spec") or {}).get("blockDeviceMappings") or []]
        priced = [
            self.volume(float(_gib(v["volumeSize"]) or 0), str(v.get("volumeType") or "gp3"), v.get("iops"), v.get("throughput"))
            for v in volumes
            if v.get("volumeSize")
        ]
        disk = None if not priced or any(c is None for c, _, _ in priced) else sum(c for c, _, _ in priced if c is not None)
        notes = sorted({src for _, _, srcs in priced for src in srcs})
        # The dearest mix the limit allows: as many nodes of one type as fit the GPU limit, the type that costs most.
        options = []
        for t in types:
            gpus = catalog()[t].accelerator_count if t in catalog() else 0
            price = self.table.instance_hour(str(self.region), t)
            if not gpus or price is None:
                return Item("node-pool", name, r["urn"], 0.0, None, f"Karpenter pool of {', '.join(types)}: " + self.no_price(t))
            nodes = limit // gpus
            hourly = price.usd * (1 - self.spot_discount) if "spot" in capacity and self.spot_discount else price.usd
            options.append((nodes * (hourly + (disk or 0.0)), nodes, t, price))
        if not options:
            return Item("node-pool", name, r["urn"], 0.0, None, "Karpenter pool without instance types in the plan")
        peak, nodes, dearest, price = max(options, key=lambda o: o[0])
        notes.append(_src(price))
        kind = "spot" if capacity == ["spot"] else "/".join(capacity)
        detail = f"Karpenter pool, 0..{limit} GPUs: at most {nodes} × {kind} {dearest} (the dearest the limit allows)"
        if "spot" in capacity:
            notes.append(f"spot priced at {self.spot_discount:.0%} below on-demand (your discount)" if self.spot_discount else SPOT_NOTE)
        left_out = None
        if disk is None:
            left_out = f"its volumes: no EBS price for them in {self.region} in the table of {self.table.retrieved}"
        return Item("node-pool", name, r["urn"], 0.0, peak, detail, sorted(set(notes), key=notes.index), missing=left_out)

    def team(self, r: dict[str, Any], flavors: dict[str, str], queues: list[dict[str, Any]]) -> TeamCost:
        """A team's ClusterQueue at its flavors' node prices: whole nodes for its GPUs (a node is billed whole).

        With borrowing, it can hold at most its quota plus its borrowing limit, plus no more than the other
        teams of its cohort have as nominal quota there (Kueue lends only unused nominal quota), within the
        group's maxSize."""
        inputs = r.get("inputs") or {}
        cohort = (inputs.get("spec") or {}).get("cohortName")
        lenders: dict[str, int] = {}
        for other in queues:
            if other is not r and ((other.get("inputs") or {}).get("spec") or {}).get("cohortName") == cohort:
                for flavor_name, (quota, _) in gpu_quotas(other).items():
                    lenders[flavor_name] = lenders.get(flavor_name, 0) + quota
        name = str((inputs.get("metadata") or {}).get("name") or r["name"])
        nominal = 0.0
        borrowing = 0.0
        parts: list[str] = []
        unpriced: list[str] = []
        for flavor_name, (quota, borrow) in gpu_quotas(r).items():
            if not quota and not borrow:
                continue
            group = flavors.get(flavor_name, flavor_name)
            per_node, per, most, capacity = self.node_prices.get(group, (None, 0, 0, ""))
            if per_node is None or not per:
                why = "a Capacity Block, paid up front" if capacity == "CAPACITY_BLOCK" else "no price for its nodes"
                # The figures cover the priced groups; this part is named instead of guessed.
                unpriced.append(f"{group} ({quota} GPUs, {quota + borrow} with borrowing): {why}")
                continue
            nodes = -(-quota // per)
            with_borrow = -(-min(quota + min(borrow, lenders.get(flavor_name, 0)), most * per) // per)
            nominal += nodes * per_node
            borrowing += with_borrow * per_node
            parts.append(f"{group}: {quota} GPUs = {nodes} node(s), {with_borrow} with borrowing")
        detail = "; ".join(parts) or "no quota"
        return TeamCost(name, nominal, borrowing, detail, unpriced)

    def file_system(self, r: dict[str, Any]) -> Item:
        inputs = r.get("inputs") or {}
        gib, kind, tput = int(inputs.get("storageCapacity") or 0), str(inputs.get("deploymentType")), int(inputs.get("perUnitStorageThroughput") or 0)
        name = str(((inputs.get("tags") or {}).get("mleks/dataset")) or r["name"])
        desc = f"FSx for Lustre {gib} GiB {kind} SSD at {tput} MB/s/TiB"
        price = self.table.fsx_lustre_month(str(self.region), kind, tput)
        if price is None:
            return Item(
                "file-system",
                name,
                r["urn"],
                None,
                None,
                desc + f": no FSx for Lustre price for {kind} at {tput} MB/s/TiB in {self.region} in the table",
                outlives=_retained(r),
            )
        hourly = gib * price.usd / self.table.hours_per_month
        return Item("file-system", name, r["urn"], hourly, hourly, desc, [_src(price)], outlives=_retained(r))

    def claims(self, r: dict[str, Any], classes: dict[tuple[str, str], dict[str, Any]], cluster: str) -> list[Item]:
        inputs = r.get("inputs") or {}
        meta = inputs.get("metadata") or {}
        spec = inputs.get("spec") or {}
        if r["type"] == "kubernetes:core/v1:PersistentVolumeClaim":
            if spec.get("volumeName"):
                return []  # bound to a volume made elsewhere (a dataset's file system), priced there
            templates, copies, owner = [inputs], 1, f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        else:
            # A claim outlives a StatefulSet scaled to zero, so a stopped notebook still pays for its home.
            templates, copies, owner = (
                list(spec.get("volumeClaimTemplates") or []),
                max(1, int(spec.get("replicas") or 0)),
                f"{meta.get('namespace', '')}/{meta.get('name', '')}",
            )
        out = []
        for t in templates:
            tspec = t.get("spec") or {}
            claim = (t.get("metadata") or {}).get("name", "")
            size = _gib(((tspec.get("resources") or {}).get("requests") or {}).get("storage"))
            sc = classes.get((cluster, str(tspec.get("storageClassName") or "")), {})
            params = sc.get("parameters") or {}
            name = f"{owner} {claim}".strip() if r["type"] != "kubernetes:core/v1:PersistentVolumeClaim" else owner
            if size is None:
                out.append(Item("volume", name, r["urn"], None, None, "storage request not in the plan"))
                continue
            # The EBS CSI driver's default volume type is gp3.
            hourly, desc, src = self.volume(size, str(params.get("type") or "gp3"), params.get("iops"), params.get("throughput"))
            total = None if hourly is None else copies * hourly
            kept = " retained when the workload is deleted" if sc.get("reclaimPolicy") == "Retain" else ""
            out.append(Item("volume", name, r["urn"], total, total, f"{copies} × {desc} claim{kept}", src, outlives=_claim_outlives(r, sc)))
        return out


def estimate(plan: dict[str, Any], *, table: PriceTable | None = None, spot_discount: float | None = None) -> Estimate:
    """The hourly cost of ``plan``, idle and at max, per cluster and for the network."""
    table = table or prices()
    if spot_discount is not None and not 0 <= spot_discount < 1:
        raise ValueError(f"spot discount {spot_discount!r}: give a fraction from 0 to below 1, e.g. 0.6 for 60% off on-demand")
    pricer = _Pricer(plan, table, spot_discount)
    resources = plan.get("resources", [])
    sections: dict[str, Section] = {}

    def section(name: str) -> Section:
        return sections.setdefault(name, Section(name))

    for r in resources:
        if r["type"] == "eks:index:Cluster":
            item = pricer.control_plane(r)
            section(item.name).items.append(item)
    for r in resources:
        if r["type"] == "aws:eks/nodeGroup:NodeGroup":
            section(str((r.get("inputs") or {}).get("clusterName") or "?")).items.append(pricer.node_group(r))
    region = str(plan.get("region"))
    hourly_items = {
        "aws:ec2/natGateway:NatGateway": ("nat-gateway", "NAT gateway hours", table.nat_gateway_hour(region)),
        "aws:ec2/eip:Eip": ("public-ipv4", "public IPv4 address", table.public_ipv4_hour(region)),
    }
    for r in resources:
        if r["type"] in hourly_items:
            kind, what, p = hourly_items[r["type"]]
            usd = p.usd if p else None
            detail = what if p else f"{what}: no price for {region} in the table"
            section("network").items.append(Item(kind, r["name"], r["urn"], usd, usd, detail, [_src(p)] if p else []))

    for r in resources:
        if r["type"] == "aws:fsx/lustreFileSystem:LustreFileSystem":
            # The dataset component's parent is the cluster it serves.
            owner = pricer.by_urn.get(pricer.by_urn.get(r.get("parent", ""), {}).get("parent", ""), {})
            section(str(owner.get("name") or "?")).items.append(pricer.file_system(r))

    # Kubernetes objects belong to the cluster of their provider, whose parent is the cluster component.
    def cluster_of(r: dict[str, Any]) -> str:
        provider = str((r.get("options") or {}).get("provider") or "")
        if provider not in pricer.by_urn:  # a provider reference may carry "::<id>" after the URN
            provider = provider.rsplit("::", 1)[0]
        parent = pricer.by_urn.get(pricer.by_urn.get(provider, {}).get("parent", ""), {})
        return str(parent.get("name") or "?")

    node_classes = {
        (cluster_of(r), str(((r.get("inputs") or {}).get("metadata") or {}).get("name"))): r.get("inputs") or {}
        for r in resources
        if r["type"] == "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
    }
    for r in resources:
        if r["type"] == "kubernetes:karpenter.sh/v1:NodePool":
            cluster = cluster_of(r)
            ref = ((((r.get("inputs") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeClassRef") or {}
            section(cluster).items.append(pricer.node_pool(r, node_classes.get((cluster, str(ref.get("name"))), {})))
    flavors = {
        str(((r.get("inputs") or {}).get("metadata") or {}).get("name")): str(
            (((r.get("inputs") or {}).get("spec") or {}).get("nodeLabels") or {}).get("mleks.io/node-group")
        )
        for r in resources
        if r["type"] == "kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor"
    }
    classes = {
        (cluster_of(r), str(((r.get("inputs") or {}).get("metadata") or {}).get("name"))): r.get("inputs") or {}
        for r in resources
        if r["type"] == "kubernetes:storage.k8s.io/v1:StorageClass"
    }
    for r in resources:
        if r["type"] in ("kubernetes:apps/v1:StatefulSet", "kubernetes:core/v1:PersistentVolumeClaim"):
            cluster = cluster_of(r)
            section(cluster).items.extend(pricer.claims(r, classes, cluster))
    ordered = sorted(sections.values(), key=lambda s: (s.name == "network", s.name))
    queues = [r for r in resources if r["type"] == "kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue"]
    teams = [pricer.team(r, flavors, queues) for r in queues]
    return Estimate(str(plan.get("stack")), plan.get("region"), table.retrieved, spot_discount, ordered, table.sources, teams)


def summary_lines(est: Estimate) -> list[str]:
    """The cost block under the resource tree."""
    lines = [f"cost per hour ({est.region}, on-demand list prices of {est.prices_retrieved}): idle {total_text(est, 'idle')}, max {total_text(est, 'max')}"]
    for s in est.sections:
        lines.append(f"  {s.name}: idle {money(s.idle)}, max {money(s.max)}")
        for i in s.items:
            left_out = f"; not in these figures: {i.missing}" if i.missing else ""
            lines.append(f"    {i.kind} {i.name}: idle {money(i.idle)}, max {money(i.max)}  [{i.detail}{left_out}]")
    if est.unknown:
        lines.append(f"  not in the totals: {'; '.join(f'{i.kind} {i.name}' for i in est.unknown)}")
    for t in est.teams:
        left_out = f"; not in these figures: {'; '.join(t.unpriced)}" if t.unpriced else ""
        lines.append(f"  team {t.name} at most: {money(t.max)}, {money(t.max_with_borrowing)} with borrowing  [{t.detail}{left_out}]")
    lines.append(f"  not estimated: {EXCLUDES}")
    return lines


def total_text(est: Estimate, which: str) -> str:
    """``$12.34`` or ``$12.34 + unknown`` for the ``idle`` or ``max`` total."""
    value = est.idle if which == "idle" else est.max
    return money(value) + (" + unknown" if any(i.incomplete(which) for i in est.items) else "")
