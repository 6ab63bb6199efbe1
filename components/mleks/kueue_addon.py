"""KueueAddon: team GPU queues in front of a cluster's training groups, with all-or-nothing starts.

A shared training cluster needs a queue in front of it: without one any team can submit jobs until the
groups hit ``maxSize``, and a two-node job that gets one node holds it, and pays for it, while it waits
for the second.  Kueue (kubernetes-sigs, :mod:`mleks.catalogs.kueue`) decides when a Job may start:

* each **train group** is a ``ResourceFlavor`` carrying its node labels and the GPU taint's toleration;
* each **team** has a namespace, a ``LocalQueue`` there and a ``ClusterQueue`` with nominal quotas of
  ``nvidia.com/gpu`` (and the CPU, memory and EFA interfaces that come with those GPUs) per group; the
  teams of a cluster share a cohort, so idle quota can be borrowed, up to each team's borrowing limit;
* a **Job** names its team's LocalQueue and is created suspended: it has no pods, so Escalator scales
  only for work the queue admitted (pods appear when Kueue unsuspends it);
* **all or nothing**: once admitted, a job must have all its pods ready within the timeout, or Kueue
  evicts it (suspends it again, its pods go), requeues it with exponential backoff, and the nodes it held
  are free for Escalator to remove;
* **preemption** never stops a running job unless a team opts in (``preemption: reclaim``), and then it
  only takes back the team's own nominal quota from borrowers, and may stop its own lower-priority jobs.

The manager is upstream's chart at the pinned release, on the system nodes (two replicas and a
PodDisruptionBudget; the admission webhook, its certificate rotation and RBAC are the chart's own), with
Jobs as its only integration: inference services and notebooks stay outside the queue.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s
from pydantic import AfterValidator, Field

from mleks.catalogs import kueue as catalog
from mleks.catalogs.gpu import NVIDIA_GPU_RESOURCE
from mleks.catalogs.node_daemonsets import DaemonSetLoad
from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError
from mleks.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs
from mleks.manifests import k8s_objects
from mleks.manifests import kueue as manifests
from mleks.manifests.escalator_config import parse_go_duration
from mleks.manifests.node_capacity import node_budget
from mleks.validation.schema import Model, component_errors
from mleks.vocabulary import NODE_GROUP_LABEL, PREEXISTING_NAMESPACES, ROLE_LABEL

TOKEN = "mleks:addons:KueueAddon"
RELEASE_NAME = "kueue"

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _dns_label(value: str) -> str:
    if not _NAME.match(value):
        raise ConfigError("", value, "lowercase letters, digits and dashes, starting with a letter, at most 63 characters", "not a DNS label")
    return value


class TeamArgs(Model):
    """One team that shares the training groups (``mleks:teams.<name>``)."""

    namespace: Annotated[str | None, AfterValidator(lambda v: None if v is None else _dns_label(v))] = None
    """The team's namespace: its jobs run there, and its LocalQueue is there.  Default: the team's name."""

    quotas: dict[str, int] = Field(default_factory=dict)
    """GPUs per train group the team is guaranteed (its nominal quota), by group name, e.g. ``{train-p5: 8}``.
    The CPU, memory and EFA interfaces of that many GPUs' worth of nodes come with them.  Default: none (the
    team only borrows)."""

    borrowing_limit: int = Field(default=0, ge=0)
    """GPUs per group the team may borrow from other teams' idle quota, beyond its own.  Default: 0."""

    preemption: manifests.Preemption = "never"
    """``never``: no running job is ever stopped for this team's jobs.  ``reclaim``: to get back its own
    nominal quota the team's jobs may stop jobs other teams run on borrowed quota (and, for jobs with a
    Kueue WorkloadPriorityClass, which mleks does not set, its higher-priority jobs its lower-priority
    ones).  Default: never."""


