"""Benchmark rendering: ``python -m stacks.bench [--runs N] [--scale 50,100,200]``.

Not a test: it prints numbers for the issue notes.

* cold: wall time and peak memory of a fresh ``mleks render`` process per
  example program and per stack of this repo (interpreter start, imports of
  the Pulumi SDKs, evaluation, writing files);
* warm: :func:`stacks.offline.run` in an already warm process, median and min;
* scale: the unified stack with N training jobs, N inference services and N
  notebooks, each size in a fresh process, to show the render grows linearly.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stacks import offline

STACKS = ("unified", "dedicated")
EXAMPLES = sorted(p.name for p in (offline.PROJECT_ROOT / "examples").iterdir() if (p / "Pulumi.yaml").exists())


def _child(args: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of one fresh process."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, *args], check=True, cwd=offline.PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)


def cold(target: list[str], runs: int) -> tuple[float, int]:
    times, peak = [], 0
    for _ in range(runs):
        seconds, rss = _child(target)
        times.append(seconds)
        peak = max(peak, rss)
    return statistics.median(times), peak


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


def scaled_config(n: int) -> dict:
    """The unified stack with ``n`` each of training jobs, inference services and notebooks."""
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    job = cfg["mleks:trainingJobs"]["gpu-smoke"]
    service = cfg["mleks:inferenceServices"]["densenet"]
    notebook = cfg["mleks:notebooks"]["research"]
    # Room for every service's replicas: the example's services may use any of its inference groups.
    for group in cfg["mleks:nodeGroups"].values():
        if group.get("role") == "inference":
            group["maxSize"] = 6 * n
    cfg["mleks:trainingJobs"] = {f"job-{i}": job for i in range(n)}
    cfg["mleks:inferenceServices"] = {f"svc-{i}": service for i in range(n)}
    cfg["mleks:notebooks"] = {f"nb-{i}": notebook for i in range(n)}
    return cfg


def scale_child(n: int, out: str) -> int:
    """In a fresh process: render the scaled stack and write it, report seconds and objects."""
    from mleks.testing.render import write

    start = time.perf_counter()
    result = offline.run("unified", config=scaled_config(n))
    write(result, Path(out))
    print(json.dumps({"seconds": time.perf_counter() - start, "resources": len(result.resources), "objects": len(result.kube_objects())}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.bench")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", default="50,100,200", help="workload counts for the scale test (each of jobs, services, notebooks)")
    parser.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale_child is not None:
        return scale_child(args.scale_child, args.out)

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, {args.runs} runs each")
    with tempfile.TemporaryDirectory() as out:
        print(f"\n{'cold render (fresh process)':<40} {'median':>8} {'peak RSS':>10}")
        for example in EXAMPLES:
            seconds, rss = cold(["-m", "mleks.cli", "render", "--quiet", "--out", out, f"examples/{example}"], args.runs)
            print(f"{'example ' + example:<40} {seconds:>7.2f}s {rss / 1024:>8.0f}MiB")
        for stack in STACKS:
            seconds, rss = cold(["-m", "stacks.render", stack, "--quiet", "--out", out], args.runs)
            print(f"{'stack ' + stack:<40} {seconds:>7.2f}s {rss / 1024:>8.0f}MiB")

        print(f"\n{'warm evaluation':<40} {'median':>8} {'min':>8} {'resources':>10}")
        for stack in STACKS:
            warm, result = warm_seconds(stack, args.runs)
            print(f"{'stack ' + stack:<40} {statistics.median(warm):>7.3f}s {min(warm):>7.3f}s {len(result.resources):>10}")

        print(f"\n{'scale (unified, N each of jobs/services/notebooks)':<52} {'seconds':>8} {'per 100 res':>11} {'resources':>10} {'peak RSS':>9}")
        for n in [int(x) for x in args.scale.split(",") if x]:
            start_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            done = subprocess.run(
                [sys.executable, "-m", "stacks.bench", "--scale-child", str(n), "--out", out],
                check=True,
                cwd=offline.PROJECT_ROOT,
                capture_output=True,
                text=True,
            )
            stats = json.loads(done.stdout.strip().splitlines()[-1])
            rss = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, start_rss)
            per = stats["seconds"] / stats["resources"] * 100
            print(f"{'N = ' + str(n):<52} {stats['seconds']:>7.2f}s {per:>10.3f}s {stats['resources']:>10} {rss / 1024:>7.0f}MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
