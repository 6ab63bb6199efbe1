"""Escalator for training groups, cluster-autoscaler for inference groups: one owner per ASG.

Most tests read what the real program registers for both example stacks
(offline, under Pulumi mocks); the pure renderers and policy builders are
also called directly where a variation of the input matters.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mleks import cluster_autoscaler_addon as ca_addon
from mleks import escalator_addon
from mleks.catalogs.eks_versions import supported_kubernetes_versions
from mleks.errors import ConfigErrors
from mleks.escalator_addon import EscalatorArgs
from mleks.gpu_node_group import GpuNodeGroupArgs
from mleks.manifests.controllers import asg_arn
from mleks.manifests.escalator_config import EscalatorNodeGroupOptions, config_checksum
from mleks.vocabulary import ROLE_ARN_ANNOTATION
from stacks import offline, validation
from stacks.offline import Registration, RenderResult
from tests.checks import iam_documents, kube_version, lint_findings, schema_errors
from tests.escalator_oracle import validate_with_escalator_rules

ESCALATOR = "mleks:addons:EscalatorAddon"
CLUSTER_AUTOSCALER = "mleks:addons:ClusterAutoscalerAddon"
DESIRED_SIZE = "scalingConfig.desiredSize"


# --------------------------------------------------------------------------
# Reading the render
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuGroup:
    role: str
    name: str
    owner: str
    asg: str
    min_size: int
    max_size: int
    cluster: str
    ignore_changes: tuple[str, ...]


def gpu_groups(result: RenderResult) -> list[GpuGroup]:
    out = []
    for comp in result.of_type("mleks:nodegroup:GpuNodeGroup"):
        [ng] = [r for r in result.children_of(comp.urn) if r.type == "aws:eks/nodeGroup:NodeGroup"]
        cluster = result.cluster_of(comp)
        assert cluster is not None
        out.append(
            GpuGroup(
                role=ng.inputs["tags"]["mleks/role"],
                name=ng.inputs["tags"]["mleks/node-group"],
                owner=ng.inputs["tags"]["mleks/autoscaler"],
                asg=comp.outputs["asg_name"],
                min_size=ng.inputs["scalingConfig"]["minSize"],
                max_size=ng.inputs["scalingConfig"]["maxSize"],
                cluster=cluster.urn,
                ignore_changes=tuple(ng.ignore_changes),
            )
        )
    return out


def addon_objects(result: RenderResult, type_: str) -> list[tuple[Registration, Registration, dict[str, Any]]]:
    """(add-on component, object registration, manifest) for every Kubernetes object of each add-on of ``type_``."""
    out = []
    kube = dict((reg.urn, obj) for reg, obj in result.kube_objects())
    for addon in result.of_type(type_):
        for reg in result.descendants_of(addon.urn):
            if reg.urn in kube:
                out.append((addon, reg, kube[reg.urn]))
    return out


def objects_of(result: RenderResult, type_: str, kind: str) -> list[tuple[Registration, dict[str, Any]]]:
    return [(addon, obj) for addon, _, obj in addon_objects(result, type_) if obj["kind"] == kind]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    return c


def escalator_entries(result: RenderResult) -> list[tuple[str, dict[str, Any]]]:
    """(cluster URN, node_groups entry) for every Escalator ConfigMap."""
    out = []
    for addon, cm in objects_of(result, ESCALATOR, "ConfigMap"):
        cluster = result.cluster_of(addon)
        assert cluster is not None
        doc = yaml.safe_load(cm["data"][escalator_addon.CONFIG_FILE])
        out.extend((cluster.urn, entry) for entry in doc["node_groups"])
    return out


def nodes_flags(command: list[str]) -> list[tuple[int, int, str]]:
    out = []
    for arg in command:
        if arg.startswith("--nodes="):
            lo, hi, asg = arg.removeprefix("--nodes=").split(":", 2)
            out.append((int(lo), int(hi), asg))
    return out


def claims(result: RenderResult) -> list[tuple[str, str, str]]:
    """(autoscaler, cluster URN, ASG) for every ASG an autoscaler config names."""
    out = [("escalator", cluster, entry["cloud_provider_group_name"]) for cluster, entry in escalator_entries(result)]
    for addon, dep in objects_of(result, CLUSTER_AUTOSCALER, "Deployment"):
        cluster = result.cluster_of(addon)
        assert cluster is not None
        out.extend(("cluster-autoscaler", cluster.urn, asg) for _, _, asg in nodes_flags(container(dep)["command"]))
    return out


def unified() -> dict[str, Any]:
    return copy.deepcopy(offline.load_stack_file("unified"))


def as_raw(stack_config: dict[str, Any]) -> dict[str, Any]:
    """A stack file's config as :func:`stacks.validation.load` takes it."""
    raw = {k.removeprefix("mleks:"): v for k, v in stack_config.items() if k.startswith("mleks:")}
    raw["region"] = stack_config["aws:region"]
    return raw


