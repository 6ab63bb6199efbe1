"""What the API server refuses, or accepts and then never serves, beyond the OpenAPI schema.

Each check reads one cluster's objects together, as the API server and the
controllers will.  Sources (kubernetes/kubernetes at release-1.35):

* ``pkg/apis/core/validation/validation.go``: ``validateVolumeMounts`` (a
  mount names a volume of the pod: "Not found"), ``validateContainers``
  (container names unique across init and app containers), ``validateContainerPorts``
  (port names unique per container, IANA service names), ``ValidateNamespaceName``
  (DNS label), ``ValidateServiceName`` (DNS-1035 label), and DNS subdomains for
  ConfigMaps, Secrets, ServiceAccounts, PersistentVolume(Claim)s.
* ``pkg/apis/apps/validation/validation.go``: "`selector` does not match
  template `labels`", empty selectors refused; StatefulSet ``volumeClaimTemplates``
  are volumes of its pods.
* ``pkg/apis/batch/validation/validation.go``: a CronJob name is at most 52 characters.
* ``pkg/apis/rbac/validation`` and ``pkg/apis/autoscaling/validation``: path segment names.
* kubernetes.io "Labels and Selectors" and "Object Names and IDs".

The references a pod makes (ServiceAccount, ConfigMap, Secret, PVC,
PriorityClass) are accepted by the API server but the pod never starts when
they are missing (kubelet ``CreateContainerConfigError``, scheduler "persistentvolumeclaim
not found", admission "no PriorityClass with name ... was found").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.cluster import names
from tests.cluster.render_output import Cluster, Obj, PodTemplate, Render, describe
from tests.cluster.selectors import label_selector_matches, selector_is_empty

# Namespaces every cluster has (kubernetes.io "Namespaces": default, kube-node-lease, kube-public, kube-system).
BUILTIN_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
# PriorityClasses the API server creates (kubernetes.io "Pod Priority and Preemption").
BUILTIN_PRIORITY_CLASSES = {"system-node-critical", "system-cluster-critical"}
# ConfigMaps that exist without us: kube-root-ca.crt in every namespace (root CA publisher);
# in kube-system the EKS add-ons' own (kube-proxy, kube-proxy-config, coredns, amazon-vpc-cni) and
# extension-apiserver-authentication (kube-apiserver).
BUILTIN_CONFIGMAPS_ANY_NS = {"kube-root-ca.crt"}
BUILTIN_CONFIGMAPS_KUBE_SYSTEM = {"kube-proxy", "kube-proxy-config", "coredns", "amazon-vpc-cni", "extension-apiserver-authentication"}
# ClusterRoles and Roles the API server bootstraps (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).
BUILTIN_CLUSTER_ROLES = {"cluster-admin", "admin", "edit", "view", "system:auth-delegator", "system:node-proxier", "system:heapster"}
BUILTIN_ROLES_KUBE_SYSTEM = {"extension-apiserver-authentication-reader", "system:controller:bootstrap-signer", "system:controller:token-cleaner"}
# StorageClasses on EKS: gp2 exists in every cluster (EKS user guide "Storage classes").
BUILTIN_STORAGE_CLASSES = {"gp2"}

_SUBDOMAIN_KINDS = {
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "StorageClass",
    "PriorityClass",
    "Ingress",
    "IngressClass",
    "CSIDriver",
}
_PATH_SEGMENT_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "HorizontalPodAutoscaler"}


def _group(api_version: str) -> str:
    """The API group of an apiVersion (``v1`` -> core)."""
    return api_version.rpartition("/")[0] if "/" in api_version else "core"


# --- names, labels, duplicates -------------------------------------------------------------


def _name_problem(obj: Obj) -> str | None:
    kind, name = obj.get("kind"), str((obj.get("metadata") or {}).get("name") or "")
    if kind == "Namespace":
        return names.dns_label_problem(name)
    if kind == "Service":
        return names.dns1035_label_problem(name)
    if kind in _PATH_SEGMENT_KINDS:
        return names.path_segment_problem(name)
    if kind == "CronJob" and len(name) > 52:
        return f"{name!r} is longer than 52 characters (CronJob names leave room for the Job suffix)"
    if kind == "APIService":
        return None  # "<version>.<group>", checked against spec by the API server
    return names.dns_subdomain_problem(name)


def name_and_label_problems(cluster: Cluster) -> list[str]:
    """Object names, metadata labels and annotation keys, template labels, selectors' matchLabels, nodeSelectors."""
    out = []
    for obj in cluster.objects:
        meta = obj.get("metadata") or {}
        where = f"{cluster.name}: {describe(obj)}"
        problem = _name_problem(obj)
        if problem:
            out.append(f"{where}: name {problem}")
        out += [f"{where}: label {p}" for p in names.labels_problems(meta.get("labels") or {})]
        out += [f"{where}: annotation {p}" for p in map(names.qualified_name_problem, meta.get("annotations") or {}) if p]
        selector = (obj.get("spec") or {}).get("selector")
        if isinstance(selector, dict):
            match_labels = selector.get("matchLabels") if "matchLabels" in selector or "matchExpressions" in selector else selector
            out += [f"{where}: selector {p}" for p in names.labels_problems(match_labels or {})]
    for pod in cluster.pod_templates():
        where = f"{cluster.name}: {pod.label}"
        out += [f"{where}: pod template label {p}" for p in names.labels_problems(pod.metadata.get("labels") or {})]
        out += [f"{where}: nodeSelector {p}" for p in names.labels_problems(pod.spec.get("nodeSelector") or {})]
        if pod.owner.get("kind") == "Job" and len(str(pod.owner["metadata"]["name"])) > 63:
            out.append(f"{where}: a Job name longer than 63 characters cannot be the job-name label value of its pods")
        if pod.owner.get("kind") == "StatefulSet" and len(f"{pod.owner['metadata']['name']}-0") > 63:
            out.append(f"{where}: pod names <name>-<ordinal> must fit the 63-character statefulset.kubernetes.io/pod-name label")
        for container in pod.containers():
            problem = names.dns_label_problem(str(container.get("name") or ""))
            if problem:
                out.append(f"{where}: container name {problem}")
        for volume in pod.spec.get("volumes") or []:
            problem = names.dns_label_problem(str(volume.get("name") or ""))
            if problem:
                out.append(f"{where}: volume name {problem}")
    return out


