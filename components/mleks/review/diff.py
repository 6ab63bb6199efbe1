"""``mleks diff``: compare two offline renders and forecast what ``pulumi up`` would do.

Each side is a folder ``mleks render`` wrote (``<out>/<stack>/plan.json``, or one stack's folder).
Resources are matched by URN; a changed input is an update unless the replacement table
(:mod:`mleks.review.replacements`) says the provider replaces the resource for it.  The result is a
forecast: ``pulumi preview`` sees the real state and computed values, and is the authority.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mleks.review.cost import EXCLUDES, Estimate, Item, estimate, money, total_text
from mleks.review.replacements import path_under, replace_paths, strip_indices

Action = Literal["create", "delete", "update", "replace", "unknown"]

SECRET = "(secret)"
_SECRET_WORDS = ("password", "passwd", "token", "secret", "privatekey", "apikey", "kubeconfig", "credential")
# Inputs whose every value is sensitive, whatever the keys are called.
_SECRET_FIELDS = {"kubernetes:core/v1:Secret": ("data", "stringData")}


class Redacted(str):
    """A hidden value: shown (and serialised) as ``(secret)``, but still compared by content so a change shows up."""

    digest: str

    def __new__(cls, value: Any) -> Redacted:
        obj = super().__new__(cls, SECRET)
        obj.digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
        return obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redacted) and other.digest == self.digest

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.digest)


def _secretish(name: Any) -> bool:
    plain = str(name).lower().replace("_", "").replace("-", "")
    return any(w in plain for w in _SECRET_WORDS)


def redact(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with every sensitive value replaced by a :class:`Redacted`: a Secret's data, keys that name
    a secret, and ``{name: DB_PASSWORD, value: ...}`` environment entries."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            # Flags such as automountServiceAccountToken name a secret but hold none: only data is hidden.
            out = {k: Redacted(v) if _secretish(k) and not isinstance(v, (bool, int, float)) else walk(v) for k, v in value.items()}
            if "value" in out and _secretish(out.get("name", "")):
                out["value"] = Redacted(value["value"])
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    hidden = set(_SECRET_FIELDS.get(type_token, ()))
    return {k: ({kk: Redacted(vv) for kk, vv in v.items()} if isinstance(v, dict) else Redacted(v)) if k in hidden else walk(v) for k, v in inputs.items()}


# Risk tiers, most urgent first; the Markdown groups by them.
DATA_OR_NODES, JOBS, OTHER_REPLACE, UNKNOWN, ROUTINE = range(5)
TIER_TITLES = {
    DATA_OR_NODES: "Needs attention: clusters, nodes and data",
    JOBS: "Jobs that will run",
    OTHER_REPLACE: "Other replacements and deletions",
    UNKNOWN: "Not forecast: check `pulumi preview`",
    ROUTINE: "Routine changes",
}

_CRITICAL_TYPES = {
    "eks:index:Cluster": "cluster",
    "aws:eks/nodeGroup:NodeGroup": "node group",
    "aws:kms/key:Key": "KMS key",
    "aws:ebs/volume:Volume": "EBS volume",
    "kubernetes:core/v1:PersistentVolumeClaim": "volume claim",
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
    "aws:cloudwatch/logGroup:LogGroup": "log group",
    "aws:ec2/vpc:Vpc": "VPC",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:fsx/lustreFileSystem:LustreFileSystem": "FSx file system",
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": "FSx link to S3",
    "kubernetes:core/v1:PersistentVolume": "persistent volume",
}


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any
    forces_replacement: bool = False


@dataclass
class ResourceChange:
    urn: str
    type: str
    name: str
    action: Action
    risk: int
    summary: str
    changes: list[FieldChange] = field(default_factory=list)
    retained: bool = False
    # What the change does to the hourly bill, e.g. "costs $0.0110/h (idle and max)".
    cost: str | None = None


@dataclass
class ItemChange:
    """A priced item whose figures differ between base and head (``None``: not on that side)."""

    section: str
    kind: str
    name: str
    before: Item | None
    after: Item | None


@dataclass
class CostDiff:
    before: Estimate | None
    after: Estimate | None
    items: list[ItemChange]


@dataclass
class StackDiff:
    stack: str
    resources: list[ResourceChange]
    cost: CostDiff | None = None

    def count(self, action: Action) -> int:
        return sum(1 for r in self.resources if r.action == action)


def load_plans(folder: Path) -> dict[str, dict[str, Any]]:
    """Stack name -> plan.json content, for a render folder or a single stack's folder."""
    direct = folder / "plan.json"
    files = [direct] if direct.is_file() else sorted(folder.glob("*/plan.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no plan.json here or in its subfolders; run `mleks render --out {folder}` first")
    plans = {}
    for f in files:
        plan = json.loads(f.read_text())
        plans[plan.get("stack") or f.parent.name] = plan
    return plans


def diff_plans(base: dict[str, Any], head: dict[str, Any], stack: str, *, spot_discount: float | None = None) -> StackDiff:
    """What changes between two plans of one stack, sorted most urgent first, and its cost before and after."""
    old = {r["urn"]: r for r in base.get("resources", []) if r.get("custom", True)}
    new = {r["urn"]: r for r in head.get("resources", []) if r.get("custom", True)}
    out: list[ResourceChange] = []
    for urn in sorted(new.keys() - old.keys()):
        out.append(_created(new[urn]))
    for urn in sorted(old.keys() - new.keys()):
        out.append(_deleted(old[urn]))
    for urn in sorted(old.keys() & new.keys()):
        change = _changed(old[urn], new[urn])
        if change is not None:
            out.append(change)
    out.sort(key=lambda r: (r.risk, _ACTION_ORDER[r.action], r.type, r.name))
    cost = _cost_diff(base, head, spot_discount)
    _annotate_costs(out, cost)
    return StackDiff(stack, out, cost)


def diff_folders(base_dir: Path, head_dir: Path, *, spot_discount: float | None = None) -> list[StackDiff]:
    base, head = load_plans(base_dir), load_plans(head_dir)
    empty: dict[str, Any] = {"resources": []}
    return [diff_plans(base.get(s, empty), head.get(s, empty), s, spot_discount=spot_discount) for s in sorted(base.keys() | head.keys())]


def _cost_diff(base: dict[str, Any], head: dict[str, Any], spot_discount: float | None) -> CostDiff:
    before = estimate(base, spot_discount=spot_discount) if base.get("resources") else None
    after = estimate(head, spot_discount=spot_discount) if head.get("resources") else None

    def keyed(est: Estimate | None) -> dict[tuple[str, str, str], tuple[str, Item]]:
        return {(s.name, i.kind, i.name): (s.name, i) for s in (est.sections if est else []) for i in s.items}

    old, new = keyed(before), keyed(after)
    items = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, (key[0], None))[1], new.get(key, (key[0], None))[1]
        if a is None or b is None or (a.idle, a.max) != (b.idle, b.max):
            items.append(ItemChange(key[0], key[1], key[2], a, b))
    return CostDiff(before, after, items)


