"""DLCTrainingJob: the rendered Jobs of both stacks, the pure planning and rendering,
the IRSA policy, and every refusal of a bad ``mleks:trainingJobs`` entry."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mleks.catalogs import gpu as gpu_catalog
from mleks.dlc_training_job import (
    COMPLETION_INDEX_ANNOTATION,
    TYPE,
    DLCTrainingJobArgs,
    efa_env,
    plan_job,
    render,
)
from mleks.errors import ConfigError, ConfigErrors
from mleks.gpu_node_group import GpuNodeGroupArgs
from mleks.infra.s3_access import S3Location, s3_policy
from mleks.manifests.node_capacity import node_budget
from mleks.manifests.quantity import cpu_millis, memory_bytes
from mleks.manifests.workloads import namespace_object
from mleks.platform import plan as platform_plan
from stacks import offline, validation
from tests.checks import HEAVY_LOAD, kube_version, lint_findings, schema_errors

# Known-good URIs, written out by hand from mleks/catalogs/data/dlc_images.tsv
# (pytorch 2.13 GPU EC2 tag) and dlc_registries.tsv (account per region).
EXPECTED_IMAGES = {
    ("unified", "gpu-smoke"): "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",
    ("unified", "nccl-allreduce"): "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",
    ("dedicated", "gpu-smoke"): "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",
}

P4D = GpuNodeGroupArgs(role="train", instance_types=["p4d.24xlarge"], max_size=4, efa=True)
G6E = GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], max_size=6)


def _args(**kwargs: Any) -> DLCTrainingJobArgs:
    kwargs.setdefault("name", "job")
    kwargs.setdefault("version", "2.13")
    kwargs.setdefault("command", ["torchrun", "train.py"])
    return DLCTrainingJobArgs.model_validate(kwargs)


def _objects(result: offline.RenderResult, kind: str | None = None) -> list[tuple[offline.Registration, dict[str, Any]]]:
    """Kubernetes objects registered by DLCTrainingJob components."""
    return [(reg, obj) for reg, obj in result.kube_objects() if result.ancestor_of_type(reg, TYPE) is not None and (kind is None or obj["kind"] == kind)]


def _jobs(result: offline.RenderResult) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for _, obj in _objects(result, "Job")}


def _container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _raw(stack: str) -> dict[str, Any]:
    """The stack file as ``validation.load`` takes it: keys without ``mleks:``, plus ``region``."""
    cfg = offline.load_stack_file(stack)
    raw = {k.removeprefix("mleks:"): copy.deepcopy(v) for k, v in cfg.items() if k.startswith("mleks:")}
    raw["region"] = cfg["aws:region"]
    return raw


def _refused(raw: dict[str, Any]) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        validation.load(raw)
    return info.value.errors


def _error(raw: dict[str, Any], key: str) -> ConfigError:
    errors = _refused(raw)
    matching = [e for e in errors if e.key == key]
    assert matching, f"no error for {key}; got {[str(e) for e in errors]}"
    return matching[0]


# --- the rendered stacks -----------------------------------------------------


def test_each_stack_has_a_single_node_smoke_job_and_unified_a_two_node_job(rendered: dict[str, offline.RenderResult]) -> None:
    for result in rendered.values():
        jobs = _jobs(result)
        assert jobs["gpu-smoke"]["spec"]["completions"] == 1
        assert "torchrun" in " ".join(_container(jobs["gpu-smoke"]).get("args", []))
    assert _jobs(rendered["unified"])["nccl-allreduce"]["spec"]["completions"] == 2


def test_training_objects_validate_against_the_kubernetes_schema(stack: offline.RenderResult) -> None:
    objects = _objects(stack)
    kinds = {obj["kind"] for _, obj in objects}
    assert {"Job", "ServiceAccount"} <= kinds
    errors = [e for reg, obj in objects for e in schema_errors(obj, kube_version(stack, reg))]
    namespaces = [(reg, obj) for reg, obj in stack.kube_objects() if obj["kind"] == "Namespace" and obj["metadata"]["name"] == "ml-training"]
    assert len(namespaces) == 1
    # Users keep their own claims there; removing the last job must not delete them.
    assert namespaces[0][0].retain_on_delete is True
    errors += [e for reg, obj in namespaces for e in schema_errors(obj, kube_version(stack, reg))]
    assert errors == []


def test_the_training_namespace_enforces_baseline_and_warns_at_restricted_like_every_workload_namespace(stack: offline.RenderResult) -> None:
    [namespace] = [obj for _, obj in stack.kube_objects() if obj["kind"] == "Namespace" and obj["metadata"]["name"] == "ml-training"]
    # DLC images run as root, which restricted forbids; warn/audit show what that gives up.
    assert namespace == namespace_object("ml-training", restricted=False)
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline" and labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_unified_headless_service_validates_against_the_kubernetes_schema(rendered: dict[str, offline.RenderResult]) -> None:
    services = _objects(rendered["unified"], "Service")
    assert [obj["metadata"]["name"] for _, obj in services] == ["nccl-allreduce"]
    for reg, obj in services:
        assert schema_errors(obj, kube_version(rendered["unified"], reg)) == []


def test_jobs_run_in_the_cluster_that_holds_the_train_group(rendered: dict[str, offline.RenderResult]) -> None:
    expected = {"unified": "ml-unified", "dedicated": "ml-prod-train"}
    for name, result in rendered.items():
        for reg, _ in _objects(result):
            cluster = result.cluster_of(reg)
            assert cluster is not None and cluster.name == expected[name]


def test_pulumi_never_waits_for_a_job_or_its_headless_service(stack: offline.RenderResult) -> None:
    awaited = [(obj["kind"], obj["metadata"]["name"]) for _, obj in _objects(stack) if obj["kind"] in ("Job", "Service")]
    assert awaited
    for _, obj in _objects(stack):
        if obj["kind"] in ("Job", "Service"):
            assert obj["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


def test_a_spec_change_replaces_the_job_deleting_the_old_one_first(stack: offline.RenderResult) -> None:
    regs = [reg for reg, _ in _objects(stack, "Job")]
    assert regs
    for reg in regs:
        assert reg.replace_on_changes == ["spec"]
        assert reg.delete_before_replace is True


def test_finished_jobs_are_kept_by_default_so_they_are_not_rerun(stack: offline.RenderResult) -> None:
    for job in _jobs(stack).values():
        assert "ttlSecondsAfterFinished" not in job["spec"]


def test_pods_select_the_train_group_and_tolerate_the_gpu_taint(stack: offline.RenderResult) -> None:
    for job in _jobs(stack).values():
        pod = job["spec"]["template"]["spec"]
        # A nodeSelector, not preferred affinity: Escalator only counts pods that select its label this way.
        assert pod["nodeSelector"]["role"] == "train" and set(pod["nodeSelector"]) == {"role", "mleks.io/node-group"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_gpu_limits_are_present_and_equal_to_requests(stack: offline.RenderResult) -> None:
    for job in _jobs(stack).values():
        resources = _container(job)["resources"]
        assert int(resources["limits"]["nvidia.com/gpu"]) >= 1
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"]


def _group_of(cfg: Any, job: dict[str, Any]) -> Any:
    """The configured node group a job's pods are pinned to, found from the pod's own nodeSelector."""
    name = job["spec"]["template"]["spec"]["nodeSelector"]["mleks.io/node-group"]
    [group] = [g for g in cfg.node_groups.values() if g.group_name == name]
    return group


def test_requests_fit_the_smallest_instance_of_the_jobs_group(stack: offline.RenderResult) -> None:
    cfg = validation.load(_raw(stack.stack))
    for job in _jobs(stack).values():
        smallest = _group_of(cfg, job).smallest_instance
        requests = _container(job)["resources"]["requests"]
        assert int(requests["nvidia.com/gpu"]) <= smallest.accelerator_count
        assert cpu_millis(requests["cpu"]) < smallest.vcpu * 1000
        assert memory_bytes(requests["memory"]) < smallest.memory_gib * 2**30
        budget = node_budget(smallest, platform_plan.gpu_node_load(cfg, _group_of(cfg, job)))
        assert cpu_millis(requests["cpu"]) <= budget.cpu_millis
        assert memory_bytes(requests["memory"]) <= budget.memory_bytes


def test_a_whole_node_job_requests_most_of_the_node_so_escalator_sees_it(stack: offline.RenderResult) -> None:
    cfg = validation.load(_raw(stack.stack))
    for job in _jobs(stack).values():
        smallest = _group_of(cfg, job).smallest_instance
        requests = _container(job)["resources"]["requests"]
        assert int(requests["nvidia.com/gpu"]) == smallest.accelerator_count
        assert cpu_millis(requests["cpu"]) > 0.9 * smallest.vcpu * 1000
        assert memory_bytes(requests["memory"]) > 0.85 * smallest.memory_gib * 2**30


def test_pods_get_a_memory_backed_dev_shm_within_their_memory(stack: offline.RenderResult) -> None:
    for job in _jobs(stack).values():
        pod = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in _container(job)["volumeMounts"]}
        shm = volumes[mounts["/dev/shm"]]["emptyDir"]
        assert shm["medium"] == "Memory"
        assert 0 < memory_bytes(shm["sizeLimit"]) <= memory_bytes(_container(job)["resources"]["requests"]["memory"])


def test_failures_never_restart_in_place_and_disruptions_do_not_count(stack: offline.RenderResult) -> None:
    for job in _jobs(stack).values():
        spec = job["spec"]
        assert spec["template"]["spec"]["restartPolicy"] == "Never"
        first = spec["podFailurePolicy"]["rules"][0]
        assert first == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
        fail_fast = spec["podFailurePolicy"]["rules"][1]
        assert fail_fast["action"] == "FailJob" and fail_fast["onExitCodes"]["values"] == [2, 126, 127]
        assert spec["podReplacementPolicy"] == "Failed"
        assert spec["backoffLimit"] >= 1


def test_jobs_run_as_their_irsa_service_account_without_an_api_token(rendered: dict[str, offline.RenderResult]) -> None:
    result = rendered["unified"]
    job = _jobs(result)["nccl-allreduce"]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "nccl-allreduce"
    assert pod["automountServiceAccountToken"] is False
    accounts = {obj["metadata"]["name"]: obj for _, obj in _objects(result, "ServiceAccount")}
    role_arn = accounts["nccl-allreduce"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role_arn.startswith("arn:aws:iam::")
    # The smoke job touches no S3, so it gets no role at all.
    assert "annotations" not in accounts["gpu-smoke"]["metadata"]
    env = _env(_container(job))
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)


def test_the_irsa_role_trusts_only_the_jobs_service_account(rendered: dict[str, offline.RenderResult]) -> None:
    result = rendered["unified"]
    roles = [r for r in result.resources if r.type == "aws:iam/role:Role" and result.ancestor_of_type(r, TYPE)]
    assert len(roles) == 1
    trust = json.loads(roles[0].inputs["assumeRolePolicy"])
    conditions = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:ml-training:nccl-allreduce" in conditions.values()


def test_the_irsa_policies_of_the_stacks_lint_clean(stack: offline.RenderResult) -> None:
    docs = [
        (r.name, kind, json.loads(r.inputs["assumeRolePolicy"] if kind == "trust" else r.inputs["policy"]))
        for r in stack.resources
        if stack.ancestor_of_type(r, TYPE)
        for kind in (("trust",) if r.type == "aws:iam/role:Role" else ("permissions",) if r.type == "aws:iam/rolePolicy:RolePolicy" else ())
    ]
    for name, kind, doc in docs:
        assert lint_findings(doc, kind) == [], name


def test_unified_benchmark_policy_writes_only_its_checkpoint_prefix(rendered: dict[str, offline.RenderResult]) -> None:
    result = rendered["unified"]
    policies = [json.loads(r.inputs["policy"]) for r in result.resources if r.type == "aws:iam/rolePolicy:RolePolicy" and result.ancestor_of_type(r, TYPE)]
    assert policies == [s3_policy([], S3Location("ml-unified-checkpoints-123456789012", "nccl-allreduce/"), region="us-west-2")]


def test_export_names_the_resolved_image_of_every_job(stack: offline.RenderResult) -> None:
    exported = stack.outputs["trainingJobs"]
    expected = {job: uri for (name, job), uri in EXPECTED_IMAGES.items() if name == stack.stack}
    assert {job: v["image"] for job, v in exported.items()} == expected
    for name, job in _jobs(stack).items():
        assert _container(job)["image"] == expected[name]


# --- multi-node ------------------------------------------------------------------


def test_multi_node_job_is_indexed_with_a_matching_headless_service(rendered: dict[str, offline.RenderResult]) -> None:
    result = rendered["unified"]
    job = _jobs(result)["nccl-allreduce"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 2
    services = {obj["metadata"]["name"]: obj for _, obj in _objects(result, "Service")}
    service = services[spec["template"]["spec"]["subdomain"]]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    selector = service["spec"]["selector"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] == job["metadata"]["namespace"]


def test_torchrun_rendezvous_comes_from_the_completion_index_and_pod_zero(rendered: dict[str, offline.RenderResult]) -> None:
    job = _jobs(rendered["unified"])["nccl-allreduce"]
    env = _env(_container(job))
    service, namespace = job["spec"]["template"]["spec"]["subdomain"], job["metadata"]["namespace"]
    master = f"nccl-allreduce-0.{service}.{namespace}.svc.cluster.local"
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == master
    assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "29500"
    assert env["NNODES"] == env["PET_NNODES"] == "2"
    gpus = _container(job)["resources"]["limits"]["nvidia.com/gpu"]
    assert env["NPROC_PER_NODE"] == env["PET_NPROC_PER_NODE"] == gpus == "8"
    rank = {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}
    assert env["NODE_RANK"] == env["PET_NODE_RANK"] == rank


def test_single_node_jobs_have_no_rendezvous_service(stack: offline.RenderResult) -> None:
    job = _jobs(stack)["gpu-smoke"]
    pod = job["spec"]["template"]["spec"]
    assert "subdomain" not in pod and "completionMode" not in job["spec"]
    env = _env(_container(job))
    assert "MASTER_ADDR" not in env and env["PET_NPROC_PER_NODE"] == _container(job)["resources"]["limits"]["nvidia.com/gpu"]


def test_efa_devices_and_libfabric_settings_only_on_multi_node_jobs_of_efa_groups(rendered: dict[str, offline.RenderResult]) -> None:
    for name, result in rendered.items():
        for job_name, job in _jobs(result).items():
            container = _container(job)
            env = _env(container)
            efa = container["resources"]["limits"].get("vpc.amazonaws.com/efa")
            if (name, job_name) == ("unified", "nccl-allreduce"):
                # p5.48xlarge (train-p5): 32 EFA interfaces, all for the pod's 8 GPUs.
                assert efa == container["resources"]["requests"]["vpc.amazonaws.com/efa"] == "32"
                assert env["FI_PROVIDER"] == "efa" and env["FI_EFA_USE_HUGE_PAGE"] == "0" and env["FI_EFA_USE_DEVICE_RDMA"] == "1"
                assert env["NCCL_SOCKET_IFNAME"] == "eth0"
            else:
                assert efa is None
                assert not any(k.startswith("FI_") for k in env)
            # No huge pages are requested: FI_EFA_USE_HUGE_PAGE=0 makes them unnecessary.
            assert not any(k.startswith("hugepages-") for k in container["resources"]["limits"])


# --- planning and rendering, pure -----------------------------------------------------


def test_default_cpu_and_memory_are_the_gpu_share_of_the_node() -> None:
    whole = plan_job(_args(), P4D, "us-west-2", HEAVY_LOAD)
    half = plan_job(_args(gpus_per_node=4), P4D, "us-west-2", HEAVY_LOAD)
    assert abs(cpu_millis(half.cpu) * 2 - cpu_millis(whole.cpu)) <= 200
    assert abs(memory_bytes(half.memory) * 2 - memory_bytes(whole.memory)) <= 2 * 2**30


def test_node_budget_leaves_room_for_kubelet_and_every_daemonset() -> None:
    for instance in gpu_catalog.catalog().values():
        if not instance.is_nvidia_gpu:
            continue
        budget = node_budget(instance, HEAVY_LOAD)
        assert 0 < budget.cpu_millis <= instance.vcpu * 1000 - HEAVY_LOAD.cpu_millis
        assert 0 < budget.memory_bytes <= (instance.memory_gib * 0.925 * 1024 - HEAVY_LOAD.memory_mib) * 2**20


def test_efa_share_follows_the_gpus_taken() -> None:
    assert plan_job(_args(nodes=2), P4D, "us-west-2", HEAVY_LOAD).efa_devices == 4
    assert plan_job(_args(nodes=2, gpus_per_node=4), P4D, "us-west-2", HEAVY_LOAD).efa_devices == 2
    assert plan_job(_args(nodes=2, efa=False), P4D, "us-west-2", HEAVY_LOAD).efa_devices == 0
    assert plan_job(_args(nodes=2), G6E, "us-west-2", HEAVY_LOAD).efa_devices == 0


def test_device_rdma_is_set_only_where_efa_supports_rdma_read() -> None:
    catalog = gpu_catalog.catalog()
    assert efa_env([catalog["p5.48xlarge"]])["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert "FI_EFA_USE_DEVICE_RDMA" not in efa_env([catalog["g6e.48xlarge"]])
    assert "FI_EFA_USE_DEVICE_RDMA" not in efa_env([catalog["p4d.24xlarge"], catalog["g6e.48xlarge"]])


def test_user_env_overrides_the_jobs_settings_including_rank() -> None:
    plan = plan_job(_args(nodes=2, env={"NCCL_SOCKET_IFNAME": "^lo", "PET_NODE_RANK": "0"}), P4D, "us-west-2", HEAVY_LOAD)
    env = _env(_container(render(plan)[-1]))
    assert env["NCCL_SOCKET_IFNAME"] == "^lo" and env["PET_NODE_RANK"] == "0"
    assert "fieldRef" in env["NODE_RANK"]


def test_every_option_renders_valid_objects() -> None:
    args = _args(
        nodes=3,
        gpus_per_node=8,
        cpu="64",
        memory="900Gi",
        shm_size="128Gi",
        backoff_limit=1,
        active_deadline_seconds=86400,
        ttl_seconds_after_finished=3600,
        env={"NCCL_DEBUG": "WARN"},
        s3_data_prefixes=["s3://datasets-bucket/imagenet/", "s3://datasets-bucket/coco/"],
        s3_checkpoint_prefix="s3://ckpt-bucket/run-1/",
        volumes=[{"claimName": "fsx-lustre", "mountPath": "/fsx"}, {"claimName": "efs-home", "mountPath": "/home/shared", "readOnly": True, "subPath": "u1"}],
        labels={"team": "research"},
        namespace="research",
    )
    plan = plan_job(args, P4D, "us-west-2", HEAVY_LOAD)
    objects = render(plan, "arn:aws:iam::123456789012:role/x")
    assert [o["kind"] for o in objects] == ["ServiceAccount", "NetworkPolicy", "Service", "Job"]
    for obj in objects:
        assert schema_errors(obj, "1.35.0") == []
    job = objects[-1]
    pod = job["spec"]["template"]["spec"]
    assert {"name": "shared-0", "persistentVolumeClaim": {"claimName": "fsx-lustre", "readOnly": False}} in pod["volumes"]
    assert {"name": "shared-1", "mountPath": "/home/shared", "readOnly": True, "subPath": "u1"} in _container(job)["volumeMounts"]
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600 and job["spec"]["activeDeadlineSeconds"] == 86400
    assert job["metadata"]["labels"]["team"] == "research"
    assert any(w.key == "ttlSecondsAfterFinished" and "re-creates" in w.message for w in plan.warnings)


def test_default_dev_shm_never_exceeds_a_small_memory_request() -> None:
    plan = plan_job(_args(cpu="2", memory="512Mi"), P4D, "us-west-2", HEAVY_LOAD)
    assert plan.shm_size == "128Mi"


def test_backoff_limit_defaults_to_three_retries_per_node() -> None:
    assert plan_job(_args(), P4D, "us-west-2", HEAVY_LOAD).backoff_limit == 3
    assert plan_job(_args(nodes=4), P4D, "us-west-2", HEAVY_LOAD).backoff_limit == 12


def test_small_requests_warn_that_escalator_may_not_scale_up() -> None:
    plan = plan_job(_args(cpu="1", memory="4Gi"), P4D, "us-west-2", HEAVY_LOAD)
    assert any("Escalator" in w.message for w in plan.warnings)
    assert not plan_job(_args(), P4D, "us-west-2", HEAVY_LOAD).warnings


# --- the IRSA policy --------------------------------------------------------------------


def test_policy_reads_data_prefixes_and_reads_and_writes_only_the_checkpoint_prefix() -> None:
    doc = s3_policy([S3Location("data-bucket", "imagenet/"), S3Location("data-bucket", "coco/")], S3Location("ckpt-bucket", "run-1/"), region="us-west-2")
    assert doc == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListPrefixes0",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::ckpt-bucket",
                "Condition": {"StringLike": {"s3:prefix": ["run-1/*"]}},
            },
            {
                "Sid": "ListPrefixes1",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::data-bucket",
                "Condition": {"StringLike": {"s3:prefix": ["coco/*", "imagenet/*"]}},
            },
            {
                "Sid": "ReadObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": ["arn:aws:s3:::ckpt-bucket/run-1/*", "arn:aws:s3:::data-bucket/coco/*", "arn:aws:s3:::data-bucket/imagenet/*"],
            },
            {
                "Sid": "WriteCheckpoints",
                "Effect": "Allow",
                "Action": ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"],
                "Resource": "arn:aws:s3:::ckpt-bucket/run-1/*",
            },
        ],
    }
    assert lint_findings(doc, "permissions") == []


def test_policy_grants_no_delete_no_wildcard_action_and_nothing_without_s3() -> None:
    doc = s3_policy([S3Location("data-bucket", "")], S3Location("ckpt-bucket", "run/"), region="cn-north-1")
    assert doc is not None
    actions = [a for s in doc["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert not [a for a in actions if "*" in a or "Delete" in a]
    whole_bucket = next(s for s in doc["Statement"] if s["Resource"] == "arn:aws-cn:s3:::data-bucket")
    assert "Condition" not in whole_bucket
    assert lint_findings(doc, "permissions") == []
    assert s3_policy([], None, region="us-west-2") is None


def test_job_policy_uses_the_regions_partition() -> None:
    plan = plan_job(_args(s3_data_prefixes=["s3://cn-data/x/"]), P4D, "cn-north-1", HEAVY_LOAD)
    assert plan.policy is not None
    assert plan.policy["Statement"][0]["Resource"] == "arn:aws-cn:s3:::cn-data"
    assert plan.image.uri == "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch:2.13.0-cu133-amzn2023"


# --- bad input: refused by validation.load, before any resource is registered ---------------------


def test_more_pods_than_the_train_group_has_nodes_is_refused_naming_the_key() -> None:
    raw = _raw("dedicated")
    raw["trainingJobs"][0]["nodes"] = 7
    err = _error(raw, "mleks:trainingJobs.gpu-smoke.nodes")
    assert err.value == 7 and "at most 6" in err.accepted


def test_more_gpus_than_the_instance_has_is_refused_naming_the_key() -> None:
    raw = _raw("unified")
    raw["trainingJobs"]["gpu-smoke"]["gpusPerNode"] = 9
    err = _error(raw, "mleks:trainingJobs.gpu-smoke.gpusPerNode")
    # gpu-smoke runs on train-g6e; its 4-GPU limit applies, not the 8 of train-p5 beside it.
    assert err.value == 9 and "1 to 4" in err.accepted and "g6e.12xlarge" in err.accepted and "nodeGroups.train-g6e" in err.accepted


def test_an_unknown_dlc_version_is_refused_listing_the_versions() -> None:
    raw = _raw("dedicated")
    raw["trainingJobs"][0]["version"] = "2.99"
    err = _error(raw, "mleks:trainingJobs.gpu-smoke.version")
    assert err.value == "2.99" and "2.13.0" in err.accepted and "2.10.0" in err.accepted


def test_a_job_in_a_stack_without_a_train_group_is_refused() -> None:
    raw = _raw("dedicated")
    del raw["nodeGroups"]["train"]
    # Other train-group features would be refused first; leave only the job.
    for other in ("escalator", "notebooks"):
        raw.pop(other, None)
    errors = _refused(raw)
    assert [e for e in errors if e.key == "mleks:trainingJobs.gpu-smoke" and "no train node group" in (e.problem or "")]


def test_an_image_the_group_cannot_run_is_refused_naming_the_key() -> None:
    raw = _raw("dedicated")
    raw["nodeGroups"]["train"]["instanceTypes"] = ["p3.16xlarge"]  # Volta: no CUDA 13 images
    err = _error(raw, "mleks:trainingJobs.gpu-smoke.cuda")
    assert err.value == "cu133" and "Volta" in (err.problem or "")


def test_requests_that_do_not_fit_a_node_are_refused() -> None:
    raw = _raw("dedicated")
    raw["trainingJobs"][0]["cpu"] = "48"
    assert "g5.12xlarge" in _error(raw, "mleks:trainingJobs.gpu-smoke.cpu").accepted
    raw = _raw("dedicated")
    raw["trainingJobs"][0]["memory"] = "384Gi"
    _error(raw, "mleks:trainingJobs.gpu-smoke.memory")
    raw = _raw("dedicated")
    raw["trainingJobs"][0]["memory"] = "lots"
    _error(raw, "mleks:trainingJobs.gpu-smoke.memory")


def test_efa_on_a_group_without_efa_is_refused() -> None:
    raw = _raw("dedicated")
    raw["trainingJobs"][0]["efa"] = True
    _error(raw, "mleks:trainingJobs.gpu-smoke.efa")


def test_job_entries_need_a_version_or_an_image_but_not_both() -> None:
    raw = _raw("dedicated")
    del raw["trainingJobs"][0]["version"]
    _error(raw, "mleks:trainingJobs.gpu-smoke.version")
    raw = _raw("dedicated")
    raw["trainingJobs"][0]["image"] = "public.ecr.aws/my/trainer:1.0"
    _error(raw, "mleks:trainingJobs.gpu-smoke.version")


def test_an_explicit_image_is_used_as_given() -> None:
    raw = _raw("dedicated")
    del raw["trainingJobs"][0]["version"]
    raw["trainingJobs"][0]["image"] = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trainer:1.0"
    cfg = validation.load(raw)
    plan = plan_job(cfg.training_jobs["gpu-smoke"], cfg.node_groups["train"], cfg.region, HEAVY_LOAD)
    assert plan.image.uri == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trainer:1.0"


def test_job_names_are_unique_and_match_their_dict_key() -> None:
    raw = _raw("dedicated")
    raw["trainingJobs"].append(copy.deepcopy(raw["trainingJobs"][0]))
    _error(raw, "mleks:trainingJobs[1].name")
    raw = _raw("unified")
    raw["trainingJobs"]["gpu-smoke"]["name"] = "other"
    _error(raw, "mleks:trainingJobs.gpu-smoke.name")


def test_bad_s3_uris_and_unknown_keys_name_the_key() -> None:
    raw = _raw("unified")
    raw["trainingJobs"]["nccl-allreduce"]["s3CheckpointPrefix"] = "s3://whole-bucket"
    _error(raw, "mleks:trainingJobs.nccl-allreduce.s3CheckpointPrefix")
    raw = _raw("unified")
    raw["trainingJobs"]["nccl-allreduce"]["s3DataPrefixes"] = ["https://example.com/x"]
    _error(raw, "mleks:trainingJobs.nccl-allreduce.s3DataPrefixes[0]")
    raw = _raw("unified")
    raw["trainingJobs"]["nccl-allreduce"]["gpus"] = 8
    _error(raw, "mleks:trainingJobs.nccl-allreduce.gpus")


def test_every_bad_job_is_reported_in_one_pass() -> None:
    raw = _raw("unified")
    raw["trainingJobs"]["gpu-smoke"]["gpusPerNode"] = 9
    raw["trainingJobs"]["nccl-allreduce"]["nodes"] = 5
    keys = {e.key for e in _refused(raw)}
    assert {"mleks:trainingJobs.gpu-smoke.gpusPerNode", "mleks:trainingJobs.nccl-allreduce.nodes"} <= keys


def test_the_real_program_refuses_a_bad_job_before_registering_anything() -> None:
    cfg = offline.load_stack_file("unified")
    jobs = cfg["mleks:trainingJobs"]
    cfg = {**cfg, "mleks:trainingJobs": {**jobs, "nccl-allreduce": {**jobs["nccl-allreduce"], "nodes": 5}}}
    with pytest.raises(ConfigErrors) as info:
        offline.run("unified", config=cfg)
    assert [e.key for e in info.value.errors] == ["mleks:trainingJobs.nccl-allreduce.nodes"]
    assert getattr(info.value, "registered_urns", None) == []


def test_a_jobs_pods_admit_traffic_only_from_the_same_jobs_pods(rendered):
    objects = {
        o["metadata"]["name"]: o for _, o in rendered["unified"].kube_objects() if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == "ml-training"
    }
    multi, single = objects["nccl-allreduce"]["spec"], objects["gpu-smoke"]["spec"]
    own = {"matchLabels": {"mleks.io/training-job": "nccl-allreduce"}}
    assert multi["podSelector"] == own and multi["ingress"] == [{"from": [{"podSelector": own}]}]
    assert single["policyTypes"] == ["Ingress"] and "ingress" not in single  # nothing may connect to a one-pod job
