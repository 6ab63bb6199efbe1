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

from mleks.review import consequences
from mleks.review.consequences import DATA_OR_NODES, JOBS, OTHER_REPLACE, ROUTINE, SECURITY, TIER_TITLES, UNKNOWN
from mleks.review.cost import EXCLUDES, Estimate, Item, estimate, money, total_text
from mleks.review.replacements import path_under, replace_paths, strip_indices
from mleks.review.values import MISSING, SECRET_TEXT, Detail, decoded, detail, list_pairs, redact_value, secret_argument, secret_name

__all__ = ["DATA_OR_NODES", "JOBS", "OTHER_REPLACE", "ROUTINE", "SECURITY", "TIER_TITLES", "UNKNOWN"]

Action = Literal["create", "delete", "update", "replace", "unknown"]

SECRET = SECRET_TEXT
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


def redact(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with every sensitive value replaced by a :class:`Redacted`: a Secret's data, keys that name
    a secret, and ``{name: DB_PASSWORD, value: ...}`` environment entries."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            # Flags such as automountServiceAccountToken name a secret but hold none: only data is hidden.
            out = {k: Redacted(v) if secret_name(k) and not isinstance(v, (bool, int, float)) else walk(v) for k, v in value.items()}
            if "value" in out and secret_name(out.get("name", "")):
                out["value"] = Redacted(value["value"])
            return out
        if isinstance(value, list):
            # The value after a secret-named flag is hidden before lists are split into items,
            # where the flag beside it would be out of sight (a rotated --api-key still shows as changed).
            return [Redacted(v) if i and secret_argument(value[i - 1], v) else walk(v) for i, v in enumerate(value)]
        return value

    hidden = set(_SECRET_FIELDS.get(type_token, ()))
    return {k: ({kk: Redacted(vv) for kk, vv in v.items()} if isinstance(v, dict) else Redacted(v)) if k in hidden else walk(v) for k, v in inputs.items()}


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any
    forces_replacement: bool = False
    detail: Detail | None = None
    """What changed inside a long string (a line diff, or its JSON/YAML compared as data)."""


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
    kept: bool = False
    """Removed from the stack but still billed: its resource leaves the plan and ``before.outlives`` says why it stays."""


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
    old = {r["urn"]: r for r in base.get("resources", []) if _compared(r)}
    new = {r["urn"]: r for r in head.get("resources", []) if _compared(r)}
    # A resource that moved or was renamed with an alias is the same resource to Pulumi: compare it under its new URN.
    moved = {alias: r["urn"] for r in new.values() for alias in (r.get("options") or {}).get("aliases") or () if alias in old and alias not in new}
    old = {moved.get(urn, urn): r for urn, r in old.items()}
    out: list[ResourceChange] = []
    for urn in sorted(new.keys() - old.keys()):
        out.append(_created(new[urn]))
    for urn in sorted(old.keys() - new.keys()):
        out.append(_deleted(old[urn], old))
    for urn in sorted(old.keys() & new.keys()):
        change = _changed(old[urn], new[urn])
        if change is not None:
            out.append(change)
    for r in out:
        # Permissions and exposure get their own section, unless something graver already claims the change.
        entry = new.get(r.urn) or old[r.urn]
        paths = None if r.action in ("create", "delete") else tuple(strip_indices(c.path) for c in r.changes)
        if r.risk > SECURITY and consequences.touches_access(entry, paths):
            r.risk = SECURITY
    out.sort(key=lambda r: (r.risk, _ACTION_ORDER[r.action], r.type, r.name))
    cost = _cost_diff(base, head, spot_discount)
    for item in cost.items:
        item.kept = item.after is None and item.before is not None and bool(item.before.outlives) and item.before.urn not in new
    _annotate_costs(out, cost)
    return StackDiff(stack, out, cost)


def _compared(r: dict[str, Any]) -> bool:
    """Cloud resources, and remote components that take real inputs (pulumi-eks's Cluster: the control
    plane, its endpoint and who administers it); a program's own components only group what is under them."""
    return bool(r.get("custom", True) or r.get("inputs"))


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
                parts.append(
                    f"leaves the stack, not the bill: {_per_hour(c.before)} goes on ({c.before.outlives})" if c.kept else f"removes {_per_hour(c.before)}"
                )
            elif c.before is not None and c.after is not None:
                parts.append(f"{_per_hour(c.before)} → {_per_hour(c.after)}")
        if parts:
            r.cost = "; ".join(parts)


_ACTION_ORDER = {"replace": 0, "delete": 1, "unknown": 2, "update": 3, "create": 4}


def _created(r: dict[str, Any]) -> ResourceChange:
    name = consequences.label(r)
    if r["type"] == "kubernetes:batch/v1:Job":
        return ResourceChange(r["urn"], r["type"], name, "create", JOBS, f"creates Job `{name}`: it starts running on `pulumi up`")
    return ResourceChange(r["urn"], r["type"], name, "create", ROUTINE, f"creates {consequences.noun(r)} `{name}`")


def _deleted(r: dict[str, Any], base_index: dict[str, dict[str, Any]]) -> ResourceChange:
    retained = consequences.retained_on_delete(r) or consequences.protected(r)
    return ResourceChange(
        r["urn"], r["type"], consequences.label(r), "delete", consequences.tier(r, "delete"), consequences.deletion(r, base_index), retained=retained
    )


def _changed(old: dict[str, Any], new: dict[str, Any]) -> ResourceChange | None:
    if old.get("inputs") == new.get("inputs"):
        return None  # most resources of a pull request: nothing to redact or walk
    ignored = tuple((new.get("options") or {}).get("ignoreChanges") or ())
    before, after = redact(old["type"], old.get("inputs") or {}), redact(new["type"], new.get("inputs") or {})
    changes = [c for c in _field_changes(before, after) if not path_under(c.path, ignored)]
    if not changes:
        return None
    name = consequences.label(new)
    paths = replace_paths(new["type"], consequences.kind_of(new))
    if paths is None:
        return ResourceChange(
            new["urn"],
            new["type"],
            name,
            "unknown",
            UNKNOWN,
            f"changes {consequences.noun(new)} `{name}`; this type is not in the replacement table: check `pulumi preview`",
            changes,
        )
    marked = [FieldChange(c.path, c.old, c.new, path_under(c.path, paths), c.detail) for c in changes]
    forcing = [c.path for c in marked if c.forces_replacement]
    if forcing:
        shown = ", ".join(f"`{p}`" for p in forcing[:3]) + (f" and {len(forcing) - 3} more" if len(forcing) > 3 else "")
        summary = consequences.replacement(new, shown, tuple(strip_indices(p) for p in forcing))
        retained = consequences.retained_on_delete(old)
        if retained:
            summary += "; the old one is retained on delete, and keeps costing until you delete it"
        return ResourceChange(new["urn"], new["type"], name, "replace", consequences.tier(new, "replace"), summary, marked, retained=retained)
    plain = tuple(strip_indices(c.path) for c in marked)
    summary, tier = consequences.update(new, {p.split(".")[0] for p in plain}, plain, old)
    return ResourceChange(new["urn"], new["type"], name, "update", tier, summary, marked)


def _field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every changed input, as close to the leaf as it can be named, secrets hidden in what is kept."""
    return [FieldChange(c.path, redact_value(c.old), redact_value(c.new), c.forces_replacement, c.detail) for c in _changes(old, new, path)]


def _changes(old: Any, new: Any, path: str) -> list[FieldChange]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(old.keys() | new.keys()):
            sub = f"{path}.{key}" if path else str(key)
            a, b = old.get(key), new.get(key)
            if key in old and key in new:
                out.extend(_changes(a, b, sub))
            elif isinstance(a, dict) or isinstance(b, dict):
                # A mapping that appears or goes is listed leaf by leaf, so no value hides behind a cut.
                out.extend(_changes(a or {}, b or {}, sub) or [FieldChange(sub, a, b)])
            else:
                out.append(FieldChange(sub, a, b))
        return out
    if isinstance(old, list) and isinstance(new, list) and old != new:
        return _list_changes(old, new, path)
    if old == new:
        return []
    inner = detail(path, old, new)
    if inner is not None:
        # Keep the text as the reader sees it: base64 user data decoded (its secrets then hidden like any text).
        return [FieldChange(path, decoded(path, old) or old, decoded(path, new) or new, detail=inner)]
    return [FieldChange(path, old, new)]


def _identity(value: Any) -> str:
    """A list item as text to match items by, hidden values by their digest (so a rotated secret still differs)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Redacted):
            return f"(secret {v.digest})"
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(value), sort_keys=True, default=str)