def _per_hour(item: Item) -> str:
    if item.idle == item.max:
        return f"{money(item.max)}/h"
    return f"{money(item.idle)}/h idle, {money(item.max)}/h at max"


def _annotate_costs(resources: list[ResourceChange], cost: CostDiff) -> None:
    """Put each priced item's change on the resource that carries it (a new notebook's StatefulSet, a node group)."""
    by_urn: dict[str, list[ItemChange]] = {}
    for change in cost.items:
        urn = (change.after or change.before).urn  # type: ignore[union-attr]
        by_urn.setdefault(urn, []).append(change)
    for r in resources:
        parts = []
        for c in by_urn.get(r.urn, []):
            if c.before is None and c.after is not None:
                parts.append(f"adds {_per_hour(c.after)} ({c.after.detail})")
            elif c.after is None and c.before is not None:
                parts.append(f"removes {_per_hour(c.before)}")
            elif c.before is not None and c.after is not None:
                parts.append(f"{_per_hour(c.before)} → {_per_hour(c.after)}")
        if parts:
            r.cost = "; ".join(parts)


_ACTION_ORDER = {"replace": 0, "delete": 1, "unknown": 2, "update": 3, "create": 4}


def _kind(resource: dict[str, Any]) -> str | None:
    kind = (resource.get("inputs") or {}).get("kind")
    return kind if isinstance(kind, str) else None


def _label(resource: dict[str, Any]) -> str:
    inputs = resource.get("inputs") or {}
    meta = inputs.get("metadata") if isinstance(inputs.get("metadata"), dict) else None
    if meta and meta.get("name"):
        return f"{meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta['name']}"
    return str(resource.get("name"))


