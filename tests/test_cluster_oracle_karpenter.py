"""The cluster check's Karpenter oracle (tests/cluster/karpenter.py and the NodePool nodes of scheduling.py) on small hand-written renders.

Each test writes a render directory as the product writes one (``plan.json`` and
``kubernetes/<cluster>.yaml``), shows the check passes on a good render and
fails, with the expected message, on a broken one.  Nothing here imports the product.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.instance_types import INSTANCE_TYPES, allocatable_memory_mib
from tests.cluster.karpenter import crd_label_key_problems, karpenter_problems, runtime_restricted
from tests.cluster.render_output import Render, load
from tests.cluster.scheduling import (
    build_nodes,
    karpenter_allocatable_memory_mib,
    karpenter_launch_problems,
    pod_requests,
    scheduling_problems,
)
from tests.cluster.selectors import Requirement, compatible_problems, label_requirements, requirements_of
from tests.test_cluster_check import DEVICE_PLUGIN

Obj = dict[str, Any]
CLUSTER = "c1"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
TOLERATE_GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


# --- a small render ----------------------------------------------------------------------------


def _resource(type_: str, name: str, inputs: Obj, dependencies: list[str] | None = None) -> Obj:
    return {"urn": f"urn:{type_}::{name}", "type": type_, "name": name, "parent": "", "inputs": inputs, "dependencies": dependencies or [], "custom": True}


def _managed_group(name: str, types: list[str], labels: dict[str, str], *, min_size: int, gpu: bool, asg_tags: list[Obj] | None = None) -> list[Obj]:
    group = _resource(
        "aws:eks/nodeGroup:NodeGroup",
        name,
        {
            "clusterName": CLUSTER,
            "nodegroupName": name,
            "amiType": "AL2023_x86_64_NVIDIA" if gpu else "AL2023_x86_64_STANDARD",
            "instanceTypes": types,
            "labels": labels,
            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}] if gpu else [],
            "scalingConfig": {"minSize": min_size, "maxSize": 4},
        },
    )
    tags = [
        _resource("aws:autoscaling/tag:Tag", f"{name}-tag-{i}", {"autoscalingGroupName": f"eks-{name}-asg", "tag": tag}, [group["urn"]])
        for i, tag in enumerate(asg_tags or [{"key": "team", "value": "ml", "propagateAtLaunch": True}])
    ]
    return [group, *tags]


def _karpenter_release(values: Obj | None = None) -> Obj:
    base = {"settings": {"clusterName": CLUSTER}, "nodeSelector": {"role": "system"}}
    return _resource(
        "kubernetes:helm.sh/v3:Release",
        "karpenter",
        {"chart": "oci://public.ecr.aws/karpenter/karpenter", "name": "karpenter", "values": base | (values or {})},
    )


def _node_pool(
    name: str = "inference-spot", *, types: list[str] | None = None, labels: dict[str, str] | None = None, node_class: str = "gpu", **spec: Any
) -> Obj:
    requirements = [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types or ["g5.xlarge", "g5.2xlarge"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    template_labels = labels if labels is not None else {"role": "inference", "mleks.io/node-group": name, "nvidia.com/gpu.present": "true"}
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class},
                    "taints": [dict(GPU_TAINT)],
                    "requirements": requirements,
                    "expireAfter": "720h",
                },
            },
            "limits": {"nvidia.com/gpu": "4"},
            "weight": 10,
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m", "budgets": [{"nodes": "1"}]},
            **spec,
        },
    }


def _node_class(name: str = "gpu", *, alias: str = "al2023@v20260714", **spec: Any) -> Obj:
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": {
            "amiSelectorTerms": [{"alias": alias}],
            "role": "KarpenterNodeRole-c1",
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": CLUSTER}}],
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp3", "volumeSize": "100Gi", "encrypted": True}}],
            **spec,
        },
    }


def _deployment(name: str, requests: Obj, node_selector: dict[str, str], *, namespace: str = "serving", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "c", "image": "i", "resources": {"requests": requests, "limits": requests}}],
                    "nodeSelector": node_selector,
                    **spec,
                },
            },
        },
    }


def _serving(cpu: str = "2", **spec: Any) -> Obj:
    """The inference server: one GPU, on the inference-spot pool."""
    selector = spec.pop("node_selector", {"role": "inference", "mleks.io/node-group": "inference-spot"})
    return _deployment("densenet", {"cpu": cpu, "memory": "8Gi", "nvidia.com/gpu": "1"}, selector, tolerations=TOLERATE_GPU, **spec)


def _training(node_selector: dict[str, str] | None = None) -> Obj:
    pod = {
        "containers": [
            {"name": "t", "image": "i", "resources": {"requests": {"cpu": "40", "memory": "150Gi", "nvidia.com/gpu": "4"}, "limits": {"nvidia.com/gpu": "4"}}}
        ],
        "restartPolicy": "Never",
        "nodeSelector": node_selector if node_selector is not None else {"role": "train"},
        "tolerations": TOLERATE_GPU,
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train", "namespace": "ml"}, "spec": {"template": {"metadata": {}, "spec": pod}}}


SYSTEM = _deployment("metrics", {"cpu": "100m", "memory": "200Mi"}, {"role": "system"}, namespace="kube-system")


def _plan(*extra: Obj, karpenter: bool = True) -> list[Obj]:
    """The plan of the good render: a system group, a training group, Karpenter's Helm release."""
    resources = _managed_group("system", ["m7i.large"], {"role": "system"}, min_size=2, gpu=False)
    resources += _managed_group("train", ["g5.12xlarge"], {"role": "train", "nvidia.com/gpu.present": "true"}, min_size=1, gpu=True)
    if karpenter:
        resources.append(_karpenter_release())
    return resources + list(extra)


