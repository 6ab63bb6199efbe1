"""EksCluster: what every mleks component needs from a cluster, and how the parts find each other.

Both :class:`~mleks.ml_cluster.MLCluster` (a cluster mleks creates) and
:class:`~mleks.existing_cluster.ExistingCluster` (one you already run) are an
``EksCluster``.  Besides the facts components read (region, version, the
Kubernetes provider, the OIDC issuer...), the cluster is where the parts of a
program meet, so that components alone compose into a working platform:

* **Device plugins** come with the first GPU group that needs them: the NVIDIA
  plugin with an AL2023 group (Bottlerocket ships its own), the EFA plugin with
  an EFA group.  The group adds them; the cluster only keeps one of each.
* **Autoscaler ownership** is checked once the program has run: a group owned
  by Escalator or cluster-autoscaler that no such add-on watches would stay at
  its minimum size forever, so the update fails naming it.
* **Namespaces** a workload names are created once per cluster, at the Pod
  Security level every workload in them allows.
* **GPU-node DaemonSets**: each add-on that puts a pod on GPU nodes says so
  (:meth:`EksCluster.node_addon_added`), and workloads size their requests
  around what is there (:meth:`EksCluster.gpu_node_load`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pulumi

from mleks.catalogs.node_daemonsets import DaemonSetLoad, NodeAddons, gpu_node_load
from mleks.errors import ConfigError, ConfigErrors
from mleks.manifests import k8s_objects
from mleks.manifests.workloads import namespace_object
from mleks.vocabulary import PREEXISTING_NAMESPACES, AmiFamily


class GroupFacts(Protocol):
    """What the cluster reads of a GPU group's arguments (``GpuNodeGroupArgs`` has them)."""

    @property
    def key(self) -> str: ...
    @property
    def ami_family(self) -> AmiFamily: ...
    @property
    def efa(self) -> bool: ...


class GpuGroup(Protocol):
    """What the cluster keeps of each of its GPU groups (``GpuNodeGroup`` is one)."""

    @property
    def args(self) -> GroupFacts: ...


def after_program(check: Callable[[], Any]) -> pulumi.Output[Any]:
    """An Output whose value is ``check()``, run once the whole program has run.

    Components use it for what only the finished program can tell (is this
    group watched by an autoscaler?).  Put in a component's outputs, an
    exception from ``check`` fails the update with its message.
    """

    async def wait_then_check() -> Any:
        root = pulumi.runtime.get_root_resource()
        # The SDK's Stack marks its outputs registered when the program function returns.
        while root is not None and not getattr(root, "_outputs_registered", True):
            await asyncio.sleep(0)
        return check()

    return pulumi.Output.from_input(asyncio.ensure_future(wait_then_check()))


class NodeProvisioner(Protocol):
    """What a Karpenter-owned group reads of its cluster's controller (``KarpenterAddon`` is one)."""

    @property
    def node_role_name(self) -> pulumi.Output[str]: ...
    @property
    def discovery_tag(self) -> str: ...
    @property
    def ready(self) -> Sequence[pulumi.Resource]: ...


class JobQueues(Protocol):
    """What a training job reads of its cluster's team queues (``KueueAddon`` is one)."""

    @property
    def queues(self) -> dict[str, str]:
        """Namespace -> the team whose LocalQueue takes jobs there."""
        ...

    @property
    def teams(self) -> Mapping[str, object]: ...
    @property
    def ready(self) -> Sequence[pulumi.Resource]: ...


