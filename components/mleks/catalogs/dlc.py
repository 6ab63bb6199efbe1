"""AWS Deep Learning Container (DLC) images: the catalog and the URI resolver.

The data lives in ``mleks/catalogs/data/dlc_images.tsv`` (one row per image) and
``mleks/catalogs/data/dlc_registries.tsv`` (registry account and ECR host per
region); ``mleks/catalogs/data/SOURCES.md`` says where each came from.  The facts
behind the rules below are collected in ``shared/reference/dlc-and-gpu.md``
sections 1 and 3.

Everything here is a plain function over that data, so tests call it without
the Pulumi engine.  Bad input raises :class:`~mleks.errors.ConfigError`
whose ``key`` is the argument name (``version``, ``region``, ...); the caller
prefixes the config path.
"""

from __future__ import annotations

import csv
import datetime
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from mleks.catalogs import gpu as gpu_catalog
from mleks.errors import ConfigError, ConfigWarning

FRAMEWORKS = ("pytorch", "tensorflow")
ACCELERATORS = ("gpu", "cpu")
JOB_TYPES = ("training", "inference")

# The DLC docs label images "ec2" when they are built for EC2, ECS and EKS
# (docs/src/global.yml ``platforms.ec2``); the "sagemaker" flavour expects the
# SageMaker training/serving toolkit as its entry point.
EKS_PLATFORM = "ec2"
SAGEMAKER_PLATFORM = "sagemaker"

# Repository -> (framework, job type, CPU architecture).  Names from the DLC
# repo's docs/src/global.yml (dlc-and-gpu.md section 1.3).  The unified
# ``pytorch`` repository (AL2023, 2.11+) only has ``job_type: training``
# release configs (.github/config/image/pytorch/*.yml, section 1.5), and no
# arm64 images in the data.
_REPOSITORIES: dict[str, tuple[str, str, gpu_catalog.Architecture]] = {
    "pytorch": ("pytorch", "training", "amd64"),
    "pytorch-training": ("pytorch", "training", "amd64"),
    "pytorch-inference": ("pytorch", "inference", "amd64"),
    "pytorch-training-arm64": ("pytorch", "training", "arm64"),
    "pytorch-inference-arm64": ("pytorch", "inference", "arm64"),
    "tensorflow-training": ("tensorflow", "training", "amd64"),
    "tensorflow-inference": ("tensorflow", "inference", "amd64"),
    "tensorflow-inference-arm64": ("tensorflow", "inference", "arm64"),
}

Severity = Literal["error", "warning"]

OWN_IMAGE_ADVICE = "consider an image of your own"
"""The advice of an end-of-patch warning; callers add the key that sets an image."""


@dataclass(frozen=True)
class DlcImage:
    """One row of ``dlc_images.tsv`` that this module knows how to use."""

    repository: str
    framework: str
    job_type: str
    arch: gpu_catalog.Architecture
    accelerator: str
    platform: str
    minor: str
    """``major.minor`` as the DLC docs file the image under, e.g. ``2.13``."""
    version: str
    """Full framework version, read from the full tag, e.g. ``2.12.1``."""
    python: str
    cuda: str | None
    end_of_patch: datetime.date | None
    tag: str
    """The full tag: the first one the DLC docs list, which names every component."""


@dataclass(frozen=True)
class Registry:
    region: str
    account: str
    ecr_host: str

    def image_uri(self, repository: str, tag: str) -> str:
        # Same template as the SageMaker SDK's ECR_URI_TEMPLATE
        # ("{registry}.dkr.{hostname}/{repository}"), because the host is not
        # always amazonaws.com (China, ISO and EUSC partitions differ).
        return f"{self.account}.dkr.{self.ecr_host}/{repository}:{tag}"


@dataclass(frozen=True)
class ResolvedImage:
    """A container image to run, with what is known about it.

    For an ``image_override`` only ``uri`` is guaranteed; the fields that
    cannot be read from the reference are ``None``.
    """

    uri: str
    repository: str
    tag: str | None
    registry_account: str | None
    region: str
    version: str | None
    cuda: str | None
    python: str | None
    end_of_patch: datetime.date | None
    warnings: tuple[ConfigWarning, ...] = ()
    """Keyed by this module's arguments (``version``, ``accelerator``, ``image_override``); callers re-key them."""