# --------------------------------------------------------------------------
# Ownership
# --------------------------------------------------------------------------


def assert_ownership_invariant(result: RenderResult) -> None:
    groups = gpu_groups(result)
    assert groups
    found = claims(result)
    for g in groups:
        owners = [(who, cluster) for who, cluster, asg in found if asg == g.asg]
        if g.owner == "none":
            assert owners == [], f"{g.role} is owned by no autoscaler, yet {owners} claim it"
            assert DESIRED_SIZE not in g.ignore_changes
        else:
            assert owners == [(g.owner, g.cluster)], f"{g.role} ({g.asg}) must be claimed once, by {g.owner} in its own cluster: {owners}"
            assert DESIRED_SIZE in g.ignore_changes, f"{g.role}: pulumi up would fight {g.owner} over the desired size"
    # Nothing else (the system groups) is claimed.
    assert {asg for _, _, asg in found} <= {g.asg for g in groups}


def test_every_gpu_asg_is_owned_by_exactly_the_autoscaler_its_group_names(stack: RenderResult):
    assert_ownership_invariant(stack)
    owners = {g.role: g.owner for g in gpu_groups(stack)}
    assert owners == {"train": "escalator", "inference": "cluster-autoscaler"}


def test_dedicated_runs_escalator_in_the_train_cluster_and_cluster_autoscaler_in_the_inference_cluster(rendered: dict[str, RenderResult]):
    result = rendered["dedicated"]
    placed = {(t, result.cluster_of(a).name) for t in (ESCALATOR, CLUSTER_AUTOSCALER) for a in result.of_type(t)}  # type: ignore[union-attr]
    assert placed == {(ESCALATOR, "ml-prod-train"), (CLUSTER_AUTOSCALER, "ml-prod-inference")}


def test_unified_runs_both_autoscalers_in_one_cluster_on_disjoint_groups(rendered: dict[str, RenderResult]):
    result = rendered["unified"]
    clusters = {result.cluster_of(a).name for t in (ESCALATOR, CLUSTER_AUTOSCALER) for a in result.of_type(t)}  # type: ignore[union-attr]
    assert clusters == {"ml-unified"}
    by_autoscaler: dict[str, set[str]] = {}
    for who, _, asg in claims(result):
        by_autoscaler.setdefault(who, set()).add(asg)
    assert by_autoscaler["escalator"] and by_autoscaler["cluster-autoscaler"]
    assert not by_autoscaler["escalator"] & by_autoscaler["cluster-autoscaler"]


def test_a_group_owned_by_none_is_in_no_autoscaler_and_keeps_its_desired_size_managed():
    cfg = unified()
    for name in ("inference-spot", "inference-ondemand"):
        cfg["mleks:nodeGroups"][name]["autoscaler"] = "none"
    del cfg["mleks:clusterAutoscaler"]  # settings for an autoscaler with no group are an error
    result = offline.run("unified", config=cfg)
    assert_ownership_invariant(result)
    assert not result.of_type(CLUSTER_AUTOSCALER)
    inference = [g for g in gpu_groups(result) if g.role == "inference"]
    assert len(inference) == 2 and all(g.owner == "none" and g.ignore_changes == () for g in inference)


