"""Fast starts: parallel image pull, Bottlerocket image snapshots, and the cold-start estimate."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from mleks.errors import ConfigErrors
from mleks.gpu_node_group import GpuNodeGroupArgs
from mleks.review import startup
from mleks.testing.render import plan_document
from stacks import image_snapshot, offline
from stacks.offline import RenderResult
from tests.checks import config_errors, error_for, stack_file


def _templates(stack: RenderResult) -> dict[str, dict[str, Any]]:
    return {r.name.removeprefix("ml-unified-").removesuffix("-gpu-lt"): r.inputs for r in stack.of_type("aws:ec2/launchTemplate:LaunchTemplate")}


def _user_data(inputs: dict[str, Any]) -> str:
    return base64.b64decode(inputs.get("userData") or "").decode()


# -- parallel pull -----------------------------------------------------------------------------------


def test_train_groups_pull_in_parallel_on_a_1000_mibps_volume_and_small_groups_do_not(rendered: dict[str, RenderResult]):
    lts = _templates(rendered["unified"])
    for group in ("train-p5", "train-g6e"):
        assert "FastImagePull: true" in _user_data(lts[group]), group
        assert "Content-Type: application/node.eks.aws" in _user_data(lts[group]), "a NodeConfig part EKS merges with its own"
        assert lts[group]["blockDeviceMappings"][0]["ebs"]["throughput"] == 1000
    # g6e.xlarge has 4 vCPUs: nodeadm ignores the gate there, so it is not set.
    for group in ("inference-spot", "inference-ondemand"):
        assert "userData" not in lts[group] or not lts[group]["userData"]
        assert lts[group]["blockDeviceMappings"][0]["ebs"]["throughput"] == 500


def test_bottlerocket_groups_get_the_soci_settings():
    args = GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], ami_family="bottlerocket")
    from mleks.gpu_node_group import node_group_spec
    from mleks.infra.managed_node_group import user_data_text

    text = user_data_text(node_group_spec("x", args, {}))
    assert text is not None and 'snapshotter = "soci"' in text and 'pull-mode = "parallel-pull-unpack"' in text


def test_parallel_pull_on_a_slow_volume_is_refused():
    with pytest.raises(ConfigErrors) as info:
        GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], disk_throughput_mibps=250, fast_start={"parallel_pull": True})
    [err] = info.value.errors
    assert err.key == "disk_throughput_mibps" and "600" in err.accepted


def test_a_slow_volume_set_on_purpose_turns_the_default_off():
    args = GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], disk_throughput_mibps=250)
    assert not args.parallel_pull and args.root_throughput_mibps == 250


# -- snapshots ---------------------------------------------------------------------------------------


def test_a_snapshot_goes_on_the_bottlerocket_data_volume_and_turns_parallel_pull_off():
    cfg = stack_file("unified")
    group = cfg["mleks:nodeGroups"]["train-g6e"]
    group |= {"amiFamily": "bottlerocket", "fastStart": {"dataVolumeSnapshotId": "snap-0123456789abcdef0", "dataVolumeSnapshotSizeGib": 120}}
    result = offline.run("unified", config=cfg)
    lt = _templates(result)["train-g6e"]
    assert lt["blockDeviceMappings"][1]["deviceName"] == "/dev/xvdb" and lt["blockDeviceMappings"][1]["ebs"]["snapshotId"] == "snap-0123456789abcdef0"
    assert not lt.get("userData"), "no SOCI: the snapshot's images are for the default snapshotter"
    [estimate] = [e for e in startup.estimate(plan_document(result)) if e.group == "train-g6e" and e.kind == "Job"]
    assert estimate.path == "snapshot" and estimate.image_s == startup.SNAPSHOT_START_S


def test_a_snapshot_on_al2023_is_refused():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-g6e"]["fastStart"] = {"dataVolumeSnapshotId": "snap-0123456789abcdef0"}
    err = error_for(config_errors("unified", cfg), "mleks:nodeGroups.train-g6e.fastStart.dataVolumeSnapshotId")
    assert err.value == "snap-0123456789abcdef0" and "bottlerocket" in err.accepted


@pytest.mark.parametrize(
    ("fast_start", "key", "fragment"),
    [
        ({"dataVolumeSnapshotId": "snapshot-1"}, "fastStart.dataVolumeSnapshotId", "snap-"),
        ({"dataVolumeSnapshotId": "snap-0123456789abcdef0", "dataVolumeSnapshotSizeGib": 500}, "diskSizeGib", "at least 500"),
        ({"dataVolumeSnapshotId": "snap-0123456789abcdef0", "parallelPull": True}, "fastStart.parallelPull", "no snapshot"),
    ],
)
def test_bad_snapshot_settings_are_refused_naming_the_key(fast_start: dict[str, Any], key: str, fragment: str):
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-g6e"] |= {"amiFamily": "bottlerocket", "fastStart": fast_start}
    err = error_for(config_errors("unified", cfg), f"mleks:nodeGroups.train-g6e.{key}")
    assert fragment in err.accepted


# -- the cold-start estimate -------------------------------------------------------------------------


def test_every_gpu_workload_of_both_stacks_gets_an_estimate_on_every_group_it_may_use(stack: RenderResult):
    plan = plan_document(stack)
    estimates = startup.estimate(plan)
    gpu_workloads = {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        for _, o in stack.kube_objects()
        if o["kind"] in ("Job", "Deployment", "StatefulSet")
        and any("nvidia.com/gpu" in (c.get("resources", {}).get("limits") or {}) for c in o["spec"]["template"]["spec"]["containers"])
    }
    assert {e.workload for e in estimates} == gpu_workloads
    for e in estimates:
        assert e.launch_s == startup.LAUNCH_TO_REGISTERED_S
        assert (e.total_s is None) == (e.image_s is None)


def test_the_estimate_adds_up_from_cited_constants(rendered: dict[str, RenderResult]):
    [job] = [e for e in startup.estimate(plan_document(rendered["unified"])) if e.workload == "ml-training/nccl-allreduce"]
    mb_s_at_1000_mibps = 1000 * 2**20 / 1e6
    assert job.reaction_s == 30  # Escalator's --scaninterval in this stack
    assert job.image_s == pytest.approx(28_000 / mb_s_at_1000_mibps)
    plain = 30 + 80 + 351 / startup.PLAIN_PULL_MB_S + 28_000 / startup.PLAIN_PULL_MB_S
    assert job.alternatives["plain"] == pytest.approx(plain)
    assert job.alternatives["snapshot (Bottlerocket)"] == pytest.approx(30 + 80 + 32)
    assert job.total_s is not None and job.total_s < job.alternatives["plain"] / 3, "the recommended lever cuts the cold start by more than 3x"
    [svc] = [e for e in startup.estimate(plan_document(rendered["unified"])) if e.workload == "serving/densenet" and e.group == "inference-spot"]
    assert svc.reaction_s == 10 and "parallel" not in svc.alternatives, "no parallel pull on 4-vCPU nodes"


def test_an_image_of_unknown_size_is_not_guessed(rendered: dict[str, RenderResult]):
    [nb] = [e for e in startup.estimate(plan_document(rendered["unified"])) if e.workload == "notebooks/research"]
    assert nb.image_s is None and nb.total_s is None and any("image size unknown" in n for n in nb.notes)


def test_render_writes_start_times_with_their_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from mleks import cli

    root = Path(__file__).resolve().parent.parent
    assert cli.main(["render", str(root), "--stack", "unified", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "unified" / "start-times.json").read_text())
    assert all(c["source"] for c in doc["constants"].values())
    assert {w["workload"] for w in doc["workloads"]} >= {"ml-training/nccl-allreduce", "ml-training/gpu-smoke"}
    assert "Job ml-training/nccl-allreduce on train-p5: 2m17s via parallel pull" in capsys.readouterr().out


# -- the snapshot script -----------------------------------------------------------------------------


class _FakeAws:
    """Records calls; answers what the script reads."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, service: str, region: str) -> Any:
        fake = self

        class Client:
            def __getattr__(self, op: str) -> Any:
                def call(**kwargs: Any) -> Any:
                    fake.calls.append((service, op, kwargs))
                    return fake.answer(service, op, kwargs)

                return call

            def get_waiter(self, name: str) -> Any:
                fake.calls.append((service, f"wait:{name}", {}))
                return type("Waiter", (), {"wait": lambda self, **kw: None})()

        return Client()

    def answer(self, service: str, op: str, kwargs: dict[str, Any]) -> Any:
        token = base64.b64encode(b"AWS:secret-token").decode()
        return {
            ("ssm", "get_parameter"): {"Parameter": {"Value": "ami-0bottlerocket"}},
            ("ec2", "run_instances"): {"Instances": [{"InstanceId": "i-0abc"}]},
            ("ssm", "describe_instance_information"): {"InstanceInformationList": [{"PingStatus": "Online"}]},
            ("ecr", "get_authorization_token"): {
                "authorizationData": [{"proxyEndpoint": "https://763104351884.dkr.ecr.us-west-2.amazonaws.com", "authorizationToken": token}]
            },
            ("ssm", "send_command"): {"Command": {"CommandId": "cmd-1"}},
            ("ec2", "describe_instances"): {
                "Reservations": [{"Instances": [{"BlockDeviceMappings": [{"DeviceName": "/dev/xvdb", "Ebs": {"VolumeId": "vol-1"}}]}]}]
            },
            ("ec2", "create_snapshot"): {"SnapshotId": "snap-0123456789abcdef0"},
        }.get((service, op), {})


