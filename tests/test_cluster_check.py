"""The cluster check (tests/cluster): both stacks and their variants, held to what a live EKS cluster does.

Only this file calls the product, to render; the oracle in ``tests/cluster``
reads the files the render writes (``plan.json``, ``kubernetes/<cluster>.yaml``)
and nothing else.  The second half tests the oracle itself on small
hand-written renders, so it is shown able to fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.checks import stack_file, with_karpenter
from tests.cluster.apiserver import api_server_problems
from tests.cluster.aws_rules import aws_api_problems
from tests.cluster.instance_types import INSTANCE_TYPES, allocatable_cpu_millis, allocatable_memory_mib, kube_reserved_cpu_millis
from tests.cluster.kueue import kueue_problems
from tests.cluster.pod_security import pod_security_problems
from tests.cluster.render_output import Render, load
from tests.cluster.scheduling import capacity_table, format_capacity_table, scheduling_problems

Config = dict[str, Any]


def _observability(mode: str) -> Callable[[Config], None]:
    def change(cfg: Config) -> None:
        cfg["mleks:observability"] = {"mode": mode}

    return change


def _bottlerocket_and_nlb(cfg: Config) -> None:
    """A Bottlerocket GPU group behind the inference service, which also gets an internal NLB."""
    cfg["mleks:nodeGroups"]["inference-spot"]["amiFamily"] = "bottlerocket"
    cfg["mleks:inferenceServices"]["densenet"]["exposure"] = "internal-nlb"
    cfg["mleks:inferenceServices"]["densenet"]["loadBalancerSourceCidrs"] = ["10.40.0.0/16"]


def _karpenter(stack: str) -> Callable[[Config], None]:
    def change(cfg: Config) -> None:
        with_karpenter(stack, cfg)

    return change


def _karpenter_bottlerocket(cfg: Config) -> None:
    """The Karpenter spot pool on Bottlerocket, pinned, with parallel pull on larger types."""
    with_karpenter("unified", cfg)
    cfg["mleks:nodeGroups"]["inference-spot"] |= {"amiFamily": "bottlerocket", "instanceTypes": ["g6e.2xlarge", "g6e.4xlarge"]}
    cfg["mleks:nodeGroups"]["inference-spot"]["karpenter"]["amiVersion"] = "v1.50.0"


# name -> (stack, change to its stack file).  unified ships prometheus mode and a dataset;
# dedicated ships cloudwatch mode and an internal NLB.
VARIANTS: dict[str, tuple[str, Callable[[Config], None] | None]] = {
    "unified": ("unified", None),
    "unified-cloudwatch": ("unified", _observability("cloudwatch")),
    "unified-none": ("unified", _observability("none")),
    "dedicated": ("dedicated", None),
    "dedicated-prometheus": ("dedicated", _observability("prometheus")),
    "unified-bottlerocket-nlb": ("unified", _bottlerocket_and_nlb),
    "unified-karpenter": ("unified", _karpenter("unified")),
    "dedicated-karpenter": ("dedicated", _karpenter("dedicated")),
    "unified-karpenter-bottlerocket": ("unified", _karpenter_bottlerocket),
}


class Renders:
    """Each variant rendered once per session into its own directory, on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[str, Render | BaseException] = {}

    def get(self, name: str) -> Render:
        if name not in self.done:
            self.done[name] = self._render(name)
        result = self.done[name]
        if isinstance(result, BaseException):
            pytest.fail(f"variant {name} does not render: {type(result).__name__}: {result}")
        return result

    def _render(self, name: str) -> Render | BaseException:
        from mleks.testing.render import write
        from stacks import offline

        stack, change = VARIANTS[name]
        cfg = stack_file(stack)
        if change:
            change(cfg)
        try:
            result = offline.run(stack, config=cfg)
            write(result, self.root / name)
        except Exception as err:  # a product bug being fixed elsewhere: report it per test
            return err
        return load(self.root / name / stack)


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Renders:
    return Renders(tmp_path_factory.mktemp("cluster-check"))