# --------------------------------------------------------------------------
# Real-world checks on the add-ons' objects and policies
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "kinds"),
    [
        (ESCALATOR, {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy"}),
        (
            CLUSTER_AUTOSCALER,
            {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy"},
        ),
    ],
)
def test_autoscaler_objects_pass_the_kubernetes_schema_of_their_cluster_strictly(stack: RenderResult, type_: str, kinds: set[str]):
    objects = addon_objects(stack, type_)
    # unified orders its inference groups, which adds the priority expander's ConfigMap.
    extra = {"ConfigMap"} if type_ == CLUSTER_AUTOSCALER and stack.stack == "unified" else set()
    assert {obj["kind"] for _, _, obj in objects} == kinds | extra
    errors = [e for _, reg, obj in objects for e in schema_errors(obj, kube_version(stack, reg))]
    assert errors == []


def irsa_documents(result: RenderResult, type_: str) -> list[tuple[str, str, dict[str, Any]]]:
    names = {r.name for a in result.of_type(type_) for r in result.descendants_of(a.urn)}
    return [d for d in iam_documents(result) if d[0] in names]


@pytest.mark.parametrize("type_", [ESCALATOR, CLUSTER_AUTOSCALER])
def test_autoscaler_iam_policies_pass_parliament(stack: RenderResult, type_: str):
    docs = irsa_documents(stack, type_)
    assert sorted(kind for _, kind, _ in docs) == ["permissions", "trust"]
    assert {name: lint_findings(doc, kind) for name, kind, doc in docs} == {name: [] for name, _, _ in docs}


@pytest.mark.parametrize(("type_", "owner"), [(ESCALATOR, "escalator"), (CLUSTER_AUTOSCALER, "cluster-autoscaler")])
def test_resize_and_terminate_are_allowed_on_the_owned_asgs_only(stack: RenderResult, type_: str, owner: str):
    [(_, _, policy)] = [d for d in irsa_documents(stack, type_) if d[1] == "permissions"]
    owned = sorted(asg_arn("aws", stack_region(stack), offline.ACCOUNT_ID, g.asg) for g in gpu_groups(stack) if g.owner == owner)
    writes = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert len(writes) == 1
    assert "autoscaling:TerminateInstanceInAutoScalingGroup" in writes[0]["Action"]
    assert writes[0]["Resource"] == owned
    for statement in policy["Statement"]:
        if statement["Resource"] == "*":
            assert all(":Describe" in a or ":Get" in a for a in statement["Action"]), statement


def stack_region(result: RenderResult) -> str:
    return str(offline.load_stack_file(result.stack)["aws:region"])


@pytest.mark.parametrize(("type_", "sa"), [(ESCALATOR, "escalator"), (CLUSTER_AUTOSCALER, "cluster-autoscaler")])
def test_service_account_carries_the_irsa_role_that_trusts_exactly_it(stack: RenderResult, type_: str, sa: str):
    for addon, obj in objects_of(stack, type_, "ServiceAccount"):
        assert obj["metadata"]["name"] == sa
        assert obj["metadata"]["annotations"][ROLE_ARN_ANNOTATION] == addon.outputs["role_arn"]
    [(_, _, trust)] = [d for d in irsa_documents(stack, type_) if d[1] == "trust"]
    subs = [v for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert subs == [f"system:serviceaccount:kube-system:{sa}"]


def test_cluster_autoscaler_may_describe_only_its_own_node_groups(stack: RenderResult):
    [(_, _, policy)] = [d for d in irsa_documents(stack, CLUSTER_AUTOSCALER) if d[1] == "permissions"]
    [statement] = [s for s in policy["Statement"] if "eks:DescribeNodegroup" in s["Action"]]
    owned = [g for g in gpu_groups(stack) if g.owner == "cluster-autoscaler"]
    assert len(statement["Resource"]) == len(owned)
    for g in owned:
        assert any(f":nodegroup/{arn_cluster(stack, g)}/" in r for r in statement["Resource"])


def arn_cluster(result: RenderResult, group: GpuGroup) -> str:
    return result.by_urn()[group.cluster].name


# --------------------------------------------------------------------------
# Escalator
# --------------------------------------------------------------------------


def escalator_deployments(result: RenderResult) -> list[dict[str, Any]]:
    deps = [obj for _, obj in objects_of(result, ESCALATOR, "Deployment")]
    assert deps
    return deps


def test_rendered_escalator_config_passes_escalators_own_validation(stack: RenderResult):
    entries = escalator_entries(stack)
    assert entries
    groups = {g.asg: g for g in gpu_groups(stack)}
    for _, entry in entries:
        assert validate_with_escalator_rules(entry) == []
        group = groups[entry["cloud_provider_group_name"]]
        # Named after the group, selecting the label only that group's nodes carry.
        assert (entry["name"], entry["label_key"], entry["label_value"]) == (group.name, "mleks.io/node-group", group.name)
        assert (entry["min_nodes"], entry["max_nodes"]) == (group.min_size, group.max_size)


def test_stack_options_reach_the_rendered_escalator_config(rendered: dict[str, RenderResult]):
    [(_, entry)] = escalator_entries(rendered["dedicated"])
    assert entry["hard_delete_grace_period"] == "48h"
    assert entry["scale_up_cool_down_period"] == "5m"


def test_escalator_is_started_by_command_not_args(stack: RenderResult):
    for dep in escalator_deployments(stack):
        c = container(dep)
        assert "args" not in c
        assert c["image"] == "ghcr.io/atlassian/escalator:v1.16.2"
        assert c["command"][:3] == ["./main", "--nodegroups", "/opt/conf/nodegroups/nodegroups_config.yaml"]
        assert c["command"][3:5] == ["--cloud-provider", "aws"]
        [mount] = c["volumeMounts"]
        assert mount["mountPath"] == "/opt/conf/nodegroups" and mount["readOnly"] is True


def flag_value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_escalator_lease_name_matches_the_rbac_resource_names(stack: RenderResult):
    for (addon, dep), (_, role) in zip(objects_of(stack, ESCALATOR, "Deployment"), objects_of(stack, ESCALATOR, "ClusterRole"), strict=True):
        command = container(dep)["command"]
        assert "--leader-elect" in command and dep["spec"]["replicas"] == 2
        lease = flag_value(command, "--leader-elect-config-name")
        assert flag_value(command, "--leader-elect-config-namespace") == "kube-system"
        named = [r for r in role["rules"] if r.get("resourceNames")]
        assert named == [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease], "verbs": ["delete", "get", "patch", "update"]}
        ]
        assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]} in role["rules"]
        assert addon.outputs["lease_name"] == lease


