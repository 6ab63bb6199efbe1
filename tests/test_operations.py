"""Day two on GPUs: the node monitoring agent, node auto-repair, and the observability modes."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import jsonschema
import pulumi_aws as aws
import pytest

from mleks import node_monitoring_agent, observability
from mleks.errors import ConfigErrors
from mleks.node_repair import NodeRepairArgs, NodeRepairSettings
from mleks.observability import ObservabilityArgs
from mleks.vocabulary import GPU_TAINT
from stacks import offline
from stacks.offline import RenderResult
from tests.checks import SCHEMAS, config_errors, error_for, groups_for_pod, kube_version, schema_errors, stack_file

NODE_AGENT_SCHEMA = SCHEMAS / "eks-node-monitoring-agent-v1.7.0-configuration.json"


def _addons(stack: RenderResult, name: str) -> list[Any]:
    return [r for r in stack.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == name]


def _workloads(stack: RenderResult) -> list[tuple[Any, dict[str, Any]]]:
    return [(reg, obj) for reg, obj in stack.kube_objects() if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job")]


def _tolerates_gpu_taint(pod: dict[str, Any]) -> bool:
    for t in pod.get("tolerations") or []:
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") == GPU_TAINT["key"] and t.get("effect") in (None, "NoSchedule"):
            return True
    return False


# -- the node monitoring agent ---------------------------------------------------------------------


def test_every_cluster_with_gpu_groups_runs_the_node_monitoring_agent_once(stack: RenderResult):
    agents = _addons(stack, "eks-node-monitoring-agent")
    clusters = {g.inputs["clusterName"] for g in stack.of_type("aws:eks/nodeGroup:NodeGroup") if g.inputs["labels"].get("role") != "system"}
    assert sorted(a.inputs["clusterName"] for a in agents) == sorted(clusters)


def test_the_agents_configuration_is_valid_for_the_chart_and_lets_its_dcgm_engine_onto_gpu_nodes(stack: RenderResult):
    schema = json.loads(NODE_AGENT_SCHEMA.read_text())
    for addon in _addons(stack, "eks-node-monitoring-agent"):
        values = json.loads(addon.inputs["configurationValues"])
        jsonschema.validate(values, schema)
        # The chart's dcgm-server tolerates nothing by default: without this it never runs on a tainted GPU node.
        assert _tolerates_gpu_taint({"tolerations": values["dcgmAgent"]["tolerations"]})
        for part in ("nodeAgent", "dcgmAgent"):
            assert {"requests", "limits"} <= values[part]["resources"].keys()


def test_a_wrong_agent_configuration_key_fails_the_charts_schema():
    """The oracle can fail: the add-on rejects unknown keys, and so does its schema here."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"dcgmAgent": {"toleration": []}}, json.loads(NODE_AGENT_SCHEMA.read_text()))


# -- node auto-repair --------------------------------------------------------------------------------


def test_auto_repair_is_on_for_every_gpu_group_and_follows_the_stack_file(stack: RenderResult):
    groups = {g.inputs["labels"].get("mleks.io/node-group", "system"): g.inputs for g in stack.of_type("aws:eks/nodeGroup:NodeGroup")}
    for name, inputs in groups.items():
        if name == "system":
            continue
        repair = inputs["nodeRepairConfig"]
        assert repair["enabled"] is True, name
    if stack.stack == "unified":
        assert groups["train-p5"]["nodeRepairConfig"]["maxParallelNodesRepairedCount"] == 2
        assert groups["train-g6e"]["nodeRepairConfig"] == {"enabled": True, "maxParallelNodesRepairedCount": 1}
        [override] = groups["inference-spot"]["nodeRepairConfig"]["nodeRepairConfigOverrides"]
        assert override == {
            "nodeMonitoringCondition": "AcceleratedHardwareReady",
            "nodeUnhealthyReason": "NvidiaXID79Error",
            "repairAction": "Replace",
            "minRepairWaitTimeMins": 5,
        }


def test_repair_settings_use_the_providers_argument_names():
    args = NodeRepairArgs(
        max_parallel_nodes_repaired_percentage=25,
        max_unhealthy_node_threshold_count=3,
        overrides=[
            {
                "nodeMonitoringCondition": "AcceleratedHardwareReady",
                "nodeUnhealthyReason": "NvidiaXID79Error",
                "repairAction": "Reboot",
                "minRepairWaitTimeMins": 10,
            }
        ],
    ).api()
    accepted = set(inspect.signature(aws.eks.NodeGroupNodeRepairConfigArgs.__init__).parameters) - {"__self__"}
    assert set(args) <= accepted
    override_accepted = set(inspect.signature(aws.eks.NodeGroupNodeRepairConfigNodeRepairConfigOverrideArgs.__init__).parameters) - {"__self__"}
    assert set(args["node_repair_config_overrides"][0]) == override_accepted
    assert "max_parallel_nodes_repaired_count" not in args, "a percentage replaces the default count"


