"""What changed inside one input value, for values too long to show whole.

A reviewer must see the line that changed, not two truncated copies of a long string that look
the same.  A string holding JSON or YAML (a policy, Escalator's node group config) is compared as
data, so a reformatting is no change and a changed key shows its path; other multi-line text (job
scripts, user data) becomes a line diff with a little context; a long single line shows the part
that changed.  Base64 user data is decoded first.  Secrets stay hidden: a value the redaction
already hid is never opened, and a line that assigns a secret-named key shows ``(secret)``.

Pure functions over plain values: no Pulumi import, so ``mleks diff`` stays light.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

# A value longer than this on one line is cut in the Markdown, so its change needs showing.
SHOWN_WHOLE = 80
CONTEXT_LINES = 2
MAX_DIFF_LINES = 40
# Characters kept either side of the changed part of a long single line.
SPAN_CONTEXT = 24
MAX_SPAN = 160

SECRET_TEXT = "(secret)"
# The words that make a key, an environment variable or a flag name a secret.
_SECRET_WORDS = ("password", "passwd", "token", "secret", "privatekey", "apikey", "kubeconfig", "credential")


def secret_name(name: Any) -> bool:
    """Whether a key or variable name names a secret (``DB_PASSWORD``, ``apiKey``, ``private-key``)."""
    plain = str(name).lower().replace("_", "").replace("-", "")
    return any(w in plain for w in _SECRET_WORDS)


# ``password: x``, ``API_TOKEN=x``, ``"client_secret": "x"``: the key names a secret, the rest of the line is its value.
_SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<key>["']?[\w.-]*(?:password|passwd|token|secret|private[_-]?key|api[_-]?key|kubeconfig|credential)[\w.-]*["']?\s*[:=]\s*)
    (?P<value>\S.*)
    """
)


# A command-line flag whose name ends in a secret's name: the next argument is its value
# (``--api-key sk-...``, ``--hf-token x``, ``-p x``); ``--disable-token-auth`` names no value.
_SECRET_FLAG = re.compile(
    r"^(?:-p|--?(?:[\w.]*[-_])?(?:password|passwd|pass|token|secret|private[-_]?key|api[-_]?key|access[-_]?key|key|credentials?))$", re.IGNORECASE
)
# ``scheme://user:password@host``: the password of a URL.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@]+@", re.IGNORECASE)


def secret_argument(previous: Any, item: Any) -> bool:
    """Whether ``item`` of an argument list is the value of the secret-named flag before it."""
    return isinstance(previous, str) and isinstance(item, str) and bool(_SECRET_FLAG.match(previous)) and not item.startswith("-")


@dataclass(frozen=True)
class InnerChange:
    """One changed path inside a structured string (``node_groups[train-g6e].max_nodes``)."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Detail:
    """How a long value changed: ``how`` says what was compared, then either ``changes`` or ``lines``."""

    how: str
    changes: list[InnerChange] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def redact_line(line: str) -> str:
    """``line`` with the value of a secret-named assignment, and the password of a URL, replaced by ``(secret)``."""
    line = _URL_PASSWORD.sub(lambda m: m.group("head") + SECRET_TEXT + "@", line)
    return _SECRET_ASSIGNMENT.sub(lambda m: m.group("key") + SECRET_TEXT, line)


def redact_value(value: Any) -> Any:
    """``value`` with every secret-looking string hidden: assignments in text, and the argument after a secret-named flag."""
    if isinstance(value, str) and type(value) is str:
        return redact_text(value)
    if isinstance(value, list):
        return [SECRET_TEXT if i and secret_argument(value[i - 1], v) else redact_value(v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value


def redact_text(text: str) -> str:
    """``text`` with every secret-named assignment's value hidden, line by line."""
    return "\n".join(redact_line(line) for line in text.split("\n"))


