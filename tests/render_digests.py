"""The pinned bytes of both stacks' renders: ``python -m tests.render_digests`` rewrites the fixture.

A render must stay byte-identical for the same config (tests/test_render.py), so a change to what
is written (a new field, another YAML layout) shows up as a digest change, reviewed on purpose:
rerun this after such a change and commit the fixture with it.  The date is pinned, because DLC
image support and EKS version status depend on the day.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from mleks.testing.render import write
from stacks import offline

FIXTURE = Path(__file__).parent / "fixtures" / "render-digests.json"
TODAY = datetime.date(2026, 12, 3)
STACKS = ("unified", "dedicated")


class _PinnedDate(datetime.date):
    @classmethod
    def today(cls) -> _PinnedDate:
        return cls(TODAY.year, TODAY.month, TODAY.day)


@contextmanager
def pinned_day() -> Iterator[None]:
    with mock.patch("mleks.catalogs.dlc.datetime.date", _PinnedDate), mock.patch("mleks.catalogs.eks_versions.datetime.date", _PinnedDate):
        yield


def digests(stack: str) -> dict[str, str]:
    """``relative path -> sha256`` of every file ``mleks render`` writes for ``stack``."""
    with pinned_day(), tempfile.TemporaryDirectory() as out:
        write(offline.run(stack), Path(out))
        root = Path(out) / stack
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> int:
    FIXTURE.write_text(json.dumps({s: digests(s) for s in STACKS}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
