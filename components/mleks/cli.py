"""The ``mleks`` command: ``mleks render [--stack NAME] [--out DIR] [--quiet] [--existing-cluster-* ...] [PROGRAM_DIR]``.

``render`` runs a Pulumi Python program (default: the current folder) offline
under :mod:`mleks.testing`'s mocks with its stack's config, prints the resource
tree and writes ``<out>/<stack>/plan.json`` and ``<out>/<stack>/kubernetes/<cluster>.yaml``.
No AWS account, credentials, network or Pulumi CLI is used, and the same
program and config always give byte-identical files.

Clusters the program looks up rather than creates (``mleks.ExistingCluster``)
cannot be read offline; the ``--existing-cluster-*`` options say what they
report (:class:`mleks.testing.ExistingClusterFacts`), e.g. the version of the
real cluster the program is meant for.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from mleks.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:
    from mleks.testing.mocks import ExistingClusterFacts

# ExistingClusterFacts field -> the render option that sets it, so errors name what the user typed.
_FACT_OPTIONS = {
    "version": "--existing-cluster-version",
    "region": "--existing-cluster-region",
    "node_role_arn": "--existing-cluster-node-role-arn",
    "subnet_ids": "--existing-cluster-subnets",
}


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


def render(
    program_dir: Path,
    *,
    stack: str | None,
    out: Path | None,
    quiet: bool,
    spot_discount: float | None = None,
    existing_cluster: ExistingClusterFacts | None = None,
) -> int:
    """Render ``program_dir``'s ``stack`` (``None``: its only stack file) offline; the exit code.

    ``existing_cluster``: what the EKS clusters the program looks up report
    (default: :class:`~mleks.testing.ExistingClusterFacts` defaults).
    """
    # A render is one short-lived pass: the collector would only walk the SDKs' many
    # module and class objects again and again (a fifth of a cold render), so it stays off.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _render(program_dir, stack=stack, out=out, quiet=quiet, spot_discount=spot_discount, existing_cluster=existing_cluster)
    finally:
        if collecting:
            gc.enable()


def _config_error_in(err: BaseException) -> ConfigErrors | ConfigError | None:
    """The config error behind ``err``: the Pulumi SDK re-raises one from an ``apply`` inside a ``ValueError`` of its own."""
    # The SDK's wrapper is raised "from" a copy of itself, the original being its context: follow both links.
    seen: set[int] = set()
    frontier: list[BaseException] = [err]
    while frontier:
        current = frontier.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (ConfigErrors, ConfigError)):
            return current
        frontier.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def _render(
    program_dir: Path, *, stack: str | None, out: Path | None, quiet: bool, spot_discount: float | None, existing_cluster: ExistingClusterFacts | None
) -> int:
    # Imported here: the Pulumi SDKs are heavy, and `mleks --help` should not wait for them.
    from mleks.review import startup
    from mleks.review.cost import estimate, summary_lines
    from mleks.testing.program import Project
    from mleks.testing.render import plan_document, tree_lines, write

    _print_diagnostics()
    try:
        project = Project.load(program_dir)
        # Resolved before the run, so every message names the stack that ran, never "None".
        name = stack or project.default_stack()
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = project.run(name, existing_cluster=existing_cluster)
    except (FileNotFoundError, ValueError) as err:
        config_error = _config_error_in(err)
        print(f"error: stack {name!r}: {config_error if config_error is not None else err}", file=sys.stderr)
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
    cmd.add_argument("--stack", help="stack name, i.e. a Pulumi.<stack>.yaml; default: the program's only stack file (with several, --stack is required)")
    cmd.add_argument("--out", type=Path, help="output folder (default: <program_dir>/render-out)")
    cmd.add_argument("--quiet", action="store_true", help="do not print the resource tree (the cost totals still are)")
    add_spot_argument(cmd)
    add_existing_cluster_arguments(cmd)
    cmd = commands.add_parser("diff", help="forecast what pulumi up would change between two offline renders")
    add_diff_arguments(cmd)
    cmd = commands.add_parser("stacks", help="list a Pulumi program's stacks (its Pulumi.<stack>.yaml files), one per line")
    cmd.add_argument("program_dir", nargs="?", type=Path, default=Path.cwd(), help="folder with Pulumi.yaml (default: the current one)")
    args = parser.parse_args(argv)
    if args.command == "diff":
        return diff(args)
    if args.command == "stacks":
        return stacks(args.program_dir)
    facts, problems = existing_cluster_facts(args)
    if problems:
        for line in problems:
            print(f"mleks render: error: {line}", file=sys.stderr)
        return 2
    return render(args.program_dir, stack=args.stack, out=args.out, quiet=args.quiet, spot_discount=args.spot_discount, existing_cluster=facts)


def stacks(program_dir: Path) -> int:
    """Print the stacks of the program in ``program_dir``: what the review action renders when told none."""
    from mleks.testing.program import Project

    try:
        project = Project.load(program_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name in project.stacks():
        print(name)
    return 0


def add_existing_cluster_arguments(cmd: argparse.ArgumentParser) -> None:
    """The ``--existing-cluster-*`` options: what clusters looked up by name report offline."""
    group = cmd.add_argument_group(
        "existing clusters",
        "What the EKS clusters the program looks up by name (mleks.ExistingCluster, aws.eks.get_cluster) report in this render,"
        " since offline none is read; each applies to every cluster looked up.  Set them to your real cluster's.",
    )
    group.add_argument(
        "--existing-cluster-version",
        metavar="MINOR",
        help="its Kubernetes minor, e.g. 1.33; one EKS supports today (default: 1.35).  ExistingCluster's kubernetes_version must match it",
    )
    group.add_argument(
        "--existing-cluster-region",
        metavar="REGION",
        help="the AWS region it is in (default: the region of the lookup: its AWS provider's, else aws:region).  ExistingCluster's region must match it",
    )
    group.add_argument(
        "--existing-cluster-node-role-arn",
        metavar="ARN",
        help="the IAM role its nodes run as: what aws.eks.get_node_group answers for its groups, and aws.iam.get_role for that role's name"
        " (default: a role named <cluster>-<group>-node-role)",
    )
    group.add_argument(
        "--existing-cluster-subnets",
        metavar="ID,ID,...",
        help="its subnets, comma-separated, at least two, in the region's AZs a, b, ... in turn; ExistingCluster puts GPU nodes there"
        " unless given private_subnet_ids (default: subnet-<cluster>-<region>a, ...b, ...c)",
    )


def existing_cluster_facts(args: argparse.Namespace) -> tuple[ExistingClusterFacts | None, list[str]]:
    """The facts the ``--existing-cluster-*`` options give (``None`` when none is set), or one error line per bad option.

    Checked here rather than as argparse types, so every bad option is
    reported at once, each on its own line and named as typed.
    """
    given = {
        "version": args.existing_cluster_version,
        "region": args.existing_cluster_region,
        "node_role_arn": args.existing_cluster_node_role_arn,
        "subnet_ids": None if args.existing_cluster_subnets is None else [s.strip() for s in args.existing_cluster_subnets.split(",")],
    }
    chosen = {k: v for k, v in given.items() if v is not None}
    if not chosen:
        # Nothing set: the mocks' defaults, without importing the Pulumi SDKs here.
        return None, []
    from mleks.testing.mocks import ExistingClusterFacts

    try:
        return ExistingClusterFacts(**chosen), []
    except ConfigErrors as err:
        return None, [_option_error(e) for e in err.errors]


def _option_error(err: ConfigError) -> str:
    """``argument --existing-cluster-subnets: 'sub' (item 2) is invalid: not a subnet id. Accepted: ...``, as argparse words it."""
    field, _, index = err.key.removeprefix("ExistingClusterFacts.").partition("[")
    option = _FACT_OPTIONS[field]
    where = f" (item {int(index.rstrip(']')) + 1})" if index else ""
    value = ",".join(err.value) if isinstance(err.value, list) else err.value
    problem = f": {err.problem}" if err.problem else ""
    return f"argument {option}: {value!r}{where} is invalid{problem}. Accepted: {err.accepted}"


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
    except ValueError as err:
        # A truncated or foreign plan.json: say which render is broken, not a traceback.
        print(f"error: a render in {args.base_dir} or {args.head_dir} is not a plan mleks wrote ({err}); render both again", file=sys.stderr)
        return 2
    print(review.to_json(diffs) if args.format == "json" else review.to_markdown(diffs), end="")
    return review.gate(diffs, args.fail_on)


def exit_with(code: int) -> NoReturn:
    """End a command-line run with ``code``.

    The heap goes to the permanent generation first: the interpreter collects every object at exit,
    and after a render that is most of the heap the Pulumi SDKs built (0.8 s of a 2.8 s cold render,
    measured with ``python -m benchmarks.compare``).  Nothing is left to free: the process ends.
    """
    sys.stdout.flush()
    gc.freeze()
    sys.exit(code)


def console() -> NoReturn:
    """The ``mleks`` command: exit 0, 1 (diff --fail-on matched), 2 (bad input, said plainly) or 3 (a bug in mleks)."""
    try:
        code = main()
    except BrokenPipeError:
        # `mleks diff ... | head`: the reader left; nothing is wrong with mleks.
        sys.stderr.close()
        code = 0
    except Exception:
        import traceback

        traceback.print_exc()
        print("mleks: internal error (the traceback above); please report it with the command you ran", file=sys.stderr)
        code = 3
    exit_with(code)


if __name__ == "__main__":
    console()