def decoded(path: str, text: str) -> str | None:
    """The text of base64 user data, or None when ``text`` is not that."""
    if not path.endswith("userData") or "\n" in text.strip():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _structured(text: str) -> tuple[str, Any] | None:
    """``("JSON", data)`` or ``("YAML", data)`` when ``text`` is a JSON or YAML document of a mapping or list."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, (dict, list)):
            return "JSON", data
    if "\n" in stripped:
        try:
            data = yaml.safe_load(stripped)
        except yaml.YAMLError:
            return None
        if isinstance(data, (dict, list)) and data:
            return "YAML", data
    return None


def entry_names(items: list[Any]) -> list[str] | None:
    """The ``name`` of every item, when each is a mapping with a distinct string name."""
    names = [item.get("name") for item in items if isinstance(item, dict)]
    if len(names) != len(items) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return None
    return names  # type: ignore[return-value]


MISSING: Any = object()
"""The side of a list pair where an entry is not (it came or went)."""


def _json_identity(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def list_pairs(old: list[Any], new: list[Any], identity: Callable[[Any], str] = _json_identity) -> list[tuple[str, Any, Any]] | None:
    """How two lists line up for a diff: ``(path suffix, old entry, new entry)`` for every entry that differs.

    Entries with distinct names on both sides are matched by name (``[train-g6e]``); lists of mappings
    or lists of equal length are matched by position; anything else in order (difflib on ``identity``), so
    an edited item pairs with its old self.  An entry that came or went has ``MISSING`` on the other side
    and ``(added)`` or ``(removed)`` in its suffix.  ``None`` for plain values that came or went: the
    caller shows those as removed and added.
    """
    old_names, new_names = entry_names(old), entry_names(new)
    if old_names is not None and new_names is not None:
        before, after = dict(zip(old_names, old, strict=True)), dict(zip(new_names, new, strict=True))
        pairs = []
        for name in [*old_names, *(n for n in new_names if n not in before)]:
            a, b = before.get(name, MISSING), after.get(name, MISSING)
            if a is MISSING or b is MISSING or identity(a) != identity(b):
                pairs.append((f"[{name}]" + _came_or_went(a, b), a, b))
        if not pairs and old_names != new_names:
            return [(" (order)", old_names, new_names)]
        return pairs
    if len(old) == len(new) and all(isinstance(x, (dict, list)) for x in old + new):
        return [(f"[{i}]", a, b) for i, (a, b) in enumerate(zip(old, new, strict=True)) if identity(a) != identity(b)]
    keys = [identity(x) for x in old], [identity(x) for x in new]
    edits = [op for op in difflib.SequenceMatcher(a=keys[0], b=keys[1], autojunk=False).get_opcodes() if op[0] != "equal"]
    if all(not isinstance(x, (dict, list)) for x in old + new) and not all(t == "replace" and i2 - i1 == j2 - j1 for t, i1, i2, j1, j2 in edits):
        return None
    pairs = []
    for _, i1, i2, j1, j2 in edits:
        for k in range(max(i2 - i1, j2 - j1)):
            a = old[i1 + k] if i1 + k < i2 else MISSING
            b = new[j1 + k] if j1 + k < j2 else MISSING
            pairs.append((f"[{i1 + k if b is MISSING else j1 + k}]" + _came_or_went(a, b), a, b))
    return pairs


def _came_or_went(a: Any, b: Any) -> str:
    return " (added)" if a is MISSING else " (removed)" if b is MISSING else ""


def data_changes(old: Any, new: Any, path: str = "") -> list[InnerChange]:
    """Every changed leaf between two decoded documents.

    Lists of named mappings are matched by name (``node_groups[train-g6e]``), so one edited entry
    is one change even when entries were added before it; a list whose entries only moved is
    reported as its new order.  A mapping that appears or disappears is listed leaf by leaf, so no
    value hides behind a cut.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[InnerChange] = []
        for key in sorted(old.keys() | new.keys(), key=str):
            sub = f"{path}.{key}" if path else str(key)
            # A mapping on one side only is compared with an empty one, so it is listed leaf by leaf.
            a = old.get(key, {} if isinstance(new.get(key), dict) else None)
            b = new.get(key, {} if isinstance(old.get(key), dict) else None)
            out.extend(data_changes(a, b, sub))
        return out
    if isinstance(old, list) and isinstance(new, list):
        pairs = list_pairs(old, new)
        if pairs is not None:
            out = []
            for suffix, a, b in pairs:
                # An entry that came or went is compared with an empty one of its kind, so it is listed leaf by leaf.
                empty: dict[str, Any] | None = {} if isinstance(a if b is MISSING else b, dict) else None
                out.extend(data_changes(empty if a is MISSING else a, empty if b is MISSING else b, path + suffix))
            return out
    if old == new or (old == {} and new is None) or (old is None and new == {}):
        return []
    return [InnerChange(path, old, new)]