def test_the_snapshot_script_pulls_the_stacks_gpu_images_snapshots_the_data_volume_and_cleans_up():
    aws = _FakeAws()
    options = image_snapshot.Options("unified", "subnet-1", "ssm-only", "m7i.xlarge", 300, ["us-west-2a"])
    out = image_snapshot.build(options, aws, log=lambda _: None, sleep=lambda _: None)
    assert out["snapshotId"] == "snap-0123456789abcdef0" and out["sizeGib"] == 300
    ops = [f"{s}.{o}" for s, o, _ in aws.calls]
    assert (
        ops.index("ec2.stop_instances")
        < ops.index("ec2.create_snapshot")
        < ops.index("ec2.enable_fast_snapshot_restores")
        < ops.index("ec2.terminate_instances")
    )
    [(_, _, command)] = [c for c in aws.calls if c[1] == "send_command"]
    pulls = command["Parameters"]["commands"]
    _, _, images = image_snapshot.gpu_images("unified")
    assert len(pulls) == len(images) and any("pytorch:2.13" in p and "--user AWS:secret-token" in p for p in pulls)
    assert all(p.startswith("apiclient exec admin sheltie ctr -n k8s.io images pull") for p in pulls)
    [(_, _, run)] = [c for c in aws.calls if c[1] == "run_instances"]
    assert run["MetadataOptions"]["HttpTokens"] == "required" and run["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True


def test_the_snapshot_script_terminates_the_instance_when_a_step_fails():
    aws = _FakeAws()
    original = aws.answer

    def failing(service: str, op: str, kwargs: dict[str, Any]) -> Any:
        if op == "send_command":
            raise RuntimeError("SSM refused")
        return original(service, op, kwargs)

    aws.answer = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="SSM refused"):
        image_snapshot.build(image_snapshot.Options("unified", "subnet-1", "ssm-only", "m7i.xlarge", 300, []), aws, log=lambda _: None, sleep=lambda _: None)
    assert ("ec2", "terminate_instances", {"InstanceIds": ["i-0abc"]}) in aws.calls


def test_the_dry_run_lists_the_images_without_aws(capsys: pytest.CaptureFixture[str]):
    assert image_snapshot.main(["unified", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "/aws/service/bottlerocket/aws-k8s-1.35/x86_64/latest/image_id" in out and "pytorch:2.13" in out
