"""Serving and notebooks: InferenceService, JupyterNotebook, EbsCsiDriver and their stack wiring.

Every object is checked against the official Kubernetes schema; nothing is
reachable from outside the VPC unless a service opts in to an internal NLB;
notebook tokens come from a generated Secret; bad input fails before any
resource is registered, naming the key.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from mleks import ebs_csi_driver, inference_service, jupyter_notebook
from mleks.catalogs.gpu import catalog
from mleks.errors import ConfigError, ConfigErrors
from mleks.inference_service import InferenceServiceArgs
from mleks.infra.s3_access import parse_s3_uri, s3_policy
from mleks.jupyter_notebook import JupyterNotebookArgs
from mleks.manifests.quantity import parse_quantity, storage_size
from mleks.manifests.workloads import proportional_requests
from mleks.validation.schema import keyed_entries, parse
from stacks import offline
from stacks.offline import Registration, RenderResult
from tests.checks import HEAVY_LOAD, config_errors, error_for, groups_for_pod, iam_documents, lint_findings, schema_errors, stack_file

KUBE_VERSION = "1.35.0"
G6E_XLARGE = catalog()["g6e.xlarge"]
P4D = catalog()["p4d.24xlarge"]
OUR_COMPONENTS = ("mleks:serving:InferenceService", "mleks:notebooks:JupyterNotebook", "mleks:addons:EbsCsiDriver")


# -- helpers ------------------------------------------------------------------------------


def service_args(**overrides: Any) -> InferenceServiceArgs:
    data: dict[str, Any] = {"name": "llm", "image": {"uri": "vllm/vllm-openai:v0.11.0"}, "port": 8000}
    data.update(overrides)
    return parse(InferenceServiceArgs, data)


def notebook_args(**overrides: Any) -> JupyterNotebookArgs:
    return parse(JupyterNotebookArgs, {"name": "lab", **overrides})


def render_service(args: InferenceServiceArgs, role_arn: str | None = None) -> list[dict[str, Any]]:
    return inference_service.render(args, image="vllm/vllm-openai:v0.11.0", instance=G6E_XLARGE, region="us-west-2", daemonsets=HEAVY_LOAD, role_arn=role_arn)


def render_notebook(args: JupyterNotebookArgs) -> list[dict[str, Any]]:
    instance = P4D if args.gpus else None
    return jupyter_notebook.render(
        args, image=jupyter_notebook.DEFAULT_IMAGE, instance=instance, storage_class="gp3-encrypted", token="t0ken", daemonsets=HEAVY_LOAD if instance else None
    )


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


def pod_of(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod


def ours(stack: RenderResult) -> list[tuple[Registration, dict[str, Any]]]:
    """Kubernetes objects registered by the serving/notebook components, plus their namespaces."""
    roots = [r.urn for r in stack.resources if r.type in OUR_COMPONENTS]
    inside = {d.urn for root in roots for d in stack.descendants_of(root)}
    found = []
    for reg, obj in stack.kube_objects():
        if reg.urn in inside or (obj["kind"] == "Namespace" and obj["metadata"]["name"] in ("serving", "notebooks")):
            found.append((reg, obj))
    return found


def stack_objects(stack: RenderResult, kind: str, name: str) -> list[dict[str, Any]]:
    return [obj for _, obj in stack.kube_objects() if obj["kind"] == kind and obj["metadata"]["name"] == name]


# -- the Kubernetes schema -------------------------------------------------------------------


def test_every_serving_and_notebook_object_of_both_stacks_passes_the_schema_strictly(stack: RenderResult):
    objects = ours(stack)
    kinds = {obj["kind"] for _, obj in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "StatefulSet", "Secret", "StorageClass", "Namespace"} <= kinds
    assert [e for _, obj in objects for e in schema_errors(obj, KUBE_VERSION)] == []


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"exposure": "internal-nlb", "loadBalancerSourceCidrs": ["10.0.0.0/16"]},
        {"model": {"s3Uri": "s3://models/llm/", "fetch": "server"}},
        {"model": {"s3Uri": "s3://models/llm/"}, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
        {"autoscaling": {"targetCpuUtilizationPercent": None, "podsMetric": {"name": "vllm:num_requests_waiting", "targetAverageValue": "5"}}},
        {"command": ["vllm", "serve"], "args": ["/models"], "env": {"HF_HOME": "/tmp/hf"}, "skipAwait": True},
    ],
    ids=["defaults", "internal-nlb", "server-fetches", "non-root", "pods-metric", "command-env-skip-await"],
)
def test_inference_service_variants_pass_the_schema_strictly(overrides: dict[str, Any]):
    objects = render_service(service_args(**overrides), role_arn="arn:aws:iam::123456789012:role/x")
    assert [e for obj in objects for e in schema_errors(obj, KUBE_VERSION)] == []


@pytest.mark.parametrize(
    "overrides",
    [{}, {"gpus": 2, "storageSize": "1Ti"}, {"stopped": True}, {"runAsUser": 0, "command": ["jupyter", "lab"], "args": ["--allow-root"]}],
    ids=["cpu", "gpu", "stopped", "root"],
)
def test_notebook_variants_pass_the_schema_strictly(overrides: dict[str, Any]):
    objects = render_notebook(notebook_args(**overrides))
    assert [e for obj in objects for e in schema_errors(obj, KUBE_VERSION)] == []


# -- exposure -----------------------------------------------------------------------------------


def test_nothing_is_internet_facing_in_either_stack(stack: RenderResult):
    for _, obj in stack.kube_objects():
        assert obj["kind"] != "Ingress", obj["metadata"]["name"]
        if obj["kind"] != "Service":
            continue
        spec = obj["spec"]
        assert spec.get("type", "ClusterIP") in ("ClusterIP", "LoadBalancer"), f"{obj['metadata']['name']} is a {spec.get('type')}"
        if spec.get("type") == "LoadBalancer":
            annotations = obj["metadata"].get("annotations", {})
            assert annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme") == "internal", obj["metadata"]["name"]
            # Only the AWS Load Balancer Controller may act on it, never the legacy controller's internet-facing default.
            assert spec.get("loadBalancerClass") == "service.k8s.aws/nlb"


def test_a_service_without_exposure_gets_only_a_cluster_ip_service():
    services = of_kind(render_service(service_args()), "Service")
    assert [(s["metadata"]["name"], s["spec"]["type"]) for s in services] == [("llm", "ClusterIP")]


def test_the_opt_in_load_balancer_is_an_internal_nlb_with_ip_targets_and_no_node_ports(rendered: dict[str, RenderResult]):
    [nlb] = stack_objects(rendered["dedicated"], "Service", "chat-internal")
    annotations = nlb["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert nlb["spec"]["type"] == "LoadBalancer" and nlb["spec"]["allocateLoadBalancerNodePorts"] is False
    assert nlb["spec"]["loadBalancerSourceRanges"] == ["10.50.0.0/16"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-healthcheck-path"] == "/health"


def test_load_balancer_source_cidrs_without_the_nlb_are_rejected():
    with pytest.raises(ConfigErrors) as info:
        service_args(loadBalancerSourceCidrs=["10.0.0.0/16"])
    assert info.value.errors[0].key == "loadBalancerSourceCidrs"


def test_the_notebook_has_only_a_cluster_ip_service(stack: RenderResult):
    [svc] = stack_objects(stack, "Service", "research")
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 8888


# -- placement, resources, rollout --------------------------------------------------------------


def test_the_service_runs_on_inference_nodes_with_the_gpu_toleration_and_gpu_limits(stack: RenderResult):
    name = "densenet" if stack.stack == "unified" else "chat"
    [deployment] = stack_objects(stack, "Deployment", name)
    pod = pod_of(deployment)
    [reg] = [r for r, o in stack.kube_objects() if o is deployment or (o["kind"] == "Deployment" and o["metadata"]["name"] == name)]
    expected = ["inference-ondemand", "inference-spot"] if stack.stack == "unified" else ["inference"]
    assert pod["nodeSelector"]["role"] == "inference" and groups_for_pod(stack, reg, pod) == expected
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    [server] = pod["containers"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1" == server["resources"]["requests"]["nvidia.com/gpu"]
    assert "cpu" not in server["resources"]["limits"]


def test_the_service_rolls_out_without_ever_dropping_below_its_replicas():
    deployment = one(render_service(service_args()), "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    # The HPA owns the replica count; a value here would be reset by each `pulumi up`.
    assert "replicas" not in deployment["spec"]


def test_cpu_and_memory_default_to_three_quarters_of_the_gpu_share():
    # Of what a node can give pods beside its DaemonSets (node_capacity.node_budget), rounded down to 100m and 256Mi.
    assert proportional_requests(G6E_XLARGE, 1, HEAVY_LOAD) == ("2400m", "19200Mi")  # 3200m and 25894Mi for pods, 1 GPU
    assert proportional_requests(P4D, 1, HEAVY_LOAD) == ("8900m", "101120Mi")  # 94970m and 1080712Mi for pods, 8 GPUs
    assert proportional_requests(P4D, 8, HEAVY_LOAD) == ("71200m", "810496Mi")
    server = pod_of(one(render_service(service_args()), "Deployment"))["containers"][0]
    assert server["resources"]["requests"]["cpu"] == "2400m" and server["resources"]["limits"]["memory"] == "19200Mi"


def test_probes_give_model_loading_its_startup_allowance():
    server = pod_of(one(render_service(service_args(probes={"readinessPath": "/health", "startupTimeoutSeconds": 1200})), "Deployment"))["containers"][0]
    assert server["readinessProbe"]["httpGet"]["path"] == "/health"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 1200


def test_the_hpa_scales_the_deployment_between_min_and_max_on_cpu_or_a_custom_metric():
    hpa = one(render_service(service_args(autoscaling={"minReplicas": 2, "maxReplicas": 5})), "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    custom = one(
        render_service(service_args(autoscaling={"targetCpuUtilizationPercent": None, "podsMetric": {"name": "queue", "targetAverageValue": "5"}})),
        "HorizontalPodAutoscaler",
    )
    assert [m["type"] for m in custom["spec"]["metrics"]] == ["Pods"]


def test_the_pdb_lets_drains_proceed_one_pod_at_a_time():
    pdb = one(render_service(service_args()), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_pdb_hpa_and_services_select_exactly_the_deployment_pods():
    objects = render_service(service_args(exposure="internal-nlb"))
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]] + [s["spec"]["selector"] for s in of_kind(objects, "Service")]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()


def test_pulumi_waits_long_enough_for_a_gpu_node_from_zero_or_not_at_all():
    deployment = one(render_service(service_args()), "Deployment")
    assert deployment["metadata"]["annotations"] == {"pulumi.com/timeoutSeconds": "1800"}
    assert deployment["spec"]["progressDeadlineSeconds"] == 1800
    skipped = one(render_service(service_args(skipAwait=True)), "Deployment")
    assert skipped["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


def test_the_default_service_leaves_the_user_to_the_image_but_drops_every_capability():
    pod = pod_of(one(render_service(service_args()), "Deployment"))
    assert "runAsUser" not in pod["securityContext"] and pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_a_read_only_root_filesystem_gets_a_writable_tmp():
    pod = pod_of(one(render_service(service_args(readOnlyRootFilesystem=True)), "Deployment"))
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "8Gi"}} in pod["volumes"]


def test_a_service_given_a_uid_runs_non_root_with_no_capabilities():
    pod = pod_of(one(render_service(service_args(runAsUser=1000, fsGroup=1000)), "Deployment"))
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


# -- model artifacts and workload identity ----------------------------------------------------------


def test_an_init_container_copies_the_model_from_s3_and_the_server_mounts_it_read_only():
    pod = pod_of(one(render_service(service_args(model={"s3Uri": "s3://models/llm"})), "Deployment"))
    [fetch] = pod["initContainers"]
    assert fetch["args"][:2] == ["s3", "sync"] and fetch["args"][-2:] == ["s3://models/llm/", "/models"]
    assert fetch["securityContext"]["runAsNonRoot"] is True and fetch["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["model"] == {"name": "model", "mountPath": "/models", "readOnly": True}
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["MODEL_DIR"] == "/models" and env["MODEL_S3_URI"] == "s3://models/llm/"


def test_with_fetch_server_nothing_is_copied():
    pod = pod_of(one(render_service(service_args(model={"s3Uri": "s3://models/llm/", "fetch": "server"})), "Deployment"))
    assert "initContainers" not in pod
    assert {e["name"] for e in pod["containers"][0]["env"]} >= {"MODEL_S3_URI", "AWS_REGION"}


def test_the_service_account_carries_the_irsa_role_that_reads_only_the_model_prefix(rendered: dict[str, RenderResult]):
    stack = rendered["dedicated"]
    [account] = stack_objects(stack, "ServiceAccount", "chat")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::123456789012:role/")
    docs = {name: doc for name, kind, doc in iam_documents(stack) if name.startswith("ml-prod-inference-chat-model")}
    trust = next(doc for name, doc in docs.items() if name.endswith("-role"))
    assert trust["Statement"][0]["Condition"]["StringEquals"][next(k for k in trust["Statement"][0]["Condition"]["StringEquals"] if k.endswith(":sub"))] == (
        "system:serviceaccount:serving:chat"
    )
    policy = next(doc for name, doc in docs.items() if name.endswith("-policy"))
    assert policy == s3_policy([parse_s3_uri("s3://ml-prod-models-123456789012/qwen2.5-7b-instruct-awq/").as_folder()], region="eu-west-1")


def test_the_model_policy_lists_and_reads_one_prefix_and_nothing_else():
    policy = s3_policy(
        [parse_s3_uri("s3://models/team/llm/").as_folder()],
        region="us-west-2",
        kms_key_arn="arn:aws:kms:us-west-2:123456789012:key/0d6b5f3e-1a2b-4c3d-9e8f-0123456789ab",
    )
    assert policy is not None
    actions = sorted(s["Action"] for s in policy["Statement"])
    assert actions == ["kms:Decrypt", "s3:GetObject", "s3:ListBucket"]
    listing = next(s for s in policy["Statement"] if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["team/llm", "team/llm/*"]}}
    assert next(s for s in policy["Statement"] if s["Action"] == "s3:GetObject")["Resource"] == "arn:aws:s3:::models/team/llm/*"
    assert lint_findings(policy, "permissions") == []


def test_china_regions_get_the_china_partition_in_the_model_policy():
    policy = s3_policy([parse_s3_uri("s3://models/x/").as_folder()], region="cn-north-1")
    assert policy is not None
    assert all(s["Resource"].startswith("arn:aws-cn:s3:::") for s in policy["Statement"])


@pytest.mark.parametrize("uri", ["s3://models/*", "https://models.s3.amazonaws.com/x", "s3://Models/x", "s3://models/a//b", "s3://models/$x"])
def test_s3_uris_that_could_widen_the_policy_are_rejected(uri: str):
    with pytest.raises(ConfigErrors) as info:
        service_args(model={"s3Uri": uri})
    assert info.value.errors[0].key == "model.s3Uri"


def test_every_serving_iam_document_lints_clean_with_parliament(stack: RenderResult):
    docs = [(n, k, d) for n, k, d in iam_documents(stack) if "-model-" in n or "-ebs-csi-" in n]
    assert docs
    assert {f"{n} ({k})": f for n, k, d in docs if (f := lint_findings(d, k))} == {}


# -- the notebook ----------------------------------------------------------------------------------------


def test_the_notebook_token_comes_from_a_generated_secret_never_from_config(stack: RenderResult):
    [statefulset] = stack_objects(stack, "StatefulSet", "research")
    env = {e["name"]: e for e in pod_of(statefulset)["containers"][0]["env"]}
    assert env["JUPYTER_TOKEN"] == {"name": "JUPYTER_TOKEN", "valueFrom": {"secretKeyRef": {"name": "research-token", "key": "token"}}}
    [secret] = stack_objects(stack, "Secret", "research-token")
    [password] = [r for r in stack.of_type("random:index/randomPassword:RandomPassword")]
    assert secret["stringData"]["token"] == password.outputs["result"]
    assert password.inputs["length"] >= 32
    assert stack.by_urn()[password.parent].type == "mleks:notebooks:JupyterNotebook"
    assert "JUPYTER_TOKEN" not in json.dumps(offline.load_stack_file(stack.stack))


def test_a_token_in_notebook_env_is_rejected():
    with pytest.raises(ConfigErrors) as info:
        notebook_args(env={"JUPYTER_TOKEN": "hunter2"})
    assert info.value.errors[0].key == "env.JUPYTER_TOKEN" and "hunter2" not in str(info.value)


def test_the_notebook_runs_as_jovyan_without_privileges_in_a_restricted_namespace(stack: RenderResult):
    [statefulset] = stack_objects(stack, "StatefulSet", "research")
    pod = pod_of(statefulset)
    assert {k: pod["securityContext"][k] for k in ("runAsUser", "runAsGroup", "fsGroup", "runAsNonRoot")} == {
        "runAsUser": 1000,
        "runAsGroup": 100,
        "fsGroup": 100,
        "runAsNonRoot": True,
    }
    container = pod["containers"][0]["securityContext"]
    assert container == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }
    assert pod["automountServiceAccountToken"] is False
    [namespace] = stack_objects(stack, "Namespace", "notebooks")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_a_gpu_notebook_runs_on_the_train_group_and_requests_its_share_for_escalator(stack: RenderResult):
    [statefulset] = stack_objects(stack, "StatefulSet", "research")
    pod = pod_of(statefulset)
    [reg] = [r for r, o in stack.kube_objects() if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "research"]
    expected = ["train-g6e"] if stack.stack == "unified" else ["train"]
    assert pod["nodeSelector"]["role"] == "train" and groups_for_pod(stack, reg, pod) == expected
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    requests = pod["containers"][0]["resources"]["requests"]
    assert requests["nvidia.com/gpu"] == "1"
    # Escalator sees only CPU and memory: the request must be a real share of a node, at least half
    # of one GPU's slice of its vCPUs and memory (the rest goes to system reservations and rounding).
    node = catalog()["g6e.12xlarge" if stack.stack == "unified" else "g5.12xlarge"]
    slice_ = 2 * node.accelerator_count
    assert parse_quantity(requests["cpu"]) >= Decimal(node.vcpu) / slice_
    assert parse_quantity(requests["memory"]) >= Decimal(node.memory_gib) * 2**30 / slice_


def test_a_cpu_notebook_runs_on_the_system_nodes_without_gpu_toleration():
    pod = pod_of(one(render_notebook(notebook_args()), "StatefulSet"))
    assert pod["nodeSelector"] == {"role": "system"} and "tolerations" not in pod
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]


def test_a_stopped_notebook_has_zero_replicas_and_keeps_its_volume():
    running = one(render_notebook(notebook_args(gpus=1)), "StatefulSet")
    stopped = one(render_notebook(notebook_args(gpus=1, stopped=True)), "StatefulSet")
    assert (running["spec"]["replicas"], stopped["spec"]["replicas"]) == (1, 0)
    assert stopped["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert stopped["spec"]["volumeClaimTemplates"] == running["spec"]["volumeClaimTemplates"]


def test_stopping_the_stack_notebook_takes_its_pod_off_the_gpu_group():
    cfg = stack_file("unified")
    cfg["mleks:notebooks"]["research"]["stopped"] = True
    result = offline.run("unified", config=cfg)
    [statefulset] = stack_objects(result, "StatefulSet", "research")
    assert statefulset["spec"]["replicas"] == 0


def test_the_notebook_home_is_a_claim_on_the_encrypted_gp3_class(stack: RenderResult):
    [statefulset] = stack_objects(stack, "StatefulSet", "research")
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp3-encrypted"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in pod_of(statefulset)["containers"][0]["volumeMounts"]}
    assert mounts["home"] == "/home/jovyan"


# -- storage: EBS CSI driver ------------------------------------------------------------------------------


def test_the_storage_class_is_encrypted_gp3_bound_where_the_pod_lands(stack: RenderResult):
    [sc] = stack_objects(stack, "StorageClass", "gp3-encrypted")
    assert sc["provisioner"] == "ebs.csi.aws.com"
    assert sc["parameters"]["type"] == "gp3" and sc["parameters"]["encrypted"] == "true"
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer" and sc["allowVolumeExpansion"] is True
    assert sc["reclaimPolicy"] == "Retain"
    assert "storageclass.kubernetes.io/is-default-class" not in sc["metadata"].get("annotations", {})


def test_volumes_carry_the_stack_tags_through_the_add_on_so_a_tag_change_replaces_no_storage_class(stack: RenderResult):
    [addon] = [a for a in stack.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    tags = json.loads(addon.inputs["configurationValues"])["controller"]["extraVolumeTags"]
    assert tags["mleks/cluster"].startswith("ml-") and set(stack_file(stack.stack).get("mleks:tags", {})) <= set(tags)
    for sc in stack.of_type("kubernetes:storage.k8s.io/v1:StorageClass"):
        assert not any(k.startswith("tagSpecification") for k in sc.inputs["parameters"])


def test_the_ebs_csi_add_on_uses_workload_identity_not_the_node_role(stack: RenderResult):
    [addon] = [a for a in stack.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    assert addon.inputs["addonName"] == "aws-ebs-csi-driver"
    [account_role] = [r for r in stack.of_type("mleks:iam:ServiceAccountRole") if r.name.endswith("-ebs-csi-controller")]
    assert addon.inputs["serviceAccountRoleArn"] == account_role.outputs["role_arn"]
    children = stack.children_of(account_role.urn)
    [role] = [c for c in children if c.type == "aws:iam/role:Role"]
    condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in condition.values()
    [attachment] = [c for c in children if c.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"]
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"


def test_volumes_are_encrypted_with_the_clusters_own_key_and_the_controller_holds_exactly_the_documented_grants(stack: RenderResult):
    [driver] = stack.of_type("mleks:addons:EbsCsiDriver")
    [key] = [r for r in stack.descendants_of(driver.urn) if r.type == "aws:kms/key:Key"]
    assert key.inputs["enableKeyRotation"] is True and key.retain_on_delete
    [sc] = [o for _, o in stack.kube_objects() if o["kind"] == "StorageClass"]
    assert sc["parameters"]["kmsKeyId"] == key.outputs.get("arn", sc["parameters"]["kmsKeyId"])
    assert sc["parameters"]["kmsKeyId"].endswith(f"key/{key.name}")
    [policy] = [r for r in stack.descendants_of(driver.urn) if r.type == "aws:iam/rolePolicy:RolePolicy"]
    doc = json.loads(policy.inputs["policy"])
    assert doc == ebs_csi_driver.kms_policy(sc["parameters"]["kmsKeyId"])
    grants, use = doc["Statement"]
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert set(use["Action"]) == {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"}


def test_a_named_volume_key_replaces_the_clusters_own(rendered):
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    arn = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    cfg["mleks:cluster"]["volumeKmsKeyArn"] = arn
    result = offline.run("unified", config=cfg)
    assert not [r for r in result.of_type("aws:kms/key:Key") if r.name.endswith("-volumes")]
    [sc] = [o for _, o in result.kube_objects() if o["kind"] == "StorageClass"]
    assert sc["parameters"]["kmsKeyId"] == arn


def test_the_ebs_node_plugin_runs_in_the_host_network_so_it_reads_the_attach_limit_from_imds(stack: RenderResult):
    [addon] = [a for a in stack.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    values = json.loads(addon.inputs["configurationValues"])
    assert values["node"] == {"hostNetwork": True, "tolerateAllTaints": True}


def test_the_storage_class_and_the_notebooks_go_before_the_driver_that_detaches_their_volumes(stack: RenderResult):
    # Pulumi deletes dependents first: notebook -> StorageClass -> EBS CSI add-on.
    [(reg, _)] = [(r, o) for r, o in stack.kube_objects() if o["kind"] == "StorageClass"]
    [addon] = [a for a in stack.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    assert addon.urn in reg.dependencies
    for notebook in stack.of_type("kubernetes:apps/v1:StatefulSet"):
        assert reg.urn in notebook.dependencies, notebook.name


def test_only_the_cluster_that_hosts_notebooks_gets_the_ebs_csi_driver(rendered: dict[str, RenderResult]):
    stack = rendered["dedicated"]
    [driver] = stack.of_type("mleks:addons:EbsCsiDriver")
    assert stack.by_urn()[driver.parent].name == "ml-prod-train"


# -- topology ------------------------------------------------------------------------------------------------


def test_dedicated_puts_the_service_in_the_inference_cluster_and_the_notebook_in_the_training_cluster(rendered: dict[str, RenderResult]):
    stack = rendered["dedicated"]
    clusters = {}
    for reg, obj in stack.kube_objects():
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] in ("chat", "research"):
            cluster = stack.cluster_of(reg)
            assert cluster is not None
            clusters[obj["metadata"]["name"]] = cluster.name
    assert clusters == {"chat": "ml-prod-inference", "research": "ml-prod-train"}


def test_unified_has_one_inference_service_and_one_notebook(rendered: dict[str, RenderResult]):
    stack = rendered["unified"]
    assert len(stack.of_type("mleks:serving:InferenceService")) == 1
    assert len(stack.of_type("mleks:notebooks:JupyterNotebook")) == 1
    assert set(stack.outputs["inferenceServices"]) == {"densenet"} and set(stack.outputs["notebooks"]) == {"research"}
    assert stack.outputs["notebooks"]["research"]["portForward"] == "kubectl -n notebooks port-forward svc/research 8888:8888"


def test_workloads_wait_for_their_namespace(stack: RenderResult):
    index = stack.by_urn()
    for reg, obj in ours(stack):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            depends = {index[d].type for d in reg.dependencies if d in index}
            assert "kubernetes:core/v1:Namespace" in depends, obj["metadata"]["name"]


def test_a_list_and_a_dict_by_name_give_the_same_config():
    as_list = keyed_entries([{"name": "a", "gpus": 1}, {"name": "b"}])
    as_dict = keyed_entries({"a": {"gpus": 1}, "b": {}})
    assert as_list == as_dict == {"a": {"name": "a", "gpus": 1}, "b": {"name": "b"}}


def test_duplicate_names_in_a_list_are_rejected():
    with pytest.raises(ConfigError) as info:
        keyed_entries([{"name": "a"}, {"name": "a"}])
    assert info.value.key == "[1].name"


# -- bad input, before registration ---------------------------------------------------------------------------


def test_a_service_asking_for_more_gpus_than_an_inference_node_has_fails_naming_the_key():
    cfg = stack_file("unified")
    cfg["mleks:inferenceServices"]["densenet"]["gpus"] = 2  # g6e.xlarge has one L40S
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.gpus")
    assert err.value == 2 and "at most 1" in err.accepted and "g6e.xlarge" in err.accepted


def test_a_gpu_count_that_fits_the_larger_type_but_not_the_smallest_still_fails():
    cfg = stack_file("dedicated")
    cfg["mleks:nodeGroups"]["inference"]["instanceTypes"] = ["g5.12xlarge", "g5.xlarge"]
    cfg["mleks:inferenceServices"][0]["gpus"] = 4
    err = error_for(config_errors("dedicated", cfg), "mleks:inferenceServices.chat.gpus")
    assert "g5.xlarge" in err.accepted


def test_an_inference_service_in_a_stack_without_inference_nodes_fails_naming_the_key():
    cfg = stack_file("unified")
    for name in ("inference-spot", "inference-ondemand"):
        del cfg["mleks:nodeGroups"][name]
    cfg.pop("mleks:clusterAutoscaler", None)
    del cfg["mleks:inferenceServices"]["densenet"]["nodeGroup"]
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet")
    assert "no inference nodes" in (err.problem or "") and "an inference node group" in err.accepted


def test_a_notebook_in_a_stack_without_a_train_group_fails_naming_the_key():
    cfg = stack_file("dedicated")
    del cfg["mleks:nodeGroups"]["train"]
    for key in ("mleks:escalator", "mleks:trainingJobs"):
        cfg.pop(key, None)
    err = error_for(config_errors("dedicated", cfg), "mleks:notebooks.research")
    assert "train" in err.accepted


@pytest.mark.parametrize("size", ["50GB", "fifty", "50 Gi", "", "10Mi", "20Ti"])
def test_a_notebook_storage_size_that_is_not_a_usable_quantity_fails_naming_the_key(size: str):
    cfg = stack_file("unified")
    cfg["mleks:notebooks"]["research"]["storageSize"] = size
    err = error_for(config_errors("unified", cfg), "mleks:notebooks.research.storageSize")
    assert err.value == size and "quantity" in err.accepted


def test_more_replicas_than_the_group_can_ever_hold_fail_naming_the_key():
    cfg = stack_file("dedicated")
    cfg["mleks:inferenceServices"][0]["autoscaling"]["maxReplicas"] = 50  # 10 nodes x 1 GPU
    err = error_for(config_errors("dedicated", cfg), "mleks:inferenceServices.chat.autoscaling.maxReplicas")
    assert "at most 10" in err.accepted


def test_cpu_larger_than_any_inference_node_fails_naming_the_key():
    cfg = stack_file("unified")
    cfg["mleks:inferenceServices"]["densenet"]["cpu"] = "16"
    error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.cpu")


def test_a_pytorch_inference_dlc_newer_than_2_6_fails_and_says_none_exists():
    cfg = stack_file("unified")
    cfg["mleks:inferenceServices"]["densenet"]["image"] = {"dlc": {"framework": "pytorch", "version": "2.13"}}
    err = error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.image.dlc.version")
    text = str(err)
    assert "no PyTorch inference DLC is newer than 2.6" in text and "end of patch" in text and "image.uri" in text


def test_an_image_with_both_uri_and_dlc_fails_naming_the_key():
    cfg = stack_file("unified")
    cfg["mleks:inferenceServices"]["densenet"]["image"]["uri"] = "vllm/vllm-openai:v0.11.0"
    error_for(config_errors("unified", cfg), "mleks:inferenceServices.densenet.image")


def test_several_serving_problems_are_reported_in_one_run():
    cfg = stack_file("unified")
    cfg["mleks:inferenceServices"]["densenet"]["gpus"] = 3
    cfg["mleks:notebooks"]["research"]["gpus"] = 9  # p4d has 8
    keys = {e.key for e in config_errors("unified", cfg)}
    assert {"mleks:inferenceServices.densenet.gpus", "mleks:notebooks.research.gpus"} <= keys


# -- quantities -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("50Gi", 50 * 2**30), ("500m", Decimal("0.5")), ("1e3", 1000), ("1.5Gi", Decimal("1.5") * 2**30), ("2k", 2000), (".5", Decimal("0.5")), ("1E", 10**18)],
)
def test_kubernetes_quantities_parse_to_base_units(text: str, value: Any):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["50GB", "5 Gi", "Gi", "", "1.2.3", "1e", "0x10", "1gi"])
def test_strings_that_are_not_quantities_are_refused(text: str):
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_storage_sizes_must_fit_gp3():
    assert storage_size("1Gi") == "1Gi" and storage_size("16Ti") == "16Ti"
    for bad in ("512Mi", "17Ti"):
        with pytest.raises(ConfigError):
            storage_size(bad)


def test_a_service_account_role_needs_an_inline_or_a_managed_policy():
    from mleks.workload_identity import ServiceAccountRole

    with pytest.raises(ValueError, match="inline policy, managed_policy_arns, or both"):
        ServiceAccountRole("x", oidc_provider_arn="arn", oidc_issuer="issuer", namespace="ns", service_account="sa")


def test_servers_and_notebooks_admit_traffic_on_their_serving_port_only(rendered):
    """TorchServe's management port (8081) registers models from URLs; no other pod may reach it."""
    for result in rendered.values():
        objects = [obj for _, obj in result.kube_objects()]
        workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["namespace"] in ("serving", "notebooks")]
        assert workloads
        for w in workloads:
            port = w["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
            pod_labels = w["spec"]["template"]["metadata"]["labels"]
            policies = [
                o
                for o in objects
                if o["kind"] == "NetworkPolicy"
                and o["metadata"]["namespace"] == w["metadata"]["namespace"]
                and all(pod_labels.get(k) == v for k, v in o["spec"]["podSelector"]["matchLabels"].items())
            ]
            assert len(policies) == 1, w["metadata"]["name"]
            assert policies[0]["spec"]["policyTypes"] == ["Ingress"]
            assert policies[0]["spec"]["ingress"] == [{"ports": [{"port": port, "protocol": "TCP"}]}]


def test_clusters_enforce_network_policies(rendered):
    for result in rendered.values():
        addons = [a for a in result.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni"]
        assert len(addons) == len(result.of_type("eks:index:Cluster"))
        assert all(json.loads(a.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"} for a in addons)
