"""Checks against the real world, over EVERY object and policy both stacks produce.

* Each Kubernetes object passes the official schema of its cluster's version
  (kubernetes-validate, strict: unknown fields are errors).
* Each IAM policy document passes parliament.
* Both stacks as shipped and with a Karpenter inference pool (``with_karpenter``).
* Each of our components follows the house rules: children parented to it,
  outputs registered, type tokens ``mleks:<module>:<Name>``.
"""

from __future__ import annotations

import copy
import re

import pytest

from mleks.workload_identity import AUTONAME_SUFFIX, IAM_ROLE_NAME_MAX
from stacks import offline
from stacks.offline import RenderResult
from tests.checks import iam_documents, kube_version, lint_findings, schema_errors, stack_file, with_karpenter

VARIANTS = ("unified", "dedicated", "unified+karpenter", "dedicated+karpenter")


@pytest.fixture(scope="module")
def karpenter_renders() -> dict[str, RenderResult]:
    return {f"{s}+karpenter": offline.run(s, config=with_karpenter(s, stack_file(s))) for s in ("unified", "dedicated")}


@pytest.fixture(params=VARIANTS)
def stack(request: pytest.FixtureRequest, rendered: dict[str, RenderResult], karpenter_renders: dict[str, RenderResult]) -> RenderResult:
    """Each stack as shipped, and with its spot inference capacity on a Karpenter pool."""
    return {**rendered, **karpenter_renders}[request.param]


def test_every_kubernetes_object_passes_the_official_schema_strictly(stack: RenderResult):
    objects = stack.kube_objects()
    assert objects, "each stack renders Kubernetes objects"
    errors = [e for reg, obj in objects for e in schema_errors(obj, kube_version(stack, reg))]
    assert errors == []


def test_every_iam_policy_passes_parliament(stack: RenderResult):
    docs = iam_documents(stack)
    assert docs, "each stack has IAM policies"
    findings = {f"{name} ({kind})": lint_findings(doc, kind) for name, kind, doc in docs}
    assert {k: v for k, v in findings.items() if v} == {}


def test_trust_policies_only_let_one_service_or_one_service_account_in(stack: RenderResult):
    for name, kind, doc in iam_documents(stack):
        if kind != "trust":
            continue
        for statement in doc["Statement"]:
            principal = statement["Principal"]
            if "Federated" in principal:
                condition = statement["Condition"]["StringEquals"]
                subs = [v for k, v in condition.items() if k.endswith(":sub")]
                assert len(subs) == 1 and subs[0].startswith("system:serviceaccount:") and "*" not in subs[0], name
                assert any(k.endswith(":aud") for k in condition), name
            else:
                assert set(principal) == {"Service"}, name


