"""EscalatorAddon: Atlassian Escalator v1.16.2 for the training node groups of one cluster.

Escalator scales batch groups by the CPU and memory *requests* of the pods
that select them: it adds nodes hard while jobs queue, and it removes a node
only once the node is empty or a long grace period has passed, so a running
training job is not drained.  It acts only on the ASGs named in its config.
Cluster-autoscaler owns the other groups (see ``docs/autoscaling.md``).

Everything here follows ``shared/reference/escalator.md`` (section numbers
below point into it):

* the image has a CMD and no ENTRYPOINT, so the container sets ``command``
  (``args`` alone would make ``--nodegroups`` argv[0]) (§0);
* two replicas with ``--leader-elect``; the lock is a Lease whose name is both
  ``--leader-elect-config-name`` and the RBAC ``resourceNames`` (§3, §4.1);
* ``POD_NAME`` (the lock identity) and ``AWS_REGION`` (aws-sdk-go v1 ignores
  ``AWS_DEFAULT_REGION`` without ``AWS_SDK_LOAD_CONFIG``) (§0);
* the config is read once at start-up, so a checksum annotation on the pod
  template rolls the pods when it changes (§0);
* probes hit ``/metrics`` on 8080, the only handler; there is no ``/healthz`` (§3);
* pods run on the system nodes, never on a GPU node they scale (issue #139);
* AWS permissions come through IRSA, with the write actions on the managed ASGs only (§4.3).

:func:`render`, :func:`render_config`, :func:`container_command` and
:func:`iam_policy` are pure; :class:`EscalatorAddon` registers what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
from pydantic import Field, field_validator

from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError, ConfigErrors
from mleks.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs, require_scalable
from mleks.infra.account import account_and_partition
from mleks.manifests.controllers import (
    NAMESPACE,
    asg_arn,
    cluster_role_binding,
    controller_deployment,
    metrics_port_only,
    metrics_service,
    pod_disruption_budget,
    service_account,
)
from mleks.manifests.escalator_config import (
    ESCALATOR_VERSION,
    EscalatorGroup,
    EscalatorNodeGroupOptions,
    build_node_group_entries,
    config_checksum,
    render_config_yaml,
    require_duration,
)
from mleks.manifests.k8s_objects import KubeObject
from mleks.validation.schema import Model
from mleks.vocabulary import NODE_GROUP_LABEL
from mleks.workload_identity import deploy_with_irsa

NAME = "escalator"
IMAGE = f"ghcr.io/atlassian/escalator:{ESCALATOR_VERSION}"
"""The multi-arch image the upstream release workflow pushes for ``v*`` tags (§0)."""

LEASE_NAME = "escalator-leader-elect"
"""The leader-election Lease; Escalator's default name, set explicitly so the flag and RBAC agree."""

CONFIG_MAP_NAME = "escalator-config"
CONFIG_FILE = "nodegroups_config.yaml"
CONFIG_DIR = "/opt/conf/nodegroups"
METRICS_PORT = 8080
CHECKSUM_ANNOTATION = "checksum/config"

OPTIONS_KEY = "escalator.nodeGroups"
"""Where per-group options live in the stack config (``mleks:escalator.nodeGroups.<group name>``)."""

# A modest footprint.  Memory grows with the number of pods in the cluster
# (Escalator caches every non-terminated pod in an informer, §4.2); 512Mi
# covers a few thousand pods.
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