class EksCluster(pulumi.ComponentResource):
    """An EKS cluster as mleks components see it; see :class:`MLCluster` and :class:`ExistingCluster`."""

    name: str
    eks_name: str
    """The EKS cluster's name (``cluster_name``), known before deployment."""
    region: str
    kubernetes_version: str
    tags: dict[str, str]
    cluster_name: pulumi.Output[str]
    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    cluster_security_group_id: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    provider: pulumi.ProviderResource
    node_prerequisites: list[pulumi.Resource]
    """What every node group of this cluster waits for."""
    addon_prerequisites: list[pulumi.Resource]
    """What an add-on with pods (an EKS add-on waits until they run) waits for: nodes to run on."""
    node_policy_arns: list[str]
    """The managed policies a node role of this cluster needs (Karpenter's node role gets these)."""
    private_subnet_inputs: list[pulumi.Input[str]] | None
    """The private subnets one by one, when their number is known before deployment (Karpenter tags each)."""

    def __init__(self, type_: str, name: str, opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(type_, name, None, opts)
        self.name = name
        self.gpu_groups: list[GpuGroup] = []
        self.node_monitoring_agent: pulumi.Resource | None = None
        """The node monitoring agent, which comes with the cluster's first GPU group (see ``GpuNodeGroup``)."""
        self._device_plugins: dict[str, pulumi.Resource] = {}
        self._namespaces: dict[str, pulumi.Resource] = {}
        self._namespace_needs: dict[str, list[tuple[bool, bool]]] = {}
        self.node_addons = NodeAddons()
        """The add-ons that put a pod on every GPU node, as they are added (see :meth:`gpu_node_load`)."""
        self._sized_by: str | None = None
        self.karpenter: NodeProvisioner | None = None
        """The cluster's Karpenter controller, once added (see ``KarpenterAddon``)."""
        self.kueue: JobQueues | None = None
        """The cluster's team queues, once added (see ``KueueAddon``)."""

    # -- what the DaemonSets leave on a GPU node ---------------------------------------------

    def gpu_node_load(self, group: GroupFacts) -> DaemonSetLoad:
        """What the DaemonSet pods on a node of ``group`` request, with this cluster's add-ons."""
        self._sized_by = self._sized_by or group.key
        return gpu_node_load(self.node_addons, ami_family=group.ami_family, efa=group.efa)

    def node_addon_added(self, component: str, **change: object) -> None:
        """Called by an add-on that puts a pod on GPU nodes, before it registers anything.

        A workload sized earlier would not leave room for it, and its pods could stay Pending
        beside the new DaemonSet: add such add-ons before the workloads.
        """
        if self._sized_by is not None:
            raise ConfigErrors(
                [
                    ConfigError(
                        component,
                        self.name,
                        f"{component} created before any workload of cluster {self.name} (a training job, service or notebook)",
                        f"a workload on node group {self._sized_by!r} was already sized without the pods {component} puts on its nodes",
                    )
                ]
            )
        self.node_addons = dataclasses.replace(self.node_addons, **change)  # type: ignore[arg-type]

    def k8s_opts(self, parent: pulumi.Resource, **kwargs: object) -> pulumi.ResourceOptions:
        """Options for a Kubernetes object of this cluster, parented to ``parent``."""
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, **kwargs)  # type: ignore[arg-type]

    # -- GPU groups and their device plugins ---------------------------------------------

    def gpu_group_added(self, group: GpuGroup) -> None:
        """Called by each GPU group of this cluster, which adds what its nodes need (see ``GpuNodeGroup``)."""
        self.gpu_groups.append(group)

    def has_device_plugin(self, kind: str) -> bool:
        return kind in self._device_plugins

    def device_plugin_added(self, kind: str, plugin: pulumi.Resource) -> None:
        """Called by each device plugin: one per kind and cluster (two DaemonSets of one name would clash)."""
        if kind in self._device_plugins:
            raise ValueError(f"cluster {self.name} already runs the {kind} device plugin: it comes with the first GPU group that needs it; do not add another")
        self._device_plugins[kind] = plugin

    def karpenter_added(self, controller: NodeProvisioner) -> None:
        """Called by the Karpenter add-on: one per cluster (two would fight over every NodePool)."""
        if self.karpenter is not None:
            raise ConfigErrors([ConfigError("KarpenterAddon", self.name, "one Karpenter add-on per cluster", f"cluster {self.name} already has one")])
        self.karpenter = controller

    def kueue_added(self, queues: JobQueues) -> None:
        """Called by the Kueue add-on: one per cluster (one admission webhook per Job)."""
        if self.kueue is not None:
            raise ConfigErrors([ConfigError("KueueAddon", self.name, "one Kueue add-on per cluster", f"cluster {self.name} already has one")])
        self.kueue = queues

    # -- namespaces ------------------------------------------------------------------

    def adopt_namespace(self, name: str, namespace: pulumi.Resource) -> None:
        """A Namespace made elsewhere (by a stack that plans them) that workloads should use."""
        self._namespaces[name] = namespace

    def namespace(self, name: str, *, non_root: bool, readiness_gates: bool = False) -> list[pulumi.Resource]:
        """What a workload in namespace ``name`` waits for: its Namespace, created on first use.

        ``non_root``: whether this workload runs as non-root; the namespace
        enforces ``restricted`` Pod Security only if every workload in it does
        (else ``baseline``).  ``readiness_gates``: whether it is behind the AWS
        Load Balancer Controller.  Built-in namespaces are never created.
        """
        if name in PREEXISTING_NAMESPACES:
            return []
        self._namespace_needs.setdefault(name, []).append((non_root, readiness_gates))
        if name not in self._namespaces:
            # The labels are settled once every workload of the program has asked.
            labels = after_program(lambda: self._namespace_labels(name))
            obj = namespace_object(name, restricted=True)
            obj["metadata"]["labels"] = labels
            # Retained on delete: users keep their own objects there (data claims, secrets).
            self._namespaces[name] = k8s_objects.create(obj, self.k8s_opts(self, retain_on_delete=True), name_prefix=self.name)
        return [self._namespaces[name]]

    def _namespace_labels(self, name: str) -> dict[str, str]:
        needs = self._namespace_needs[name]
        rendered = namespace_object(name, restricted=all(n for n, _ in needs), readiness_gates=any(g for _, g in needs))
        return dict(rendered["metadata"]["labels"])


def unique(resources: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
    """``resources`` without repeats, in order (two routes to one Namespace are one dependency)."""
    seen: list[pulumi.Resource] = []
    for r in resources:
        if not any(r is s for s in seen):
            seen.append(r)
    return seen