def test_no_permission_policy_allows_a_wildcard_action(stack: RenderResult):
    for name, kind, doc in iam_documents(stack):
        if kind == "trust":
            continue
        for statement in doc["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(a == "*" or a.endswith(":*") for a in actions), f"{name}: {actions}"


_TOKEN = re.compile(r"^mleks:[a-z]+:[A-Z][A-Za-z0-9]+$")


def test_component_type_tokens_follow_package_module_name(stack: RenderResult):
    ours = [r for r in stack.resources if not r.custom and r.type.startswith("mleks:")]
    assert ours
    for reg in ours:
        assert _TOKEN.match(reg.type), reg.type


def test_every_component_registers_its_outputs(stack: RenderResult):
    for reg in stack.resources:
        if not reg.custom and reg.type.startswith("mleks:"):
            assert reg.outputs, f"{reg.type} {reg.name} did not call register_outputs with its outputs"


def test_every_resource_sits_under_one_of_our_components(stack: RenderResult):
    index = stack.by_urn()
    top_level_allowed = {"mleks:cluster:MLCluster"}
    for reg in stack.resources:
        parent = index.get(reg.parent)
        if parent is None:
            assert reg.type in top_level_allowed or reg.type.startswith("mleks:"), f"{reg.type} {reg.name} has no component parent"


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "Job"])
def test_every_gpu_container_declares_gpu_limits(stack: RenderResult, kind: str):
    """The seed repo ran "GPU" pods without GPU limits; every pod on a GPU node here asks for GPUs, or is a node agent."""
    for _, obj in stack.kube_objects():
        if obj["kind"] != kind:
            continue
        pod = obj["spec"]["template"]["spec"]
        tolerates_gpu = any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))
        if not tolerates_gpu or kind == "DaemonSet":
            continue
        gpus = [c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") for c in pod["containers"]]
        assert any(gpus), f"{kind} {obj['metadata']['name']} tolerates GPU nodes but requests no GPU"


def test_every_iam_role_name_fits_iams_limit_even_with_the_longest_names_the_config_accepts():
    # Pulumi names a role "<resource name>-<7 random>" and refuses (at preview)
    # when that passes IAM's 64 characters; the config accepts a 32-character
    # name prefix, 50-character job names and 30-character service names.
    cfg = copy.deepcopy(offline.load_stack_file("dedicated"))
    cfg["mleks:namePrefix"] = "research-platform-production-x1"[:32]
    cfg["mleks:trainingJobs"][0]["name"] = "a" * 50
    cfg["mleks:inferenceServices"][0]["name"] = "s" * 30
    result = offline.run("dedicated", config=cfg)
    roles = result.of_type("aws:iam/role:Role")
    assert len(roles) >= 5
    for role in roles:
        name = role.inputs.get("name")
        length = len(name) if name else len(role.name) + AUTONAME_SUFFIX
        assert length <= IAM_ROLE_NAME_MAX, f"{role.name}: the role's IAM name would be {length} characters"
    named = sorted(r.inputs["name"] for r in roles if r.inputs.get("name"))
    assert named and len(set(named)) == len(named)


def test_short_role_names_keep_pulumi_autonaming(stack: RenderResult):
    # Setting a name on a role that already exists would replace it.
    assert all(not r.inputs.get("name") for r in stack.of_type("aws:iam/role:Role"))


WORKLOAD_KINDS = ("Job", "Deployment", "StatefulSet")


def _workload_pods(stack: RenderResult):
    for _, obj in stack.kube_objects():
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj, obj["spec"]["template"]["spec"]


def test_every_workload_pod_runs_under_the_runtime_seccomp_profile_without_privileges(stack: RenderResult):
    pods = list(_workload_pods(stack))
    assert pods
    for obj, pod in pods:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and not ctx.get("privileged"), name
            assert ctx["capabilities"]["drop"] == ["ALL"], name


def test_no_workload_adds_a_capability_back_efa_jobs_included(stack: RenderResult):
    # IPC_LOCK would put an EFA job outside Pod Security baseline; its nodes raise the locked-memory limit instead.
    efa_seen = False
    for obj, pod in _workload_pods(stack):
        for c in pod["containers"]:
            efa_seen |= "vpc.amazonaws.com/efa" in c["resources"].get("limits", {})
            assert "add" not in c["securityContext"]["capabilities"], obj["metadata"]["name"]
    assert efa_seen or stack.stack == "dedicated"


def test_efa_al2023_nodes_give_containers_an_unlimited_locked_memory_limit(rendered):
    import base64

    lt = next(r for r in rendered["unified"].of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.name == "ml-unified-train-p5-gpu-lt")
    text = base64.b64decode(lt.inputs["userData"]).decode()
    assert "- type: RLIMIT_MEMLOCK\n            soft: 18446744073709551615\n            hard: 18446744073709551615" in text
    # nodeadm merges the list over its default: the file-descriptor limit keeps its default values.
    assert "- type: RLIMIT_NOFILE\n            soft: 65536\n            hard: 1048576" in text
    assert "FastImagePull: true" in text
    non_efa = next(r for r in rendered["unified"].of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.name == "ml-unified-train-g6e-gpu-lt")
    assert "RLIMIT_MEMLOCK" not in base64.b64decode(non_efa.inputs["userData"]).decode()


def test_training_pods_get_the_guaranteed_qos_class(stack: RenderResult):
    jobs = [pod for obj, pod in _workload_pods(stack) if obj["kind"] == "Job"]
    assert jobs
    for pod in jobs:
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            requests, limits = c["resources"]["requests"], c["resources"]["limits"]
            assert requests["cpu"] == limits["cpu"] and requests["memory"] == limits["memory"]
