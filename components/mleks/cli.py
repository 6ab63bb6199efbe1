"""The ``mleks`` command: ``mleks render [--stack NAME] [--out DIR] [--quiet] [PROGRAM_DIR]``.

``render`` runs a Pulumi Python program (default: the current folder) offline
under :mod:`mleks.testing`'s mocks with its stack's config, prints the resource
tree and writes ``<out>/<stack>/plan.json`` and ``<out>/<stack>/kubernetes/<cluster>.yaml``.
No AWS account, credentials, network or Pulumi CLI is used, and the same
program and config always give byte-identical files.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

from mleks.errors import ConfigError, ConfigErrors


class _Diagnostics(logging.Formatter):
    """``warning: <message>``, as the Pulumi CLI prints a program's diagnostics."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _print_diagnostics() -> None:
    # The mock engine logs the program's pulumi.log calls to the root logger.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Diagnostics())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)


def _shown(path: Path) -> Path:
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def render(program_dir: Path, *, stack: str | None, out: Path | None, quiet: bool, spot_discount: float | None = None) -> int:
    # A render is one short-lived pass: the collector would only walk the SDKs' many
    # module and class objects again and again (a fifth of a cold render), so it stays off.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _render(program_dir, stack=stack, out=out, quiet=quiet, spot_discount=spot_discount)
    finally:
        if collecting:
            gc.enable()


def _render(program_dir: Path, *, stack: str | None, out: Path | None, quiet: bool, spot_discount: float | None) -> int:
    # Imported here: the Pulumi SDKs are heavy, and `mleks --help` should not wait for them.
    from mleks.review import startup
    from mleks.review.cost import estimate, summary_lines
    from mleks.testing.program import Project
    from mleks.testing.render import plan_document, tree_lines, write

    _print_diagnostics()
    try:
        project = Project.load(program_dir)
        name = stack or project.default_stack()
        result = project.run(name)
    except (ConfigErrors, ConfigError) as err:
        print(f"error: stack {stack!r}: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plan = plan_document(result)
    cost = summary_lines(estimate(plan, spot_discount=spot_discount))
    starts = startup.summary_lines(startup.estimate(plan))
    if not quiet:
        print("\n".join(tree_lines(result)))
        print()
        print("\n".join(cost))
        print()
        if starts:
            print("\n".join(starts))
            print()
    paths = write(result, out if out is not None else project.directory / "render-out", spot_discount=spot_discount)
    print(f"stack {name}: {len(result.resources)} resources, {len(result.kube_objects())} Kubernetes objects")
    if quiet:
        print(f"  {cost[0]}")
    for path in paths:
        print(f"  wrote {_shown(path)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mleks", description="Tools for Pulumi programs built with mleks.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("render", help="run a Pulumi program offline and write its plan and Kubernetes YAML")
    cmd.add_argument("program_dir", nargs="?", type=Path, default=Path.cwd(), help="folder with Pulumi.yaml (default: the current one)")
    cmd.add_argument("--stack", help="stack name, i.e. a Pulumi.<stack>.yaml (default: the only one)")
    cmd.add_argument("--out", type=Path, help="output folder (default: <program_dir>/render-out)")
    cmd.add_argument("--quiet", action="store_true", help="do not print the resource tree (the cost totals still are)")
    add_spot_argument(cmd)
    cmd = commands.add_parser("diff", help="forecast what pulumi up would change between two offline renders")
    add_diff_arguments(cmd)
    args = parser.parse_args(argv)
    if args.command == "diff":
        return diff(args)
    return render(args.program_dir, stack=args.stack, out=args.out, quiet=args.quiet, spot_discount=args.spot_discount)


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a fraction such as 0.6 or a percentage such as 60%") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; accepted: 0 to below 1 (or 0% to below 100%)")
    return value


def add_spot_argument(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--spot-discount",
        type=_fraction,
        metavar="FRACTION",
        help="price spot nodes this far below on-demand (0.6 or 60%%); default: at on-demand, with a note that spot varies",
    )


def add_diff_arguments(cmd: argparse.ArgumentParser) -> None:
    """The arguments of ``mleks diff`` (shared with ``python -m stacks.diff``)."""
    cmd.add_argument("base_dir", type=Path, help="the base render: an --out folder of mleks render, or one stack's folder in it")
    cmd.add_argument("head_dir", type=Path, help="the head render, laid out the same way")
    cmd.add_argument("--format", choices=("markdown", "json"), default="markdown", help="markdown for a PR comment (default), json for machines")
    cmd.add_argument(
        "--fail-on", choices=("replace", "delete", "unknown", "change"), help="exit 1 when the diff has this (or a graver) action; default: always exit 0"
    )
    add_spot_argument(cmd)


def diff(args: argparse.Namespace) -> int:
    """Print the forecast of ``args.base_dir`` -> ``args.head_dir``; the exit code is the --fail-on gate."""
    from mleks.review import diff as review

    try:
        diffs = review.diff_folders(args.base_dir, args.head_dir, spot_discount=args.spot_discount)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(review.to_json(diffs) if args.format == "json" else review.to_markdown(diffs), end="")
    return review.gate(diffs, args.fail_on)


if __name__ == "__main__":
    sys.exit(main())
