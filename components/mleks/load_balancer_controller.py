"""AwsLoadBalancerController: the controller that turns ``exposure: internal-nlb`` into an NLB.

An InferenceService that opts in to an internal NLB renders a Service with
``loadBalancerClass: service.k8s.aws/nlb``.  Only the AWS Load Balancer
Controller acts on that class; without it the Service stays pending and
``pulumi up`` waits for it, then fails.  So every cluster with such a service
gets the controller, installed as upstream ships it:

* the ``aws-load-balancer-controller`` chart of aws/eks-charts at a pinned
  version, as a Helm release (its CRDs, webhooks, webhook certificate and
  PodDisruptionBudget are the chart's own, so they match the release);
* its AWS rights through IRSA, with the upstream IAM policy of the same
  release for the cluster's partition (``docs/install/iam_policy*.json`` of
  kubernetes-sigs/aws-load-balancer-controller, kept under
  ``mleks/catalogs/data/aws_load_balancer_controller/``);
* on the system nodes, two replicas, ``region`` and ``vpcId`` given, because
  with IMDS at hop limit 1 the controller cannot look them up itself (the EKS
  user guide ``lbc-helm`` asks for both where IMDS is restricted).

What we change from the chart's defaults, each for a reason:

* ``createIngressClassResource: false``: nothing here uses Ingress, and an
  ``alb`` IngressClass would let any namespace ask for an internet-facing ALB;
* ``enableServiceMutatorWebhook: false``: our Services name their class, and
  the webhook would otherwise hand every ``LoadBalancer`` Service in the
  cluster to this controller;
* ``keepTLSSecret: true``: the webhook certificate is generated at install and
  kept on upgrades, so an unrelated ``pulumi up`` does not rotate it;
* capabilities dropped and the runtime's seccomp profile on top of the chart's
  non-root, read-only settings.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from mleks.catalogs.addon_registry import registry_host
from mleks.catalogs.partitions import partition_of
from mleks.cluster_base import EksCluster
from mleks.validation.schema import Model
from mleks.vocabulary import ROLE_ARN_ANNOTATION, ROLE_LABEL, SYSTEM_ROLE
from mleks.workload_identity import ServiceAccountRole

TOKEN = "mleks:addons:AwsLoadBalancerController"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"

# aws/eks-charts stable/aws-load-balancer-controller Chart.yaml at 5239609
# (2026-08-03): chart 3.5.0, app v3.5.0; the IAM policies are from the
# controller's tag v3.5.0.  Bump the three together.
CHART = "aws-load-balancer-controller"
CHART_VERSION = "3.5.0"
APP_VERSION = "v3.5.0"
CHART_REPOSITORY = "https://aws.github.io/eks-charts"
DEFAULT_IMAGE_REPOSITORY = "public.ecr.aws/eks/aws-load-balancer-controller"
"""The chart's default image, reachable from the commercial partition."""

# One policy file per partition upstream; they differ in ARN prefixes and, for
# the isolated regions, in ELB actions those regions lack.
_POLICY_FILES = {
    "aws": "iam_policy.json",
    "aws-cn": "iam_policy_cn.json",
    "aws-us-gov": "iam_policy_us-gov.json",
    "aws-iso": "iam_policy_iso.json",
    "aws-iso-b": "iam_policy_isob.json",
    "aws-iso-e": "iam_policy_isoe.json",
    "aws-iso-f": "iam_policy_isof.json",
    "aws-eusc": "iam_policy_eusc.json",
}

Install = Literal["auto", "always", "never"]


class LoadBalancerControllerArgs(Model):
    """Whether clusters get the controller.  In stack YAML, under ``mleks:loadBalancerController``."""

    install: Install = "auto"
    """``auto``: in each cluster where a service sets ``exposure: internal-nlb``.  ``always``: in every
    cluster (for your own NLBs).  ``never``: nowhere; a service asking for an NLB is then an error.  Default: auto."""


RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


@cache
def iam_policy(partition: str) -> dict[str, Any]:
    """The upstream IAM policy of the pinned release for ``partition``."""
    folder = resources.files("mleks.catalogs.data").joinpath("aws_load_balancer_controller")
    return dict(json.loads(folder.joinpath(_POLICY_FILES[partition]).read_text()))


def image_repository(region: str) -> str:
    """Where nodes pull the controller from: ECR Public in the commercial partition,
    the region's EKS add-on registry elsewhere (those partitions do not reach ECR Public)."""
    if partition_of(region) == "aws":
        return DEFAULT_IMAGE_REPOSITORY
    host = registry_host(region)
    if host is None:
        raise ValueError(f"no EKS add-on registry is recorded for {region}")
    return f"{host}/amazon/aws-load-balancer-controller"


def helm_values(*, cluster_name: pulumi.Input[str], region: str, vpc_id: pulumi.Input[str], role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The chart values (pure; the inputs may be Outputs)."""
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "image": {"repository": image_repository(region), "tag": APP_VERSION},
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT, "annotations": {ROLE_ARN_ANNOTATION: role_arn}},
        "nodeSelector": {ROLE_LABEL: SYSTEM_ROLE},
        # The chart renders a PDB only when given one and replicaCount > 1.
        "podDisruptionBudget": {"maxUnavailable": 1},
        "resources": RESOURCES,
        "podSecurityContext": {"fsGroup": 65534, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "keepTLSSecret": True,
        "createIngressClassResource": False,
        "enableServiceMutatorWebhook": False,
    }


class AwsLoadBalancerController(pulumi.ComponentResource):
    """The AWS Load Balancer Controller in ``cluster``, for internal NLBs of opted-in services.

    Outputs: ``role_arn``, ``chart_version``.  Attribute ``release``: what a
    Service that needs the controller should depend on.
    """

    def __init__(self, name: str, *, cluster: EksCluster, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TOKEN, name, None, opts)
        role = ServiceAccountRole.of_cluster(
            f"{name}-irsa",
            cluster,
            parent=self,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy=iam_policy(partition_of(cluster.region)),
        )
        self.release = k8s.helm.v3.Release(
            name,
            name=CHART,
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=NAMESPACE,
            values=helm_values(cluster_name=cluster.cluster_name, region=cluster.region, vpc_id=cluster.vpc_id, role_arn=role.role_arn),
            # Roll back a failed upgrade instead of leaving a half-updated webhook.
            atomic=True,
            opts=cluster.k8s_opts(self, depends_on=[role]),
        )
        self.role_arn = role.role_arn
        self.register_outputs({"role_arn": role.role_arn, "chart_version": CHART_VERSION})
