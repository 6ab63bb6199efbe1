"""Pieces both autoscaler add-ons share: placement, hardening, IAM ARNs, small objects.

:class:`~mleks.escalator_addon.EscalatorAddon` and
:class:`~mleks.cluster_autoscaler_addon.ClusterAutoscalerAddon` are two
controllers with the same shape: a leader-elected Deployment of two replicas on
the system nodes, an IRSA service account, a PodDisruptionBudget and a metrics
Service.  What they have in common lives here, so the two stay alike.
"""

from __future__ import annotations

from typing import Any

import pulumi

from mleks.manifests.k8s_objects import KubeObject
from mleks.vocabulary import ROLE_ARN_ANNOTATION, SYSTEM_NODE_SELECTOR

NAMESPACE = "kube-system"

REPLICAS = 2
"""Two replicas with leader election: a standby takes over within the lease
duration (about 15 s) when a system node is drained, instead of waiting for a
new pod to be scheduled and pull its image."""

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
