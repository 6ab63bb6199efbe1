"""Render one of this repository's stacks offline: ``python -m stacks.render unified [--out DIR] [--quiet]``.

A thin alias of ``mleks render --stack <stack> .`` for this repo (see :mod:`mleks.cli`),
kept so the README's command works without installing the package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mleks.cli import add_spot_argument, exit_with, render
from stacks.offline import PROJECT_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: a stacks/Pulumi.<stack>.yaml file, e.g. unified or dedicated")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "render-out", help="output folder (default: render-out/)")
    parser.add_argument("--quiet", action="store_true", help="do not print the resource tree (the cost totals still are)")
    add_spot_argument(parser)
    args = parser.parse_args(argv)
    return render(PROJECT_ROOT, stack=args.stack, out=args.out, quiet=args.quiet, spot_discount=args.spot_discount)


if __name__ == "__main__":
    exit_with(main())