def _retained(resource: dict[str, Any]) -> bool:
    options = resource.get("options") or {}
    return bool(options.get("retainOnDelete") or options.get("protect"))


def _created(r: dict[str, Any]) -> ResourceChange:
    name = _label(r)
    if r["type"] == "kubernetes:batch/v1:Job":
        return ResourceChange(r["urn"], r["type"], name, "create", JOBS, f"creates Job `{name}`: it starts running on `pulumi up`")
    return ResourceChange(r["urn"], r["type"], name, "create", ROUTINE, f"creates {_noun(r)} `{name}`")


def _deleted(r: dict[str, Any]) -> ResourceChange:
    name, retained = _label(r), _retained(r)
    what = _critical_consequence(r, "delete", name)
    tier = DATA_OR_NODES if r["type"] in _CRITICAL_TYPES else OTHER_REPLACE
    spec = (r.get("inputs") or {}).get("spec") or {}
    if (r.get("options") or {}).get("retainOnDelete"):
        # Nothing is lost: say that instead of the generic warning.
        noun = _CRITICAL_TYPES.get(r["type"], _noun(r))
        what = f"removes {noun} `{name}` from the stack (retained on delete: Pulumi forgets it, the cloud resource and its data stay)"
    elif retained:
        what += " (protected: `pulumi up` stops until protection is removed)"
    elif r["type"] == "kubernetes:core/v1:PersistentVolume" and spec.get("persistentVolumeReclaimPolicy") == "Retain":
        what = f"deletes persistent volume `{name}`: the Kubernetes object only; with reclaim policy Retain its storage and data stay"
    return ResourceChange(r["urn"], r["type"], name, "delete", tier, what, retained=retained)


def _changed(old: dict[str, Any], new: dict[str, Any]) -> ResourceChange | None:
    ignored = tuple((new.get("options") or {}).get("ignoreChanges") or ())
    before, after = redact(old["type"], old.get("inputs") or {}), redact(new["type"], new.get("inputs") or {})
    changes = [c for c in _field_changes(before, after) if not path_under(c.path, ignored)]
    if not changes:
        return None
    name = _label(new)
    paths = replace_paths(new["type"], _kind(new))
    if paths is None:
        return ResourceChange(
            new["urn"],
            new["type"],
            name,
            "unknown",
            UNKNOWN,
            f"changes {_noun(new)} `{name}`; this type is not in the replacement table: check `pulumi preview`",
            changes,
        )
    marked = [FieldChange(c.path, c.old, c.new, path_under(c.path, paths)) for c in changes]
    forcing = [c.path for c in marked if c.forces_replacement]
    if forcing:
        shown = ", ".join(f"`{p}`" for p in forcing[:3]) + (f" and {len(forcing) - 3} more" if len(forcing) > 3 else "")
        summary = _critical_consequence(new, "replace", name) + f" (forced by {shown})"
        if new["type"] == "kubernetes:batch/v1:Job":
            tier = JOBS
        elif new["type"] in _CRITICAL_TYPES:
            tier = DATA_OR_NODES
        else:
            tier = OTHER_REPLACE
        if _retained(old):
            summary += "; the old one is retained on delete"
        return ResourceChange(new["urn"], new["type"], name, "replace", tier, summary, marked, retained=_retained(old))
    summary, tier = _update_consequence(new, name, marked)
    return ResourceChange(new["urn"], new["type"], name, "update", tier, summary, marked)


def _update_consequence(r: dict[str, Any], name: str, changes: list[FieldChange]) -> tuple[str, int]:
    touched = {strip_indices(c.path).split(".")[0] for c in changes}
    if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate" and touched - {"tags", "description"}:
        # Any change to what instances get (instance tags included) is a new launch template version, which the
        # node group follows (latestVersion), and EKS rolls a new version out like an AMI update: node by node.
        return (
            f"updates launch template `{name}`: a new version, so EKS replaces every node of its node group, draining each (running jobs are killed)",
            DATA_OR_NODES,
        )
    if r["type"] == "aws:eks/nodeGroup:NodeGroup" and touched & {"version", "releaseVersion", "launchTemplate"}:
        return f"updates node group `{name}` in place: a version change rolls every node (drains them: running jobs are killed)", DATA_OR_NODES
    if r["type"] == "kubernetes:helm.sh/v3:Release":
        return f"upgrades Helm release `{name}` in place; what the chart changes inside it is not forecast: check `pulumi preview`", ROUTINE
    if r["type"] == "eks:index:Cluster" and "version" in touched:
        return f"upgrades cluster `{name}` in place (the control plane's Kubernetes version)", DATA_OR_NODES
    return f"updates {_noun(r)} `{name}` in place", ROUTINE