@pytest.fixture(params=list(VARIANTS))
def render(request: pytest.FixtureRequest, renders: Renders) -> Render:
    return renders.get(request.param)


def _assert_none(problems: list[str]) -> None:
    print("\n".join(problems))
    assert problems == [], f"{len(problems)} problems:\n" + "\n".join(problems)


def test_api_server_accepts_and_serves_everything(render: Render):
    _assert_none(api_server_problems(render))


def test_pod_security_admits_every_pod(render: Render):
    _assert_none(pod_security_problems(render))


def test_every_pod_fits_its_node_group_and_is_scaled_for(render: Render):
    print(format_capacity_table(capacity_table(render)))
    _assert_none(scheduling_problems(render))


def test_team_queues_resolve_admit_their_jobs_and_promise_no_more_than_exists(render: Render):
    _assert_none(kueue_problems(render))


def test_aws_apis_accept_every_input(render: Render):
    _assert_none(aws_api_problems(render))


def test_every_gpu_group_has_a_capacity_row(render: Render):
    """The capacity table covers every group and type of the render (the oracle knows every type used)."""
    rows = capacity_table(render)
    expected = {(c.name, g.name, t) for c in render.clusters.values() for g in c.node_groups for t in g.instance_types}
    assert {(r["cluster"], r["group"], r["type"]) for r in rows} == expected


# --- the oracle on hand-written renders ------------------------------------------------------

CLUSTER = "c1"


def _resource(type_: str, name: str, inputs: dict[str, Any], dependencies: list[str] | None = None) -> dict[str, Any]:
    return {"urn": f"urn:{type_}::{name}", "type": type_, "name": name, "parent": "", "inputs": inputs, "dependencies": dependencies or [], "custom": True}


def _gpu_group(name: str, types: list[str], *, labels: dict[str, str] | None = None, lt: dict[str, Any] | None = None, **inputs: Any) -> list[dict[str, Any]]:
    """A tainted GPU node group and its launch template."""
    template = _resource("aws:ec2/launchTemplate:LaunchTemplate", f"{name}-lt", lt or {})
    group = _resource(
        "aws:eks/nodeGroup:NodeGroup",
        name,
        {
            "clusterName": CLUSTER,
            "amiType": "AL2023_x86_64_NVIDIA",
            "instanceTypes": types,
            "labels": labels or {"role": "train", "nvidia.com/gpu.present": "true"},
            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
            "scalingConfig": {"minSize": 1, "maxSize": 2},
            **inputs,
        },
        [template["urn"]],
    )
    return [template, group]


def _addon(name: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    inputs: dict[str, Any] = {"clusterName": CLUSTER, "addonName": name}
    if config is not None:
        inputs["configurationValues"] = json.dumps(config)
    return _resource("aws:eks/addon:Addon", f"{name}-addon", inputs)


DEVICE_PLUGIN = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
    "spec": {
        "selector": {"matchLabels": {"app": "ndp"}},
        "template": {
            "metadata": {"labels": {"app": "ndp"}},
            "spec": {
                "nodeSelector": {"nvidia.com/gpu.present": "true"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "p", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}],
            },
        },
    },
}

CLOUDWATCH_MODE_ADDONS = [
    _addon("vpc-cni"),
    _addon(
        "eks-node-monitoring-agent",
        {"dcgmAgent": {"resources": {"requests": {"cpu": "50m"}}, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}},
    ),
    _addon("amazon-cloudwatch-observability"),
]


def _namespace(name: str, level: str | None = None) -> dict[str, Any]:
    labels = {"pod-security.kubernetes.io/enforce": level} if level else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _job(name: str, container: dict[str, Any], *, namespace: str = "ml", node_selector: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec = {
        "containers": [{"name": "trainer", "image": "img", **container}],
        "restartPolicy": "Never",
        "nodeSelector": node_selector if node_selector is not None else {"role": "train"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        **spec,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"metadata": {}, "spec": pod_spec}},
    }