def _objects(*extra: Obj, pool: Obj | None = None, node_class: Obj | None = None) -> list[Obj]:
    """The objects of the good render: the device plugin, one spot NodePool and its class, a server, a training job, a system pod."""
    return [DEVICE_PLUGIN, pool or _node_pool(), node_class or _node_class(), _serving(), _training(), SYSTEM, *extra]


def _write(tmp_path: Path, objects: list[Obj], resources: list[Obj]) -> Render:
    eks = _resource("eks:index:Cluster", f"{CLUSTER}-eks", {"name": CLUSTER, "version": "1.35", "publicAccessCidrs": []})
    (tmp_path / "kubernetes").mkdir(parents=True, exist_ok=True)
    (tmp_path / "plan.json").write_text(json.dumps({"resources": [eks, *resources]}))
    (tmp_path / "kubernetes" / f"{CLUSTER}.yaml").write_text(yaml.safe_dump_all(objects))
    return load(tmp_path)


def _problems(render: Render) -> str:
    return "\n".join(scheduling_problems(render))


@pytest.fixture
def good(tmp_path: Path) -> Render:
    return _write(tmp_path / "good", _objects(), _plan())


# --- the good render ---------------------------------------------------------------------------


def test_a_good_karpenter_render_has_no_problems(good: Render):
    cluster = good.clusters[CLUSTER]
    (pool,) = cluster.node_pools
    assert (pool.name, pool.instance_types, pool.capacity_types, pool.arch, pool.ami_family, pool.gpu_limit) == (
        "inference-spot",
        ["g5.xlarge", "g5.2xlarge"],
        ["spot"],
        ["amd64"],
        "al2023",
        4,
    )
    assert pool.node_class is not None and pool.node_class.name == "gpu"
    assert scheduling_problems(good) == []
    assert karpenter_problems(good) == []


def test_pool_nodes_carry_karpenters_labels_and_the_device_plugins_gpus(good: Render):
    nodes, unknown = build_nodes(good.clusters[CLUSTER])
    assert unknown == []
    pool_nodes = {n.instance.name: n for n in nodes if n.pool}
    assert set(pool_nodes) == {"g5.xlarge", "g5.2xlarge"}
    node = pool_nodes["g5.xlarge"]
    expected = {
        "role": "inference",
        "mleks.io/node-group": "inference-spot",
        "karpenter.sh/nodepool": "inference-spot",
        "karpenter.sh/capacity-type": "spot",
        "karpenter.k8s.aws/ec2nodeclass": "gpu",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "g5.xlarge",
        "karpenter.k8s.aws/instance-family": "g5",
        "karpenter.k8s.aws/instance-category": "g",
        "karpenter.k8s.aws/instance-generation": "5",
    }
    assert expected.items() <= node.labels.items()
    assert node.taints == [GPU_TAINT] and node.extended == {"nvidia.com/gpu": 1}
    assert [name for name, _ in node.daemonsets] == ["kube-system/nvidia-device-plugin", "kube-system/kube-proxy"]