def _hide(value: Any) -> Any:
    """A decoded document with every secret-named key's value hidden."""
    if isinstance(value, dict):
        return {k: SECRET_TEXT if secret_name(k) and not isinstance(v, (dict, list, bool)) else _hide(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(v) for v in value]
    return value


def _line_diff(old: str, new: str) -> list[str]:
    """A unified diff of the lines that changed, with ``CONTEXT_LINES`` around each, secrets hidden."""
    raw = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=CONTEXT_LINES))[2:]  # drop the ---/+++ header
    lines = [line if line.startswith("@@") else line[0] + redact_line(line[1:]) for line in raw]
    if len(lines) > MAX_DIFF_LINES:
        hidden = sum(1 for line in lines[MAX_DIFF_LINES:] if line[:1] in "+-")
        lines = [*lines[:MAX_DIFF_LINES], f"… {hidden} more changed lines"]
    return lines


def _span(old: str, new: str) -> list[str]:
    """The changed middle of two long single lines, with a little text either side (secrets hidden before cutting)."""
    old, new = redact_line(old), redact_line(new)
    if old == new:
        return [f"(only a {SECRET_TEXT} value changed)"]
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1

    def cut(text: str) -> str:
        lo, hi = max(0, start - SPAN_CONTEXT), len(text) - max(0, end - SPAN_CONTEXT)
        middle = text[lo:hi]
        if len(middle) > MAX_SPAN:
            middle = middle[: MAX_SPAN - 1] + "…"
        return ("…" if lo > 0 else "") + middle + ("…" if hi < len(text) else "")

    return [cut(old), cut(new)]


def detail(path: str, old: Any, new: Any) -> Detail | None:
    """How ``old`` became ``new`` when a plain ``old → new`` would hide it, else ``None``.

    Values of another type than ``str`` (and hidden secrets, which subclass it) are left to the caller.
    """
    if type(old) is not str or type(new) is not str or old == new:
        return None
    how = ""
    decoded_old, decoded_new = decoded(path, old), decoded(path, new)
    if decoded_old is not None and decoded_new is not None:
        old, new, how = decoded_old, decoded_new, "base64-decoded, "
    if len(old) <= SHOWN_WHOLE and len(new) <= SHOWN_WHOLE and "\n" not in old + new and not how:
        return None
    parsed_old, parsed_new = _structured(old), _structured(new)
    if parsed_old and parsed_new and parsed_old[0] == parsed_new[0]:
        # Compared raw (a changed secret still shows), shown through the same redaction as every other value.
        found = data_changes(_hide(parsed_old[1]), _hide(parsed_new[1]))
        changes = [InnerChange(c.path, redact_value(c.old), redact_value(c.new)) for c in found]
        same = "" if changes else ": the same data, only its layout changed"
        return Detail(f"{how}{parsed_old[0]} compared as data{same}", changes=changes)
    if "\n" in old or "\n" in new:
        return Detail(f"{how}changed lines", lines=_line_diff(old, new))
    return Detail(f"{how}the changed part", lines=_span(old, new))