def test_escalator_gets_its_lock_identity_and_region_from_env(stack: RenderResult):
    for dep in escalator_deployments(stack):
        env = {e["name"]: e for e in container(dep)["env"]}
        assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["AWS_REGION"]["value"] == stack_region(stack)


def test_escalator_probes_metrics_because_there_is_no_healthz(stack: RenderResult):
    for dep in escalator_deployments(stack):
        c = container(dep)
        assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_escalator_pods_roll_when_the_config_changes(stack: RenderResult):
    for (_, cm), (_, dep) in zip(objects_of(stack, ESCALATOR, "ConfigMap"), objects_of(stack, ESCALATOR, "Deployment"), strict=True):
        annotation = dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert annotation == config_checksum(cm["data"]["nodegroups_config.yaml"])
    group = GpuNodeGroupArgs(role="train", instanceTypes=["g6e.12xlarge"], minSize=0, maxSize=4)
    before = escalator_addon.render_config(EscalatorArgs(), [group], ["asg-1"])
    after = escalator_addon.render_config(EscalatorArgs(nodeGroups={"train": EscalatorNodeGroupOptions(hard_delete_grace_period="48h")}), [group], ["asg-1"])
    assert config_checksum(before) != config_checksum(after)


def test_escalator_dry_mode_pauses_it_with_the_global_flag():
    assert "--drymode" not in escalator_addon.container_command(EscalatorArgs())
    assert "--drymode" in escalator_addon.container_command(EscalatorArgs(dryMode=True))


