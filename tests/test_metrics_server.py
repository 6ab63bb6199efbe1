"""metrics-server: every HPA has a metrics source, and the add-on is upstream's, placed and bounded as ours are."""

from __future__ import annotations

from typing import Any

import pytest

from mleks import metrics_server
from mleks.catalogs.eks_versions import supported_kubernetes_versions
from stacks.offline import RenderResult

# What upstream's manifests/base/rbac.yaml grants at v0.8.1 and v0.9.0 (identical), written out
# here as the oracle so a drift in ours is caught.
UPSTREAM_RULES = {
    "system:metrics-server": [
        {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
    ],
    "system:aggregated-metrics-reader": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}],
}
UPSTREAM_ARGS = [
    "--cert-dir=/tmp",
    "--secure-port=10250",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    "--kubelet-use-node-status-port",
    "--metric-resolution=15s",
]
# The API each HPA metric type is read from.
METRIC_APIS = {
    "Resource": "metrics.k8s.io",
    "ContainerResource": "metrics.k8s.io",
    "Pods": "custom.metrics.k8s.io",
    "Object": "custom.metrics.k8s.io",
    "External": "external.metrics.k8s.io",
}


def _objects_by_cluster(result: RenderResult) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for reg, obj in result.kube_objects():
        out.setdefault(result.cluster_of(reg).urn, []).append(obj)
    return out


def _served_apis(objects: list[dict[str, Any]]) -> set[str]:
    """API groups an APIService in the cluster serves through a Service that selects a Deployment's pods."""
    services = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Service"}
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    served = set()
    for api in (o for o in objects if o["kind"] == "APIService"):
        ref = api["spec"]["service"]
        svc = services.get((ref["namespace"], ref["name"]))
        if svc is None:
            continue
        selector = svc["spec"]["selector"]
        for d in deployments:
            labels = d["spec"]["template"]["metadata"]["labels"]
            if d["metadata"]["namespace"] == ref["namespace"] and all(labels.get(k) == v for k, v in selector.items()):
                served.add(api["spec"]["group"])
    return served


def test_every_hpa_metric_has_a_source_in_its_cluster(stack: RenderResult):
    hpas = 0
    for objects in _objects_by_cluster(stack).values():
        served = _served_apis(objects)
        for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
            for metric in hpa["spec"]["metrics"]:
                hpas += 1
                assert METRIC_APIS[metric["type"]] in served, (hpa["metadata"]["name"], metric["type"], sorted(served))
    if stack.stack == "unified":
        assert hpas, "the unified example's service autoscales"


def test_every_cluster_runs_one_metrics_server(stack: RenderResult):
    for objects in _objects_by_cluster(stack).values():
        assert [o["metadata"]["name"] for o in objects if o["kind"] == "APIService"] == ["v1beta1.metrics.k8s.io"]


@pytest.mark.parametrize("minor", supported_kubernetes_versions())
def test_the_pinned_release_supports_the_clusters_minor(minor: str):
    # Upstream's compatibility matrix: 0.9.x for 1.34+, 0.8.x for 1.31+.
    version = metrics_server.version_for(minor)
    assert version == ("v0.9.0" if tuple(map(int, minor.split("."))) >= (1, 34) else "v0.8.1")
    [deployment] = [o for o in metrics_server.render(minor) if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.k8s.io/metrics-server/metrics-server:{version}"


def test_rbac_and_flags_are_upstreams():
    objects = metrics_server.render("1.35")
    rules = {o["metadata"]["name"]: o["rules"] for o in objects if o["kind"] == "ClusterRole"}
    assert rules == UPSTREAM_RULES
    bindings = {(o["kind"], o["metadata"]["name"]): o["roleRef"]["name"] for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")}
    assert bindings == {
        ("RoleBinding", "metrics-server-auth-reader"): "extension-apiserver-authentication-reader",
        ("ClusterRoleBinding", "metrics-server:system:auth-delegator"): "system:auth-delegator",
        ("ClusterRoleBinding", "system:metrics-server"): "system:metrics-server",
    }
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == UPSTREAM_ARGS


def test_it_runs_two_bounded_replicas_on_system_nodes_kept_apart():
    [deployment] = [o for o in metrics_server.render("1.35") if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2 and pod["nodeSelector"]["role"] == "system"
    assert "tolerations" not in pod, "never on GPU nodes"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "200Mi"} and resources["limits"]["memory"]
    [pdb] = [o for o in metrics_server.render("1.35") if o["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1


def test_an_unpinned_minor_is_refused_naming_the_key():
    from mleks.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        metrics_server.version_for("1.29")
    assert info.value.key == "cluster.kubernetesVersion" and "1.32" in info.value.accepted