def node_group_label_problems(cluster: Cluster) -> list[str]:
    """Node-group labels become node labels: Kubernetes label syntax applies (EKS's own rules are in aws_rules)."""
    out = []
    for group in cluster.node_groups:
        out += [f"{cluster.name}: node group {group.name}: label {p}" for p in names.labels_problems(group.labels)]
        for taint in group.taints:
            problem = names.qualified_name_problem(str(taint["key"])) or names.label_value_problem(str(taint.get("value") or ""))
            if problem:
                out.append(f"{cluster.name}: node group {group.name}: taint {problem}")
    return out


def duplicate_problems(cluster: Cluster) -> list[str]:
    """Two objects of one group, kind, namespace and name are one object: the second create fails (AlreadyExists)."""
    keys = Counter(
        (_group(str(o.get("apiVersion", ""))), o.get("kind"), (o.get("metadata") or {}).get("namespace") or "", (o.get("metadata") or {}).get("name"))
        for o in cluster.objects
    )
    return [
        f"{cluster.name}: {count} objects are {kind} {ns + '/' if ns else ''}{name} ({group}): the second create fails with AlreadyExists"
        for (group, kind, ns, name), count in sorted(keys.items(), key=str)
        if count > 1
    ]


def namespace_problems(cluster: Cluster) -> list[str]:
    """Every namespace an object is created in exists (rendered, or built in)."""
    rendered = {(o.get("metadata") or {}).get("name") for o in cluster.kind("Namespace")}
    known = rendered | BUILTIN_NAMESPACES
    out = []
    for obj in cluster.objects:
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns and ns not in known:
            out.append(f"{cluster.name}: {describe(obj)}: namespace {ns!r} is neither rendered nor built in")
    return out


# --- pods: mounts, containers, ports -----------------------------------------------------------


def _volume_names(pod: PodTemplate) -> set[str]:
    volumes = {str(v.get("name")) for v in pod.spec.get("volumes") or []}
    if pod.owner.get("kind") == "StatefulSet":
        volumes |= {str((t.get("metadata") or {}).get("name")) for t in (pod.owner.get("spec") or {}).get("volumeClaimTemplates") or []}
    return volumes


