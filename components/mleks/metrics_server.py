"""MetricsServer: the resource metrics API (``metrics.k8s.io``) that HorizontalPodAutoscalers read.

EKS does not run metrics-server by itself, so without it an HPA on CPU or memory never gets a
reading and never scales.  The objects follow upstream's ``manifests/overlays/release-ha-1.21+``
(kubernetes-sigs/metrics-server, read at v0.8.1 and v0.9.0, whose manifests are identical but for
the image): the same RBAC, flags, probes, APIService and PodDisruptionBudget, two replicas on
different nodes.  Ours differ only where this project places and bounds add-ons: on the system
nodes, with a memory limit, and a NetworkPolicy that admits only the API server's port.
"""

from __future__ import annotations

from typing import Any

import pulumi

from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject
from mleks.vocabulary import SYSTEM_NODE_SELECTOR

TOKEN = "mleks:addons:MetricsServer"
NAME = "metrics-server"
NAMESPACE = "kube-system"
PORT = 10250

# The upstream compatibility matrix (README at v0.9.0): 0.9.x supports Kubernetes 1.34+, 0.8.x 1.31+.
RELEASES: dict[str, str] = {"1.32": "v0.8.1", "1.33": "v0.8.1", "1.34": "v0.9.0", "1.35": "v0.9.0", "1.36": "v0.9.0"}
IMAGE_REPOSITORY = "registry.k8s.io/metrics-server/metrics-server"
LABELS = {"k8s-app": NAME}


def version_for(kubernetes_version: str) -> str:
    if kubernetes_version not in RELEASES:
        raise ConfigError(
            "cluster.kubernetesVersion",
            kubernetes_version,
            f"one with a pinned metrics-server: {sorted(RELEASES)}",
            "no metrics-server release is pinned for it",
        )
    return RELEASES[kubernetes_version]


def render(kubernetes_version: str) -> list[KubeObject]:
    """Every object of metrics-server for a cluster of ``kubernetes_version``."""
    version = version_for(kubernetes_version)
    labels = {**LABELS, "app.kubernetes.io/version": version}
    sa = {"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}
    meta = {"labels": labels}
    container: dict[str, Any] = {
        "name": NAME,
        "image": f"{IMAGE_REPOSITORY}:{version}",
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "--cert-dir=/tmp",
            f"--secure-port={PORT}",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ],
        # Upstream requests; the limit is ours (every add-on here is bounded).  Upstream sizes 200Mi
        # for about 100 nodes.
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"memory": "400Mi"}},
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "initialDelaySeconds": 20,
        },
        "livenessProbe": {"httpGet": {"path": "/livez", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 10, "failureThreshold": 3},
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "allowPrivilegeEscalation": False,
            "seccompProfile": {"type": "RuntimeDefault"},
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp-dir", "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE, **meta},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(LABELS)},
            "strategy": {"rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "priorityClassName": "system-cluster-critical",
                    "nodeSelector": {"kubernetes.io/os": "linux", **SYSTEM_NODE_SELECTOR},
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {"labelSelector": {"matchLabels": dict(LABELS)}, "namespaces": [NAMESPACE], "topologyKey": "kubernetes.io/hostname"}
                            ]
                        }
                    },
                    # Upstream sets these on the container only; the pod level makes the policy visible to admission.
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "volumes": [{"name": "tmp-dir", "emptyDir": {}}],
                    "containers": [container],
                },
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "system:aggregated-metrics-reader",
                "labels": {
                    **labels,
                    "rbac.authorization.k8s.io/aggregate-to-view": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                },
            },
            "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:metrics-server", **meta},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "metrics-server-auth-reader", "namespace": NAMESPACE, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "extension-apiserver-authentication-reader"},
            "subjects": [sa],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "metrics-server:system:auth-delegator", **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [sa],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:metrics-server", **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:metrics-server"},
            "subjects": [sa],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, **meta},
            "spec": {"selector": dict(LABELS), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https", "appProtocol": "https"}]},
        },
        deployment,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": NAME, "namespace": NAMESPACE, **meta},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(LABELS)}},
        },
        # The API server (through the aggregation layer) is its only client, on the secure port.
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": NAME, "namespace": NAMESPACE, **meta},
            "spec": {"podSelector": {"matchLabels": dict(LABELS)}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": PORT, "protocol": "TCP"}]}]},
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io", **meta},
            "spec": {
                "service": {"name": NAME, "namespace": NAMESPACE},
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                # As upstream: the serving certificate is self-signed in --cert-dir.
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


class MetricsServer(pulumi.ComponentResource):
    """metrics-server in one cluster, at the release pinned for its Kubernetes minor."""

    def __init__(self, name: str, *, cluster: EksCluster, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TOKEN, name, None, opts)
        version = version_for(cluster.kubernetes_version)
        for obj in render(cluster.kubernetes_version):
            k8s_objects.create(obj, cluster.k8s_opts(self), name_prefix=name)
        self.version = version
        self.register_outputs({"version": version})
