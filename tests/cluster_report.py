"""Print what the cluster check sees in each variant: per node group and type, the allocatable, the
DaemonSets' requests, what is left, and the largest pod landing there; then any problem found.

    python -m tests.cluster_report                 # every variant of tests/test_cluster_check.py
    python -m tests.cluster_report unified dedicated

The figures are the oracle's (tests/cluster), not the product's sizing model.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.cluster.apiserver import api_server_problems
from tests.cluster.aws_rules import aws_api_problems
from tests.cluster.pod_security import pod_security_problems
from tests.cluster.scheduling import capacity_table, format_capacity_table, scheduling_problems
from tests.test_cluster_check import VARIANTS, Renders


def main(names: list[str]) -> int:
    renders = Renders(Path(tempfile.mkdtemp()))
    found = 0
    for name in names or list(VARIANTS):
        print("=" * 20, name)
        render = renders.get(name)
        print(format_capacity_table(capacity_table(render)))
        for family, check in (("api", api_server_problems), ("psa", pod_security_problems), ("sched", scheduling_problems), ("aws", aws_api_problems)):
            for problem in check(render):
                found += 1
                print(f"  [{family}] {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