def _write(tmp_path: Path, objects: list[dict[str, Any]], resources: list[dict[str, Any]] | None = None) -> Render:
    """A render directory as the product writes one: plan.json and kubernetes/<cluster>.yaml."""
    eks = _resource("eks:index:Cluster", f"{CLUSTER}-eks", {"name": CLUSTER, "version": "1.35", "publicAccessCidrs": []})
    (tmp_path / "kubernetes").mkdir(parents=True, exist_ok=True)
    (tmp_path / "plan.json").write_text(json.dumps({"resources": [eks, *(resources or [])]}))
    (tmp_path / "kubernetes" / f"{CLUSTER}.yaml").write_text(yaml.safe_dump_all(objects))
    return load(tmp_path)


def _deployment(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "s", "image": "i", "volumeMounts": mounts}], "volumes": volumes},
            },
        },
    }


def test_oracle_reports_a_mount_of_an_undeclared_volume(tmp_path: Path):
    bad = _write(tmp_path / "bad", [_deployment([{"name": "dshm", "emptyDir": {}}], [{"name": "model", "mountPath": "/models"}])])
    problems = api_server_problems(bad)
    assert any("mounts volume 'model', which the pod does not declare" in p for p in problems), problems
    good = _write(tmp_path / "good", [_deployment([{"name": "model", "emptyDir": {}}], [{"name": "model", "mountPath": "/models"}])])
    assert api_server_problems(good) == []


def test_oracle_reports_duplicates_bad_labels_and_selectors_that_select_nothing(tmp_path: Path):
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "resnet50", "namespace": "default"}}
    deployment = _deployment([], [])
    deployment["spec"]["template"]["metadata"]["labels"]["lr"] = "lr=3e-4 bs=512"
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "default"}, "spec": {"selector": {"app": "nothing"}}}
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"}},
    }
    pvs = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"pv-{ns}"},
            "spec": {"csi": {"driver": "fsx.csi.aws.com", "volumeHandle": "fs-1"}},
        }
        for ns in ("a", "b")
    ]
    problems = "\n".join(api_server_problems(_write(tmp_path, [sa, dict(sa), deployment, service, hpa, *pvs])))
    assert "2 PersistentVolumes share CSI volumeHandle 'fs-1'" in problems
    assert "2 objects are ServiceAccount default/resnet50" in problems
    assert "'lr=3e-4 bs=512'" in problems
    assert "Service default/svc: selector {'app': 'nothing'} selects no pod" in problems
    assert "scaleTargetRef" in problems and "'gone'" in problems


def test_oracle_reports_ipc_lock_under_baseline_and_not_under_privileged(tmp_path: Path):
    job = _job("nccl", {"securityContext": {"capabilities": {"add": ["IPC_LOCK"], "drop": ["ALL"]}, "allowPrivilegeEscalation": False}})
    baseline = pod_security_problems(_write(tmp_path / "b", [_namespace("ml", "baseline"), job]))
    assert len(baseline) == 1 and "adds ['IPC_LOCK'], which baseline does not allow" in baseline[0]
    assert pod_security_problems(_write(tmp_path / "p", [_namespace("ml", "privileged"), job])) == []
    restricted = "\n".join(pod_security_problems(_write(tmp_path / "r", [_namespace("ml", "restricted"), job])))
    assert "runAsNonRoot" in restricted and "seccompProfile" in restricted and "IPC_LOCK" in restricted


def test_oracle_reports_a_whole_node_job_that_cloudwatch_daemonsets_crowd_out(tmp_path: Path):
    """g5.12xlarge: 47810m allocatable; in cloudwatch mode 810m of DaemonSets leave 47000m, so 47300m stays Pending."""
    resources = _gpu_group("train", ["g5.12xlarge"]) + CLOUDWATCH_MODE_ADDONS
    gpus = {"nvidia.com/gpu": "4"}
    too_big = _job("gpu-smoke", {"resources": {"requests": {"cpu": "47300m", "memory": "150Gi", **gpus}, "limits": gpus}})
    problems = scheduling_problems(_write(tmp_path / "big", [DEVICE_PLUGIN, too_big], resources))
    assert len(problems) == 1 and "cpu 47300m > 47000m left (47810m allocatable - 810m DaemonSets)" in problems[0], problems
    fits = _job("gpu-smoke", {"resources": {"requests": {"cpu": "47000m", "memory": "150Gi", **gpus}, "limits": gpus}})
    assert scheduling_problems(_write(tmp_path / "fit", [DEVICE_PLUGIN, fits], resources)) == []