def _critical_consequence(r: dict[str, Any], action: str, name: str) -> str:
    verb = "replaces" if action == "replace" else "deletes"
    t = r["type"]
    if t == "aws:eks/nodeGroup:NodeGroup":
        return f"{verb} node group `{name}`: its nodes are drained and {'recreated' if action == 'replace' else 'terminated'}; running jobs are killed"
    if t == "eks:index:Cluster":
        fate = "a new control plane; every workload on it is recreated" if action == "replace" else "the control plane and everything on it go"
        return f"{verb} cluster `{name}`: {fate}"
    if t == "kubernetes:batch/v1:Job":
        return f"{verb} Job `{name}`: {'it runs again from the start' if action == 'replace' else 'its pods are deleted'}"
    if t == "kubernetes:apps/v1:StatefulSet":
        return f"{verb} StatefulSet `{name}`: its pods restart; claims from its volumeClaimTemplates stay unless deleted"
    if t in _CRITICAL_TYPES:
        return f"{verb} {_CRITICAL_TYPES[t]} `{name}`: data it holds or protects may be lost"
    return f"{verb} {_noun(r)} `{name}`"


def _noun(r: dict[str, Any]) -> str:
    kind = _kind(r)
    if r["type"].startswith("kubernetes:") and kind:
        return kind
    return r["type"].rsplit(":", 1)[-1]


