"""EKS add-ons the way every mleks component installs them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws


class AddonTarget(Protocol):
    """What an add-on needs of its cluster (an ``EksCluster`` has it)."""

    @property
    def cluster_name(self) -> pulumi.Output[str]: ...
    @property
    def tags(self) -> dict[str, str]: ...
    @property
    def addon_prerequisites(self) -> list[pulumi.Resource]: ...


def managed_addon(
    name: str,
    *,
    cluster: AddonTarget,
    addon_name: str,
    parent: pulumi.Resource,
    addon_version: str | None = None,
    role_arn: pulumi.Input[str] | None = None,
    configuration: dict[str, Any] | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> aws.eks.Addon:
    """An EKS add-on of ``cluster``: EKS's default version unless ``addon_version`` pins one, its service
    account on ``role_arn`` (IRSA) when given, and ``configuration`` as its configuration values.

    Pulumi owns the configuration: a hand-installed copy is taken over on create, and a console edit is
    put back on the next ``pulumi up`` (``OVERWRITE`` both ways).  The add-on waits for the cluster's
    nodes, since EKS waits for its pods to run.
    """
    return aws.eks.Addon(
        name,
        cluster_name=cluster.cluster_name,
        addon_name=addon_name,
        addon_version=addon_version,
        service_account_role_arn=role_arn,
        configuration_values=None if configuration is None else json.dumps(configuration, sort_keys=True),
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=cluster.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*cluster.addon_prerequisites, *depends_on]),
    )