def test_oracle_needs_a_device_plugin_for_gpus_and_keeps_pods_on_their_kind(tmp_path: Path):
    resources = _gpu_group("train", ["g5.xlarge"])
    gpus = {"nvidia.com/gpu": "1"}
    job = _job("j", {"resources": {"requests": {"cpu": "1", **gpus}, "limits": gpus}})
    no_plugin = "\n".join(scheduling_problems(_write(tmp_path / "np", [job], resources)))
    assert "nvidia.com/gpu 1 > 0 on the node" in no_plugin
    stray = _job("stray", {"resources": {"requests": {"cpu": "100m"}}}, node_selector={}, tolerations=[{"operator": "Exists"}])
    problems = "\n".join(scheduling_problems(_write(tmp_path / "stray", [DEVICE_PLUGIN, stray], resources)))
    assert "a pod without GPUs may land on GPU node group train" in problems


def test_oracle_reports_a_pod_escalator_would_not_scale_up_for(tmp_path: Path):
    resources = _gpu_group("train", ["g5.xlarge"], labels={"role": "train", "group": "train", "nvidia.com/gpu.present": "true"}, scalingConfig={"minSize": 0})
    config = {"node_groups": [{"name": "train", "label_key": "group", "label_value": "train", "cloud_provider_group_name": "asg"}]}
    escalator = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "escalator", "namespace": "kube-system"},
        "data": {"c.yaml": yaml.safe_dump(config)},
    }
    gpus = {"nvidia.com/gpu": "1"}
    by_role = _job("by-role", {"resources": {"requests": {"cpu": "1", **gpus}, "limits": gpus}})
    problems = scheduling_problems(_write(tmp_path / "role", [DEVICE_PLUGIN, escalator, by_role], resources))
    assert len(problems) == 1 and "Escalator counts only pods that select ['group=train']" in problems[0]
    by_group = _job("by-group", {"resources": {"requests": {"cpu": "1", **gpus}, "limits": gpus}}, node_selector={"group": "train"})
    assert scheduling_problems(_write(tmp_path / "group", [DEVICE_PLUGIN, escalator, by_group], resources)) == []


def test_oracle_knows_the_eks_ami_reservations():
    assert kube_reserved_cpu_millis(48) == 190 and kube_reserved_cpu_millis(192) == 550 and kube_reserved_cpu_millis(2) == 70
    assert allocatable_cpu_millis(INSTANCE_TYPES["g5.12xlarge"]) == 47810
    assert allocatable_cpu_millis(INSTANCE_TYPES["p5.48xlarge"]) == 191450
    # g5.12xlarge: 196608 - 14746 (7.5%) - (11 x 250 + 255) - 100
    assert allocatable_memory_mib(INSTANCE_TYPES["g5.12xlarge"]) == 196608 - 14746 - 3005 - 100
    assert INSTANCE_TYPES["p5.48xlarge"].max_pods == 100 and INSTANCE_TYPES["g5.xlarge"].max_pods == 58


