"""KarpenterAddon: the Karpenter controller of one cluster, for GPU groups with ``autoscaler: karpenter``.

Karpenter launches nodes for pending pods without an Auto Scaling group in between, choosing per pod
among the allowed types and capacity pools, and consolidates nodes that go empty.  Here it serves
inference groups only: Escalator keeps training, because Karpenter may still drain a node under a
running job (aws/karpenter-provider-aws#701).  What this component installs, as upstream's
getting-started guide does at the pinned release (:mod:`mleks.catalogs.karpenter`):

* the CRDs of the release, as objects Pulumi owns (Helm never upgrades a chart's ``crds/``), so a
  NodePool and an EC2NodeClass validate against the schema of the controller that reads them;
* the ``karpenter`` chart, image pinned by digest, on the system nodes: two replicas, a
  PodDisruptionBudget, upstream's RBAC, and AWS access through IRSA with upstream's controller policy,
  scoped to this cluster, its node role and its queue;
* a node IAM role for Karpenter's nodes and its EKS access entry (type ``EC2_LINUX``): managed node
  groups get theirs from EKS, Karpenter's nodes do not;
* the interruption queue (SQS, server-side encrypted) and the EventBridge rules that feed it (spot
  interruption warnings, rebalance recommendations, instance state changes, AWS Health scheduled
  changes, capacity reservation interruptions), so Karpenter drains a node before EC2 takes it back;
* the discovery tag on the cluster's private subnets and node security group, which each group's
  EC2NodeClass selects.

**Nothing left running.**  Karpenter's instances are not in Pulumi's state.  Every NodePool and
EC2NodeClass depends on :attr:`KarpenterAddon.ready` (the controller, its IAM, its queue and the
tags), so Pulumi deletes the pools first, and pulumi-kubernetes deletes with foreground propagation:
the NodePool is gone only once its NodeClaims are, and a NodeClaim's finalizer is removed only once
Karpenter has drained the node and terminated its instance.  The controller, its role, its queue and
the subnets go after.  docs/autoscaling.md says what to do when the controller is already gone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mleks.catalogs import karpenter as catalog
from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError
from mleks.infra.account import account_and_partition
from mleks.manifests import k8s_objects
from mleks.manifests.karpenter import NAMESPACE, RELEASE_NAME, SERVICE_ACCOUNT, helm_values
from mleks.ml_cluster import create_node_role
from mleks.validation.schema import Model, component_errors
from mleks.workload_identity import ServiceAccountRole, policy_json

TOKEN = "mleks:addons:KarpenterAddon"


class KarpenterArgs(Model):
    """The controller's settings.  Default: two replicas."""

    replicas: int = 2
    """Controller replicas, one leader and warm standbys; at least 2, so a system node loss does not
    stop provisioning.  Default: 2."""


def discovery_tag_key(cluster: EksCluster) -> str:
    """The subnet and security group tag a cluster's EC2NodeClasses select (value: the cluster's name).

    A key per EKS cluster (the ``karpenter.sh/discovery/<cluster name>`` form of upstream's node class
    docs), so two clusters that share a VPC's subnets each keep their own tag.
    """
    return f"karpenter.sh/discovery/{cluster.eks_name}"


def karpenter_errors(cluster: EksCluster, args: KarpenterArgs) -> list[ConfigError]:
    """Why Karpenter cannot run in ``cluster`` as asked (keys relative to the component)."""
    errors = catalog.cluster_errors(
        kubernetes_version=cluster.kubernetes_version, region=cluster.region, version_key="cluster.kubernetes_version", region_key="cluster.region"
    )
    if cluster.private_subnet_inputs is None:
        errors.append(
            ConfigError(
                "cluster.private_subnet_ids",
                "an Output",
                "the private subnet ids as a list (each item may be an Output), so each subnet gets Karpenter's discovery tag",
                "the number of subnets is not known before deployment",
            )
        )
    if args.replicas < 2:
        errors.append(ConfigError("args.replicas", args.replicas, "2 or more", "one replica stops every Karpenter pool from scaling while it restarts"))
    return errors


