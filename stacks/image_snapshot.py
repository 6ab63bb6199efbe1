"""Build an EBS snapshot of a Bottlerocket data volume that already holds a stack's GPU images.

    python -m stacks.image_snapshot unified --subnet-id subnet-... --instance-profile ssm-only \\
        [--region us-west-2] [--kubernetes-version 1.35] [--volume-size-gib 300] [--fast-restore-azs us-west-2a]
    python -m stacks.image_snapshot unified --dry-run     # what it would pull and run; no AWS

Give the snapshot to a Bottlerocket group: ``nodeGroups.<name>.fastStart.dataVolumeSnapshotId`` (and
``dataVolumeSnapshotSizeGib``, which the script prints, so a too-small ``diskSizeGib`` is refused).

What it does, with your AWS credentials (it needs boto3: ``pip install boto3``):

1. renders the stack offline and collects the images of its GPU workloads (training DLCs, services,
   notebooks), as they resolve for the stack's region;
2. launches one Bottlerocket instance (the ``aws-k8s-<version>`` variant on ``--instance-type``:
   the image store of a data volume is the same for every variant, and no GPU is needed to pull)
   with a data volume of ``--volume-size-gib``, in ``--subnet-id``, with ``--instance-profile``
   (it needs ``AmazonSSMManagedInstanceCore`` only);
3. through SSM, pulls every image into containerd's ``k8s.io`` namespace with ``ctr`` from
   Bottlerocket's admin container (``apiclient exec admin sheltie``), logging in to ECR registries
   with a token it fetches itself;
4. stops the instance, snapshots the data volume, optionally turns on EBS Fast Snapshot Restore
   in ``--fast-restore-azs`` (it removes the first-read penalty of a restored volume, and is billed
   per AZ-hour), terminates the instance, and prints the snapshot id and size.

Rebuild the snapshot whenever the stack's images change: a node finds any image missing from the
snapshot and pulls it the normal way.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stacks import offline

NAMESPACE = "k8s.io"
AMI_PARAMETER = "/aws/service/bottlerocket/aws-k8s-{version}/x86_64/latest/image_id"
DATA_DEVICE = "/dev/xvdb"
_ECR = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


def gpu_images(stack: str) -> tuple[str, str, list[str]]:
    """(region, Kubernetes version, sorted images of the stack's GPU workloads), from an offline render."""
    result = offline.run(stack)
    images = set()
    for _, obj in result.kube_objects():
        if obj["kind"] not in ("Job", "Deployment", "StatefulSet"):
            continue
        pod = obj["spec"]["template"]["spec"]
        containers = pod.get("containers") or []
        if any("nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {}) for c in containers):
            images |= {c["image"] for c in [*containers, *(pod.get("initContainers") or [])]}
    version = next(r.inputs["version"] for r in result.of_type("eks:index:Cluster"))
    return str(result.region), str(version), sorted(images)


def pull_commands(images: list[str], tokens: dict[str, str]) -> list[str]:
    """Shell commands for the control container: one ``ctr`` pull per image, into the kubelet's namespace."""
    commands = []
    for image in images:
        registry = image.split("/", 1)[0]
        user = f"--user AWS:{tokens[registry]} " if registry in tokens else ""
        commands.append(f"apiclient exec admin sheltie ctr -n {NAMESPACE} images pull --label io.cri-containerd.image=managed {user}{image}")
    return commands


@dataclass
class Options:
    stack: str
    subnet_id: str
    instance_profile: str
    instance_type: str
    volume_size_gib: int
    fast_restore_azs: list[str]
    region: str | None = None
    kubernetes_version: str | None = None


def build(
    options: Options, client: Callable[[str, str], Any], log: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Run the steps above with ``client(service, region)`` (boto3's in real use); return the snapshot's id and size."""
    region, version, images = gpu_images(options.stack)
    region = options.region or region
    version = options.kubernetes_version or version
    ssm, ec2, ecr = client("ssm", region), client("ec2", region), client("ecr", region)
    ami = ssm.get_parameter(Name=AMI_PARAMETER.format(version=version))["Parameter"]["Value"]
    log(f"{len(images)} images; Bottlerocket aws-k8s-{version} {ami} in {region}")
    instance = ec2.run_instances(
        ImageId=ami,
        InstanceType=options.instance_type,
        MinCount=1,
        MaxCount=1,
        SubnetId=options.subnet_id,
        IamInstanceProfile={"Name": options.instance_profile},
        MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
        BlockDeviceMappings=[{"DeviceName": DATA_DEVICE, "Ebs": {"VolumeSize": options.volume_size_gib, "VolumeType": "gp3", "Encrypted": True}}],
        # The admin container runs ctr; the control container (on by default) runs the SSM agent.
        UserData=base64.b64encode(b"[settings.host-containers.admin]\nenabled = true\n").decode(),
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"mleks-image-snapshot-{options.stack}"}]}],
    )["Instances"][0]["InstanceId"]
    try:
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance])
        for _ in range(60):
            online = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance]}])["InstanceInformationList"]
            if online and online[0].get("PingStatus") == "Online":
                break
            sleep(10)
        else:
            raise RuntimeError(f"{instance} never came online in SSM: check the instance profile and the subnet's route to SSM")
        registries = sorted({m["account"] for m in (_ECR.match(i) for i in images) if m})
        tokens: dict[str, str] = {}
        if registries:
            for data in ecr.get_authorization_token(registryIds=registries)["authorizationData"]:
                registry = data["proxyEndpoint"].removeprefix("https://")
                tokens[registry] = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)[1]
        command = ssm.send_command(InstanceIds=[instance], DocumentName="AWS-RunShellScript", Parameters={"commands": pull_commands(images, tokens)})
        command_id = command["Command"]["CommandId"]
        ssm.get_waiter("command_executed").wait(CommandId=command_id, InstanceId=instance, WaiterConfig={"Delay": 15, "MaxAttempts": 240})
        ec2.stop_instances(InstanceIds=[instance])
        ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance])
        described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
        volume = next(m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"] if m["DeviceName"] == DATA_DEVICE)
        snapshot = ec2.create_snapshot(
            VolumeId=volume,
            Description=f"mleks {options.stack}: {len(images)} GPU images for Bottlerocket aws-k8s-{version}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "mleks/stack", "Value": options.stack}]}],
        )["SnapshotId"]
        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot], WaiterConfig={"Delay": 30, "MaxAttempts": 240})
        if options.fast_restore_azs:
            ec2.enable_fast_snapshot_restores(AvailabilityZones=options.fast_restore_azs, SourceSnapshotIds=[snapshot])
    finally:
        ec2.terminate_instances(InstanceIds=[instance])
    log(f"dataVolumeSnapshotId: {snapshot}")
    log(f"dataVolumeSnapshotSizeGib: {options.volume_size_gib}")
    return {"snapshotId": snapshot, "sizeGib": options.volume_size_gib, "images": images}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.image_snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="a stacks/Pulumi.<stack>.yaml, e.g. unified")
    parser.add_argument("--subnet-id", help="a private subnet with a route to SSM and the registries")
    parser.add_argument("--instance-profile", help="an instance profile with AmazonSSMManagedInstanceCore")
    parser.add_argument("--instance-type", default="m7i.xlarge", help="default: m7i.xlarge (no GPU is needed to pull)")
    parser.add_argument("--volume-size-gib", type=int, default=300, help="the data volume; at most the groups' diskSizeGib (default: 300)")
    parser.add_argument("--fast-restore-azs", default="", help="comma-separated AZs for EBS Fast Snapshot Restore (billed per AZ-hour)")
    parser.add_argument("--region", help="default: the stack's aws:region")
    parser.add_argument("--kubernetes-version", help="default: the stack's")
    parser.add_argument("--dry-run", action="store_true", help="print the images and the commands; call no AWS API")
    args = parser.parse_args(argv)
    if args.dry_run:
        region, version, images = gpu_images(args.stack)
        print(f"region {args.region or region}, AMI parameter {AMI_PARAMETER.format(version=args.kubernetes_version or version)}")
        print("\n".join(pull_commands(images, {})))
        return 0
    if not args.subnet_id or not args.instance_profile:
        parser.error("--subnet-id and --instance-profile are required (or --dry-run)")
    try:
        import boto3  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("error: this script calls AWS through boto3: pip install boto3", file=sys.stderr)
        return 2
    options = Options(
        args.stack,
        args.subnet_id,
        args.instance_profile,
        args.instance_type,
        args.volume_size_gib,
        [a for a in args.fast_restore_azs.split(",") if a],
        args.region,
        args.kubernetes_version,
    )
    build(options, lambda service, region: boto3.client(service, region_name=region))
    return 0


if __name__ == "__main__":
    sys.exit(main())