def test_karpenter_nodes_reserve_memory_for_uncapped_max_pods(good: Render):
    """Karpenter's g5.12xlarge keeps ENI-limited maxPods (15 x 49 + 2 = 737): 5357 MiB more kube-reserved than a managed group's (250)."""
    pool = good.clusters[CLUSTER].node_pools[0]
    g5 = INSTANCE_TYPES["g5.12xlarge"]
    assert karpenter_allocatable_memory_mib(g5, pool) == 196608 - 14746 - (11 * 737 + 255) - 100
    assert allocatable_memory_mib(g5) - karpenter_allocatable_memory_mib(g5, pool) == 11 * (737 - 250)


# --- fitting the smallest type -------------------------------------------------------------------


def test_a_service_pod_must_fit_the_pools_smallest_type(tmp_path: Path):
    """g5.xlarge: 3920m allocatable - 50m device plugin - 100m kube-proxy leaves 3770m; 3800m only fits g5.2xlarge."""
    too_big = _write(tmp_path / "big", [DEVICE_PLUGIN, _node_pool(), _node_class(), _serving(cpu="3800m")], _plan())
    problems = _problems(too_big)
    assert "Deployment serving/densenet: does not fit c1: NodePool inference-spot (g5.xlarge): cpu 3800m > 3770m left" in problems, problems
    assert "g5.2xlarge" not in problems
    fits = _write(tmp_path / "fits", [DEVICE_PLUGIN, _node_pool(), _node_class(), _serving(cpu="3770m")], _plan())
    assert scheduling_problems(fits) == []


def test_gpus_need_the_device_plugin_unless_the_ami_is_bottlerocket(tmp_path: Path):
    al2023 = _write(tmp_path / "al", [_node_pool(), _node_class(), _serving()], _plan())
    assert "nvidia.com/gpu 1 > 0 on the node" in _problems(al2023)
    bottlerocket = _write(tmp_path / "br", [_node_pool(), _node_class(alias="bottlerocket@v1.50.0"), _serving()], _plan())
    assert scheduling_problems(bottlerocket) == []


# --- (a) one autoscaler per group ----------------------------------------------------------------


def test_a_managed_group_with_the_pools_node_group_label_is_two_autoscalers(tmp_path: Path, good: Render):
    labels = {"role": "inference", "mleks.io/node-group": "inference-spot", "nvidia.com/gpu.present": "true"}
    twin = _managed_group("inference-spot-mng", ["g5.xlarge"], labels, min_size=1, gpu=True)
    problems = "\n".join(karpenter_problems(_write(tmp_path, _objects(), _plan(*twin))))
    assert "managed node group inference-spot-mng carries the same mleks.io/node-group=inference-spot" in problems, problems
    assert karpenter_problems(good) == []


def test_cluster_autoscaler_or_escalator_naming_the_pools_group(tmp_path: Path):
    ca = _deployment("cluster-autoscaler", {"cpu": "100m"}, {"role": "system"}, namespace="kube-system")
    ca["spec"]["template"]["spec"]["containers"][0]["command"] = ["./cluster-autoscaler", "--nodes=0:4:eks-inference-spot-asg"]
    problems = "\n".join(karpenter_problems(_write(tmp_path / "ca", _objects(ca), _plan())))
    assert "cluster-autoscaler --nodes names ASG 'eks-inference-spot-asg', which no managed node group of the render has" in problems, problems

    config = {"node_groups": [{"name": "serving", "label_key": "role", "label_value": "inference", "cloud_provider_group_name": "asg-x"}]}
    escalator = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "escalator", "namespace": "kube-system"},
        "data": {"c.yaml": yaml.safe_dump(config)},
    }
    problems = "\n".join(karpenter_problems(_write(tmp_path / "esc", _objects(escalator), _plan())))
    assert "Escalator node group 'serving' (role=inference, ASG 'asg-x') counts the pool's nodes" in problems, problems

    ca["spec"]["template"]["spec"]["containers"][0]["command"] = ["./cluster-autoscaler", "--nodes=2:4:eks-system-asg"]
    assert karpenter_problems(_write(tmp_path / "ok", _objects(ca), _plan())) == []


