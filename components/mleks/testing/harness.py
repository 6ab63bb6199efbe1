"""Run a Pulumi program offline under :class:`~mleks.testing.mocks.MleksMocks`, and collect what it registered.

:func:`run` is what ``mleks render`` and this project's tests use: it installs
the mocks with the program's config, runs the program the way the Pulumi CLI
would (in a stack, so ``pulumi.export`` lands), and returns every resource with
its parent, inputs, dependencies and options.  No AWS account, credentials,
network or Pulumi CLI is involved.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import resource as resource_runtime
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.sync_await import _sync_await

from mleks.testing.mocks import ExistingClusterFacts, MleksMocks, Registration, set_mocks

CLUSTER_TYPES = ("mleks:cluster:MLCluster", "mleks:cluster:ExistingCluster")


@dataclass
class RenderResult:
    """Everything one offline run produced."""

    stack: str
    resources: list[Registration]
    outputs: dict[str, Any]
    secret_exports: list[str] = field(default_factory=list)
    # The AWS region the program ran for (``aws:region``), which prices its resources.
    region: str | None = None
    _index: dict[str, Registration] | None = field(default=None, repr=False, compare=False)
    _children: dict[str, list[Registration]] | None = field(default=None, repr=False, compare=False)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, Registration]:
        """URN -> registration, built once (every lookup below uses it)."""
        if self._index is None:
            self._index = {r.urn: r for r in self.resources}
        return self._index

    def children_of(self, urn: str) -> list[Registration]:
        if self._children is None:
            self._children = {}
            for r in self.resources:
                self._children.setdefault(r.parent, []).append(r)
        return list(self._children.get(urn, []))

    def descendants_of(self, urn: str) -> list[Registration]:
        out: list[Registration] = []
        frontier = [urn]
        while frontier:
            current = frontier.pop()
            for child in self.children_of(current):
                out.append(child)
                frontier.append(child.urn)
        return out

    def kube_objects(self) -> list[tuple[Registration, dict[str, Any]]]:
        """Every Kubernetes object, as the manifest the provider would apply."""
        out = []
        for reg in self.resources:
            if reg.type.startswith("kubernetes:") and reg.custom and not reg.type.startswith("kubernetes:helm"):
                out.append((reg, {k: v for k, v in reg.inputs.items() if v is not None}))
        return out

    def cluster_of(self, reg: Registration) -> Registration | None:
        """The cluster component (MLCluster or ExistingCluster) a resource belongs to, through its parents or its provider."""
        found = self.ancestor_of_type(reg, *CLUSTER_TYPES)
        provider = self.by_urn().get(reg.provider)
        if found is None and provider is not None:
            found = self.ancestor_of_type(provider, *CLUSTER_TYPES)
        return found

    def ancestor_of_type(self, reg: Registration, *types: str) -> Registration | None:
        index = self.by_urn()
        current = index.get(reg.parent)
        while current is not None:
            if current.type in types:
                return current
            current = index.get(current.parent)
        return None


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def _no_source_position(stack_trace: source_pb2.StackTrace) -> None:
    return None


_SOURCE_HOOKS: dict[str, Callable[..., Any]] = {"_get_stack_trace": _no_stack_trace, "_get_source_position": _no_source_position}


def _finish_what_is_left() -> None:
    """After a failed program, let the registrations it left pending finish (their errors dropped),
    so they cannot fail the next run in this process."""
    loop = asyncio.get_event_loop()
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    # The SDK awaits every Output task it tracks at the end of a run; drop the failed run's.
    pulumi.runtime.settings.SETTINGS.outputs.clear()


def run(
    program: Callable[[], None],
    *,
    project: str,
    stack: str,
    config: dict[str, Any] | None = None,
    mocks: MleksMocks | None = None,
    existing_cluster: ExistingClusterFacts | None = None,
    existing_clusters: Mapping[str, ExistingClusterFacts] | None = None,
) -> RenderResult:
    """Run ``program`` for ``project``/``stack`` with ``config`` (stack-file keys) under mocks.

    ``existing_cluster`` / ``existing_clusters``: what the EKS clusters the
    program looks up report (:class:`~mleks.testing.mocks.ExistingClusterFacts`;
    default: version 1.35 in the ``aws:region``), as for :class:`MleksMocks`.

    An exception from the program propagates, with ``registered_urns`` set on
    it: the resources registered before it was raised (tests check that bad
    config registers none).
    """
    monitor = set_mocks(mocks, project=project, stack=stack, config=config, existing_cluster=existing_cluster, existing_clusters=existing_clusters)
    # The SDK walks the Python stack (and reads source lines) for every resource to tell the
    # engine where it was declared; mocks ignore it, and offline it is an eighth of the time.
    saved = {name: getattr(resource_runtime, name) for name in _SOURCE_HOOKS if hasattr(resource_runtime, name)}
    for name in saved:
        setattr(resource_runtime, name, _SOURCE_HOOKS[name])
    # set_mocks makes a root stack; the program runs in a fresh one, as under the CLI.
    pulumi.runtime.settings.ROOT.set(None)
    # The SDKs allocate many short-lived objects that the collector would walk
    # again and again; a render is short, so it collects once at the end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _sync_await(pulumi.runtime.stack.run_in_stack(program))
    except Exception as err:
        err.registered_urns = sorted(monitor.registrations)  # type: ignore[attr-defined]
        _finish_what_is_left()
        raise
    finally:
        for name, hook in saved.items():
            setattr(resource_runtime, name, hook)
        if collecting:
            gc.enable()

    exported: dict[str, Any] = {}
    secret_exports: list[str] = []
    for urn, outs in monitor.registered_outputs.items():
        if urn.split("::")[2] == "pulumi:pulumi:Stack":
            exported.update(outs)
            secret_exports.extend(monitor.secret_outputs.get(urn, []))
        if urn in monitor.registrations:
            monitor.registrations[urn].outputs = outs
            monitor.registrations[urn].secret_outputs = monitor.secret_outputs.get(urn, [])
    resources = sorted(monitor.registrations.values(), key=lambda r: r.urn)
    region = (config or {}).get("aws:region")
    return RenderResult(stack=stack, resources=resources, outputs=exported, secret_exports=sorted(secret_exports), region=str(region) if region else None)