class KueueArgs(Model):
    """How Kueue admits jobs (``mleks:kueue``).  The teams themselves are ``mleks:teams``."""

    pods_ready_timeout: str = "20m"
    """How long an admitted job may take to have all its pods ready before Kueue evicts and requeues it:
    it must cover Escalator adding nodes and a cold pull of the training image (``mleks render`` prints that
    cold start per job; 9m34s for a p5 job without fast start).  Default: 20m."""

    backoff_base_seconds: int = Field(default=catalog.DEFAULT_BACKOFF_BASE_SECONDS, ge=1)
    """First wait before an evicted job is queued again; each further eviction doubles it.  Default: 60."""

    backoff_max_seconds: int = Field(default=catalog.DEFAULT_BACKOFF_MAX_SECONDS, ge=1)
    """The longest wait between requeues.  Default: 3600."""

    backoff_limit: int | None = Field(default=None, ge=0)
    """Requeues before Kueue deactivates the job for good.  Default: none (it keeps trying)."""

    oversubscribe: bool = False
    """Allow the teams' quotas on a group to add up to more GPUs than the group can ever have
    (``maxSize`` x GPUs per node).  Default: false: such quotas are refused."""

    def problems(self) -> list[ConfigError]:
        errors = []
        if not re.fullmatch(r"([0-9]+(s|m|h))+", self.pods_ready_timeout) or parse_go_duration(self.pods_ready_timeout) < 60 * 10**9:
            errors.append(
                ConfigError("podsReadyTimeout", self.pods_ready_timeout, "a duration of at least 1m, such as 20m", "not a duration of a minute or more")
            )
        if self.backoff_max_seconds < self.backoff_base_seconds:
            errors.append(
                ConfigError(
                    "backoffMaxSeconds", self.backoff_max_seconds, f"at least backoffBaseSeconds ({self.backoff_base_seconds})", "smaller than the base"
                )
            )
        return errors

    def all_or_nothing(self) -> manifests.AllOrNothing:
        return manifests.AllOrNothing(
            timeout_s=parse_go_duration(self.pods_ready_timeout) // 10**9,
            backoff_base_s=self.backoff_base_seconds,
            backoff_max_s=self.backoff_max_seconds,
            backoff_limit=self.backoff_limit,
        )


def team_namespace(name: str, team: TeamArgs) -> str:
    return team.namespace or name


def flavor_of(group: GpuNodeGroupArgs) -> manifests.FlavorSpec:
    return manifests.FlavorSpec(group.group_name, {ROLE_LABEL: group.role, NODE_GROUP_LABEL: group.group_name}, group.efa)


def quota_of(group: GpuNodeGroupArgs, gpus: int, borrow: int) -> manifests.QuotaSpec:
    """``gpus`` (and ``borrow``) GPUs of ``group`` with the CPU, memory and EFA interfaces of that many GPUs'
    share of its smallest node's allocatable: what jobs on those GPUs can request at most."""
    instance = group.smallest_instance
    budget = node_budget(instance, DaemonSetLoad(0, 0))
    per_node = instance.accelerator_count

    def share(total: int, n: int) -> int:
        return math.ceil(total * n / per_node)

    mib = budget.memory_bytes // 2**20
    return manifests.QuotaSpec(
        flavor=group.group_name,
        gpus=gpus,
        cpu_millis=share(budget.cpu_millis, gpus),
        memory_mib=share(mib, gpus),
        efa=share(group.efa_interfaces, gpus),
        borrow_gpus=borrow,
        borrow_cpu_millis=share(budget.cpu_millis, borrow),
        borrow_memory_mib=share(mib, borrow),
        borrow_efa=share(group.efa_interfaces, borrow),
    )


def team_errors(
    teams: Mapping[str, TeamArgs], groups: Sequence[GpuNodeGroupArgs], args: KueueArgs, *, other_namespaces: Mapping[str, str] | None = None
) -> list[ConfigError]:
    """Every reason the teams' queues cannot work on ``groups`` (keys relative to the teams, ``<team>.quotas.<group>``).

    ``other_namespaces``: namespaces other components own, with the key that owns each.
    """
    errors = [e.under("kueue") for e in args.problems()]
    if not teams:
        # Kueue refuses an empty namespace selector (its config validation, and the API server the
        # webhook configuration the chart builds from it).
        errors.append(ConfigError("teams", {}, "at least one team with a quota or a borrowing limit", "no team: the queues would serve nobody"))
    by_name = {g.key: g for g in groups}
    train = {k: g for k, g in by_name.items() if g.role == "train"}
    if teams and not train:
        errors.append(ConfigError("teams", sorted(teams), "a train node group for the teams' queues, or no teams", "no train group"))
    owners: dict[str, str] = {}
    reserved = {**{ns: "the cluster" for ns in PREEXISTING_NAMESPACES}, catalog.NAMESPACE: "Kueue itself", **(other_namespaces or {})}
    for name, team in teams.items():
        try:
            _dns_label(name)
        except ConfigError as err:
            errors.append(ConfigError(f"teams.{name}", name, err.accepted, "a team's name names its queues, so it must be a DNS label"))
        ns = team_namespace(name, team)
        if ns in reserved:
            errors.append(ConfigError(f"teams.{name}.namespace", ns, "a namespace of the team's own", f"the namespace belongs to {reserved[ns]}"))
        elif ns in owners:
            errors.append(ConfigError(f"teams.{name}.namespace", ns, "a namespace of the team's own", f"team {owners[ns]!r} has it already"))
        owners.setdefault(ns, name)
        for group_key, gpus in team.quotas.items():
            key = f"teams.{name}.quotas.{group_key}"
            if group_key not in by_name:
                errors.append(ConfigError(key, gpus, f"a quota on one of the train groups {sorted(train)}", "no such node group"))
            elif group_key not in train:
                errors.append(
                    ConfigError(
                        key,
                        gpus,
                        f"a quota on one of the train groups {sorted(train)}",
                        f"{group_key} is an {by_name[group_key].role} group; queues are for training",
                    )
                )
            elif gpus < 0:
                errors.append(ConfigError(key, gpus, "0 or more GPUs", "negative"))
    if not args.oversubscribe:
        for group_key, group in train.items():
            total = sum(t.quotas.get(group_key, 0) for t in teams.values())
            most = group.max_size * group.smallest_instance.accelerator_count
            if total > most:
                detail = ", ".join(f"{n}: {t.quotas[group_key]}" for n, t in teams.items() if group_key in t.quotas)
                errors.append(
                    ConfigError(
                        f"teams.*.quotas.{group_key}",
                        total,
                        f"at most {most} GPUs (maxSize {group.max_size} x {group.smallest_instance.accelerator_count}),"
                        " or kueue.oversubscribe: true to promise more than exists on purpose",
                        f"the teams' quotas on {group_key} add up to {total} GPUs ({detail}), more than the group can ever have",
                    )
                )
    return errors