def test_escalator_needs_create_or_update_tags_only_for_resource_tagging():
    arns = ["arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:*:autoScalingGroupName/a"]
    plain = escalator_addon.iam_policy(arns)
    tagging = escalator_addon.iam_policy(arns, resource_tagging=True)
    assert "autoscaling:CreateOrUpdateTags" not in json.dumps(plain)
    assert "autoscaling:CreateOrUpdateTags" in tagging["Statement"][1]["Action"]
    for doc in (plain, tagging):
        assert lint_findings(doc, "permissions") == []


# --------------------------------------------------------------------------
# Both add-ons: placement and hardening
# --------------------------------------------------------------------------


@pytest.mark.parametrize("type_", [ESCALATOR, CLUSTER_AUTOSCALER])
def test_autoscaler_pods_never_schedule_on_the_gpu_nodes_they_scale(stack: RenderResult, type_: str):
    gpu_roles = {g.role for g in gpu_groups(stack)}
    deps = objects_of(stack, type_, "Deployment")
    assert deps
    for _, dep in deps:
        spec = dep["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"role": "system"}
        assert "system" not in gpu_roles
        # GPU nodes are tainted nvidia.com/gpu; without a toleration the pods cannot land there.
        assert not any(t.get("key") in ("nvidia.com/gpu", None) for t in spec.get("tolerations", []))


@pytest.mark.parametrize("type_", [ESCALATOR, CLUSTER_AUTOSCALER])
def test_autoscaler_pods_are_hardened_bounded_and_critical(stack: RenderResult, type_: str):
    for _, dep in objects_of(stack, type_, "Deployment"):
        spec = dep["spec"]["template"]["spec"]
        assert dep["spec"]["replicas"] == 2
        assert spec["priorityClassName"] == "system-cluster-critical"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        c = container(dep)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}


