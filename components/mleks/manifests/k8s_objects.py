"""Register plain Kubernetes manifests as typed pulumi-kubernetes resources.

Components render their Kubernetes objects as plain manifest dicts (pure
functions, validated in tests against the official schema), then hand them to
:func:`create`.  Each manifest becomes the pulumi-kubernetes resource of its
kind, so ``pulumi preview`` shows one typed resource per object, and awaiting,
diffing and replacement follow the provider's rules for that kind.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

KubeObject = dict[str, Any]
"""A Kubernetes manifest: ``apiVersion``, ``kind``, ``metadata`` and the kind's fields."""

# The kinds this package renders, mapped to their resource classes.
_KINDS: dict[tuple[str, str], Any] = {
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "PersistentVolume"): k8s.core.v1.PersistentVolume,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "StatefulSet"): k8s.apps.v1.StatefulSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("scheduling.k8s.io/v1", "PriorityClass"): k8s.scheduling.v1.PriorityClass,
    ("apiregistration.k8s.io/v1", "APIService"): k8s.apiregistration.v1.APIService,
    ("storage.k8s.io/v1", "StorageClass"): k8s.storage.v1.StorageClass,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): k8s.apiextensions.v1.CustomResourceDefinition,
}

# Custom resources this package renders; their CRDs come from elsewhere (the Prometheus Operator) or
# with their controller (Karpenter's, from mleks.catalogs.karpenter).
_CUSTOM_KINDS = frozenset(
    {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
        ("kueue.x-k8s.io/v1beta2", "ResourceFlavor"),
        ("kueue.x-k8s.io/v1beta2", "ClusterQueue"),
        ("kueue.x-k8s.io/v1beta2", "LocalQueue"),
    }
)

# Top-level manifest fields and the keyword each resource class takes for them.
_FIELD_KWARGS = {
    "metadata": "metadata",
    "spec": "spec",
    "data": "data",
    "stringData": "string_data",
    "type": "type",
    "immutable": "immutable",
    "rules": "rules",
    "roleRef": "role_ref",
    "subjects": "subjects",
    "aggregationRule": "aggregation_rule",
    "value": "value",
    "globalDefault": "global_default",
    "preemptionPolicy": "preemption_policy",
    "description": "description",
    "provisioner": "provisioner",
    "parameters": "parameters",
    "reclaimPolicy": "reclaim_policy",
    "volumeBindingMode": "volume_binding_mode",
    "allowVolumeExpansion": "allow_volume_expansion",
    "mountOptions": "mount_options",
    "allowedTopologies": "allowed_topologies",
    "automountServiceAccountToken": "automount_service_account_token",
    "imagePullSecrets": "image_pull_secrets",
    "secrets": "secrets",
}


def resource_name(obj: KubeObject) -> str:
    """A Pulumi resource name that is unique per cluster for this object."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    base = f"{obj['kind'].lower()}-{meta['name']}"
    return f"{base}-{namespace}" if namespace else base


def create(
    obj: KubeObject,
    opts: pulumi.ResourceOptions,
    name_prefix: str = "",
) -> pulumi.CustomResource:
    """Register ``obj`` as the pulumi-kubernetes resource of its kind.

    ``name_prefix`` keeps names unique when one program manages several
    clusters (the ``dedicated`` topology).
    """
    key = (obj["apiVersion"], obj["kind"])
    name = f"{name_prefix}-{resource_name(obj)}" if name_prefix else resource_name(obj)
    if key in _CUSTOM_KINDS:
        return k8s.apiextensions.CustomResource(name, api_version=key[0], kind=key[1], metadata=obj["metadata"], spec=obj["spec"], opts=opts)
    cls = _KINDS.get(key)
    if cls is None:
        raise ValueError(f"no resource class registered for {key}; add it to components/mleks/manifests/k8s_objects.py")
    kwargs: dict[str, Any] = {}
    for field, value in obj.items():
        if field in ("apiVersion", "kind"):
            continue
        kwarg = _FIELD_KWARGS.get(field)
        if kwarg is None:
            raise ValueError(f"{obj['kind']} field {field!r} has no keyword mapping in components/mleks/manifests/k8s_objects.py")
        kwargs[kwarg] = value
    return cls(name, opts=opts, **kwargs)
