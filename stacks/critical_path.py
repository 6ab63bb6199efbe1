"""The longest chain of creation times through a stack's dependencies: ``python -m stacks.critical_path``.

Not a timer: nothing here reaches AWS.  It renders each stack offline, takes
every resource's dependencies from the plan (explicit ``depends_on``, the
resources its inputs come from, and its provider), gives each resource a
typical creation time from :data:`TYPICAL_SECONDS`, and finds the chain whose
times add up to the most: the shortest a first ``pulumi up`` can be, however
parallel the engine.

The figure is reported against a floor no stack of that shape can beat: the
longest of the chains it cannot avoid.  Every EKS stack waits for a subnet, the
control plane, a node group and one Kubernetes object; a stack whose workloads
claim EBS volumes also waits for the EBS CSI driver add-on (no claim binds
without it) and the workload; a stack with an FSx for Lustre dataset waits for
a subnet, the file system, its link to S3 (when it has one) and one Kubernetes
object that mounts it.

Assumptions, written down:

* the times are typical first-create times, each with its source below; the
  ones marked *estimate* have no published figure we could find;
* a component (ours or a remote one such as pulumi-eks's Cluster) is done when
  everything under it is; a remote component is one step, its own time;
* Kubernetes workloads count the time for their pods to be ready on nodes
  that exist; waits for capacity (a GPU group scaling from zero, an NLB being
  provisioned) depend on the autoscaler and AWS, not on the graph, and are
  bounded by each workload's await timeout instead.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import cache

from stacks import offline

TYPICAL_SECONDS: dict[str, float] = {
    # terraform-aws-modules/terraform-aws-eks PR #3218 (apply log): "aws_eks_cluster.this[0]:
    # Creation complete after 10m6s"; pulumi-eks's Cluster wraps the same API call.
    "eks:index:Cluster": 606,
    # DevopsArtFactory/terraform-provisioning PR #47 (apply log): two managed node groups,
    # "Creation complete after 1m48s" and "1m59s"; the slower is taken.
    "aws:eks/nodeGroup:NodeGroup": 119,
    # terraform-aws-modules/terraform-aws-eks PR #3214: add-ons "created under 20 seconds"
    # once the add-on API is ready.
    "aws:eks/addon:Addon": 20,
    # Estimate: a NAT gateway becomes available in one to two minutes.
    "aws:ec2/natGateway:NatGateway": 120,
    # Estimate: a controller image pulled from a regional registry and started on a node that exists.
    "kubernetes:apps/v1:Deployment": 30,
    "kubernetes:apps/v1:StatefulSet": 30,
    "kubernetes:helm.sh/v3:Release": 30,
    # aws-samples/aws-hpc-tutorials PR #289 (AWS's HPC workshop, FSx for Lustre lab): "Amazon FSx for
    # Lustre file system creation will take ~10 mins".
    "aws:fsx/lustreFileSystem:LustreFileSystem": 600,
    # Estimate, from two pointers: in terraform-provider-aws PR #22291's acceptance run the association
    # test took 233 s longer than the PERSISTENT_2 file system test it builds on (810 s vs 577 s), and
    # aws-samples/amazon-eks-machine-learning-with-terraform-and-kubeflow#112 reports terraform's
    # 10-minute default create timeout being hit "in some use cases": 5 minutes, between the two.
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": 300,
}
API_CALL_SECONDS = 2.0
"""Estimate: anything else is one or two API calls (IAM, KMS, subnets, Kubernetes objects)."""

FLOOR_TYPES = ("aws:ec2/subnet:Subnet", "eks:index:Cluster", "aws:eks/nodeGroup:NodeGroup", "kubernetes:core/v1:ConfigMap")
"""The cluster's floor: a subnet, the control plane, a node group, one Kubernetes object."""

FILE_SYSTEM = "aws:fsx/lustreFileSystem:LustreFileSystem"
ASSOCIATION = "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"

REMOTE_PREFIXES = ("eks:index:",)
"""Remote components: their children are built by a provider plugin, out of the plan's sight."""