@pytest.mark.parametrize("type_", [ESCALATOR, CLUSTER_AUTOSCALER])
def test_pdb_and_metrics_service_select_the_autoscaler_pods(stack: RenderResult, type_: str):
    deployments, pdbs, services = (objects_of(stack, type_, kind) for kind in ("Deployment", "PodDisruptionBudget", "Service"))
    assert deployments and len(deployments) == len(pdbs) == len(services)
    for (_, dep), (_, pdb), (_, svc) in zip(deployments, pdbs, services, strict=True):
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["minAvailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        [port] = svc["spec"]["ports"]
        assert port["targetPort"] in {p["name"] for p in container(dep)["ports"]}


# --------------------------------------------------------------------------
# cluster-autoscaler
# --------------------------------------------------------------------------


def ca_deployments(result: RenderResult) -> list[tuple[Registration, dict[str, Any]]]:
    deps = objects_of(result, CLUSTER_AUTOSCALER, "Deployment")
    assert deps
    return deps


def test_cluster_autoscaler_image_minor_is_the_clusters_minor(stack: RenderResult):
    for addon, dep in ca_deployments(stack):
        cluster = stack.cluster_of(addon)
        assert cluster is not None
        [eks] = [c for c in stack.children_of(cluster.urn) if c.type == "eks:index:Cluster"]
        image = container(dep)["image"]
        repo, tag = image.rsplit(":", 1)
        assert repo == "registry.k8s.io/autoscaling/cluster-autoscaler"
        assert tag.removeprefix("v").split(".")[:2] == eks.inputs["version"].split(".")
        assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == tag


def test_every_supported_kubernetes_version_has_a_pinned_cluster_autoscaler_of_its_minor():
    versions = supported_kubernetes_versions()
    assert versions
    for version in versions:
        tag = ca_addon.image_for(version).rsplit(":v", 1)[1]
        assert tag.rsplit(".", 1)[0] == version


def test_cluster_autoscaler_has_no_auto_discovery_and_one_nodes_flag_per_owned_group(stack: RenderResult):
    for addon, dep in ca_deployments(stack):
        command = container(dep)["command"]
        assert "args" not in container(dep)
        assert not any(a.startswith("--node-group-auto-discovery") for a in command)
        cluster = stack.cluster_of(addon)
        assert cluster is not None
        owned = sorted((g.min_size, g.max_size, g.asg) for g in gpu_groups(stack) if g.owner == "cluster-autoscaler" and g.cluster == cluster.urn)
        assert owned
        assert sorted(nodes_flags(command)) == owned


def test_cluster_autoscaler_settings_are_chosen_for_gpu_services(stack: RenderResult):
    for _, dep in ca_deployments(stack):
        command = container(dep)["command"]
        expander = "--expander=priority,least-waste" if stack.stack == "unified" else "--expander=least-waste"
        assert expander in command
        for flag in (
            "--balance-similar-node-groups=true",
            "--skip-nodes-with-system-pods=false",
            "--skip-nodes-with-local-storage=false",
            "--ignore-daemonsets-utilization=true",
            "--max-node-provision-time=25m",
            "--cloud-provider=aws",
        ):
            assert flag in command


def test_cluster_autoscaler_lease_matches_its_role_and_leader_election_is_on(stack: RenderResult):
    # As in the upstream chart (rbac.clusterScoped): the Lease in the ClusterRole, the status ConfigMap in the Role.
    deployments, roles = ca_deployments(stack), objects_of(stack, CLUSTER_AUTOSCALER, "Role")
    cluster_roles = objects_of(stack, CLUSTER_AUTOSCALER, "ClusterRole")
    for (_, dep), (_, role), (_, cluster_role) in zip(deployments, roles, cluster_roles, strict=True):
        command = container(dep)["command"]
        assert "--leader-elect=true" in command and "--leader-elect-resource-lock=leases" in command
        [lease] = [a.split("=", 1)[1] for a in command if a.startswith("--leader-elect-resource-name=")]
        assert role["metadata"]["namespace"] == "kube-system"
        named = {r["resources"][0]: r["resourceNames"] for r in role["rules"] if r.get("resourceNames")}
        # With a priority list (unified), the chart's Role also lets it read the priority expander's ConfigMap.
        expected = ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"] if stack.stack == "unified" else ["cluster-autoscaler-status"]
        assert named == {"configmaps": expected}
        leases = [r for r in cluster_role["rules"] if r["resources"] == ["leases"] and r.get("resourceNames")]
        assert leases == [{"apiGroups": ["coordination.k8s.io"], "resourceNames": [lease], "resources": ["leases"], "verbs": ["get", "update"]}]


def test_cluster_autoscaler_probes_its_health_check_on_8085(stack: RenderResult):
    for _, dep in ca_deployments(stack):
        c = container(dep)
        assert c["ports"] == [{"name": "http", "containerPort": 8085, "protocol": "TCP"}]
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/health-check", "port": "http"}


def test_cluster_autoscaler_rejects_a_provision_time_shorter_than_its_loop():
    with pytest.raises(ConfigErrors) as info:
        validation.load({**as_raw(unified()), "clusterAutoscaler": {"maxNodeProvisionTime": "5s"}})
    assert [e.key for e in info.value.errors] == ["mleks:clusterAutoscaler.maxNodeProvisionTime"]


def test_addons_refuse_groups_owned_by_another_autoscaler():
    train = GpuNodeGroupArgs(role="train", instanceTypes=["g6e.12xlarge"], maxSize=4)
    inference = GpuNodeGroupArgs(role="inference", instanceTypes=["g6e.xlarge"], maxSize=4)
    assert [e.key for e in escalator_addon.node_group_errors(EscalatorArgs(), [inference])] == ["nodeGroups.inference.autoscaler"]
    assert [e.key for e in ca_addon.node_group_errors([train], "1.35")] == ["nodeGroups.train.autoscaler"]
    assert [e.key for e in ca_addon.node_group_errors([inference], "1.31")] == ["cluster.kubernetesVersion"]


# --------------------------------------------------------------------------
# Bad input fails before registration, naming the key
# --------------------------------------------------------------------------


def escalator_options(cfg: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = cfg["mleks:escalator"]["nodeGroups"]["train-p5"]
    return options


def _threshold_misorder(cfg: dict[str, Any]) -> None:
    escalator_options(cfg)["taint_upper_capacity_threshold_percent"] = 80


def _grace_misorder(cfg: dict[str, Any]) -> None:
    escalator_options(cfg)["soft_delete_grace_period"] = "48h"


def _group_min_equals_max(cfg: dict[str, Any]) -> None:
    cfg["mleks:nodeGroups"]["train-p5"]["minSize"] = cfg["mleks:nodeGroups"]["train-p5"]["maxSize"]


def _options_min_above_max(cfg: dict[str, Any]) -> None:
    escalator_options(cfg).update(min_nodes=3, max_nodes=2)


def _unknown_option(cfg: dict[str, Any]) -> None:
    escalator_options(cfg)["scale_up_treshold_percent"] = 60


def _group_that_does_not_exist(cfg: dict[str, Any]) -> None:
    cfg["mleks:escalator"]["nodeGroups"]["batch"] = {"scale_up_threshold_percent": 60}


def _group_owned_by_cluster_autoscaler(cfg: dict[str, Any]) -> None:
    cfg["mleks:escalator"]["nodeGroups"]["inference-spot"] = {}


def _escalator_settings_without_escalator_groups(cfg: dict[str, Any]) -> None:
    for name in ("train-p5", "train-g6e"):
        cfg["mleks:nodeGroups"][name]["autoscaler"] = "cluster-autoscaler"
    del cfg["mleks:escalator"]["nodeGroups"]


def _cluster_autoscaler_settings_without_its_groups(cfg: dict[str, Any]) -> None:
    for name in ("inference-spot", "inference-ondemand"):
        cfg["mleks:nodeGroups"][name]["autoscaler"] = "none"
    del cfg["mleks:clusterAutoscaler"]["priority"]


def _priority_naming_an_unknown_group(cfg: dict[str, Any]) -> None:
    cfg["mleks:clusterAutoscaler"]["priority"] = ["inference-spot", "inference-reserved"]


def _priority_naming_an_escalator_group(cfg: dict[str, Any]) -> None:
    cfg["mleks:clusterAutoscaler"]["priority"] = ["train-g6e"]


@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (_threshold_misorder, "mleks:escalator.nodeGroups.train-p5.taint_upper_capacity_threshold_percent", "less than scale_up_threshold_percent"),
        (_grace_misorder, "mleks:escalator.nodeGroups.train-p5.soft_delete_grace_period", "less than hard_delete_grace_period"),
        (_group_min_equals_max, "mleks:nodeGroups.train-p5.maxSize", "min_nodes < max_nodes"),
        (_options_min_above_max, "mleks:escalator.nodeGroups.train-p5.min_nodes", "less than max_nodes"),
        (_unknown_option, "mleks:escalator.nodeGroups.train-p5.scale_up_treshold_percent", "closest known key is 'scale_up_threshold_percent'"),
        (_group_that_does_not_exist, "mleks:escalator.nodeGroups.batch", "no such node group"),
        (_group_owned_by_cluster_autoscaler, "mleks:escalator.nodeGroups.inference-spot", "Escalator would never read these options"),
        (_priority_naming_an_unknown_group, "mleks:clusterAutoscaler.priority[1]", "no such node group"),
        (_priority_naming_an_escalator_group, "mleks:clusterAutoscaler.priority[0]", "scaled by escalator, not cluster-autoscaler"),
        (_escalator_settings_without_escalator_groups, "mleks:escalator", "no node group is scaled by Escalator"),
        (_cluster_autoscaler_settings_without_its_groups, "mleks:clusterAutoscaler", "no node group is scaled by cluster-autoscaler"),
    ],
)
def test_bad_autoscaling_input_fails_before_registration_naming_the_key(mutate: Any, key: str, words: str):
    cfg = unified()
    mutate(cfg)
    with pytest.raises(ConfigErrors) as info:
        offline.run("unified", config=cfg)
    assert info.value.registered_urns == []  # type: ignore[attr-defined]
    assert [e.key for e in info.value.errors] == [key], str(info.value)
    assert words in str(info.value.errors[0])
    # The same error comes from parsing alone.
    with pytest.raises(ConfigErrors) as again:
        validation.load(as_raw(cfg))
    assert [str(e) for e in again.value.errors] == [str(e) for e in info.value.errors]


