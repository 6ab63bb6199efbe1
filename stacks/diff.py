"""Compare two offline renders of this repo's stacks: ``python -m stacks.diff BASE_DIR HEAD_DIR``.

A thin alias of ``mleks diff`` (see :mod:`mleks.cli`), so it works without installing the package.
"""

from __future__ import annotations

import argparse

from mleks.cli import add_diff_arguments, diff, exit_with


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.diff", description=__doc__.split("\n\n")[0])
    add_diff_arguments(parser)
    return diff(parser.parse_args(argv))


if __name__ == "__main__":
    exit_with(main())
