"""How long a GPU workload takes to start from zero nodes: an estimate, from a plan.

For every pod template that requests ``nvidia.com/gpu`` (Jobs, Deployments, StatefulSets), on each
group it may land on, the estimate adds:

1. **the autoscaler's reaction**: one scan interval, the longest a pending pod waits to be seen
   (Escalator's ``--scaninterval`` or cluster-autoscaler's ``--scan-interval``, read from the plan;
   Karpenter's batch window, ``settings.batchMaxDuration`` of its chart);
2. **instance launch and join**: :data:`LAUNCH_TO_REGISTERED_S`;
3. **the device plugin**: on AL2023 the NVIDIA device plugin's image is pulled first (its size,
   :data:`DEVICE_PLUGIN_MB`, at the group's pull rate); Bottlerocket's is built in;
4. **the workload's image**, by the group's pull path:

   - ``plain``: containerd pulls and unpacks layer by layer; :data:`PLAIN_PULL_MB_S` is what a
     measured cold pull of a 20.4 GB image achieved;
   - ``parallel`` (SOCI parallel pull and unpack): assumed bound by the image volume's write
     throughput, since layers download and unpack concurrently.  No measurement of it is
     recorded here, so this is the model's weakest figure and is labelled as an assumption;
   - ``snapshot`` (Bottlerocket data volume restored from a snapshot holding the images):
     :data:`SNAPSHOT_START_S`, measured.

Image sizes come from :data:`IMAGE_SIZES_MB` (sourced); an image not there has its pull left
unknown, and the total says so.  Not modelled: the scheduler, a model download in an init
container, EBS snapshot hydration without Fast Snapshot Restore, ECR throttling and a cold
registry cache.  Every constant names its source.
"""

from __future__ import annotations

import base64
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from mleks.catalogs import karpenter as karpenter_catalog
from mleks.catalogs.gpu import catalog
from mleks.manifests.escalator_config import parse_go_duration
from mleks.review.cost import instance_types, launch_template_inputs

# karpenter-provider-aws#6128: "about 70-80 s from instance launch to node registration"; the upper end.
LAUNCH_TO_REGISTERED_S = 80.0
# aws-ia/terraform-aws-eks-blueprints patterns/ml-container-cache README (98d0eb40, 2026-04):
# nvcr.io/nvidia/pytorch:25.02-py3, 9.5 GB compressed and 20.4 GB on disk, took 334 s uncached
# from pull to start; 20,400 MB / 334 s.
PLAIN_PULL_MB_S = 20_400 / 334
COMPRESSED_RATIO = 9.5 / 20.4
"""Compressed over unpacked size of that same image, for the bytes a pull downloads."""
# The same README: with the image on a snapshot-restored volume "the pod starts up in less than 5
# seconds"; the 2024-08 version of the pattern measured about 32 s with a Bottlerocket data volume.
# The Bottlerocket figure, since that is the lever here.
SNAPSHOT_START_S = 32.0
# cache_builder.tf of that pattern: nvcr.io/nvidia/k8s-device-plugin:v0.17.1, 120 MB compressed / 351 MB decompressed.
DEVICE_PLUGIN_MB = 351.0
MIB_PER_MB = 1_000_000 / 2**20
# What mleks.gpu_node_group applies for parallel pull (nodeadm/doc/examples.md: 2xlarge or larger, 600+ MiB/s).
PARALLEL_MIN_VCPU = 8
PARALLEL_MIBPS = 1000

# Unpacked image sizes (MB), by image repository suffix: the ``image_size_baseline`` of
# aws/deep-learning-containers buildspecs.  The training figure is PyTorch 2.10's, the newest
# buildspec read (pytorch/training/buildspec-2-10-ec2.yml, GPU: 28000); later versions are assumed
# no smaller.  Inference: pytorch/inference/buildspec-2-6-ec2.yml, GPU: 14000.
IMAGE_SIZES_MB: tuple[tuple[str, str, float, str], ...] = (
    (
        r"\.amazonaws\.com(\.cn)?/pytorch-training:.*-gpu-",
        "DLC PyTorch training, GPU",
        28_000,
        "aws/deep-learning-containers pytorch/training/buildspec-2-10-ec2.yml",
    ),
    (r"\.amazonaws\.com(\.cn)?/pytorch:.*-cu\d+", "DLC PyTorch (unified), GPU", 28_000, "aws/deep-learning-containers pytorch/training/buildspec-2-10-ec2.yml"),
    (
        r"\.amazonaws\.com(\.cn)?/pytorch-inference:.*-gpu-",
        "DLC PyTorch inference, GPU",
        14_000,
        "aws/deep-learning-containers pytorch/inference/buildspec-2-6-ec2.yml",
    ),
    (r"^nvcr\.io/nvidia/pytorch:", "NGC PyTorch", 20_400, "terraform-aws-eks-blueprints patterns/ml-container-cache README"),
)