def test_oracle_reports_aws_api_limits(tmp_path: Path):
    capacity_block_lt = {
        "placement": {"groupName": "pg"},
        "instanceMarketOptions": {"marketType": "capacity-block"},
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp3", "volumeSize": 500, "iops": 20000, "throughput": 2001}}],
        "tags": {"team": "ml\n"},
    }
    placement = _resource("aws:ec2/placementGroup:PlacementGroup", "pg", {"strategy": "cluster"})
    groups = _gpu_group(
        "p5",
        ["p5.48xlarge"],
        labels={"node-role.kubernetes.io/gpu": "true"},
        lt=capacity_block_lt,
        nodeRepairConfig={
            "enabled": True,
            "nodeRepairConfigOverrides": [
                {
                    "nodeMonitoringCondition": "AcceleratedHardwareReady",
                    "nodeUnhealthyReason": "NvidiaXID79Eror",
                    "repairAction": "Replace",
                    "minRepairWaitTimeMins": 0,
                }
            ],
        },
    )
    groups[0]["dependencies"] = [placement["urn"]]
    eks = _resource("eks:index:Cluster", "big", {"name": "big", "version": "1.35", "publicAccessCidrs": [f"10.0.{i}.0/24" for i in range(41)]})
    problems = "\n".join(aws_api_problems(_write(tmp_path, [], [placement, *groups, eks])))
    assert "throughput 2001 MiB/s is outside 125-2000" in problems and "iops 20000" not in problems
    assert "minRepairWaitTimeMins 0 is outside 1-" in problems
    assert "nodeUnhealthyReason 'NvidiaXID79Eror' is not a reason" in problems
    assert "41 publicAccessCidrs" in problems
    assert "'node-role.kubernetes.io/gpu' uses a prefix EKS refuses" in problems
    assert "tag 'team'='ml\\n'" in problems
    assert "placement group 'pg' while launching into a Capacity Block" in problems
    ok_lt = {"blockDeviceMappings": [{"ebs": {"volumeType": "gp3", "volumeSize": 500, "iops": 20000, "throughput": 2000}}]}
    assert aws_api_problems(_write(tmp_path / "ok", [], _gpu_group("g", ["g5.xlarge"], lt=ok_lt))) == []


def test_the_oracle_shares_no_code_with_the_product():
    """An oracle that imports the product cannot catch its bugs: tests/cluster reads files only."""
    for path in (Path(__file__).parent / "cluster").glob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in ("mleks", "stacks", "components"), f"{path.name}: {line}"


def _queue_objects(quota: int, *, job_namespace: str = "ml", selector_ns: str = "ml") -> list[dict[str, Any]]:
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "g"}, "spec": {"nodeLabels": {"role": "train"}}}
    resources = [{"name": "cpu", "nominalQuota": "16", "borrowingLimit": "0"}, {"name": "memory", "nominalQuota": "64Gi", "borrowingLimit": "0"}]
    resources.append({"name": "nvidia.com/gpu", "nominalQuota": quota, "borrowingLimit": 0})
    queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "team"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": selector_ns}},
            "resourceGroups": [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"], "flavors": [{"name": "g", "resources": resources}]}],
        },
    }
    local = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {"name": "team", "namespace": "ml"}, "spec": {"clusterQueue": "team"}}
    job = _job(
        "j", {"resources": {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "4"}, "limits": {"nvidia.com/gpu": "4"}}}, namespace=job_namespace
    )
    job["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team"}
    job["spec"] |= {"suspend": True, "parallelism": 2}
    return [flavor, queue, local, job]


def test_oracle_reports_queues_that_cannot_admit_their_jobs_or_promise_too_much(tmp_path: Path):
    group = _gpu_group("g", ["g6e.12xlarge"])  # maxSize 2 x 4 GPUs
    assert kueue_problems(_write(tmp_path / "ok", _queue_objects(8), group)) == []
    too_small = kueue_problems(_write(tmp_path / "small", _queue_objects(4), group))
    assert any("can never admit it" in p and "nvidia.com/gpu 8 > 4" in p for p in too_small), too_small
    too_big = kueue_problems(_write(tmp_path / "big", _queue_objects(12), group))
    assert any("add up to 12 GPUs" in p for p in too_big), too_big
    elsewhere = kueue_problems(_write(tmp_path / "ns", _queue_objects(8, selector_ns="other"), group))
    assert any("does not select ml" in p for p in elsewhere), elsewhere
    lost = kueue_problems(_write(tmp_path / "lost", _queue_objects(8, job_namespace="other"), group))
    assert any("no LocalQueue team in its namespace" in p for p in lost), lost