def _read_tsv(name: str) -> list[dict[str, str]]:
    text = resources.files("mleks.catalogs.data").joinpath(name).read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def _date(text: str) -> datetime.date | None:
    return datetime.date.fromisoformat(text) if text else None


@cache
def images() -> tuple[DlcImage, ...]:
    """Every PyTorch and TensorFlow DLC image in the catalog."""
    out: list[DlcImage] = []
    for row in _read_tsv("dlc_images.tsv"):
        known = _REPOSITORIES.get(row["ecr_repo"])
        if known is None or row["accel"] not in ACCELERATORS:
            continue  # e.g. Neuron images, if someone copies the full shared file back in
        framework, job_type, arch = known
        tag = row["tags"].split(" | ")[0].strip()
        version = tag.split("-", 1)[0]
        if not version.startswith(row["version"] + "."):
            raise ValueError(f"dlc_images.tsv: tag {tag!r} does not start with version {row['version']}")
        out.append(
            DlcImage(
                repository=row["ecr_repo"],
                framework=framework,
                job_type=job_type,
                arch=arch,
                accelerator=row["accel"],
                platform=row["platform"],
                minor=row["version"],
                version=version,
                python=row["py"],
                cuda=row["cuda"] or None,
                end_of_patch=_date(row["eop"]),
                tag=tag,
            )
        )
    return tuple(out)


@cache
def registries() -> dict[str, Registry]:
    """The DLC registry per AWS region."""
    return {row["region"]: Registry(region=row["region"], account=row["account"], ecr_host=row["ecr_host"]) for row in _read_tsv("dlc_registries.tsv")}


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _release_order(image: DlcImage) -> tuple[tuple[int, ...], datetime.date]:
    return (_version_tuple(image.version), image.end_of_patch or datetime.date.min)


def _cuda_version(token: str) -> tuple[int, int]:
    # DLC tokens put the CUDA minor in the last digit: cu124 = 12.4, cu133 = 13.3.
    match = re.fullmatch(r"cu(\d+)(\d)", token)
    if match is None:
        raise ValueError(f"not a CUDA tag token: {token!r}")
    return int(match[1]), int(match[2])


def volta_issue(framework: str, version: str, cuda: str) -> tuple[Severity, str] | None:
    """Whether an image built for ``cuda`` runs on Volta (V100: p3, p3dn).

    Source: dlc-and-gpu.md section 3, last bullets.  CUDA 13 removed Volta
    outright.  PyTorch's own build arch lists decide the rest: from 2.11 its
    CUDA 12.8 builds start at Turing (pytorch/pytorch#172352, PR #175253);
    for 2.8-2.10 on CUDA 12.8/12.9 the 2.8.0 release notes say sm_70 was
    dropped while the 2.9/2.10 support matrix still lists it, so only warn.
    """
    major, minor = _cuda_version(cuda)
    if major >= 13:
        return "error", f"CUDA {major}.{minor} ({cuda}) dropped Volta (sm_70) GPUs"
    if framework == "pytorch" and (major, minor) == (12, 8) and _version_tuple(version) >= (2, 11):
        return "error", (f"PyTorch {version} CUDA 12.8 builds start at Turing (sm_75) and leave out Volta (sm_70) (pytorch/pytorch#172352)")
    if framework == "pytorch" and (major, minor) in ((12, 8), (12, 9)):
        return "warning", (
            f"PyTorch {version} on CUDA {major}.{minor} ({cuda}) may lack Volta (sm_70) kernels: the PyTorch 2.8"
            " release notes drop sm_70 from CUDA 12.8/12.9 builds while later support matrices list it;"
            " test on a p3 node first"
        )
    return None


def _image_volta_issue(image: DlcImage) -> tuple[Severity, str] | None:
    return volta_issue(image.framework, image.version, image.cuda) if image.cuda else None


def _check_volta(image: DlcImage, volta_types: list[str]) -> list[ConfigWarning]:
    """Raise if ``image`` cannot run on the Volta types; else the warnings."""
    issue = _image_volta_issue(image)
    if issue is None:
        return []
    severity, reason = issue
    if severity == "warning":
        return [ConfigWarning("version", image.version, f"{image.repository}:{image.tag} on {volta_types}: {reason}")]
    runnable = []
    for other in _eks_images(image.framework, image.job_type, image.accelerator, image.arch):
        other_issue = _image_volta_issue(other)
        if other_issue is None:
            runnable.append(f"{other.version} ({other.cuda})")
        elif other_issue[0] == "warning":
            runnable.append(f"{other.version} ({other.cuda}, with a warning)")
    raise ConfigError(
        "cuda",
        image.cuda,
        f"a version whose image runs on Volta ({', '.join(runnable) or 'none in the catalog'}), or instance types without Volta GPUs instead of {volta_types}",
        f"{image.repository}:{image.tag} cannot run on {volta_types}: {reason}",
    )