def image_size(image: str) -> tuple[float, str] | None:
    """(unpacked MB, source) for an image the table knows."""
    for pattern, _, mb, source in IMAGE_SIZES_MB:
        if re.search(pattern, image):
            return mb, source
    return None


@dataclass
class GroupPath:
    """What a group's nodes do to get images."""

    name: str
    ami: str
    path: str  # plain, parallel or snapshot
    throughput_mibps: int
    autoscaler: str
    reaction_s: float
    min_vcpu: int


@dataclass
class Estimate:
    """One workload on one group, in seconds; ``image_s`` is None when the image size is unknown."""

    workload: str
    kind: str
    group: str
    image: str
    path: str
    reaction_s: float
    launch_s: float
    device_plugin_s: float
    image_s: float | None
    alternatives: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float | None:
        return None if self.image_s is None else self.reaction_s + self.launch_s + self.device_plugin_s + self.image_s


def pull_seconds(mb: float, path: str, throughput_mibps: int) -> float:
    """Seconds to have an image of ``mb`` unpacked MB ready, by pull path."""
    if path == "snapshot":
        return SNAPSHOT_START_S
    disk_mb_s = throughput_mibps / MIB_PER_MB
    if path == "parallel":
        return mb / disk_mb_s
    return mb / min(PLAIN_PULL_MB_S, disk_mb_s)


def _decoded(user_data: Any) -> str:
    try:
        return base64.b64decode(str(user_data or "")).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _seconds(args: list[Any], flag: str) -> float | None:
    for i, a in enumerate(args):
        text = str(a)
        if text == flag and i + 1 < len(args):
            return parse_go_duration(str(args[i + 1])) / 1e9
        if text.startswith(flag + "="):
            return parse_go_duration(text.split("=", 1)[1]) / 1e9
    return None


def _pull_path(ami: str, mappings: list[dict[str, Any]], user_data: str, snapshot_key: str) -> tuple[dict[str, Any], str]:
    """The volume images land on (Bottlerocket's data volume, else the root) and how they get there.

    ``snapshot_key``: the field naming a snapshot, ``snapshotId`` in a launch template and ``snapshotID``
    in an EC2NodeClass."""
    volume = (mappings[1] if ami == "bottlerocket" and len(mappings) > 1 else mappings[0]).get("ebs") or {}
    if volume.get(snapshot_key):
        return volume, "snapshot"
    if "FastImagePull: true" in user_data or 'pull-mode = "parallel-pull-unpack"' in user_data:
        return volume, "parallel"
    return volume, "plain"


