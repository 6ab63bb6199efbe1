"""The typed schema of a stack's config, and its loader.

Every key under the ``mleks:`` namespace of ``stacks/Pulumi.<stack>.yaml`` is
validated here, all at once, before the program registers any resource.  An
error names the key (``mleks:nodeGroups.train.instanceTypes[0]``), shows the
bad value and says what is accepted.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Annotated, Any, Literal

import pulumi
from pydantic import Field, field_validator, model_validator

from components.cluster_autoscaler_addon import ClusterAutoscalerArgs
from components.dlc_training_job import DLCTrainingJobArgs
from components.errors import ConfigError, ConfigErrors
from components.escalator_addon import EscalatorArgs
from components.gpu_node_group import GpuNodeGroupArgs, Role
from components.inference_service import InferenceServiceArgs
from components.jupyter_notebook import JupyterNotebookArgs
from components.load_balancer_controller import LoadBalancerControllerArgs
from components.ml_cluster import MLClusterArgs
from components.partitions import check_region
from components.schema import ByName, Model, keyed_by, parse, raise_all
from components.tags import tag_errors

NAMESPACE = "mleks"
Topology = Literal["dedicated", "unified"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


class VpcArgs(Model):
    """The network.  Either create one (default) or bring an existing VPC.

    A created VPC has a private and a public subnet in each AZ; nodes only
    ever run in the private ones.
    """

    id: str | None = None
    """An existing VPC id (``vpc-...``).  Default: create a VPC."""

    private_subnet_ids: list[str] = Field(default_factory=list)
    """With ``id``: private subnets for nodes, in at least two AZs."""

    public_subnet_ids: list[str] = Field(default_factory=list)
    """With ``id``: public subnets, only needed for internet-facing load balancers."""

    cidr_block: str = "10.0.0.0/16"
    """CIDR of a created VPC.  Default: 10.0.0.0/16."""

    availability_zone_count: int = Field(default=3, ge=2, le=6)
    """AZs of a created VPC.  Default: 3 (EKS needs at least 2)."""

    nat_gateways: Literal["single", "one-per-az"] = "single"
    """NAT gateways of a created VPC: ``single`` (cheaper) or ``one-per-az`` (survives an AZ loss).  Default: single."""

    @field_validator("cidr_block")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ConfigError("", value, "an IPv4 CIDR block between /16 and /24, e.g. 10.0.0.0/16", "not a CIDR block") from None
        if not 16 <= net.prefixlen <= 24:
            raise ConfigError("", value, "a prefix length from /16 to /24", "the VPC would be too large or too small for EKS pods")
        return value

    @model_validator(mode="after")
    def _existing_or_new(self) -> VpcArgs:
        if self.id is None:
            for key, ids in (("privateSubnetIds", self.private_subnet_ids), ("publicSubnetIds", self.public_subnet_ids)):
                if ids:
                    raise ConfigError(key, ids, "no subnet ids unless vpc.id names an existing VPC", "subnets given without a VPC id")
            return self
        if not self.id.startswith("vpc-"):
            raise ConfigError("id", self.id, "an existing VPC id such as vpc-0abc1234", "not a VPC id")
        if len(self.private_subnet_ids) < 2:
            raise ConfigError("privateSubnetIds", self.private_subnet_ids, "at least two private subnet ids (subnet-...) in different AZs", "EKS needs two AZs")
        for key, ids in (("privateSubnetIds", self.private_subnet_ids), ("publicSubnetIds", self.public_subnet_ids)):
            for i, sid in enumerate(ids):
                if not sid.startswith("subnet-"):
                    raise ConfigError(f"{key}[{i}]", sid, "a subnet id such as subnet-0abc1234", "not a subnet id")
        return self


class StackConfig(Model):
    """All of a stack's ``mleks:`` config keys."""

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

    # ``nodeGroups.train`` is the train group: the key fills in ``role``, so
    # users write it once, and a body that contradicts its key is refused.
    node_groups: Annotated[dict[Role, GpuNodeGroupArgs], keyed_by("role")]
    """GPU node groups by role (``train``, ``inference``); the key is the role."""

    tags: dict[str, str] = Field(default_factory=dict)
    """AWS tags on every resource that takes them: at most 41 (AWS allows 50 per resource, and this
    project and EKS add theirs), keys up to 128 and values up to 256 characters, no ``aws:`` prefix."""

    # A null section means none, as it always has for these two.
    inference_services: Annotated[dict[str, InferenceServiceArgs], keyed_by("name", null_is_empty=True)] = Field(default_factory=dict)
    """Model servers on the inference group (``mleks:inferenceServices``): a dict by name, or a
    list of objects with ``name``; see components/inference_service.py and docs/serving.md.  Default: none."""

    notebooks: Annotated[dict[str, JupyterNotebookArgs], keyed_by("name", null_is_empty=True)] = Field(default_factory=dict)
    """Jupyter servers in the training cluster (``mleks:notebooks``): a dict by name, or a list of
    objects with ``name``; see components/jupyter_notebook.py and docs/serving.md.  Default: none."""

    training_jobs: ByName[DLCTrainingJobArgs] = Field(default_factory=dict)
    """DLC training jobs on the train group (``mleks:trainingJobs``): a list of jobs, or a dict
    of jobs by name; see components/dlc_training_job.py and docs/training.md.  Default: none."""

    escalator: EscalatorArgs | None = None
    """Escalator (``mleks:escalator``): options per Escalator-owned node group under
    ``nodeGroups.<role>``, plus ``dryMode``, ``scanInterval``, ``logLevel``.  Default:
    Escalator's ML defaults for every group with ``autoscaler: escalator``."""

    load_balancer_controller: LoadBalancerControllerArgs = Field(default_factory=LoadBalancerControllerArgs)
    """The AWS Load Balancer Controller (``mleks:loadBalancerController``), needed by ``exposure: internal-nlb``.
    Default: installed where a service asks for an internal NLB."""

    cluster_autoscaler: ClusterAutoscalerArgs | None = None
    """cluster-autoscaler tunables (``mleks:clusterAutoscaler``): expander, scale-down
    timing and thresholds.  Default: the GPU-service defaults of ClusterAutoscalerArgs."""

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
    def _some_groups(cls, value: dict[Role, GpuNodeGroupArgs]) -> dict[Role, GpuNodeGroupArgs]:
        if not value:
            raise ConfigError("", value, "a train and/or an inference group, e.g. {train: {instanceTypes: [g6e.xlarge]}}", "no GPU node group")
        return value


def config_from_pulumi() -> tuple[dict[str, Any], str | None]:
    """The program's ``mleks:`` config as YAML would spell it (``{"topology": ..., ...}``), and ``aws:region``."""
    raw: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    # The engine hands config to the program in memory; PULUMI_CONFIG is the
    # environment fallback the SDK also honours.
    every = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    for full_key, value in every.items():
        if full_key.startswith(prefix):
            key = full_key[len(prefix) :]
            try:
                raw[key] = json.loads(value)
            except (TypeError, ValueError):
                raw[key] = value
    return raw, pulumi.Config("aws").get("region")


def parse_config(data: dict[str, Any]) -> StackConfig:
    """Parse ``data`` (the ``mleks:`` keys plus ``region``); raise ``ConfigErrors`` naming every bad key.

    Only the schema: checks between sections are :func:`stacks.validation.load`'s.
    """
    try:
        return parse(StackConfig, data, prefix=f"{NAMESPACE}:")
    except ConfigErrors as errors:
        for err in errors.errors:
            if err.key == f"{NAMESPACE}:region":
                err.key = "aws:region"
        raise