def pod_spec_problems(cluster: Cluster) -> list[str]:
    """Mounts name volumes; container names are unique in a pod; port names are unique in a container."""
    out = []
    for pod in cluster.pod_templates():
        where = f"{cluster.name}: {pod.label}"
        volumes = _volume_names(pod)
        for container in pod.containers():
            for mount in list(container.get("volumeMounts") or []) + list(container.get("volumeDevices") or []):
                if mount.get("name") not in volumes:
                    out.append(
                        f"{where}: container {container.get('name')!r} mounts volume {mount.get('name')!r}, which the pod does not declare "
                        f"(volumes: {sorted(volumes)}): the API server refuses it (volumeMounts.name: Not found)"
                    )
            port_names = [p["name"] for p in container.get("ports") or [] if p.get("name")]
            for name, count in Counter(port_names).items():
                if count > 1:
                    out.append(f"{where}: container {container.get('name')!r} has {count} ports named {name!r}")
            out += [f"{where}: container {container.get('name')!r}: {p}" for p in map(names.port_name_problem, port_names) if p]
        all_names = [c.get("name") for c in pod.containers()] + [c.get("name") for c in pod.spec.get("ephemeralContainers") or []]
        for name, count in Counter(all_names).items():
            if count > 1:
                out.append(f"{where}: {count} containers are named {name!r} (init containers included)")
        volume_list = [v.get("name") for v in pod.spec.get("volumes") or []]
        for name, count in Counter(volume_list).items():
            if count > 1:
                out.append(f"{where}: {count} volumes are named {name!r}")
    return out


# --- selectors -----------------------------------------------------------------------------


def workload_selector_problems(cluster: Cluster) -> list[str]:
    """A workload's selector matches its own template's labels, and is not empty."""
    out = []
    for pod in cluster.pod_templates():
        kind = pod.owner.get("kind")
        if kind not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            continue
        selector = (pod.owner.get("spec") or {}).get("selector")
        if selector_is_empty(selector):
            out.append(f"{cluster.name}: {pod.label}: empty selector is invalid for {kind.lower()}")
        elif not label_selector_matches(selector, pod.metadata.get("labels") or {}):
            out.append(f"{cluster.name}: {pod.label}: `selector` {selector} does not match template `labels` {pod.metadata.get('labels')}")
    return out


def _pods_in(cluster: Cluster, namespace: str) -> list[PodTemplate]:
    return [p for p in cluster.pod_templates() if p.namespace == namespace]


def _container_port_names(pods: list[PodTemplate]) -> set[str]:
    return {str(port["name"]) for pod in pods for c in pod.containers(init=False) for port in c.get("ports") or [] if port.get("name")}


