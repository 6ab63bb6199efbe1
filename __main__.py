"""Entry point for ``pulumi up``; the program itself is :func:`stacks.program.main`."""

from stacks.program import main

main()
