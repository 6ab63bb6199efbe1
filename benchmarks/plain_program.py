"""The yardstick for a render: a plain Pulumi program with the same resources, under Pulumi's stock mocks.

    python benchmarks/plain_program.py PLAN_JSON OUT_DIR

It loads the SDK classes a hand-written program for these resources would (``pulumi_aws.eks.NodeGroup``,
``pulumi_kubernetes.apps.v1.Deployment``, ... for every type in the plan: the SDKs load a class's
module on first use, and that is most of a program's import time), registers every custom resource
of the plan with the same inputs under :class:`pulumi.runtime.Mocks` that echo them back, and
writes what it registered as JSON and the Kubernetes objects as YAML, as a render writes its files.
It uses nothing of mleks.  It registers through ``pulumi.CustomResource`` rather than each typed
class, which skips the classes' argument translation: if anything, a faster yardstick than a real program.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.sync_await import _sync_await

SDKS = {"aws": "pulumi_aws", "kubernetes": "pulumi_kubernetes", "eks": "pulumi_eks", "random": "pulumi_random"}


def sdk_module(type_token: str) -> str | None:
    """``aws:eks/nodeGroup:NodeGroup`` -> ``pulumi_aws.eks``; ``kubernetes:apps/v1:Deployment`` -> ``pulumi_kubernetes.apps.v1``."""
    package, module, _ = type_token.split(":")
    if package not in SDKS:
        return None
    if package == "kubernetes":
        group, _, version = module.rpartition("/")
        return f"{SDKS[package]}.{group.split('.')[0] if group else 'core'}.{version}"
    return f"{SDKS[package]}.{module.split('/')[0]}" if module != "index" else SDKS[package]


class EchoMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append({"type": args.typ, "name": args.name, "inputs": args.inputs})
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


def main(plan_path: str, out_dir: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    resources = [r for r in plan["resources"] if r.get("custom", True) and not r["type"].startswith("pulumi:providers:")]
    for type_token in sorted({r["type"] for r in resources}):
        module = sdk_module(type_token)
        # A custom resource's module (monitoring.coreos.com) is not in the SDK: its package is imported anyway.
        with contextlib.suppress(ImportError, AttributeError):
            if module is not None:
                getattr(importlib.import_module(module), type_token.rsplit(":", 1)[-1])
    mocks = EchoMocks()
    pulumi.runtime.set_mocks(mocks, project="plain", stack=str(plan.get("stack")), preview=False)

    def program() -> None:
        for r in resources:
            pulumi.CustomResource(r["type"], r["name"], dict(r.get("inputs") or {}))

    # set_mocks leaves a root stack of its own; the program runs in a fresh one, as under the CLI.
    pulumi.runtime.settings.ROOT.set(None)
    _sync_await(pulumi.runtime.stack.run_in_stack(program))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "registered.json").write_text(json.dumps(sorted(mocks.registered, key=lambda r: (r["type"], r["name"])), indent=2, sort_keys=True))
    objects = [r["inputs"] for r in mocks.registered if r["type"].startswith("kubernetes:")]
    (out / "objects.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