class KarpenterAddon(pulumi.ComponentResource):
    """Karpenter in ``cluster``.  Create it before the cluster's ``autoscaler: karpenter`` groups.

    Outputs: ``role_arn`` (the controller's IRSA role), ``node_role_arn``, ``queue_name``, ``version``.
    Attributes: ``node_role_name`` and ``discovery_tag`` (for EC2NodeClasses) and ``ready`` (what every
    NodePool and EC2NodeClass depends on).
    """

    def __init__(self, name: str, args: KarpenterArgs | None = None, *, cluster: EksCluster, opts: pulumi.ResourceOptions | None = None) -> None:
        args = args or KarpenterArgs()
        errors = karpenter_errors(cluster, args)
        if errors:
            raise component_errors(errors, component="KarpenterAddon", name=name, config_key=None)
        super().__init__(TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = cluster.tags
        account, partition = account_and_partition(self)

        # The role Karpenter's nodes run as: the kubelet's policies only, as the cluster's other nodes
        # (its own role, so the controller may pass this one and no other).
        self.node_role, attachments = create_node_role(f"{name}", f"Karpenter nodes of {cluster.name}", cluster.node_policy_arns, tags=tags, parent=self)
        # Managed node groups get an access entry from EKS; nodes Karpenter launches need their own to join.
        access_entry = aws.eks.AccessEntry(
            f"{name}-node-access", cluster_name=cluster.cluster_name, principal_arn=self.node_role.arn, type="EC2_LINUX", tags=tags, opts=child
        )

        settings = catalog.interruption_queue_settings()
        self.queue = aws.sqs.Queue(
            f"{name}-interruption",
            message_retention_seconds=int(settings["MessageRetentionPeriod"]),
            sqs_managed_sse_enabled=bool(settings["SqsManagedSseEnabled"]),
            tags=tags,
            opts=child,
        )
        rules: list[pulumi.Resource] = []
        rule_arns: list[pulumi.Output[str]] = []
        for rule_name, pattern in catalog.interruption_rules().items():
            slug = rule_name.removesuffix("Rule").lower()
            rule = aws.cloudwatch.EventRule(
                f"{name}-{slug}",
                description=f"Karpenter interruption events for {cluster.name}: {rule_name}",
                event_pattern=json.dumps(pattern, sort_keys=True),
                tags=tags,
                opts=child,
            )
            target = aws.cloudwatch.EventTarget(f"{name}-{slug}", rule=rule.name, arn=self.queue.arn, target_id="KarpenterInterruptionQueueTarget", opts=child)
            rules += [rule, target]
            rule_arns.append(rule.arn)
        # Upstream's policy lets any EventBridge rule send; Karpenter drains nodes on what it reads, so
        # only this cluster's five rules may (aws:SourceArn), a deliberate narrowing.
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=self.queue.url,
            policy=pulumi.Output.all(self.queue.arn, *rule_arns).apply(lambda v: policy_json(catalog.interruption_queue_policy(v[0], source_arns=v[1:]))),
            opts=child,
        )

        policy = pulumi.Output.all(partition, account, cluster.cluster_name, self.node_role.arn, self.queue.arn).apply(
            lambda v: catalog.controller_policy(partition=v[0], region=cluster.region, account_id=v[1], cluster_name=v[2], node_role_arn=v[3], queue_arn=v[4])
        )
        irsa = ServiceAccountRole.of_cluster(f"{name}-irsa", cluster, parent=self, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT, policy=policy)

        self.discovery_tag = discovery_tag_key(cluster)
        assert cluster.private_subnet_inputs is not None  # karpenter_errors refused the unknown
        discovery = [
            aws.ec2.Tag(f"{name}-discovery-subnet-{i + 1}", resource_id=subnet, key=self.discovery_tag, value=cluster.cluster_name, opts=child)
            for i, subnet in enumerate(cluster.private_subnet_inputs)
        ]
        discovery.append(
            aws.ec2.Tag(f"{name}-discovery-sg", resource_id=cluster.cluster_security_group_id, key=self.discovery_tag, value=cluster.cluster_name, opts=child)
        )

        crds: list[pulumi.Resource] = [k8s_objects.create(crd, cluster.k8s_opts(self), name_prefix=cluster.name) for crd in catalog.crds()]
        self.release = k8s.helm.v3.Release(
            name,
            name=RELEASE_NAME,
            chart=catalog.CHART,
            version=catalog.VERSION,
            namespace=NAMESPACE,
            # The CRDs above are Pulumi's, so they follow the version on upgrade.
            skip_crds=True,
            values=helm_values(
                cluster_name=cluster.cluster_name, queue_name=self.queue.name, role_arn=irsa.role_arn, replicas=args.replicas, region=cluster.region
            ),
            atomic=True,
            opts=cluster.k8s_opts(self, depends_on=[irsa, queue_policy, *crds, *cluster.addon_prerequisites]),
        )
        self.node_role_name = self.node_role.name
        self.node_role_arn = self.node_role.arn
        self.ready: Sequence[pulumi.Resource] = [self.release, access_entry, *attachments, *rules, *discovery, *cluster.node_prerequisites]
        """What a NodePool and its EC2NodeClass wait for, and so what outlives them on destroy."""
        self.role_arn = irsa.role_arn
        cluster.karpenter_added(self)
        self.register_outputs({"role_arn": irsa.role_arn, "node_role_arn": self.node_role.arn, "queue_name": self.queue.name, "version": catalog.VERSION})
