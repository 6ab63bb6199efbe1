"""ExistingCluster: an EKS cluster you already run, for mleks GPU groups, autoscalers and workloads.

The commonest case: the cluster exists (eksctl, terraform-aws-eks, the
console), and you want GPU node groups, Escalator or cluster-autoscaler, and
training jobs in it.  ``ExistingCluster`` looks the cluster up by name and
offers the same interface :class:`~mleks.ml_cluster.MLCluster` gives
components; it creates nothing in the control plane.

What it needs from you, and why:

* ``kubernetes_version``: the cluster's minor (``"1.35"``).  Add-on images are
  pinned per minor before anything is looked up; the update fails if the
  cluster reports another minor.
* ``region``: the cluster's region, which its kubeconfig and the add-on and
  DLC images use; the update fails if the cluster found is in another (its
  ARN names it), as it is when the AWS provider points elsewhere.
* the cluster's IAM OIDC provider must exist (``eksctl utils
  associate-iam-oidc-provider``): autoscalers and workloads get AWS rights
  through IRSA.
* ``node_role_arn`` (optional): the role new GPU nodes run as.  Default: a new
  role with the kubelet's policies *and* ``AmazonEKS_CNI_Policy``, because an
  existing cluster's VPC CNI usually takes its rights from the node role.  The
  cluster must accept the role: EKS adds access entries for managed node
  group roles itself.
* ``private_subnet_ids`` (optional): where GPU nodes go.  Default: the
  cluster's own subnets; name private ones if those include public subnets.

Kubernetes objects go through a provider that authenticates with
``aws eks get-token``, as ``aws eks update-kubeconfig`` sets up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mleks.catalogs.eks_versions import kubernetes_version_status, supported_kubernetes_versions
from mleks.catalogs.partitions import check_region, partition_of
from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError, ConfigErrors
from mleks.ml_cluster import configured_region, create_node_role, node_role_policy_arns, vpc_cni_policy_arn
from mleks.validation.schema import component_errors, raised


def _kubeconfig(cluster_name: str, region: str, endpoint: str, ca_data: str) -> str:
    token = ["eks", "get-token", "--cluster-name", cluster_name, "--region", region]
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": token}}
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [{"name": cluster_name, "user": user}],
        },
        sort_keys=True,
    )


def _field(obj: Any, name: str) -> Any:
    """A field of a lookup result, typed or (as some engines hand it back) a plain mapping."""
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


class ExistingCluster(EksCluster):
    """An EKS cluster looked up by name.  Outputs: ``cluster_name``, ``oidc_provider_arn``, ``node_role_arn``."""

    def __init__(
        self,
        name: str,
        *,
        cluster_name: str,
        kubernetes_version: str,
        region: str | None = None,
        node_role_arn: pulumi.Input[str] | None = None,
        private_subnet_ids: pulumi.Input[Sequence[str]] | None = None,
        tags: dict[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``region``: default, the program's ``aws:region``."""
        checked_region, errors = raised(lambda: check_region(region or configured_region()))
        errors = [e.under("region") for e in errors]
        if kubernetes_version_status(kubernetes_version) == "unsupported":
            accepted = f"the cluster's minor version, one of {supported_kubernetes_versions()}"
            errors.append(ConfigError("kubernetes_version", kubernetes_version, accepted, "not supported by EKS today"))
        if errors or checked_region is None:
            raise component_errors(errors, component="ExistingCluster", name=name, config_key=None)
        region = checked_region
        super().__init__("mleks:cluster:ExistingCluster", name, opts)
        self.region = region
        self.eks_name = cluster_name
        self.kubernetes_version = kubernetes_version
        self.tags = {**(tags or {}), "mleks/cluster": cluster_name}
        invoke = pulumi.InvokeOptions(parent=self)
        found = aws.eks.get_cluster_output(name=cluster_name, opts=invoke)
        self.cluster_name = found.name
        self.vpc_id = found.vpc_config.vpc_id
        self.cluster_security_group_id = found.vpc_config.cluster_security_group_id
        self.private_subnet_ids = pulumi.Output.from_input(private_subnet_ids).apply(list) if private_subnet_ids is not None else found.vpc_config.subnet_ids
        self.private_subnet_inputs = list(private_subnet_ids) if isinstance(private_subnet_ids, (list, tuple)) else None
        # An existing cluster's VPC CNI usually takes its rights from the node role.
        self.node_policy_arns = [*node_role_policy_arns(partition_of(region)), vpc_cni_policy_arn(partition_of(region))]
        issuer_url = found.identities.apply(lambda ids: str(_field(_field(ids[0], "oidcs")[0], "issuer")))
        self.oidc_issuer = issuer_url.apply(lambda url: url.removeprefix("https://"))
        self.oidc_provider_arn = aws.iam.get_open_id_connect_provider_output(url=issuer_url, opts=invoke).arn

        attachments: list[pulumi.Resource] = []
        if node_role_arn is None:
            role, made = create_node_role(name, cluster_name, self.node_policy_arns, tags=self.tags, parent=self)
            self.node_role_arn = role.arn
            attachments = list(made)
        else:
            self.node_role_arn = pulumi.Output.from_input(node_role_arn)
        self.node_prerequisites = attachments
        self.addon_prerequisites = []  # its nodes already run

        kubeconfig = pulumi.Output.all(found.endpoint, found.certificate_authorities).apply(
            lambda v: _kubeconfig(cluster_name, region, str(v[0]), str(_field(v[1][0], "data")))
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig)
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=pulumi.ResourceOptions(parent=self))

        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "oidc_provider_arn": self.oidc_provider_arn,
                "node_role_arn": self.node_role_arn,
                "kubernetes_version": found.version.apply(lambda actual: self._check_version(str(actual))),
                "region": found.arn.apply(lambda arn: self._check_region(str(arn))),
            }
        )

    def _check_region(self, arn: str) -> str:
        # arn:<partition>:eks:<region>:<account>:cluster/<name>.  The lookup runs wherever the AWS
        # provider points, so a `region` that differs would pull images from, and fetch tokens
        # for, a region the cluster is not in.
        parts = arn.split(":")
        actual = parts[3] if len(parts) > 3 else ""
        if actual and actual != self.region:
            raise ConfigErrors([ConfigError("region", self.region, f'"{actual}", the region the cluster is in (its ARN {arn})', "not the cluster's region")])
        return actual or self.region

    def _check_version(self, actual: str) -> str:
        minor = ".".join(actual.split(".")[:2])
        if minor != self.kubernetes_version:
            raise ConfigErrors(
                [ConfigError("kubernetes_version", self.kubernetes_version, f'"{minor}", the version the cluster runs', "not the cluster's version")]
            )
        return minor