class KueueAddon(pulumi.ComponentResource):
    """Kueue in ``cluster``, with a queue per team over ``node_groups`` (the cluster's train groups).

    Create it before the cluster's training jobs: a :class:`~mleks.dlc_training_job.DLCTrainingJob` in a
    team's namespace (or naming ``team``) is created suspended in that team's queue.

    Outputs: ``version``, ``teams`` (team -> namespace and LocalQueue).
    """

    def __init__(
        self,
        name: str,
        args: KueueArgs | None = None,
        *,
        teams: Mapping[str, TeamArgs],
        cluster: EksCluster,
        node_groups: Sequence[GpuNodeGroup],
        prometheus: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``prometheus``: also create a ServiceMonitor for the manager's metrics (needs the Prometheus Operator's CRDs)."""
        args = args or KueueArgs()
        groups = [g.args for g in node_groups]
        errors = team_errors(teams, groups, args)
        errors += [
            ConfigError(f"node_groups[{i}]", g.args.key, f"a group of cluster {cluster.name!r}", f"the group belongs to cluster {g.cluster.name!r}")
            for i, g in enumerate(node_groups)
            if g.cluster is not cluster
        ]
        if errors:
            raise component_errors(errors, component="KueueAddon", name=name, config_key=None)
        super().__init__(TOKEN, name, None, opts)
        namespace = cluster.namespace(catalog.NAMESPACE, non_root=True)
        self.release = k8s.helm.v3.Release(
            name,
            name=RELEASE_NAME,
            chart=catalog.CHART,
            version=catalog.VERSION,
            namespace=catalog.NAMESPACE,
            values=manifests.helm_values(args.all_or_nothing(), namespaces=[team_namespace(n, t) for n, t in teams.items()], prometheus=prometheus),
            # Roll back a failed upgrade instead of leaving a half-updated admission webhook.
            atomic=True,
            opts=cluster.k8s_opts(self, depends_on=[*namespace, *cluster.addon_prerequisites]),
        )
        after_release = cluster.k8s_opts(self, depends_on=[self.release])
        train = [g for g in groups if g.role == "train"]
        flavors = tuple(flavor_of(g) for g in train)
        created: list[pulumi.Resource] = [k8s_objects.create(manifests.resource_flavor(f), after_release, name_prefix=cluster.name) for f in flavors]
        self.queues: dict[str, str] = {}
        """Namespace -> the team (and LocalQueue) whose jobs run there."""
        exported = {}
        for team_name, team in teams.items():
            ns = team_namespace(team_name, team)
            # Every train group, quota or not: a group the team has no quota on still lets it borrow there.
            spec = manifests.TeamSpec(
                name=team_name,
                namespace=ns,
                cohort=f"{cluster.name}-teams",
                quotas=tuple(quota_of(g, team.quotas.get(g.key, 0), team.borrowing_limit) for g in train),
                preemption=team.preemption,
            )
            queue = k8s_objects.create(
                manifests.cluster_queue(spec, flavors), cluster.k8s_opts(self, depends_on=[self.release, *created]), name_prefix=cluster.name
            )
            team_ns = cluster.namespace(ns, non_root=True)
            local = k8s_objects.create(manifests.local_queue(spec), cluster.k8s_opts(self, depends_on=[queue, *team_ns]), name_prefix=cluster.name)
            created += [queue, local]
            self.queues[ns] = team_name
            exported[team_name] = {"namespace": ns, "localQueue": team_name}
        self.ready: list[pulumi.Resource] = created
        """What a queued Job waits for: its LocalQueue (and through it the webhook that suspends it)."""
        self.teams = dict(teams)
        cluster.kueue_added(self)
        self.register_outputs({"version": catalog.VERSION, "teams": exported, "gpu_resource": NVIDIA_GPU_RESOURCE})
