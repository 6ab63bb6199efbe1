"""Benchmark program evaluation time: ``python -m stacks.bench [--runs N]``.

Not a test: it prints numbers for the issue notes.  For each stack it reports

* cold: wall time of a fresh ``python -m stacks.render <stack> --quiet`` process
  (interpreter start, imports of the Pulumi SDKs, evaluation, writing files);
* warm: time of :func:`stacks.offline.run` in an already warm process
  (evaluation under the mock engine only), median and min of N runs;
* the number of resources and Kubernetes objects.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from stacks import offline

STACKS = ("unified", "dedicated")


def cold_seconds(stack: str, runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "stacks.render", stack, "--quiet", "--out", out],
                check=True,
                cwd=offline.PROJECT_ROOT,
                stdout=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - start)
    return times


def warm_seconds(stack: str, runs: int) -> tuple[list[float], offline.RenderResult]:
    offline.run(stack)  # warm imports and caches
    times = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = offline.run(stack)
        times.append(time.perf_counter() - start)
    assert result is not None
    return times, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.bench")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, {args.runs} runs each")
    print(f"{'stack':<10} {'resources':>9} {'k8s objs':>8} {'cold median':>12} {'warm median':>12} {'warm min':>9}")
    for stack in STACKS:
        warm, result = warm_seconds(stack, args.runs)
        cold = cold_seconds(stack, args.runs)
        print(
            f"{stack:<10} {len(result.resources):>9} {len(result.kube_objects()):>8} "
            f"{statistics.median(cold):>11.2f}s {statistics.median(warm):>11.3f}s {min(warm):>8.3f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