class EscalatorArgs(Model):
    """Escalator settings.  In stack YAML, under ``mleks:escalator``."""

    node_groups: dict[str, EscalatorNodeGroupOptions] = Field(default_factory=dict)
    """Escalator options per node group, keyed by the group's role (``train``), with
    Escalator's own snake_case keys.  A group left out gets the ML defaults of
    :class:`~mleks.manifests.escalator_config.EscalatorNodeGroupOptions`.  Default: none."""

    dry_mode: bool = False
    """Pass ``--drymode``: Escalator logs what it would do and changes nothing.  Turn it
    on to pause Escalator, e.g. during a node-group AMI or version upgrade.  Default: false."""

    scan_interval: str = "30s"
    """Go duration between two scaling decisions (``--scaninterval``).  30 s reacts to a
    queued job twice as fast as Escalator's 60 s default; each loop is a few API
    reads.  Default: 30s."""

    log_level: int = Field(default=4, ge=0, le=5)
    """logrus level 0 (panic) to 5 (debug) (``--loglevel``).  Default: 4 (info), Escalator's default."""

    @field_validator("scan_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        require_duration(value, positive=True)
        return value

    def for_groups(self, names: Sequence[str]) -> EscalatorArgs:
        """These settings with only the options of the groups named ``names`` (one cluster's groups)."""
        return self.model_copy(update={"node_groups": {k: v for k, v in self.node_groups.items() if k in names}})


# --------------------------------------------------------------------------
# Pure logic
# --------------------------------------------------------------------------


def _placeholder_asg(key: str) -> str:
    return f"<ASG of nodeGroups.{key}>"


def escalator_groups(args: EscalatorArgs, groups: Sequence[GpuNodeGroupArgs], asg_names: Sequence[str]) -> list[EscalatorGroup]:
    """One Escalator group per node group, named after it, selecting the label only its nodes carry
    (``mleks.io/node-group=<name>``): two Escalator groups on one label would count the same pods and both scale."""
    return [
        EscalatorGroup(
            name=g.group_name,
            label_key=NODE_GROUP_LABEL,
            label_value=g.group_name,
            min_nodes=g.min_size,
            max_nodes=g.max_size,
            asg_name=asg,
            options=args.node_groups.get(g.key, EscalatorNodeGroupOptions()),
            config_key=f"{OPTIONS_KEY}.{g.key}",
        )
        for g, asg in zip(groups, asg_names, strict=True)
    ]


def node_group_errors(args: EscalatorArgs, groups: Sequence[GpuNodeGroupArgs]) -> list[ConfigError]:
    """Everything that would make Escalator refuse, or mis-scale, these groups.

    Runs before any resource is registered (the ASG names are not known yet, so
    placeholders stand in; only their uniqueness matters).  Keys are relative
    to the stack config's ``mleks:`` namespace.
    """
    errors: list[ConfigError] = []
    if not groups:
        errors.append(ConfigError("nodeGroups", [], "at least one node group with autoscaler: escalator", "Escalator has nothing to scale"))
    names = [g.key for g in groups]
    for key in args.node_groups:
        if key not in names:
            errors.append(ConfigError(f"{OPTIONS_KEY}.{key}", key, f"the name of a node group Escalator scales here: {names}", "no such Escalator node group"))
    valid: list[GpuNodeGroupArgs] = []
    for g in groups:
        if g.owner != "escalator":
            errors.append(
                ConfigError(f"nodeGroups.{g.key}.autoscaler", g.owner, "escalator, for a group given to Escalator", "the group belongs to another autoscaler")
            )
        elif g.min_size >= g.max_size:
            # Escalator rejects min_nodes >= max_nodes (§2), and a group whose
            # size cannot change has nothing to scale.
            errors.append(
                ConfigError(
                    f"nodeGroups.{g.key}.maxSize",
                    g.max_size,
                    f"a number greater than minSize ({g.min_size}), or autoscaler: none for a fixed-size group",
                    "Escalator requires min_nodes < max_nodes",
                )
            )
        else:
            valid.append(g)
    try:
        build_node_group_entries(escalator_groups(args, valid, [_placeholder_asg(g.key) for g in valid]))
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    return errors


def render_config(args: EscalatorArgs, groups: Sequence[GpuNodeGroupArgs], asg_names: Sequence[str]) -> str:
    """The ``nodegroups_config.yaml`` payload for ``groups`` once their ASG names are known."""
    return render_config_yaml(build_node_group_entries(escalator_groups(args, groups, asg_names)))


def container_command(args: EscalatorArgs) -> list[str]:
    """The full command line.  ``command``, not ``args``: the image has no ENTRYPOINT (§0)."""
    command = [
        "./main",
        "--nodegroups",
        f"{CONFIG_DIR}/{CONFIG_FILE}",
        "--cloud-provider",
        "aws",
        "--leader-elect",
        "--leader-elect-config-namespace",
        NAMESPACE,
        "--leader-elect-config-name",
        LEASE_NAME,
        "--address",
        f":{METRICS_PORT}",
        "--scaninterval",
        args.scan_interval,
        "--loglevel",
        str(args.log_level),
        # JSON logs: one event per line, parsed by CloudWatch and Loki alike.
        "--logfmt",
        "json",
    ]
    if args.dry_mode:
        command.append("--drymode")
    return command


def iam_policy(asg_arns: Sequence[str], *, resource_tagging: bool = False) -> dict[str, Any]:
    """Escalator's permissions without the CreateFleet path (§4.3).

    Describe calls cannot be scoped to a resource; the two write actions are
    limited to the ASGs Escalator manages, so it can never resize a group that
    cluster-autoscaler owns.  ``autoscaling:CreateOrUpdateTags`` only when a
    group turns on ``aws.resource_tagging``.
    """
    if not asg_arns:
        raise ValueError("Escalator needs at least one ASG to manage")
    write = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    if resource_tagging:
        write.append("autoscaling:CreateOrUpdateTags")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DescribeGroupsAndInstances",
                "Effect": "Allow",
                # DescribeInstances feeds the node-registration-lag metric.
                "Action": ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"],
                "Resource": "*",
            },
            {"Sid": "ScaleManagedGroupsOnly", "Effect": "Allow", "Action": sorted(write), "Resource": sorted(asg_arns)},
        ],
    }


def labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/version": ESCALATOR_VERSION, "app.kubernetes.io/component": "autoscaler"}


SELECTOR = {"app.kubernetes.io/name": NAME}


def cluster_role() -> KubeObject:
    """Upstream ``escalator-rbac.yaml`` (§4.1): what the code reads, taints, deletes and locks."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": NAME, "labels": labels()},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            # update/patch add and remove the scale-down taint; delete removes the
            # Node object after the instance is terminated.
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete", "get", "list", "patch", "update", "watch"]},
            # create cannot be limited by name (the object does not exist yet).
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [LEASE_NAME], "verbs": ["delete", "get", "patch", "update"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        ],
    }


def deployment(args: EscalatorArgs, *, region: str, checksum: pulumi.Input[str]) -> KubeObject:
    return controller_deployment(
        NAME,
        labels(),
        SELECTOR,
        image=IMAGE,
        command=container_command(args),
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "AWS_REGION", "value": region},
        ],
        port=METRICS_PORT,
        port_name="metrics",
        # /metrics is served before leader election, so the standby is ready too.
        probe_path="/metrics",
        resources=RESOURCES,
        pod_annotations={CHECKSUM_ANNOTATION: checksum},
        volume_mounts=[{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        volumes=[{"name": "config", "configMap": {"name": CONFIG_MAP_NAME, "items": [{"key": CONFIG_FILE, "path": CONFIG_FILE}], "defaultMode": 0o444}}],
    )


def render(args: EscalatorArgs, *, config_yaml: pulumi.Input[str], checksum: pulumi.Input[str], role_arn: pulumi.Input[str], region: str) -> list[KubeObject]:
    """Every Kubernetes object of the add-on.  Inputs may be plain strings or Outputs."""
    return [
        service_account(NAME, labels(), role_arn),
        cluster_role(),
        cluster_role_binding(NAME, labels()),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP_NAME, "namespace": NAMESPACE, "labels": labels()},
            "data": {CONFIG_FILE: config_yaml},
        },
        deployment(args, region=region, checksum=checksum),
        pod_disruption_budget(NAME, labels(), SELECTOR),
        metrics_service(NAME, labels(), SELECTOR, METRICS_PORT, "metrics"),
        metrics_port_only(NAME, labels(), SELECTOR, METRICS_PORT),
    ]


# --------------------------------------------------------------------------
# Component
# --------------------------------------------------------------------------


class EscalatorAddon(pulumi.ComponentResource):
    """Escalator in one cluster, scaling the given GPU node groups.

    Args:
        name: Pulumi name prefix, unique per cluster (e.g. ``ml-train-escalator``).
        args: Escalator settings and per-group options.
        cluster: the cluster Escalator runs in; every group must belong to it.
        node_groups: the groups Escalator owns (``owner == "escalator"``), at least one.

    Raises ``ConfigErrors`` before registering anything when Escalator would
    reject the groups or options.

    Outputs: ``role_arn`` (the IRSA role), ``asg_names`` (the ASGs it scales),
    ``config_checksum``.
    """

    def __init__(
        self,
        name: str,
        args: EscalatorArgs,
        *,
        cluster: EksCluster,
        node_groups: Sequence[GpuNodeGroup],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        group_args = [g.args for g in node_groups]
        require_scalable(node_group_errors(args, group_args), node_groups, cluster, "Escalator")
        super().__init__("mleks:addons:EscalatorAddon", name, None, opts)
        for group in node_groups:
            group.watched_by.add("escalator")

        asg_names: pulumi.Output[list[str]] = pulumi.Output.all(*[g.asg_name for g in node_groups])
        config_yaml = asg_names.apply(lambda names: render_config(args, group_args, names))
        checksum = config_yaml.apply(config_checksum)

        tagging = any(o.aws.resource_tagging for o in args.node_groups.values())
        account, partition = account_and_partition(self)
        policy = pulumi.Output.all(partition, account, asg_names).apply(
            lambda v: iam_policy([asg_arn(v[0], cluster.region, v[1], n) for n in v[2]], resource_tagging=tagging)
        )
        self.irsa = deploy_with_irsa(
            self,
            name,
            cluster=cluster,
            namespace=NAMESPACE,
            service_account=NAME,
            policy=policy,
            render=lambda role_arn: render(args, config_yaml=config_yaml, checksum=checksum, role_arn=role_arn, region=cluster.region),
        )
        self.role_arn = self.irsa.role_arn
        self.asg_names = asg_names
        self.config_checksum = checksum
        self.register_outputs({"role_arn": self.role_arn, "asg_names": asg_names, "config_checksum": checksum, "lease_name": LEASE_NAME})
