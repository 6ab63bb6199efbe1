"""A Pulumi Python program on disk: its project file, its stack config, and running it offline.

``mleks render`` runs any program directory this way: the one in this
repository, the examples, or a user's own, as long as it uses mleks (or any
resources :class:`~mleks.testing.mocks.MleksMocks` can fake).
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mleks.testing.harness import RenderResult, run
from mleks.testing.mocks import ExistingClusterFacts
from mleks.validation.yaml_file import load_yaml


@dataclass(frozen=True)
class Project:
    """What ``Pulumi.yaml`` says: the project name, where stack files live, and the entry point."""

    directory: Path
    name: str
    stack_config_dir: Path
    main: Path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Project:
        root = Path(directory).resolve()
        path = root / "Pulumi.yaml"
        if not path.exists():
            raise FileNotFoundError(f"no Pulumi.yaml in {root}: give the folder of a Pulumi program")
        doc = yaml.safe_load(path.read_text()) or {}
        runtime = doc.get("runtime")
        name = runtime if isinstance(runtime, str) else (runtime or {}).get("name")
        if name != "python":
            raise ValueError(f"{path}: runtime is {name!r}; mleks renders Python programs only")
        main = root / str(doc.get("main") or ".")
        return cls(root, str(doc["name"]), root / str(doc.get("stackConfigDir") or "."), main / "__main__.py" if main.is_dir() else main)

    def stacks(self) -> list[str]:
        """The stacks that have a stack file."""
        return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in self.stack_config_dir.glob("Pulumi.*.yaml"))

    def stack_config(self, stack: str) -> dict[str, Any]:
        """The ``config:`` mapping of ``Pulumi.<stack>.yaml``."""
        path = self.stack_config_dir / f"Pulumi.{stack}.yaml"
        if not path.exists():
            raise FileNotFoundError(f"no stack file {path}; stacks with a file: {self.stacks()}")
        return dict((load_yaml(path.read_text(), skip=("config",)) or {}).get("config") or {})

    def default_stack(self) -> str:
        """The stack of the only stack file; ``ValueError`` saying what to do when there is none or several."""
        stacks = self.stacks()
        if not stacks:
            raise ValueError(f"{self.stack_config_dir} has no stack file (Pulumi.<stack>.yaml): add one with the program's config")
        if len(stacks) > 1:
            raise ValueError(f"{self.stack_config_dir} has stack files for {stacks}; choose one with --stack")
        return stacks[0]

    def run(
        self,
        stack: str,
        config: dict[str, Any] | None = None,
        *,
        existing_cluster: ExistingClusterFacts | None = None,
        existing_clusters: Mapping[str, ExistingClusterFacts] | None = None,
    ) -> RenderResult:
        """Run the program's entry point offline for ``stack`` (config: the stack file's, unless given).

        ``existing_cluster`` / ``existing_clusters``: what the EKS clusters the
        program looks up report, as for :func:`~mleks.testing.harness.run`.
        """
        cfg = self.stack_config(stack) if config is None else config

        def program() -> None:
            runpy.run_path(str(self.main), run_name="__main__")

        with _as_the_cli_runs_it(self.directory):
            return run(program, project=self.name, stack=stack, config=cfg, existing_cluster=existing_cluster, existing_clusters=existing_clusters)


@contextmanager
def _as_the_cli_runs_it(directory: Path) -> Iterator[None]:
    """In the program's folder with that folder first on ``sys.path``, as ``pulumi up`` runs a program."""
    cwd, path = Path.cwd(), list(sys.path)
    os.chdir(directory)
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