def seconds(type_: str) -> float:
    return TYPICAL_SECONDS.get(type_, API_CALL_SECONDS)


EBS_WORKLOAD = ("aws:ec2/subnet:Subnet", "eks:index:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:eks/addon:Addon", "kubernetes:apps/v1:StatefulSet")
"""A workload with an EBS claim: the cluster's floor, then the EBS CSI driver, then the workload."""


def floor_chain(result: offline.RenderResult) -> tuple[str, ...]:
    """The longest chain a stack like ``result`` cannot avoid (see the module docstring)."""
    types = {r.type for r in result.resources}
    chains: list[tuple[str, ...]] = [FLOOR_TYPES]
    ebs_driver = any(r.type == "aws:eks/addon:Addon" and r.inputs.get("addonName") == "aws-ebs-csi-driver" for r in result.resources)
    if ebs_driver and any((r.inputs.get("spec") or {}).get("volumeClaimTemplates") for r in result.of_type("kubernetes:apps/v1:StatefulSet")):
        chains.append(EBS_WORKLOAD)
    if FILE_SYSTEM in types:
        data = (FILE_SYSTEM, ASSOCIATION) if ASSOCIATION in types else (FILE_SYSTEM,)
        chains.append(("aws:ec2/subnet:Subnet", *data, "kubernetes:core/v1:PersistentVolumeClaim"))
    return max(chains, key=lambda chain: sum(seconds(t) for t in chain))


def floor_seconds(chain: tuple[str, ...] = FLOOR_TYPES) -> float:
    return sum(seconds(t) for t in chain)


@dataclass(frozen=True)
class Step:
    name: str
    type: str
    start: float
    finish: float


@dataclass(frozen=True)
class CriticalPath:
    stack: str
    seconds: float
    steps: tuple[Step, ...]
    floor: tuple[str, ...]
    """The chain of types the stack cannot avoid, whose sum is the yardstick."""

    @property
    def floor_seconds(self) -> float:
        return floor_seconds(self.floor)

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor_seconds


def critical_path(result: offline.RenderResult) -> CriticalPath:
    """The chain of dependencies with the largest sum of typical creation times."""
    index = result.by_urn()
    children: dict[str, list[str]] = {}
    for reg in result.resources:
        children.setdefault(reg.parent, []).append(reg.urn)

    def is_step(reg: offline.Registration) -> bool:
        return reg.custom or reg.type.startswith(REMOTE_PREFIXES)

    def members(urn: str) -> list[str]:
        """The steps a dependency on ``urn`` waits for: itself, or everything under a component."""
        reg = index[urn]
        if is_step(reg):
            return [urn]
        return [m for child in children.get(urn, []) for m in members(child)]

    @cache
    def finish(urn: str) -> tuple[float, str | None]:
        """When ``urn`` is done, and the dependency it waited for last."""
        reg = index[urn]
        deps = [d for d in (*reg.dependencies, reg.provider) if d and d in index and d != urn]
        waits = [(finish(m)[0], m) for d in deps for m in members(d)]
        start, last = max(waits, default=(0.0, None))
        return start + seconds(reg.type), last

    steps = [r.urn for r in result.resources if is_step(r)]
    end = max(steps, key=lambda u: finish(u)[0])
    chain: list[Step] = []
    current: str | None = end
    while current is not None:
        done, previous = finish(current)
        reg = index[current]
        chain.append(Step(reg.name, reg.type, done - seconds(reg.type), done))
        current = previous
    return CriticalPath(result.stack, finish(end)[0], tuple(reversed(chain)), floor_chain(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.critical_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="*", default=["unified", "dedicated"])
    args = parser.parse_args(argv)
    for stack in args.stacks:
        path = critical_path(offline.run(stack))
        floor = " -> ".join(t.rsplit(":", 1)[-1] for t in path.floor)
        print(f"\n{stack}: {path.seconds:.0f} s, {path.ratio:.3f} x the floor ({floor}: {path.floor_seconds:.0f} s)")
        for step in path.steps:
            print(f"  {step.start:6.0f} -> {step.finish:6.0f} s  {step.type}  {step.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
