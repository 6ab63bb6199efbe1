"""Each performance figure of the project beside its yardstick, as a ratio: ``python -m benchmarks.compare``.

Not a test: it prints numbers for the issue notes.  Wall times on a shared machine are noisy, so
every comparison is paired (A, B, A, B, ...) and reported as the median of the per-pair ratios,
with both medians beside it.

* render ÷ plain program: a fresh ``mleks render`` process per stack against a fresh process of
  benchmarks/plain_program.py, a plain Pulumi program with the same resources under stock mocks;
* diff ÷ plain compare: ``mleks diff`` against benchmarks/plain_compare.py (load two plans, compare
  inputs by URN), for a one-field change of ``unified`` and at about 4,000 resources;
* YAML: the manifests of the 4,000-resource render through libyaml against the pure-Python emitter;
* the first-create model: each stack's longest creation chain against its floor (stacks/critical_path.py);
* with ``--tests``: the suite's wall time on two workers against one.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from mleks.testing.render import kube_documents, manifest_yaml, write
from stacks import bench, critical_path, offline

ROOT = offline.PROJECT_ROOT
PY = sys.executable


def _seconds(cmd: Sequence[str]) -> float:
    """Wall seconds of one fresh process of ``PY`` with ``cmd[1:]`` (stacks.bench's runner)."""
    assert cmd[0] == PY
    return bench._child(list(cmd[1:]))[0]


def paired(a: Sequence[str], b: Sequence[str], runs: int) -> tuple[float, float, float]:
    """Median seconds of ``a`` and ``b`` and the median of the per-pair ratios a/b, alternating a and b."""
    _seconds(a), _seconds(b)  # warm the file cache for both
    ta, tb = [], []
    for _ in range(runs):
        ta.append(_seconds(a))
        tb.append(_seconds(b))
    return statistics.median(ta), statistics.median(tb), statistics.median(x / y for x, y in zip(ta, tb, strict=True))


def row(label: str, a: float, b: float, ratio: float) -> None:
    print(f"{label:<46} {a:>8.3f}s {b:>8.3f}s {ratio:>7.2f}x")


def scaled_renders(out: Path, target: int = 4000) -> tuple[Path, Path, int]:
    """Base and head renders of ``unified`` grown to about ``target`` resources, the head with one group's max size raised."""
    n = 10
    while True:
        cfg = bench.scaled_config(n)
        base = offline.run("unified", config=cfg)
        if len(base.resources) >= target or n > 400:
            break
        n = int(n * target / len(base.resources)) + 1
    cfg["mleks:nodeGroups"]["train-g6e"]["maxSize"] += 2
    head = offline.run("unified", config=cfg)
    write(base, out / "base")
    write(head, out / "head")
    return out / "base" / "unified", out / "head" / "unified", len(base.resources)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="pairs per comparison (default 5)")
    parser.add_argument("--tests", action="store_true", help="also time the test suite on two workers and on one (minutes)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the example's deprecation warnings, once per scaled service
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, {args.runs} pairs each")
    print(f"\n{'':<46} {'ours':>9} {'yardstick':>9} {'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for stack in ("unified", "dedicated"):
            subprocess.run([PY, "-m", "stacks.render", stack, "--quiet", "--out", str(out / "r")], check=True, cwd=ROOT, capture_output=True)
            ours = [PY, "-m", "mleks.cli", "render", ".", "--stack", stack, "--quiet", "--out", str(out / "ours")]
            plain = [PY, "benchmarks/plain_program.py", str(out / "r" / stack / "plan.json"), str(out / "plain")]
            row(f"render {stack} ÷ plain program (process)", *paired(ours, plain, args.runs))

        cfg = offline.load_stack_file("unified")
        cfg["mleks:nodeGroups"]["train-g6e"]["maxSize"] += 2
        write(offline.run("unified"), out / "small-base")
        write(offline.run("unified", config=cfg), out / "small-head")
        small = (out / "small-base" / "unified", out / "small-head" / "unified")
        diff = [PY, "-m", "mleks.cli", "diff", str(small[0]), str(small[1])]
        plain_diff = [PY, "benchmarks/plain_compare.py", str(small[0] / "plan.json"), str(small[1] / "plan.json")]
        row("diff, one change ÷ plain compare", *paired(diff, plain_diff, args.runs))

        base, head, count = scaled_renders(out / "scaled")
        diff = [PY, "-m", "mleks.cli", "diff", str(base), str(head)]
        plain_diff = [PY, "benchmarks/plain_compare.py", str(base / "plan.json"), str(head / "plan.json")]
        row(f"diff, {count} resources ÷ plain compare", *paired(diff, plain_diff, args.runs))

        objects = [o for objs in kube_documents(offline.run("unified", config=bench.scaled_config(60))).values() for o in objs]
        fast, slow = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            manifest_yaml(objects)
            fast.append(time.perf_counter() - start)
            start = time.perf_counter()
            manifest_yaml(objects, pure_python=True)
            slow.append(time.perf_counter() - start)
        fast_s, slow_s = statistics.median(fast), statistics.median(slow)
        row(f"YAML of {len(objects)} objects, libyaml ÷ pure Python", fast_s, slow_s, fast_s / slow_s)

    print(f"\n{'first create (typical times)':<46} {'path':>9} {'floor':>9} {'ratio':>8}")
    for stack in ("unified", "dedicated"):
        path = critical_path.critical_path(offline.run(stack))
        print(f"{stack:<46} {path.seconds:>8.0f}s {path.floor_seconds:>8.0f}s {path.ratio:>7.3f}x")
        print(f"  path:  {' -> '.join(s.type.rsplit(':', 1)[-1] for s in path.steps)}")
        print(f"  floor: {' -> '.join(t.rsplit(':', 1)[-1] for t in path.floor)}")

    if args.tests:
        two = _seconds([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"])
        one = _seconds([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0"])
        print(f"\n{'test suite, two workers ÷ one':<46} {two:>8.1f}s {one:>8.1f}s {two / one:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
