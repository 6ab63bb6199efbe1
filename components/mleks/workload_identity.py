"""IAM roles for Kubernetes service accounts (IRSA).

Pods get AWS credentials through their service account, never through the
node role or static keys: the role trusts exactly one ``namespace/name``
service account of one cluster's OIDC provider, and carries one inline policy
written for that workload, AWS managed policies (for EKS add-ons whose
permissions AWS maintains, such as the EBS CSI driver), or both.

Why IRSA rather than EKS Pod Identity: IRSA needs nothing on the nodes (Pod
Identity needs its agent DaemonSet on every node, GPU nodes included) and the
trust is visible in the role itself, which reviewers read in ``pulumi
preview``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from mleks.cluster_base import EksCluster
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject

IAM_ROLE_NAME_MAX = 64
AUTONAME_SUFFIX = len("-") + 7
"""What Pulumi appends to a resource name to name an IAM role: ``-`` and 7 random characters."""


def role_name(resource_name: str) -> str | None:
    """The role's IAM name, or ``None`` to let Pulumi autoname it ``<resource name>-<random>``.

    IAM role names are at most 64 characters and Pulumi refuses to autoname a
    role whose resource name leaves no room for its random suffix, so a long
    cluster, job or service name would fail ``pulumi preview``.  Such a role
    gets a shorter name instead: the start of the resource name and a hash that
    is unique per project, stack and resource (role names are account-wide).
    Names that fit keep Pulumi's autonaming, so existing roles are untouched.
    """
    if len(resource_name) + AUTONAME_SUFFIX <= IAM_ROLE_NAME_MAX:
        return None
    digest = hashlib.sha256(f"{pulumi.get_project()}/{pulumi.get_stack()}/{resource_name}".encode()).hexdigest()[:8]
    return f"{resource_name[: IAM_ROLE_NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Trust policy letting one service account assume the role via web identity.

    ``oidc_issuer`` is the issuer host and path without ``https://``, e.g.
    ``oidc.eks.us-west-2.amazonaws.com/id/ABC``.
    """
    issuer = oidc_issuer.removeprefix("https://")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def policy_json(document: dict[str, Any]) -> str:
    """Canonical JSON for a policy document, so diffs stay quiet."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


class ServiceAccountRole(pulumi.ComponentResource):
    """An IAM role one Kubernetes service account assumes through IRSA.

    Outputs ``role_arn``, to put in the service account's
    ``eks.amazonaws.com/role-arn`` annotation.
    """

    role_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        oidc_provider_arn: pulumi.Input[str],
        oidc_issuer: pulumi.Input[str],
        namespace: str,
        service_account: str,
        policy: pulumi.Input[dict[str, Any]] | None = None,
        managed_policy_arns: Sequence[str] = (),
        tags: dict[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``policy`` is an inline policy document; ``managed_policy_arns`` are
        policies to attach by ARN.  At least one of the two is required."""
        if policy is None and not managed_policy_arns:
            raise ValueError(f"ServiceAccountRole {name}: give an inline policy, managed_policy_arns, or both")
        super().__init__("mleks:iam:ServiceAccountRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        assume = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(lambda v: policy_json(trust_policy(v[0], v[1], namespace, service_account)))
        self.role = aws.iam.Role(
            f"{name}-role",
            name=role_name(f"{name}-role"),
            description=f"IRSA role for {namespace}/{service_account}",
            assume_role_policy=assume,
            max_session_duration=3600,
            tags=tags,
            opts=child,
        )
        if policy is not None:
            aws.iam.RolePolicy(
                f"{name}-policy",
                role=self.role.id,
                policy=pulumi.Output.from_input(policy).apply(policy_json),
                opts=child,
            )
        for arn in managed_policy_arns:
            aws.iam.RolePolicyAttachment(f"{name}-{arn.rsplit('/', 1)[-1]}", role=self.role.name, policy_arn=arn, opts=child)
        self.role_arn = self.role.arn
        self.register_outputs({"role_arn": self.role_arn})

    @classmethod
    def of_cluster(
        cls,
        name: str,
        cluster: EksCluster,
        *,
        parent: pulumi.Resource,
        namespace: str,
        service_account: str,
        policy: pulumi.Input[dict[str, Any]] | None = None,
        managed_policy_arns: Sequence[str] = (),
    ) -> ServiceAccountRole:
        """The role for a service account of ``cluster``: trusted through its OIDC provider, tagged like it, under ``parent``."""
        return cls(
            name,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            namespace=namespace,
            service_account=service_account,
            policy=policy,
            managed_policy_arns=managed_policy_arns,
            tags=cluster.tags,
            opts=pulumi.ResourceOptions(parent=parent),
        )


def deploy_with_irsa(
    parent: pulumi.Resource,
    name: str,
    *,
    cluster: EksCluster,
    namespace: str,
    service_account: str,
    policy: pulumi.Input[dict[str, Any]],
    render: Callable[[pulumi.Output[str]], list[KubeObject]],
) -> ServiceAccountRole:
    """Register a controller's IRSA role, then its Kubernetes objects, all under ``parent``.

    ``render`` receives the role ARN.  The objects wait for the role and its
    policy: the autoscalers describe their ASGs at start-up and exit when
    they cannot.
    """
    irsa = ServiceAccountRole.of_cluster(f"{name}-irsa", cluster, parent=parent, namespace=namespace, service_account=service_account, policy=policy)
    opts = cluster.k8s_opts(parent, depends_on=[irsa])
    for obj in render(irsa.role_arn):
        k8s_objects.create(obj, opts, name_prefix=name)
    return irsa