# --- (b) only inference pods -----------------------------------------------------------------------


def test_a_pool_that_captures_a_training_pod(tmp_path: Path):
    """A job that selects only GPU nodes (not role=train) may make Karpenter launch an inference node for it."""
    stray = _training(node_selector={"nvidia.com/gpu.present": "true"})
    problems = "\n".join(karpenter_problems(_write(tmp_path / "stray", _objects(stray), _plan())))
    assert "Job ml/train does not select role=inference, yet Karpenter would launch a node from NodePool inference-spot" in problems, problems

    unlabelled = _node_pool(labels={"mleks.io/node-group": "inference-spot", "nvidia.com/gpu.present": "true"})
    problems = "\n".join(karpenter_problems(_write(tmp_path / "nolabel", _objects(pool=unlabelled), _plan())))
    assert "do not include role=inference" in problems
    # Without a role label on the pool, the training job (role=train) is still kept out: 'role' is a key Karpenter has no values for...
    assert "Job ml/train" not in problems
    # ...but a system pod that tolerates everything is not.
    tolerant = _deployment("agent", {"cpu": "100m"}, {}, namespace="kube-system", tolerations=[{"operator": "Exists"}])
    problems = "\n".join(karpenter_problems(_write(tmp_path / "tolerant", _objects(tolerant), _plan())))
    assert "Deployment kube-system/agent does not select role=inference" in problems


# --- (c) one provisioner per pod ---------------------------------------------------------------------


def test_a_pod_served_by_both_cluster_autoscaler_and_a_pool(tmp_path: Path):
    on_demand = {"role": "inference", "mleks.io/node-group": "inference-od", "nvidia.com/gpu.present": "true"}
    group = _managed_group("inference-od", ["g5.xlarge"], on_demand, min_size=0, gpu=True)
    ca = _deployment("cluster-autoscaler", {"cpu": "100m"}, {"role": "system"}, namespace="kube-system")
    ca["spec"]["template"]["spec"]["containers"][0]["command"] = ["./cluster-autoscaler", "--nodes=0:4:eks-inference-od-asg"]
    either = _serving(node_selector={"role": "inference"})
    problems = "\n".join(karpenter_problems(_write(tmp_path / "both", [*_objects(ca), either], _plan(*group))))
    assert "NodePool inference-spot and cluster-autoscaler's node group inference-od would both provision for it" in problems, problems
    # Auto-discovery owns every managed group (EKS tags their ASGs): the same pod, the same problem.
    ca["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "./cluster-autoscaler",
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/{CLUSTER}",
    ]
    problems = "\n".join(karpenter_problems(_write(tmp_path / "discovery", [*_objects(ca), either], _plan(*group))))
    assert "cluster-autoscaler's node group inference-od would both provision for it" in problems, problems
    # A pod of the on-demand group alone is cluster-autoscaler's only.
    only_od = _serving(node_selector={"role": "inference", "mleks.io/node-group": "inference-od"})
    only_od["metadata"]["name"] = "od"
    assert karpenter_problems(_write(tmp_path / "ok", [*_objects(ca), only_od], _plan(*group))) == []


def test_a_pod_escalator_counts_and_a_pool_serves(tmp_path: Path):
    labels = {"role": "inference", "group": "inf", "nvidia.com/gpu.present": "true"}
    group = _managed_group("inference-esc", ["g5.xlarge"], labels, min_size=0, gpu=True)
    config = {"node_groups": [{"name": "inf", "label_key": "group", "label_value": "inf", "cloud_provider_group_name": "eks-inference-esc-asg"}]}
    escalator = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "escalator", "namespace": "kube-system"},
        "data": {"c.yaml": yaml.safe_dump(config)},
    }
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "group", "operator": "In", "values": ["inf"]}]},
                    {"matchExpressions": [{"key": "mleks.io/node-group", "operator": "In", "values": ["inference-spot"]}]},
                ]
            }
        }
    }
    both = _serving(node_selector={"role": "inference"}, affinity=affinity)
    problems = "\n".join(karpenter_problems(_write(tmp_path, [*_objects(escalator), both], _plan(*group))))
    assert "Escalator's node group 'inf' (group=inf) would both provision for it" in problems, problems