def group_paths(plan: dict[str, Any]) -> dict[str, GroupPath]:
    """Each GPU group's pull path, by its ``mleks.io/node-group`` label."""
    by_urn = {r["urn"]: r for r in plan.get("resources", [])}
    deployments = {
        ((r.get("inputs") or {}).get("metadata") or {}).get("name"): r for r in plan.get("resources", []) if r["type"] == "kubernetes:apps/v1:Deployment"
    }

    def scan(name: str, flag: str, default: float) -> float:
        r = deployments.get(name)
        if r is None:
            return default
        containers = (((r["inputs"].get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
        found = _seconds([*(containers[0].get("command") or []), *(containers[0].get("args") or [])], flag)
        return default if found is None else found

    # Escalator's default scan interval is 60s (its --scaninterval flag); cluster-autoscaler's 10s (FAQ, flags table).
    reactions = {"escalator": scan("escalator", "--scaninterval", 60.0), "cluster-autoscaler": scan("cluster-autoscaler", "--scan-interval", 10.0)}
    out = {}
    for r in plan.get("resources", []):
        if r["type"] != "aws:eks/nodeGroup:NodeGroup":
            continue
        inputs = r.get("inputs") or {}
        name = (inputs.get("labels") or {}).get("mleks.io/node-group")
        if not name:
            continue
        lt = launch_template_inputs(r, by_urn)
        ami = "bottlerocket" if str(inputs.get("amiType", "")).startswith("BOTTLEROCKET") else "al2023"
        image_volume, path = _pull_path(ami, lt.get("blockDeviceMappings") or [{}], _decoded(lt.get("userData")), "snapshotId")
        owner = str((inputs.get("tags") or {}).get("mleks/autoscaler", "none"))
        vcpus = [catalog()[t].vcpu for t in instance_types(r, lt) if t in catalog()]
        out[name] = GroupPath(name, ami, path, int(image_volume.get("throughput") or 125), owner, reactions.get(owner, 0.0), min(vcpus, default=0))
    out.update(_karpenter_paths(plan))
    return out


def _karpenter_paths(plan: dict[str, Any]) -> dict[str, GroupPath]:
    """Each Karpenter pool's pull path, from its NodePool and EC2NodeClass.

    Karpenter reacts within its batch window (:data:`~mleks.catalogs.karpenter.BATCH_MAX_DURATION_S`, the
    pinned chart's ``settings.batchMaxDuration``) and launches with CreateFleet, no Auto Scaling group in
    between; launch to registration is :data:`LAUNCH_TO_REGISTERED_S`, measured on Karpenter's own nodes.
    """
    resources = plan.get("resources", [])
    classes = {
        ((r.get("inputs") or {}).get("metadata") or {}).get("name"): (r.get("inputs") or {}).get("spec") or {}
        for r in resources
        if r["type"] == "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
    }
    out = {}
    for r in resources:
        if r["type"] != "kubernetes:karpenter.sh/v1:NodePool":
            continue
        template = (((r.get("inputs") or {}).get("spec") or {}).get("template")) or {}
        name = ((template.get("metadata") or {}).get("labels") or {}).get("mleks.io/node-group")
        if not name:
            continue
        node_class = classes.get(((template.get("spec") or {}).get("nodeClassRef") or {}).get("name"), {})
        alias = str(((node_class.get("amiSelectorTerms") or [{}])[0]).get("alias") or "")
        ami = "bottlerocket" if alias.startswith("bottlerocket@") else "al2023"
        image_volume, path = _pull_path(ami, node_class.get("blockDeviceMappings") or [{}], str(node_class.get("userData") or ""), "snapshotID")
        types = [
            v
            for q in (template.get("spec") or {}).get("requirements") or []
            if q.get("key") == "node.kubernetes.io/instance-type"
            for v in q.get("values") or []
        ]
        vcpus = [catalog()[t].vcpu for t in types if t in catalog()]
        throughput = int(image_volume.get("throughput") or 125)
        out[name] = GroupPath(name, ami, path, throughput, "karpenter", karpenter_catalog.BATCH_MAX_DURATION_S, min(vcpus, default=0))
    return out


def _gpu_pods(plan: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for r in plan.get("resources", []):
        if r["type"] not in ("kubernetes:batch/v1:Job", "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"):
            continue
        inputs = r.get("inputs") or {}
        pod = ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        wants_gpu = any("nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {}) for c in pod.get("containers") or [])
        if wants_gpu:
            meta = inputs.get("metadata") or {}
            out.append((f"{meta.get('namespace')}/{meta.get('name')}", str(inputs.get("kind") or r["type"].rsplit(":", 1)[-1]), pod))
    return out


def _groups_of(pod: dict[str, Any], known: dict[str, GroupPath]) -> list[str]:
    selected = (pod.get("nodeSelector") or {}).get("mleks.io/node-group")
    if selected:
        return [selected]
    terms = (((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    names = [
        v
        for t in terms
        for e in t.get("matchExpressions") or []
        if e.get("key") == "mleks.io/node-group" and e.get("operator") == "In"
        for v in e.get("values") or []
    ]
    return names or sorted(known)


def estimate(plan: dict[str, Any]) -> list[Estimate]:
    """A cold-start estimate for every GPU workload on every group it may start on."""
    paths = group_paths(plan)
    out = []
    for workload, kind, pod in _gpu_pods(plan):
        image = str((pod.get("containers") or [{}])[0].get("image"))
        size = image_size(image)
        for name in _groups_of(pod, paths):
            g = paths.get(name)
            if g is None:
                continue
            plugin = 0.0 if g.ami == "bottlerocket" else pull_seconds(DEVICE_PLUGIN_MB, "parallel" if g.path == "parallel" else "plain", g.throughput_mibps)
            notes = []
            if size is None:
                notes.append(f"image size unknown for {image}: its pull is not estimated")
            else:
                notes.append(f"image {size[0]:,.0f} MB unpacked ({size[1]})")
            if g.path == "parallel":
                notes.append(f"parallel pull assumed bound by the volume's {g.throughput_mibps} MiB/s (no measurement recorded)")
            alternatives: dict[str, float | None] = {}
            for alt in ("plain", "parallel", "snapshot"):
                if alt == "snapshot" and g.ami != "bottlerocket":
                    alternatives["snapshot (Bottlerocket)"] = None if size is None else g.reaction_s + LAUNCH_TO_REGISTERED_S + SNAPSHOT_START_S
                    continue
                if alt == "parallel" and g.ami == "al2023" and g.min_vcpu < PARALLEL_MIN_VCPU:
                    notes.append(f"no parallel pull on this group: nodeadm ignores FastImagePull below {PARALLEL_MIN_VCPU} vCPUs")
                    continue
                # The lever as this project sets it: parallel pull comes with a 1000 MiB/s volume unless set higher.
                mibps = max(g.throughput_mibps, PARALLEL_MIBPS) if alt == "parallel" and g.path != "parallel" else g.throughput_mibps
                alt_plugin = 0.0 if g.ami == "bottlerocket" else pull_seconds(DEVICE_PLUGIN_MB, "parallel" if alt == "parallel" else "plain", mibps)
                alternatives[alt] = None if size is None else g.reaction_s + LAUNCH_TO_REGISTERED_S + alt_plugin + pull_seconds(size[0], alt, mibps)
            out.append(
                Estimate(
                    workload,
                    kind,
                    name,
                    image,
                    g.path,
                    g.reaction_s,
                    LAUNCH_TO_REGISTERED_S,
                    plugin,
                    None if size is None else pull_seconds(size[0], g.path, g.throughput_mibps),
                    alternatives,
                    notes,
                )
            )
    return out


def _t(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def summary_lines(estimates: list[Estimate]) -> list[str]:
    """The start-time block under the resource tree."""
    if not estimates:
        return []
    lines = ["cold start from zero nodes (estimate: autoscaler scan + launch and join + device plugin + image):"]
    for e in estimates:
        alts = ", ".join(f"{k} {_t(v)}" for k, v in e.alternatives.items())
        lines.append(
            f"  {e.kind} {e.workload} on {e.group}: {_t(e.total_s)} via {e.path} pull"
            f" [{_t(e.reaction_s)} + {_t(e.launch_s)} + {_t(e.device_plugin_s)} + {_t(e.image_s)}]; with: {alts}"
        )
    return lines


def document(estimates: list[Estimate]) -> dict[str, Any]:
    """The ``start-times.json`` content, with the model's constants and their sources."""
    return {
        "model": (__doc__ or "").split("\n\n")[0],
        "constants": {
            "launchToRegisteredSeconds": {"value": LAUNCH_TO_REGISTERED_S, "source": "karpenter-provider-aws#6128 (70-80 s; the upper end)"},
            "plainPullMBPerSecond": {
                "value": round(PLAIN_PULL_MB_S, 2),
                "source": "terraform-aws-eks-blueprints patterns/ml-container-cache: 20.4 GB in 334 s",
            },
            "snapshotStartSeconds": {"value": SNAPSHOT_START_S, "source": "terraform-aws-eks-blueprints patterns/ml-container-cache (2024-08, Bottlerocket)"},
            "devicePluginMB": {"value": DEVICE_PLUGIN_MB, "source": "terraform-aws-eks-blueprints patterns/ml-container-cache cache_builder.tf (v0.17.1)"},
            "parallelPull": {"value": "image volume write throughput", "source": "assumption: no measurement recorded"},
        },
        "workloads": [{**asdict(e), "totalSeconds": None if e.total_s is None else round(e.total_s, 1)} for e in estimates],
    }
