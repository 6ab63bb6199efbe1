"""The platform's arguments: one typed model of everything a stack file holds.

The field docstrings are the stack-file reference too: ``python -m stacks.config_reference``
writes ``docs/config-reference.md`` from them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from mleks.catalogs.partitions import check_region
from mleks.cluster_autoscaler_addon import ClusterAutoscalerArgs
from mleks.dataset import DatasetArgs
from mleks.dlc_training_job import DLCTrainingJobArgs
from mleks.errors import ConfigError
from mleks.escalator_addon import EscalatorArgs
from mleks.gpu_node_group import GpuNodeGroupArgs
from mleks.inference_service import InferenceServiceArgs
from mleks.jupyter_notebook import JupyterNotebookArgs
from mleks.kueue_addon import KueueArgs, TeamArgs
from mleks.load_balancer_controller import LoadBalancerControllerArgs
from mleks.ml_cluster import MLClusterArgs
from mleks.network import VpcArgs
from mleks.node_repair import NodeRepairSettings
from mleks.observability import ObservabilityArgs
from mleks.validation.schema import ByName, Model, keyed_by, raise_all
from mleks.validation.tags import tag_errors

ROLES = ("train", "inference")
Topology = Literal["dedicated", "unified"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


def named_groups(value: Any) -> Any:
    """``nodeGroups`` as a mapping by name, each body's ``name`` filled from its key, and its ``role`` too where the key is a role.

    A list of groups is accepted as well, each named by ``name`` (or, for a group per role, ``role``).
    """
    errors: list[ConfigError] = []
    if isinstance(value, list):
        as_map: dict[str, Any] = {}
        for i, body in enumerate(value):
            key = body.get("name", body.get("role")) if isinstance(body, dict) else None
            if not isinstance(key, str):
                errors.append(ConfigError(f"[{i}].name", None, "a name for the group (or a role, for a group per role)", "missing name"))
            elif key in as_map:
                errors.append(ConfigError(f"[{i}].name", key, "a name no other group in the list has", "duplicate name"))
            else:
                as_map[key] = body
        if errors:
            raise_all("nodeGroups", errors)
        value = as_map
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, body in value.items():
        if isinstance(body, dict):
            body = dict(body)
            given = body.get("name", key)
            if given != key:
                errors.append(ConfigError(f"{key}.name", given, f"{key!r} (the name is the group's key)", "name differs from its key"))
            body["name"] = key
            role = body.get("role")
            if role is None and key not in ROLES:
                errors.append(ConfigError(f"{key}.role", None, "train or inference: a group's role may be left out only when its name is one", "missing"))
            elif role is None:
                body["role"] = key
            elif key in ROLES and role != key:
                errors.append(
                    ConfigError(f"{key}.role", role, f"{key!r}, or another name for a group of role {role!r}", "a group named after a role must have that role")
                )
        out[key] = body
    if errors:
        raise_all("nodeGroups", errors)
    return out


class MLPlatformArgs(Model):
    """The whole platform: what a stack file says under ``mleks:`` (and ``aws:region``), as typed arguments.

    Built in Python (``MLPlatformArgs(region="us-east-1", topology="unified", node_groups={...})``,
    snake_case) or parsed from a stack file by :func:`mleks.platform.load` (camelCase).  Each field
    is checked on its own when the model is built; :class:`~mleks.platform.MLPlatform` checks the
    sections against each other before it registers anything.
    """

    region: str
    """AWS region, from ``aws:region``."""

    topology: Topology
    """``dedicated`` (a training and an inference cluster) or ``unified`` (one cluster)."""

    name_prefix: str = "ml"
    """Prefix of cluster names: ``<prefix>`` (unified) or ``<prefix>-train`` / ``<prefix>-inference``.  Default: ml."""

    cluster: MLClusterArgs = Field(default_factory=MLClusterArgs)
    """Settings shared by every cluster of the stack."""

    vpc: VpcArgs = Field(default_factory=VpcArgs)
    """The network."""

    # The key is the group's name; where the name is a role (``nodeGroups.train``)
    # it is the role too, so the stack files of a group per role stay as they were.
    node_groups: Annotated[dict[str, GpuNodeGroupArgs], BeforeValidator(named_groups)]
    """GPU node groups by name: ``nodeGroups.<name>``, each with a ``role`` (``train`` or ``inference``;
    it defaults to the name when the name is a role).  Any number per role."""

    tags: dict[str, str] = Field(default_factory=dict)
    """AWS tags on every resource that takes them: at most 40 (AWS allows 50 per resource, and this
    project and EKS add theirs), keys up to 128 and values up to 256 characters, no ``aws:`` prefix."""

    # A null section means none, as it always has for these two.
    inference_services: Annotated[dict[str, InferenceServiceArgs], keyed_by("name", null_is_empty=True)] = Field(default_factory=dict)
    """Model servers on the inference group (``mleks:inferenceServices``): a dict by name, or a
    list of objects with ``name``; see components/mleks/inference_service.py and docs/serving.md.  Default: none."""

    notebooks: Annotated[dict[str, JupyterNotebookArgs], keyed_by("name", null_is_empty=True)] = Field(default_factory=dict)
    """Jupyter servers in the training cluster (``mleks:notebooks``): a dict by name, or a list of
    objects with ``name``; see components/mleks/jupyter_notebook.py and docs/serving.md.  Default: none."""

    datasets: Annotated[dict[str, DatasetArgs], keyed_by("name", null_is_empty=True)] = Field(default_factory=dict)
    """Shared training data (``mleks:datasets``): FSx for Lustre file systems by name, optionally linked to an
    S3 prefix, in the training cluster; jobs and notebooks mount them with ``datasets: [{name, mountPath}]``.
    See components/mleks/dataset.py and docs/training.md.  Default: none."""

    training_jobs: ByName[DLCTrainingJobArgs] = Field(default_factory=dict)
    """DLC training jobs on a train group (``mleks:trainingJobs``, ``nodeGroup`` picks it): a list of jobs, or a dict
    of jobs by name; see components/mleks/dlc_training_job.py and docs/training.md.  Default: none."""

    escalator: EscalatorArgs | None = None
    """Escalator (``mleks:escalator``): options per Escalator-owned node group under
    ``nodeGroups.<name>`` (the group names of ``mleks:nodeGroups``), plus ``dryMode``, ``scanInterval``, ``logLevel``.  Default:
    Escalator's ML defaults for every group with ``autoscaler: escalator``."""

    load_balancer_controller: LoadBalancerControllerArgs = Field(default_factory=LoadBalancerControllerArgs)
    """The AWS Load Balancer Controller (``mleks:loadBalancerController``), needed by ``exposure: internal-nlb``.
    Default: installed where a service asks for an internal NLB."""

    cluster_autoscaler: ClusterAutoscalerArgs | None = None
    """cluster-autoscaler tunables (``mleks:clusterAutoscaler``): expander, scale-down
    timing and thresholds.  Default: the GPU-service defaults of ClusterAutoscalerArgs."""

    node_repair: NodeRepairSettings = Field(default_factory=NodeRepairSettings)
    """EKS node auto-repair of the GPU groups (``mleks:nodeRepair``): ``enabled``, the parallel and
    unhealthy-threshold limits and ``overrides`` for every group, and ``nodeGroups.<name>`` for what
    differs in one group; see docs/operations.md.  Default: on for every GPU group, one node at a time."""

    teams: dict[str, TeamArgs] = Field(default_factory=dict)
    """Teams that share the training groups through Kueue queues (``mleks:teams``): by name, each with its
    ``namespace`` (default: its name), ``quotas`` (GPUs per train group), ``borrowingLimit`` and
    ``preemption``; jobs in a team's namespace (or naming ``team``) go through its queue.  See
    docs/training.md#team-queues.  Default: none (no Kueue; jobs start at once)."""

    kueue: KueueArgs = Field(default_factory=KueueArgs)
    """How Kueue admits the teams' jobs (``mleks:kueue``): ``podsReadyTimeout`` for all-or-nothing starts,
    the requeue backoff, and ``oversubscribe``.  Used only with ``mleks:teams``."""

    observability: ObservabilityArgs = Field(default_factory=ObservabilityArgs)
    """GPU and cluster metrics (``mleks:observability``): ``cloudwatch``, ``prometheus`` or ``none``, or an
    object with ``mode``, ``scrape`` and ``cloudwatchAddonVersion``; see docs/operations.md.  Default: cloudwatch."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return check_region(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, dict):
            errors = tag_errors(value)
            if errors:
                raise_all("tags", errors)
        return value

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ConfigError("", value, "2-32 lowercase letters, digits and dashes, starting with a letter", "not a valid name")
        return value

    @field_validator("node_groups")
    @classmethod
    def _some_groups(cls, value: dict[str, GpuNodeGroupArgs]) -> dict[str, GpuNodeGroupArgs]:
        if not value:
            raise ConfigError("", value, "a train and/or an inference group, e.g. {train: {instanceTypes: [g6e.xlarge]}}", "no GPU node group")
        seen: dict[str, str] = {}
        errors = []
        for key, group in value.items():
            if group.group_name in seen:
                errors.append(
                    ConfigError(
                        key,
                        key,
                        f"a name no other group has once lower-cased with _ as - (nodeGroups.{seen[group.group_name]} is {group.group_name!r} too)",
                        "two groups would share resource names and the mleks.io/node-group label",
                    )
                )
            seen.setdefault(group.group_name, key)
        if errors:
            raise_all("nodeGroups", errors)
        return value