# --- (d) the CRD's label rules --------------------------------------------------------------------------


def test_restricted_labels_and_requirements(tmp_path: Path, good: Render):
    labels = {
        "role": "inference",
        "mleks.io/node-group": "inference-spot",
        "karpenter.sh/team": "ml",  # CRD: label domain "karpenter.sh" is restricted
        "karpenter.k8s.aws/ec2nodeclass": "gpu",  # the CRD lists it, but Karpenter's runtime validation refuses it
        "node.kubernetes.io/lifecycle": "spot",  # kubernetes.io is no longer restricted at v1.14
    }
    pool = _node_pool(labels=labels)
    pool["spec"]["template"]["spec"]["requirements"].append({"key": "kubernetes.io/hostname", "operator": "Exists"})
    pool["spec"]["template"]["spec"]["requirements"].append({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["preemptible"]})
    problems = "\n".join(karpenter_problems(_write(tmp_path, _objects(pool=pool), _plan())))
    assert "template label 'karpenter.sh/team': label domain \"karpenter.sh\" is restricted (CRD)" in problems, problems
    assert "template label 'karpenter.k8s.aws/ec2nodeclass' is restricted (Karpenter's runtime validation" in problems
    assert '(kubernetes.io/hostname): label "kubernetes.io/hostname" is restricted (CRD)' in problems
    assert "no valid values in ['preemptible']" in problems
    assert "node.kubernetes.io/lifecycle" not in problems
    assert karpenter_problems(good) == []


def test_the_crd_rules_as_written():
    assert crd_label_key_problems("karpenter.sh/capacity-type") == []
    assert crd_label_key_problems("karpenter.sh/nodepool") == ['label "karpenter.sh/nodepool" is restricted']
    assert crd_label_key_problems("team.karpenter.sh/x") == ['label domain "karpenter.sh" is restricted']
    assert crd_label_key_problems("karpenter.k8s.aws/instance-gpu-count") == []
    assert crd_label_key_problems("karpenter.k8s.aws/instance-pods") == ['label domain "karpenter.k8s.aws" is restricted']
    assert crd_label_key_problems("kubernetes.io/arch") == crd_label_key_problems("example.com/x") == []
    assert runtime_restricted("karpenter.k8s.aws/ec2nodeclass") and not runtime_restricted("karpenter.k8s.aws/instance-family")
    assert not runtime_restricted("k8s.io/anything") and runtime_restricted("kubernetes.io/hostname")


# --- (e) node classes --------------------------------------------------------------------------------------


def test_a_node_class_ref_that_does_not_resolve(tmp_path: Path):
    problems = "\n".join(karpenter_problems(_write(tmp_path, _objects(pool=_node_pool(node_class="missing")), _plan())))
    assert "nodeClassRef names EC2NodeClass 'missing', which the render does not create" in problems, problems


def test_an_unpinned_alias_imdsv1_and_unencrypted_disks(tmp_path: Path, good: Render):
    loose = _node_class(
        alias="al2023@latest",
        metadataOptions={"httpTokens": "optional", "httpPutResponseHopLimit": 2},
        blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp2", "volumeSize": "100Gi"}}],
    )
    problems = "\n".join(karpenter_problems(_write(tmp_path / "loose", _objects(node_class=loose), _plan())))
    assert "alias 'al2023@latest' is not pinned" in problems, problems
    assert "httpTokens is 'optional'" in problems and "httpPutResponseHopLimit is 2" in problems
    assert "volumeType 'gp2', not gp3" in problems and "not encrypted" in problems
    badly_pinned = _node_class(alias="bottlerocket@1.50")
    problems = "\n".join(karpenter_problems(_write(tmp_path / "pin", _objects(node_class=badly_pinned), _plan())))
    assert "version '1.50' is not a bottlerocket release tag" in problems
    # metadataOptions left out: the CRD's defaults are IMDSv2 with a hop limit of 1.
    defaults = _node_class()
    del defaults["spec"]["metadataOptions"]
    assert karpenter_problems(_write(tmp_path / "defaults", _objects(node_class=defaults), _plan())) == []
    assert karpenter_problems(good) == []