def test_a_group_takes_its_own_keys_over_the_stacks():
    settings = NodeRepairSettings(
        max_parallel_nodes_repaired_percentage=20,
        node_groups={"big": {"maxParallelNodesRepairedCount": 2}, "off": {"enabled": False}},
    )
    assert settings.for_group("big").api() == {"enabled": True, "max_parallel_nodes_repaired_count": 2}
    assert settings.for_group("other").api() == {"enabled": True, "max_parallel_nodes_repaired_percentage": 20}
    assert settings.for_group("off").api() == {"enabled": False}
    off_by_default = NodeRepairSettings(enabled=False, node_groups={"one": {"enabled": True}})
    assert off_by_default.for_group("one").enabled and not off_by_default.for_group("two").enabled


def test_contradictory_repair_settings_are_refused_with_every_problem():
    with pytest.raises(ConfigErrors) as info:
        NodeRepairArgs(
            max_parallel_nodes_repaired_count=1,
            max_parallel_nodes_repaired_percentage=10,
            max_unhealthy_node_threshold_count=2,
            max_unhealthy_node_threshold_percentage=30,
        )
    keys = sorted(e.key for e in info.value.errors)
    assert keys == ["max_parallel_nodes_repaired_percentage", "max_unhealthy_node_threshold_percentage"], "Python names, as built in Python"
    with pytest.raises(ConfigErrors) as info:
        NodeRepairArgs(enabled=False, max_parallel_nodes_repaired_count=2)
    [err] = info.value.errors
    assert err.key == "max_parallel_nodes_repaired_count" and "repair is off" in str(err)


def test_repair_options_for_a_group_that_does_not_exist_fail_before_registration():
    cfg = stack_file("unified")
    cfg["mleks:nodeRepair"]["nodeGroups"]["train-h100"] = {"enabled": False}
    err = error_for(config_errors("unified", cfg), "mleks:nodeRepair.nodeGroups.train-h100")
    assert err.value == "train-h100" and "train-p5" in err.accepted and "no such node group" in str(err)


def test_repair_set_on_the_group_itself_in_a_stack_points_to_node_repair():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-g6e"]["autoRepair"] = {"enabled": False}
    err = error_for(config_errors("unified", cfg), "mleks:nodeGroups.train-g6e.autoRepair")
    assert "nodeRepair.nodeGroups.train-g6e" in err.accepted


def test_a_group_whose_keys_contradict_the_stacks_is_refused_under_its_own_key():
    cfg = stack_file("unified")
    cfg["mleks:nodeRepair"]["enabled"] = False
    cfg["mleks:nodeRepair"]["nodeGroups"]["train-g6e"] = {"enabled": False, "maxUnhealthyNodeThresholdCount": 2}
    errors = config_errors("unified", cfg)
    assert any(e.key.startswith("mleks:nodeRepair.nodeGroups.train-g6e") and "repair is off" in str(e) for e in errors)


# -- observability -----------------------------------------------------------------------------------


def test_each_stack_runs_its_chosen_mode_in_every_gpu_cluster(stack: RenderResult):
    clusters = {c.inputs["name"] for c in stack.of_type("eks:index:Cluster")}
    cloudwatch = _addons(stack, "amazon-cloudwatch-observability")
    exporters = [obj for _, obj in stack.kube_objects() if obj["kind"] == "DaemonSet" and obj["metadata"]["name"] == "dcgm-exporter"]
    if stack.stack == "dedicated":  # the default, cloudwatch
        assert {a.inputs["clusterName"] for a in cloudwatch} == clusters and not exporters
    else:
        assert not cloudwatch and len(exporters) == len(clusters)


def test_the_cloudwatch_agent_reaches_aws_through_irsa_for_its_service_account_only(rendered: dict[str, RenderResult]):
    stack = rendered["dedicated"]
    roles = {r.outputs.get("arn"): r for r in stack.of_type("aws:iam/role:Role")}
    for addon in _addons(stack, "amazon-cloudwatch-observability"):
        role = roles[addon.inputs["serviceAccountRoleArn"]]
        trust = json.loads(role.inputs["assumeRolePolicy"])
        [statement] = trust["Statement"]
        subjects = [v for cond in statement["Condition"].values() for k, v in cond.items() if k.endswith(":sub")]
        assert subjects == ["system:serviceaccount:amazon-cloudwatch:cloudwatch-agent"]
        attached = [a.inputs["policyArn"] for a in stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if a.parent == role.parent]
        assert attached == ["arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"]