def _field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(old.keys() | new.keys()):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(FieldChange(sub, old[key], None))
            elif key not in old:
                out.append(FieldChange(sub, None, new[key]))
            else:
                out.extend(_field_changes(old[key], new[key], sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and all(isinstance(x, dict) for x in old + new):
        return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in _field_changes(a, b, f"{path}[{i}]")]
    return [] if old == new else [FieldChange(path, old, new)]


# -- output ----------------------------------------------------------------------------------------

FORECAST_NOTE = (
    "This is a forecast from two offline renders (mock engine, no AWS state), not a plan. "
    "`pulumi preview` is the authority: it sees the real state, values computed at deploy time and provider defaults, "
    "and a replacement can cascade to resources that take the replaced one's IDs."
)


def _value(v: Any, limit: int = 80) -> str:
    text = "(none)" if v is None else json.dumps(v, sort_keys=True)
    return f"`{text if len(text) <= limit else text[: limit - 1] + '…'}`"


def _change_line(c: FieldChange) -> str:
    mark = " *(forces replacement)*" if c.forces_replacement else ""
    scalars = (str, int, float, bool)
    if isinstance(c.old, list) and isinstance(c.new, list) and all(isinstance(x, scalars) for x in c.old + c.new):
        removed = [x for x in c.old if x not in c.new]
        added = [x for x in c.new if x not in c.old]
        if removed or added:
            parts = ([f"removed {', '.join(_value(x) for x in removed)}"] if removed else []) + (
                [f"added {', '.join(_value(x) for x in added)}"] if added else []
            )
            return f"  - `{c.path}`: {'; '.join(parts)}{mark}"
    return f"  - `{c.path}`: {_value(c.old)} → {_value(c.new)}{mark}"


def _routine_groups(resources: list[ResourceChange]) -> list[tuple[list[ResourceChange], list[FieldChange]]]:
    """Routine updates that make the same field changes, together: one new tag touches dozens of resources."""
    groups: dict[str, tuple[list[ResourceChange], list[FieldChange]]] = {}
    for r in resources:
        same = json.dumps([[c.path, c.old, c.new] for c in r.changes], sort_keys=True) if r.action == "update" else r.urn
        groups.setdefault(same, ([], r.changes))[0].append(r)
    return list(groups.values())


def to_markdown(diffs: list[StackDiff]) -> str:
    lines = ["# mleks diff", "", f"> {FORECAST_NOTE}", ""]
    for d in diffs:
        counts = ", ".join(f"{d.count(a)} to {a}" for a in ("replace", "delete", "update", "create")) + f", {d.count('unknown')} unknown"
        lines += [f"## Stack `{d.stack}`", "", f"**{counts}.**" if d.resources else "No changes.", ""]
        lines += _cost_markdown(d.cost)
        for tier, title in TIER_TITLES.items():
            group = [r for r in d.resources if r.risk == tier]
            if not group:
                continue
            lines += [f"### {title}", ""]
            batches = _routine_groups(group) if tier == ROUTINE else [([r], r.changes) for r in group]
            for members, changes in batches:
                first = members[0]
                if len(members) == 1:
                    lines.append(f"- **{first.action}** `{first.type}` — {first.summary}" + (f". Cost: {first.cost}" if first.cost else ""))
                else:
                    names = ", ".join(f"`{m.name}`" for m in members)
                    lines.append(f"- **{first.action}** in place, {len(members)} resources the same way: {names}")
                lines += [_change_line(c) for c in changes[:12]]
                if len(changes) > 12:
                    lines.append(f"  - … and {len(changes) - 12} more fields")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _change_text(before: float, after: float) -> str:
    delta = after - before
    return "no change" if abs(delta) < 5e-5 else ("+" if delta > 0 else "−") + money(abs(delta))


def _cost_markdown(cost: CostDiff | None) -> list[str]:
    if cost is None or (cost.before is None and cost.after is None):
        return []
    a, b = cost.before, cost.after
    lines = ["### Cost per hour (on-demand list prices, forecast)", "", "| | before | after | change |", "|---|---:|---:|---:|"]
    for which in ("idle", "max"):
        old = getattr(a, which) if a else 0.0
        new = getattr(b, which) if b else 0.0
        label = "idle (every group at min size)" if which == "idle" else "at max size"
        lines.append(f"| {label} | {total_text(a, which) if a else '—'} | {total_text(b, which) if b else '—'} | {_change_text(old, new)} |")
    lines.append("")
    for c in cost.items:
        where = f"{c.kind} `{c.name}` ({c.section})"
        if c.before is None and c.after is not None:
            lines.append(f"- new {where}: {_per_hour(c.after)}, {c.after.detail}")
        elif c.after is None and c.before is not None:
            lines.append(f"- removed {where}: was {_per_hour(c.before)}")
        elif c.before is not None and c.after is not None:
            lines.append(f"- {where}: {_per_hour(c.before)} → {_per_hour(c.after)} ({c.after.detail})")
    est = b or a
    if est is not None:
        unknown = "; ".join(f"{i.kind} {i.name}" for i in est.unknown)
        region = f"{est.region}, prices of {est.prices_retrieved}"
        lines.append(f"- {region}; not in the totals: {unknown or 'nothing'}; never estimated: {EXCLUDES}.")
    return [*lines, ""]


def to_json(diffs: list[StackDiff]) -> str:
    return json.dumps(
        {
            "forecast": FORECAST_NOTE,
            "stacks": {
                d.stack: {
                    "counts": {a: d.count(a) for a in ("replace", "delete", "update", "create", "unknown")},
                    "resources": [asdict(r) for r in d.resources],
                    "cost": _cost_json(d.cost),
                }
                for d in diffs
            },
        },
        indent=1,
        sort_keys=True,
    )


def _cost_json(cost: CostDiff | None) -> dict[str, Any] | None:
    if cost is None:
        return None
    side = lambda e: None if e is None else {"idle": round(e.idle, 4), "max": round(e.max, 4), "unknown": [f"{i.kind} {i.name}" for i in e.unknown]}  # noqa: E731
    return {
        "before": side(cost.before),
        "after": side(cost.after),
        "items": [
            {"section": c.section, "kind": c.kind, "name": c.name, "before": c.before and asdict(c.before), "after": c.after and asdict(c.after)}
            for c in cost.items
        ],
    }


FAIL_ON = {
    "replace": ("replace",),
    "delete": ("replace", "delete"),
    "unknown": ("replace", "delete", "unknown"),
    "change": ("replace", "delete", "unknown", "update", "create"),
}


def gate(diffs: list[StackDiff], fail_on: str | None) -> int:
    """The exit code: 0 unless ``fail_on`` names an action class the diff contains (``delete`` includes replace)."""
    if fail_on is None:
        return 0
    actions = FAIL_ON[fail_on]
    return 1 if any(r.action in actions for d in diffs for r in d.resources) else 0
