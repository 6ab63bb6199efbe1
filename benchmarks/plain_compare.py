"""The yardstick for a diff: load two plans and list the resources whose inputs differ, by URN.

    python benchmarks/plain_compare.py BASE_PLAN_JSON HEAD_PLAN_JSON

No words, no cost, no redaction: the least any diff of two renders must do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(base: str, head: str) -> int:
    old = {r["urn"]: r.get("inputs") for r in json.loads(Path(base).read_text())["resources"]}
    new = {r["urn"]: r.get("inputs") for r in json.loads(Path(head).read_text())["resources"]}
    changed = sorted(u for u in old.keys() & new.keys() if old[u] != new[u])
    print(f"{len(new.keys() - old.keys())} created, {len(old.keys() - new.keys())} deleted, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