def selects_something_problems(cluster: Cluster) -> list[str]:
    """Services, PodDisruptionBudgets, NetworkPolicies and ServiceMonitors select something; HPAs target something."""
    out = []
    for svc in cluster.kind("Service"):
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            continue  # no selector: endpoints are managed by hand (or ExternalName)
        ns = svc["metadata"].get("namespace") or "default"
        pods = [p for p in _pods_in(cluster, ns) if label_selector_matches(selector, p.metadata.get("labels") or {})]
        if not pods:
            out.append(f"{cluster.name}: {describe(svc)}: selector {selector} selects no pod of a rendered workload in {ns}")
            continue
        port_names = _container_port_names(pods)
        for port in (svc.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort")
            if isinstance(target, str) and target not in port_names:
                out.append(f"{cluster.name}: {describe(svc)}: targetPort {target!r} names no container port of the pods it selects ({sorted(port_names)})")
    for kind, field in (("PodDisruptionBudget", "selector"), ("NetworkPolicy", "podSelector")):
        for obj in cluster.kind(kind):
            selector = (obj.get("spec") or {}).get(field)
            if kind == "NetworkPolicy" and selector_is_empty(selector):
                continue  # an empty podSelector is a namespace-wide policy, meaningful without pods
            ns = obj["metadata"].get("namespace") or "default"
            if not any(label_selector_matches(selector, p.metadata.get("labels") or {}) for p in _pods_in(cluster, ns)):
                out.append(f"{cluster.name}: {describe(obj)}: {field} {selector} selects no pod of a rendered workload in {ns}")
    for hpa in cluster.kind("HorizontalPodAutoscaler"):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        ns = hpa["metadata"].get("namespace") or "default"
        target = [
            o
            for o in cluster.objects
            if o.get("kind") == ref.get("kind")
            and (o.get("metadata") or {}).get("name") == ref.get("name")
            and ((o.get("metadata") or {}).get("namespace") or "default") == ns
            and _group(str(o.get("apiVersion"))) == _group(str(ref.get("apiVersion", o.get("apiVersion"))))
        ]
        if not target:
            out.append(f"{cluster.name}: {describe(hpa)}: scaleTargetRef {ref} does not exist in {ns}")
    services = cluster.kind("Service")
    for monitor in cluster.kind("ServiceMonitor"):
        spec = monitor.get("spec") or {}
        namespaces = ((spec.get("namespaceSelector") or {}).get("matchNames")) or [monitor["metadata"].get("namespace")]
        if not any(
            (s["metadata"].get("namespace") or "default") in namespaces and label_selector_matches(spec.get("selector"), s["metadata"].get("labels") or {})
            for s in services
        ):
            out.append(f"{cluster.name}: {describe(monitor)}: selects no Service in {namespaces}")
    return out


# --- references from pods and bindings -------------------------------------------------------


def _names_of(cluster: Cluster, kind: str, namespace: str | None) -> set[str]:
    return {
        str((o.get("metadata") or {}).get("name"))
        for o in cluster.kind(kind)
        if namespace is None or ((o.get("metadata") or {}).get("namespace") or "default") == namespace
    }


def _pod_references(pod: PodTemplate) -> dict[str, set[str]]:
    """ConfigMaps, Secrets and PVCs a pod needs (optional references left out)."""
    refs: dict[str, set[str]] = {"ConfigMap": set(), "Secret": set(), "PersistentVolumeClaim": set()}

    def add(kind: str, name: Any, optional: Any) -> None:
        if name and not optional:
            refs[kind].add(str(name))

    for volume in pod.spec.get("volumes") or []:
        if "configMap" in volume:
            add("ConfigMap", volume["configMap"].get("name"), volume["configMap"].get("optional"))
        if "secret" in volume:
            add("Secret", volume["secret"].get("secretName"), volume["secret"].get("optional"))
        if "persistentVolumeClaim" in volume:
            add("PersistentVolumeClaim", volume["persistentVolumeClaim"].get("claimName"), False)
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                add("ConfigMap", source["configMap"].get("name"), source["configMap"].get("optional"))
            if "secret" in source:
                add("Secret", source["secret"].get("name"), source["secret"].get("optional"))
    for container in pod.containers():
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                add("ConfigMap", value_from["configMapKeyRef"].get("name"), value_from["configMapKeyRef"].get("optional"))
            if "secretKeyRef" in value_from:
                add("Secret", value_from["secretKeyRef"].get("name"), value_from["secretKeyRef"].get("optional"))
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                add("ConfigMap", env_from["configMapRef"].get("name"), env_from["configMapRef"].get("optional"))
            if "secretRef" in env_from:
                add("Secret", env_from["secretRef"].get("name"), env_from["secretRef"].get("optional"))
    for secret in pod.spec.get("imagePullSecrets") or []:
        add("Secret", secret.get("name"), False)
    return refs


def reference_problems(cluster: Cluster) -> list[str]:
    """Every ServiceAccount, ConfigMap, Secret, PVC, PriorityClass and StorageClass a pod needs exists."""
    out = []
    priority_classes = _names_of(cluster, "PriorityClass", None) | BUILTIN_PRIORITY_CLASSES
    storage_classes = _names_of(cluster, "StorageClass", None) | BUILTIN_STORAGE_CLASSES
    for pod in cluster.pod_templates():
        where = f"{cluster.name}: {pod.label}"
        ns = pod.namespace
        account = pod.spec.get("serviceAccountName") or pod.spec.get("serviceAccount") or "default"
        if account != "default" and account not in _names_of(cluster, "ServiceAccount", ns):
            out.append(f"{where}: ServiceAccount {ns}/{account} does not exist: the controller cannot create the pod")
        refs = _pod_references(pod)
        config_maps = _names_of(cluster, "ConfigMap", ns) | BUILTIN_CONFIGMAPS_ANY_NS | (BUILTIN_CONFIGMAPS_KUBE_SYSTEM if ns == "kube-system" else set())
        for name in sorted(refs["ConfigMap"] - config_maps):
            out.append(f"{where}: ConfigMap {ns}/{name} does not exist: the pod stays in CreateContainerConfigError")
        for name in sorted(refs["Secret"] - _names_of(cluster, "Secret", ns)):
            out.append(f"{where}: Secret {ns}/{name} does not exist: the pod stays in CreateContainerConfigError")
        for name in sorted(refs["PersistentVolumeClaim"] - _names_of(cluster, "PersistentVolumeClaim", ns)):
            out.append(f"{where}: PersistentVolumeClaim {ns}/{name} does not exist: the pod is never scheduled")
        priority = pod.spec.get("priorityClassName")
        if priority and priority not in priority_classes:
            out.append(f"{where}: PriorityClass {priority!r} does not exist: admission refuses the pod")
        if pod.owner.get("kind") == "StatefulSet":
            for template in (pod.owner.get("spec") or {}).get("volumeClaimTemplates") or []:
                sc = (template.get("spec") or {}).get("storageClassName")
                if sc and sc not in storage_classes:
                    out.append(f"{where}: volumeClaimTemplate {template['metadata'].get('name')!r} asks StorageClass {sc!r}, which does not exist")
    return out


def volume_binding_problems(cluster: Cluster) -> list[str]:
    """PVC ``volumeName`` and PV ``claimRef`` name each other; no two PVs claim one PVC or share one CSI volume handle."""
    out = []
    pvs = {str(pv["metadata"]["name"]): pv for pv in cluster.kind("PersistentVolume")}
    pvcs = {((c["metadata"].get("namespace") or "default"), str(c["metadata"]["name"])): c for c in cluster.kind("PersistentVolumeClaim")}
    for (ns, name), pvc in pvcs.items():
        volume = (pvc.get("spec") or {}).get("volumeName")
        if not volume:
            continue
        pv = pvs.get(volume)
        if pv is None:
            out.append(f"{cluster.name}: PersistentVolumeClaim {ns}/{name}: volumeName {volume!r} is not a rendered PersistentVolume: the claim stays Pending")
            continue
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref and (ref.get("namespace"), ref.get("name")) != (ns, name):
            out.append(
                f"{cluster.name}: PersistentVolume {volume}: claimRef {ref.get('namespace')}/{ref.get('name')} is not the claim {ns}/{name} that names it"
            )
    claims = Counter((ref.get("namespace"), ref.get("name")) for pv in pvs.values() if (ref := (pv.get("spec") or {}).get("claimRef")) and ref.get("name"))
    handles = Counter(
        (csi.get("driver"), csi.get("volumeHandle")) for pv in pvs.values() if (csi := (pv.get("spec") or {}).get("csi")) and csi.get("volumeHandle")
    )
    for (driver, handle), count in handles.items():
        if count > 1:
            # The attach/detach and mount code keys volumes by driver and handle (kubernetes/kubernetes#132921).
            out.append(f"{cluster.name}: {count} PersistentVolumes share CSI volumeHandle {handle!r} ({driver}): Kubernetes treats them as one volume")
    for (ns, name), count in claims.items():
        if count > 1:
            out.append(f"{cluster.name}: {count} PersistentVolumes claim {ns}/{name}: only one can bind")
        if (ns, name) not in pvcs:
            out.append(f"{cluster.name}: a PersistentVolume's claimRef names {ns}/{name}, which is not rendered")
    return out


def binding_problems(cluster: Cluster) -> list[str]:
    """RBAC bindings name roles that exist and ServiceAccounts that exist; APIServices name Services that exist."""
    out = []
    cluster_roles = _names_of(cluster, "ClusterRole", None) | BUILTIN_CLUSTER_ROLES
    for binding in cluster.kind("RoleBinding") + cluster.kind("ClusterRoleBinding"):
        ref = binding.get("roleRef") or {}
        ns = binding["metadata"].get("namespace") or "default"
        if ref.get("kind") == "ClusterRole" and ref.get("name") not in cluster_roles:
            out.append(f"{cluster.name}: {describe(binding)}: ClusterRole {ref.get('name')!r} does not exist")
        if ref.get("kind") == "Role":
            roles = _names_of(cluster, "Role", ns) | (BUILTIN_ROLES_KUBE_SYSTEM if ns == "kube-system" else set())
            if ref.get("name") not in roles:
                out.append(f"{cluster.name}: {describe(binding)}: Role {ns}/{ref.get('name')} does not exist")
        for subject in binding.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                sa_ns = subject.get("namespace") or ns
                if subject.get("name") != "default" and subject.get("name") not in _names_of(cluster, "ServiceAccount", sa_ns):
                    out.append(f"{cluster.name}: {describe(binding)}: subject ServiceAccount {sa_ns}/{subject.get('name')} does not exist")
    for api_service in cluster.kind("APIService"):
        service = (api_service.get("spec") or {}).get("service")
        if service and service.get("name") not in _names_of(cluster, "Service", service.get("namespace")):
            out.append(f"{cluster.name}: {describe(api_service)}: Service {service.get('namespace')}/{service.get('name')} does not exist")
    return out


def api_server_problems(render: Render) -> list[str]:
    """Every API-server-level problem of every cluster in the render."""
    out = []
    for cluster in render.clusters.values():
        for check in (
            name_and_label_problems,
            node_group_label_problems,
            duplicate_problems,
            namespace_problems,
            pod_spec_problems,
            workload_selector_problems,
            selects_something_problems,
            reference_problems,
            volume_binding_problems,
            binding_problems,
        ):
            out += check(cluster)
    return out


__all__ = ["api_server_problems"]