def test_example_stack_configs_parse_with_their_autoscaling_settings():
    for name in ("unified", "dedicated"):
        cfg = validation.load(as_raw(offline.load_stack_file(name)))
        assert cfg.escalator is not None and cfg.escalator.node_groups
        assert cfg.cluster_autoscaler is not None


def test_the_priority_expander_prefers_the_groups_in_the_configured_order(rendered):
    result = rendered["unified"]
    [(_, _, cm)] = [(a, r, o) for a, r, o in addon_objects(result, CLUSTER_AUTOSCALER) if o["kind"] == "ConfigMap"]
    assert cm["metadata"]["name"] == "cluster-autoscaler-priority-expander"
    levels = yaml.safe_load(cm["data"]["priorities"])
    asg = {g.name: g.asg for g in gpu_groups(result)}
    assert levels == {
        20: [f"^{re.escape(asg['inference-spot'])}$"],
        10: [f"^{re.escape(asg['inference-ondemand'])}$"],
        1: [".*"],
    }
    [(_, _, role)] = [(a, r, o) for a, r, o in addon_objects(result, CLUSTER_AUTOSCALER) if o["kind"] == "Role"]
    assert (
        role["rules"]
        == json.loads((Path(ca_addon.__file__).parent / "catalogs" / "data" / "cluster_autoscaler_rbac.json").read_text())["minors"]["1.35"][
            "rolePriorityExpander"
        ]
    )