def test_exporters_run_on_gpu_nodes_only_and_take_no_gpu(rendered: dict[str, RenderResult]):
    stack = rendered["unified"]
    gpu_groups = sorted(
        g.inputs["labels"]["mleks.io/node-group"] for g in stack.of_type("aws:eks/nodeGroup:NodeGroup") if g.inputs["labels"].get("role") != "system"
    )
    [(reg, ds)] = [(r, o) for r, o in _workloads(stack) if o["metadata"]["name"] == "dcgm-exporter"]
    pod = ds["spec"]["template"]["spec"]
    assert groups_for_pod(stack, reg, pod) == gpu_groups
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true", "never on a system node"
    for c in pod["containers"]:
        assert not any("nvidia.com" in k for k in (c["resources"].get("requests") or {}) | (c["resources"].get("limits") or {}))
        assert not any(e["name"] == "NVIDIA_VISIBLE_DEVICES" for e in c.get("env", []))
        assert {"requests", "limits"} <= c["resources"].keys()


def test_the_exporter_reads_the_node_agents_engine_instead_of_starting_its_own(rendered: dict[str, RenderResult]):
    [ds] = [o for _, o in _workloads(rendered["unified"]) if o["metadata"]["name"] == "dcgm-exporter"]
    pod = ds["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # dcgm-server's host port (chart templates/dcgm-daemonset.yaml), on the node's loopback: host network.
    assert f"--remote-hostengine-info=localhost:{node_monitoring_agent.DCGM_PORT}" in container["args"]
    assert node_monitoring_agent.DCGM_PORT == 5555 and pod["hostNetwork"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, "no SYS_ADMIN: the engine reads the profiling counters"


def test_no_add_on_lands_on_gpu_nodes_unless_it_tolerates_the_taint_on_purpose(stack: RenderResult):
    per_node_agents = {"nvidia-device-plugin", "aws-efa-k8s-device-plugin", "dcgm-exporter"}
    for _, obj in _workloads(stack):
        pod = obj["spec"]["template"]["spec"]
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
        if namespace != "kube-system":
            continue  # workloads: their GPU placement is tested with training and serving
        if _tolerates_gpu_taint(pod):
            assert name in per_node_agents, f"{name} tolerates the GPU taint but is not a per-node agent"
        else:
            assert pod.get("nodeSelector", {}).get("role") == "system", f"{name} must run on the system nodes"
    # EKS add-ons whose configuration lets pods onto GPU nodes, each for a per-node reason.
    onto_gpu = set()
    for addon in stack.of_type("aws:eks/addon:Addon"):
        values = json.loads(addon.inputs.get("configurationValues") or "{}")
        if values.get("node", {}).get("tolerateAllTaints") or _tolerates_gpu_taint({"tolerations": values.get("dcgmAgent", {}).get("tolerations", [])}):
            onto_gpu.add(addon.inputs["addonName"])
    expected = {"eks-node-monitoring-agent"} | {a for a in ("aws-ebs-csi-driver", "aws-fsx-csi-driver") if _addons(stack, a)}
    assert onto_gpu == expected


def test_every_scrape_target_matches_a_service_port_in_its_namespace(rendered: dict[str, RenderResult]):
    stack = rendered["unified"]
    objects = [o for _, o in stack.kube_objects()]
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert sorted(m["metadata"]["name"] for m in monitors) == ["cluster-autoscaler", "dcgm-exporter", "escalator"]
    for m in monitors:
        ns = m["metadata"]["namespace"]
        services = [
            s
            for s in objects
            if s["kind"] == "Service"
            and s["metadata"].get("namespace") == ns
            and all(s["metadata"].get("labels", {}).get(k) == v for k, v in m["spec"]["selector"]["matchLabels"].items())
        ]
        assert len(services) == 1, m["metadata"]["name"]
        assert m["spec"]["endpoints"][0]["port"] in {p["name"] for p in services[0]["spec"]["ports"]}
        assert services[0]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_a_service_monitor_with_an_unknown_field_fails_its_crd_schema(rendered: dict[str, RenderResult]):
    stack = rendered["unified"]
    [(reg, monitor)] = [(r, o) for r, o in stack.kube_objects() if o["kind"] == "ServiceMonitor" and o["metadata"]["name"] == "dcgm-exporter"]
    assert schema_errors(monitor, kube_version(stack, reg)) == []
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["scrapeEvery"] = "30s"
    assert schema_errors(broken, kube_version(stack, reg)), "the CRD schema is applied strictly"


def test_an_unknown_observability_mode_is_refused_naming_the_key():
    cfg = stack_file("dedicated")
    cfg["mleks:observability"] = "datadog"
    err = error_for(config_errors("dedicated", cfg), "mleks:observability.mode")
    assert err.value == "datadog" and all(m in err.accepted for m in ("cloudwatch", "prometheus", "none"))


def test_prometheus_without_a_way_to_scrape_is_refused():
    cfg = stack_file("unified")
    cfg["mleks:observability"] = {"mode": "prometheus", "scrape": []}
    err = error_for(config_errors("unified", cfg), "mleks:observability.scrape")
    assert err.value == [] and "annotations" in err.accepted


def test_scrape_settings_without_prometheus_are_refused():
    with pytest.raises(ConfigErrors) as info:
        ObservabilityArgs(mode="none", scrape=["serviceMonitor"])
    assert [e.key for e in info.value.errors] == ["scrape"]


def test_cloudwatch_refuses_bottlerocket_gpu_groups_and_prometheus_skips_them():
    cfg = stack_file("dedicated")
    cfg["mleks:nodeGroups"]["train"]["amiFamily"] = "bottlerocket"
    err = error_for(config_errors("dedicated", cfg), "mleks:observability")
    assert "helm-charts#34" in str(err) and "prometheus" in err.accepted and "['train']" in err.accepted
    cfg["mleks:observability"] = "prometheus"
    result = offline.run("dedicated", config=cfg)
    [ds] = [
        o
        for r, o in result.kube_objects()
        if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "dcgm-exporter" and result.cluster_of(r).name == "ml-prod-train"
    ]  # type: ignore[union-attr]
    assert ds["spec"]["template"]["spec"]["nodeSelector"]["mleks.io/ami-family"] == "al2023"


def test_none_mode_adds_no_metrics_add_on_but_keeps_health_and_resource_metrics():
    cfg = stack_file("dedicated")
    cfg["mleks:observability"] = "none"
    result = offline.run("dedicated", config=cfg)
    assert not _addons(result, "amazon-cloudwatch-observability")
    assert not [o for _, o in result.kube_objects() if o["metadata"]["name"] == "dcgm-exporter"]
    assert len(_addons(result, "eks-node-monitoring-agent")) == 2
    assert len([o for _, o in result.kube_objects() if o["kind"] == "APIService" and o["metadata"]["name"] == "v1beta1.metrics.k8s.io"]) == 2


def test_the_exporter_collects_xid_nvlink_and_profiling_fields():
    fields = {line.split(",")[0] for line in observability.COUNTERS.splitlines() if line and not line.startswith("#")}
    assert {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_XID_ERRORS", "DCGM_EXP_XID_ERRORS_COUNT"} <= fields
    assert {"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"} <= fields
    assert all(len(line.split(",")) >= 3 for line in observability.COUNTERS.splitlines() if line and not line.startswith("#"))


def test_the_docs_name_each_gpu_signal_and_where_to_see_it():
    text = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    for signal in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_XID_ERRORS", "AcceleratedHardwareReady", "NVLINK", "EFA"):
        assert signal in text, signal
    for topic in ("podFailurePolicy", "backoffLimit", "Escalator", "one engine per GPU"):
        assert topic in text, topic


def test_a_pods_metric_without_a_custom_metrics_api_is_refused_and_accepted_once_declared():
    cfg = stack_file("dedicated")
    [chat] = cfg["mleks:inferenceServices"]  # a list of services in this stack file
    chat["autoscaling"]["podsMetric"] = {"name": "vllm:num_requests_waiting", "targetAverageValue": "5"}
    errors = config_errors("dedicated", cfg)
    [err] = [e for e in errors if e.key.endswith("autoscaling.podsMetric")]
    assert "never scale" in str(err) and "customMetrics: provided" in err.accepted
    cfg["mleks:observability"] = {"mode": "cloudwatch", "customMetrics": "provided"}
    result = offline.run("dedicated", config=cfg)
    [hpa] = [o for _, o in result.kube_objects() if o["kind"] == "HorizontalPodAutoscaler"]
    assert "Pods" in {m["type"] for m in hpa["spec"]["metrics"]}