# --- pools and the controller -----------------------------------------------------------------------------


def test_types_above_the_gpu_limit_are_never_launched(tmp_path: Path):
    pool = _node_pool(types=["g5.xlarge", "g5.12xlarge"])
    problems = "\n".join(karpenter_problems(_write(tmp_path, _objects(pool=pool), _plan())))
    assert problems == ""  # 4 GPUs is within the limit of 4
    pool["spec"]["limits"] = {"nvidia.com/gpu": "2"}
    problems = "\n".join(karpenter_problems(_write(tmp_path / "two", _objects(pool=pool), _plan())))
    assert "allows g5.12xlarge, which Karpenter never launches from it: its nvidia.com/gpu capacity 4 exceeds the pool's limits.nvidia.com/gpu 2" in problems


def test_pools_need_a_controller_that_runs_off_them(tmp_path: Path):
    problems = "\n".join(karpenter_problems(_write(tmp_path / "none", _objects(), _plan(karpenter=False))))
    assert "no Helm release of the karpenter chart for the cluster" in problems
    anywhere = _karpenter_release({"nodeSelector": {}, "affinity": {"nodeAffinity": None}, "tolerations": [{"operator": "Exists"}]})
    resources = [r for r in _plan() if r["type"] != "kubernetes:helm.sh/v3:Release"] + [anywhere]
    problems = "\n".join(karpenter_problems(_write(tmp_path / "anywhere", _objects(), resources)))
    assert "may run on nodes of NodePool inference-spot" in problems, problems


# --- Karpenter's scheduling compatibility ---------------------------------------------------------------------


def test_karpenter_launches_only_for_labels_the_pool_knows(good: Render):
    cluster = good.clusters[CLUSTER]
    nodes, _ = build_nodes(cluster)
    pool = cluster.node_pools[0]

    def launch(node_selector: dict[str, str]) -> list[str]:
        spec = copy.deepcopy(_serving(node_selector=node_selector)["spec"]["template"]["spec"])
        return karpenter_launch_problems(spec, pod_requests(spec), pool, nodes)

    assert launch({"role": "inference"}) == []
    # A well-known key the pool leaves open is allowed...
    assert launch({"role": "inference", "topology.kubernetes.io/zone": "eu-west-1a"}) == []
    # ...and one it constrains must intersect.
    assert "does not intersect" in launch({"role": "inference", "karpenter.sh/capacity-type": "on-demand"})[0]
    assert launch({"role": "inference", "node.kubernetes.io/instance-type": "g5.2xlarge"}) == []
    assert "no allowed instance type" in launch({"role": "inference", "karpenter.k8s.aws/instance-size": "12xlarge"})[0]
    # A custom key the pool neither labels nor requires: Karpenter launches nothing.
    assert "does not have known values" in launch({"role": "inference", "example.com/team": "a"})[0]


def test_requirement_algebra_follows_karpenter():
    pool = requirements_of(
        [{"key": "example.com/team", "operator": "Exists"}, {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["1"]}]
    )
    assert compatible_problems(pool, label_requirements({"example.com/team": "a"})) == []
    assert compatible_problems(pool, label_requirements({"karpenter.k8s.aws/instance-gpu-count": "2"})) == []
    assert compatible_problems(pool, label_requirements({"karpenter.k8s.aws/instance-gpu-count": "1"})) != []
    assert compatible_problems({}, requirements_of([{"key": "example.com/x", "operator": "DoesNotExist"}])) == []
    assert Requirement.of("k", "NotIn", ["a"]).intersection(Requirement.of("k", "In", ["a", "b"])) == Requirement.of("k", "In", ["b"])
    assert not Requirement.of("k", "Gte", ["4"]).has_intersection(Requirement.of("k", "Lt", ["4"]))
    assert Requirement.of("beta.kubernetes.io/arch", "In", ["amd64"]).key == "kubernetes.io/arch"
