"""Pieces both autoscaler add-ons share: placement, hardening, IAM ARNs, small objects.

:class:`~mleks.escalator_addon.EscalatorAddon` and
:class:`~mleks.cluster_autoscaler_addon.ClusterAutoscalerAddon` are two
controllers with the same shape: a leader-elected Deployment of two replicas on
the system nodes, an IRSA service account, a PodDisruptionBudget and a metrics
Service.  What they have in common lives here, so the two stay alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError, ConfigErrors
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject
from mleks.ml_cluster import ROLE_LABEL, SYSTEM_ROLE
from mleks.workload_identity import ROLE_ARN_ANNOTATION, ServiceAccountRole

if TYPE_CHECKING:
    from mleks.gpu_node_group import GpuNodeGroup

NAMESPACE = "kube-system"

REPLICAS = 2
"""Two replicas with leader election: a standby takes over within the lease
duration (about 15 s) when a system node is drained, instead of waiting for a
new pod to be scheduled and pull its image."""

SYSTEM_NODE_SELECTOR = {ROLE_LABEL: SYSTEM_ROLE}
"""An autoscaler runs on the CPU system nodes, which no autoscaler scales.  On a
node it scales, it can block its own scale-down (escalator #139) or be killed
with the node it removes."""

# The ``nobody`` user.  The Escalator image (alpine) has no USER line, so
# ``runAsNonRoot`` alone would refuse to start it; a fixed uid works for both
# images, and is what the upstream cluster-autoscaler chart uses.
NON_ROOT_UID = 65534


def pod_security_context() -> dict[str, Any]:
    """Pod-level hardening: never root, the runtime's default seccomp filter."""
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container hardening: both controllers only talk to APIs and log to stdout,
    so they need no capability, no writable root filesystem and no setuid."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def spread_replicas(selector: dict[str, str]) -> dict[str, Any]:
    """Prefer the two replicas on different system nodes, so one node loss keeps a standby.

    Preferred, not required: a cluster briefly down to one system node (during
    its own rolling update) must still run both.
    """
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": dict(selector)},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def controller_deployment(
    name: str,
    labels: dict[str, str],
    selector: dict[str, str],
    *,
    image: str,
    command: pulumi.Input[list[str]],
    env: list[dict[str, Any]],
    port: int,
    port_name: str,
    probe_path: str,
    resources: dict[str, Any],
    pod_annotations: dict[str, Any] | None = None,
    volume_mounts: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> KubeObject:
    """The controller's Deployment: :data:`REPLICAS` leader-elected pods spread over the system
    nodes, hardened, probed over HTTP on ``port``, running as the service account ``name``."""
    probe = {"httpGet": {"path": probe_path, "port": port_name}, "timeoutSeconds": 5}
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": command,
        "env": env,
        "ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "periodSeconds": 10},
        "livenessProbe": {**probe, "initialDelaySeconds": 15, "periodSeconds": 20, "failureThreshold": 3},
        "resources": resources,
        "securityContext": container_security_context(),
        # A controller that exits on bad config or a missing ASG says why in its
        # last log line; show it in the pod status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if volume_mounts:
        container["volumeMounts"] = volume_mounts
    pod: dict[str, Any] = {
        "serviceAccountName": name,
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        "affinity": spread_replicas(selector),
        "securityContext": pod_security_context(),
        "containers": [container],
    }
    if volumes:
        pod["volumes"] = volumes
    template_meta: dict[str, Any] = {"labels": labels}
    if pod_annotations:
        template_meta["annotations"] = pod_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": selector}, "template": {"metadata": template_meta, "spec": pod}},
    }


def service_account(name: str, labels: dict[str, str], role_arn: pulumi.Input[str]) -> KubeObject:
    """The service account whose IRSA role holds the controller's AWS permissions."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, "annotations": {ROLE_ARN_ANNOTATION: role_arn}},
    }


def cluster_role_binding(name: str, labels: dict[str, str]) -> KubeObject:
    """Bind the ClusterRole ``name`` to the service account ``name`` in kube-system."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}],
    }


def pod_disruption_budget(name: str, labels: dict[str, str], selector: dict[str, str]) -> KubeObject:
    """Keep one replica up while system nodes are drained: the leader moves, scaling never stops."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(selector)}},
    }


def metrics_service(name: str, labels: dict[str, str], selector: dict[str, str], port: int, port_name: str) -> KubeObject:
    """A ClusterIP Service in front of the metrics port, for Prometheus to scrape."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
        },
    }


def metrics_port_only(name: str, labels: dict[str, str], selector: dict[str, str], port: int) -> KubeObject:
    """Ingress to the controller's pods on the metrics (and probe) port only: it serves nothing else."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": port, "protocol": "TCP"}]}]},
    }


def asg_arn(partition: str, region: str, account_id: str, asg_name: str) -> str:
    """The ARN of an Auto Scaling group by name; the group id part is a wildcard.

    IAM matches the whole ARN, and the middle part is a UUID AWS assigns at
    creation, so naming the group is how a policy pins one ASG.
    """
    return f"arn:{partition}:autoscaling:{region}:{account_id}:autoScalingGroup:*:autoScalingGroupName/{asg_name}"


def account_and_partition(parent: pulumi.Resource) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """The deploying account id and its partition (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    invoke = pulumi.InvokeOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    partition = aws.get_partition_output(opts=invoke).partition
    return account, partition


def require_valid_groups(errors: list[ConfigError], node_groups: Sequence[GpuNodeGroup], cluster: EksCluster, controller: str) -> None:
    """Refuse, before anything is registered, groups the controller cannot scale: ``errors``
    from its own checks, and groups of another cluster (an autoscaler only sees its own)."""
    if errors:
        raise ConfigErrors(errors)
    for g in node_groups:
        if g.cluster is not cluster:
            raise ValueError(f"node group {g.args.key!r} belongs to another cluster; {controller} only scales its own cluster's groups")


def deploy_with_irsa(
    parent: pulumi.Resource,
    name: str,
    *,
    cluster: EksCluster,
    service_account: str,
    policy: pulumi.Input[dict[str, Any]],
    render: Callable[[pulumi.Output[str]], list[KubeObject]],
) -> ServiceAccountRole:
    """Register the controller's IRSA role, then its Kubernetes objects, all under ``parent``.

    ``render`` receives the role ARN.  The objects wait for the role and its
    policy: both controllers describe their ASGs at start-up and exit when
    they cannot.
    """
    irsa = ServiceAccountRole.of_cluster(f"{name}-irsa", cluster, parent=parent, namespace=NAMESPACE, service_account=service_account, policy=policy)
    opts = cluster.k8s_opts(parent, depends_on=[irsa])
    for obj in render(irsa.role_arn):
        k8s_objects.create(obj, opts, name_prefix=name)
    return irsa