def _check_choice(key: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ConfigError(key, value, f"one of {list(accepted)}")


def _check_platform(platform: str) -> None:
    if platform == SAGEMAKER_PLATFORM:
        raise ConfigError(
            "platform",
            platform,
            f"{EKS_PLATFORM!r} (the images AWS builds for EC2, ECS and EKS)",
            "SageMaker-flavoured DLC images are published for SageMaker only and expect its entry point; EKS nodes need the 'ec2' images",
        )
    _check_choice("platform", platform, (EKS_PLATFORM,))


def _registry(region: str) -> Registry:
    # Per-image region availability is not in our data: sagemaker-core's
    # image_uri_config/*.json lists regions per version (pytorch-amzn2023.json:
    # 45 for 2.13, 35 for 2.14; dlc-and-gpu.md section 1.2), but only for
    # SageMaker tags.  Every EC2 image resolved here is 2.13 or older, and 2.13
    # lists all 45 regions of dlc_registries.tsv, so a known region is taken to
    # carry every image; an unknown region is the "no such image here" error.
    registry = registries().get(region)
    if registry is None:
        raise ConfigError("region", region, f"one of {sorted(registries())}", "no DLC registry is known for this region")
    return registry


def _group_arch(instance_types: list[gpu_catalog.InstanceType], arch: gpu_catalog.Architecture | None) -> tuple[gpu_catalog.Architecture, str]:
    """The architecture images must be built for, and why (for messages)."""
    if instance_types:
        try:
            group_arch = gpu_catalog.common_architecture(instance_types)
        except ConfigError as exc:
            raise ConfigError("instance_types", exc.value, exc.accepted, exc.problem) from None
        names = [t.instance_type for t in instance_types]
        if arch is not None and arch != group_arch:
            raise ConfigError("arch", arch, f"{group_arch!r}, the architecture of {names}", "does not match the instance types")
        return group_arch, f"the instance types {names} are {group_arch}"
    if arch is None:
        return "amd64", "amd64 is the default when no instance types are given"
    _check_choice("arch", arch, ("amd64", "arm64"))
    return arch, f"arch is {arch}"


def _eks_images(framework: str, job_type: str, accelerator: str, arch: str) -> list[DlcImage]:
    return sorted(
        (
            i
            for i in images()
            if i.framework == framework and i.job_type == job_type and i.accelerator == accelerator and i.arch == arch and i.platform == EKS_PLATFORM
        ),
        key=_release_order,
    )


def _describe(framework: str, job_type: str, accelerator: str, arch: str) -> str:
    return f"{framework} {job_type} {accelerator} {arch}"


def _accepted_versions(choices: list[DlcImage], what: str) -> str:
    if not choices:
        return f"none: there is no {what} DLC for EC2/EKS in the catalog; set image_override to bring your own image"
    listed = ", ".join(dict.fromkeys(i.version for i in choices))
    return f"a version with a {what} EC2/EKS image, as X.Y or X.Y.Z: {listed}"


def _past_end_of_patch(image: DlcImage, today: datetime.date) -> bool:
    return image.end_of_patch is not None and image.end_of_patch < today


def _normalize(value: str, prefix: str) -> str:
    """Accept '3.12' for 'py312' and '13.0' for 'cu130'; the tags use the short form."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", value.strip())
    return f"{prefix}{match[1]}{match[2]}" if match else value.strip()


def _select(
    framework: str,
    version: str,
    job_type: str,
    accelerator: str,
    arch: gpu_catalog.Architecture,
    arch_reason: str,
    python: str | None,
    cuda: str | None,
    today: datetime.date,
) -> DlcImage:
    choices = _eks_images(framework, job_type, accelerator, arch)
    what = _describe(framework, job_type, accelerator, arch)
    accepted = _accepted_versions(choices, what)
    wanted = str(version).strip()
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", wanted):
        raise ConfigError("version", version, accepted, "not a version number")

    same = [i for i in images() if i.framework == framework and i.job_type == job_type and wanted in (i.minor, i.version)]
    if not same:
        problem = f"no {framework} {job_type} DLC {wanted} in the catalog"
        if choices:
            newest = choices[-1]
            if _version_tuple(wanted)[:2] > _version_tuple(newest.version)[:2]:
                problem = f"no {what} DLC newer than {newest.version} exists"
                if _past_end_of_patch(newest, today):
                    problem += f", and {newest.version}'s end of patch, {newest.end_of_patch}, has passed"
        raise ConfigError("version", version, accepted, problem)

    on_eks = [i for i in same if i.platform == EKS_PLATFORM]
    if not on_eks:
        example = max(same, key=lambda i: (i.accelerator == accelerator, _release_order(i)))
        raise ConfigError(
            "version",
            version,
            accepted,
            f"{framework} {wanted} {job_type} is published for SageMaker only ({example.repository}:{example.tag}); EKS needs an 'ec2' image",
        )

    on_arch = [i for i in on_eks if i.arch == arch]
    if not on_arch:
        built_for = sorted({i.arch for i in on_eks})
        raise ConfigError(
            "version",
            version,
            accepted,
            f"{framework} {wanted} {job_type} EC2 images are built for {built_for} only, but {arch_reason}",
        )

    candidates = [i for i in on_arch if i.accelerator == accelerator]
    if not candidates:
        published = sorted({i.accelerator for i in on_arch})
        raise ConfigError(
            "accelerator",
            accelerator,
            f"one of {published} for {framework} {wanted} {job_type} {arch}",
            f"no {accelerator} EC2 image of {framework} {wanted} {job_type} for {arch}",
        )

    # Both selectors compare against a column; an unset one matches anything.
    for key, given, field, prefix in (("python", python, "python", "py"), ("cuda", cuda, "cuda", "cu")):
        if given is None:
            continue
        token = _normalize(given, prefix)
        matching = [i for i in candidates if getattr(i, field) == token]
        if not matching:
            existing = sorted({str(getattr(i, field)) for i in candidates})
            raise ConfigError(key, given, f"one of {existing} for {what} {wanted}", f"no {framework} {wanted} image with {token}")
        candidates = matching

    return max(candidates, key=_release_order)


# The distribution/reference grammar, simplified: lowercase path components,
# optional host[:port], tag of at most 128 characters, sha256 digest.
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_IMAGE_REF = re.compile(
    r"(?:(?P<host>[A-Za-z0-9.-]+(?::\d+)?)/)?"
    r"(?P<path>[^:@]+)"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?",
    re.ASCII,
)


def _override(image: str, region: str) -> ResolvedImage:
    # The caller chose this image on purpose (their own build, a mirror, a
    # newer DLC than our data); only reject what no registry would accept.
    match = _IMAGE_REF.fullmatch(image)
    host, path = (match["host"], match["path"]) if match else (None, "")
    # Docker's rule: the first component is a registry only if it looks like a host.
    if host is not None and "." not in host and ":" not in host and host != "localhost":
        host, path = None, f"{host}/{path}"
    if match is None or not re.fullmatch(_PATH, path):
        raise ConfigError(
            "image_override",
            image,
            "a container image reference such as 123456789012.dkr.ecr.us-west-2.amazonaws.com/repo:tag",
            "empty" if not image.strip() else "not an image reference",
        )
    account = re.match(r"(\d{12})\.dkr\.ecr\.", host) if host else None
    warnings: tuple[ConfigWarning, ...] = ()
    if match["tag"] is None and match["digest"] is None:
        warnings = (ConfigWarning("image_override", image, "no tag or digest, so every node pulls whatever ':latest' is then"),)
    return ResolvedImage(
        uri=image,
        repository=path,
        tag=match["tag"],
        registry_account=account[1] if account else None,
        region=region,
        version=None,
        cuda=None,
        python=None,
        end_of_patch=None,
        warnings=warnings,
    )


def resolve_dlc_image(
    framework: str,
    version: str,
    *,
    region: str,
    accelerator: str = "gpu",
    python: str | None = None,
    cuda: str | None = None,
    platform: str = EKS_PLATFORM,
    job_type: str = "training",
    instance_types: list[gpu_catalog.InstanceType] | None = None,
    arch: gpu_catalog.Architecture | None = None,
    image_override: str | None = None,
    today: datetime.date | None = None,
) -> ResolvedImage:
    """The DLC image URI for a framework version on EKS nodes in ``region``.

    ``version`` is ``X.Y`` (newest patch in the catalog) or ``X.Y.Z``.
    ``python`` (``py312`` or ``3.12``) and ``cuda`` (``cu130`` or ``13.0``)
    narrow the choice and must match the image.  ``instance_types`` are the
    node group's types: they fix the architecture (``arch`` is for groups
    whose types are not in the GPU catalog) and are checked against the
    image's CUDA build.  ``image_override``, when set, is returned as is.

    Raises ``ConfigError`` keyed by the offending argument.  Problems that
    do not stop the image from running (end of patch passed, CUDA 12.8/12.9
    on Volta, a CPU image on GPU nodes) come back in ``warnings``.
    """
    if image_override is not None:
        return _override(image_override, region)

    _check_choice("framework", framework, FRAMEWORKS)
    _check_platform(platform)
    _check_choice("job_type", job_type, JOB_TYPES)
    _check_choice("accelerator", accelerator, ACCELERATORS)
    registry = _registry(region)
    types = instance_types or []
    group_arch, arch_reason = _group_arch(types, arch)
    names = [t.instance_type for t in types]
    if accelerator == "gpu" and not all(t.is_nvidia_gpu for t in types):
        raise ConfigError(
            "accelerator",
            accelerator,
            "'cpu', or NVIDIA GPU instance types for a CUDA image",
            f"a CUDA image needs whole NVIDIA GPUs; {[t.instance_type for t in types if not t.is_nvidia_gpu]} have none",
        )
    if accelerator == "cpu" and cuda is not None:
        raise ConfigError("cuda", cuda, "no cuda selector (leave it unset) for a CPU image", "CPU images have no CUDA build")

    today = today or datetime.date.today()
    image = _select(framework, version, job_type, accelerator, group_arch, arch_reason, python, cuda, today)
    warnings: list[ConfigWarning] = []

    volta = [t.instance_type for t in types if t.is_volta]
    if volta:
        warnings += _check_volta(image, volta)

    if accelerator == "cpu" and any(t.is_nvidia_gpu for t in types):
        warnings.append(ConfigWarning("accelerator", accelerator, f"a CPU image on GPU instance types {names} leaves their GPUs unused"))

    if _past_end_of_patch(image, today):
        newest = _eks_images(framework, job_type, accelerator, group_arch)[-1]
        what = _describe(framework, job_type, accelerator, group_arch)
        if newest == image:
            advice = f"no newer {what} EC2 image exists; {OWN_IMAGE_ADVICE}"
        else:
            advice = f"the newest {what} EC2 image is {newest.version} (end of patch {newest.end_of_patch})"
        message = f"{image.repository}:{image.tag} reached end of patch on {image.end_of_patch} and gets no more security fixes; {advice}"
        warnings.append(ConfigWarning("version", version, message))

    return ResolvedImage(
        uri=registry.image_uri(image.repository, image.tag),
        repository=image.repository,
        tag=image.tag,
        registry_account=registry.account,
        region=region,
        version=image.version,
        cuda=image.cuda,
        python=image.python or None,
        end_of_patch=image.end_of_patch,
        warnings=tuple(warnings),
    )


def latest_version(
    framework: str,
    accelerator: str = "gpu",
    platform: str = EKS_PLATFORM,
    job_type: str = "training",
    arch: gpu_catalog.Architecture = "amd64",
) -> str:
    """The newest full version (``X.Y.Z``) with an EKS image, past end of patch or not."""
    _check_choice("framework", framework, FRAMEWORKS)
    _check_platform(platform)
    _check_choice("job_type", job_type, JOB_TYPES)
    _check_choice("accelerator", accelerator, ACCELERATORS)
    _check_choice("arch", arch, ("amd64", "arm64"))
    choices = _eks_images(framework, job_type, accelerator, arch)
    if not choices:
        sagemaker_only = any(i.framework == framework and i.job_type == job_type and i.accelerator == accelerator for i in images())
        raise ConfigError(
            "framework",
            framework,
            f"a framework with a {job_type} {accelerator} {arch} EC2/EKS image, or image_override",
            f"there is no {_describe(framework, job_type, accelerator, arch)} DLC for EC2/EKS in the catalog"
            + (" (its images are published for SageMaker only)" if sagemaker_only else ""),
        )
    return choices[-1].version