def _list_changes(old: list[Any], new: list[Any], path: str) -> list[FieldChange]:
    """Lists of named entries (containers, env, volumes) by name, others item by item (:func:`list_pairs`):
    an edited item (a script in args, an RBAC rule) is diffed where it is, and a mapping that came or
    went is listed leaf by leaf, so nothing hides behind a cut."""
    pairs = list_pairs(old, new, _identity)
    if pairs is None:
        return [FieldChange(path, old, new)]  # plain values that came or went: shown as removed / added
    out = []
    for suffix, a, b in pairs:
        sub = path + suffix
        if a is not MISSING and b is not MISSING:
            out.extend(_changes(a, b, sub))
            continue
        a, b = (None if a is MISSING else a), (None if b is MISSING else b)
        if isinstance(a if b is None else b, dict):
            out.extend(_changes(a or {}, b or {}, sub) or [FieldChange(sub, a, b)])
        else:
            out.append(FieldChange(sub, a, b))
    return out


# -- output ----------------------------------------------------------------------------------------

FORECAST_NOTE = (
    "This is a forecast from two offline renders (mock engine, no AWS state), not a plan. "
    "`pulumi preview` is the authority: it sees the real state, values computed at deploy time and provider defaults, "
    "and a replacement can cascade to resources that take the replaced one's IDs."
)