def test_every_inference_group_gets_its_own_nodes_flag_and_scale_from_zero_tags(rendered):
    result = rendered["unified"]
    [(_, _, dep)] = [(a, r, o) for a, r, o in addon_objects(result, CLUSTER_AUTOSCALER) if o["kind"] == "Deployment"]
    flags = nodes_flags(container(dep)["command"])
    groups = [g for g in gpu_groups(result) if g.role == "inference"]
    assert len(groups) == 2 and sorted(flags) == sorted((g.min_size, g.max_size, g.asg) for g in groups)
    # The scale-from-zero templates (not the stack tags every group propagates to its instances).
    tagged = {
        t.inputs["autoscalingGroupName"] for t in result.of_type("aws:autoscaling/tag:Tag") if t.inputs["tag"]["key"].startswith("k8s.io/cluster-autoscaler/")
    }
    assert tagged == {g.asg for g in groups}


def test_escalator_has_one_group_per_train_group_on_labels_no_two_share(rendered):
    entries = [e for _, e in escalator_entries(rendered["unified"])]
    assert sorted(e["name"] for e in entries) == ["train-g6e", "train-p5"]
    labels = [(e["label_key"], e["label_value"]) for e in entries]
    assert len(set(labels)) == len(labels) and all(k == "mleks.io/node-group" for k, _ in labels)
    assert all(validate_with_escalator_rules(e) == [] for e in entries)