def code(text: str) -> str:
    """``text`` as an inline code span that no backtick inside can end (CommonMark: a longer fence, padded),
    so a value from a stack file can never turn the rest of the comment into live Markdown or HTML."""
    fence = "`" * (_longest_backticks([text]) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) or "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _value(v: Any, limit: int = 80) -> str:
    text = "(none)" if v is None else json.dumps(v, sort_keys=True)
    return code(text if len(text) <= limit else text[: limit - 1] + "…")


def _pair(old: Any, new: Any) -> str:
    """``old → new``, or for two lists of plain values what was removed and added."""
    if all(isinstance(v, str) and str.__eq__(v, SECRET_TEXT) for v in (old, new)):
        return f"{code(SECRET_TEXT)}: a hidden value changed"
    scalars = (str, int, float, bool)
    if isinstance(old, list) and isinstance(new, list) and all(isinstance(x, scalars) for x in old + new):
        removed = [x for x in old if x not in new]
        added = [x for x in new if x not in old]
        parts = ([f"removed {', '.join(_value(x) for x in removed)}"] if removed else []) + ([f"added {', '.join(_value(x) for x in added)}"] if added else [])
        if parts:
            return "; ".join(parts)
    shown_old, shown_new = _value(old), _value(new)
    # Values that read the same differ where the reader cannot see: a hidden secret, or past the cut.
    return f"{shown_old} → {shown_new}" + (" (they differ in a hidden or cut part)" if shown_old == shown_new else "")


def _change_lines(c: FieldChange) -> list[str]:
    """A field's change as Markdown list lines: ``old → new``, or what changed inside a long value."""
    mark = " *(forces replacement)*" if c.forces_replacement else ""
    if c.detail is None:
        return [f"  - {code(c.path)}: {_pair(c.old, c.new)}{mark}"]
    lines = [f"  - {code(c.path)} ({c.detail.how}){mark}" + (":" if c.detail.changes or c.detail.lines else "")]
    for inner in c.detail.changes[:MAX_INNER]:
        lines.append(f"    - {code(inner.path)}: {_pair(inner.old, inner.new)}")
    if len(c.detail.changes) > MAX_INNER:
        lines.append(f"    - … and {len(c.detail.changes) - MAX_INNER} more")
    if c.detail.lines:
        # A fence longer than any backtick run inside, so a script's own fences cannot end it.
        fence = "`" * max(3, _longest_backticks(c.detail.lines) + 1)
        lang = "diff" if c.detail.how.endswith("changed lines") else ""
        lines += [f"    {fence}{lang}", *(f"    {line}" for line in c.detail.lines), f"    {fence}"]
    return lines


def _longest_backticks(lines: list[str]) -> int:
    longest = 0
    for line in lines:
        run = 0
        for ch in line:
            run = run + 1 if ch == "`" else 0
            longest = max(longest, run)
    return longest


MAX_INNER = 20


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
                    lines.append(f"- **{first.action}** in place, {len(members)} resources the same way: {_by_type(members)}")
                lines += [line for c in changes[:12] for line in _change_lines(c)]
                if len(changes) > 12:
                    lines.append(f"  - … and {len(changes) - 12} more fields")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _by_type(members: list[ResourceChange], shown: int = 4) -> str:
    """``5 LaunchTemplate (`a`, `b`, … and 1 more); 2 Subnet (`c`, `d`)``: one line a reviewer can read for dozens of resources."""
    by_type: dict[str, list[str]] = {}
    for m in members:
        names = by_type.setdefault(m.type.rsplit(":", 1)[-1], [])
        if m.name not in names:
            names.append(m.name)
    parts = []
    for noun, names in sorted(by_type.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        parts.append(f"{len(names)} {noun} ({', '.join(code(n) for n in names[:shown])}{more})")
    return "; ".join(parts)


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
    kept = [c.before for c in cost.items if c.kept and c.before is not None]
    if kept:

        def still(which: str) -> str:
            figures = [getattr(i, which) for i in kept]
            return money(sum(f or 0.0 for f in figures)) + (" + unknown" if None in figures else "")

        lines.append(
            f"| left the stack, still billed (retained) | — | {still('idle')} idle, {still('max')} at max |"
            " the stack's totals drop by this, the bill does not |"
        )
    lines.append("")
    for c in cost.items:
        where = f"{c.kind} {code(c.name)} ({c.section})"
        if c.before is None and c.after is not None:
            lines.append(f"- new {where}: {_per_hour(c.after)}, {c.after.detail}")
        elif c.kept and c.before is not None:
            lines.append(f"- {where} leaves the stack, not the bill: still {_per_hour(c.before)} ({c.before.outlives}) until you delete it by hand")
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
            {
                "section": c.section,
                "kind": c.kind,
                "name": c.name,
                "before": c.before and asdict(c.before),
                "after": c.after and asdict(c.after),
                "stillBilled": c.kept,
            }
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
