"""DLC image resolution: URIs from the catalog data, and every refusal and warning.

Expected URIs are written out by hand from mleks/catalogs/data/dlc_images.tsv and
dlc_registries.tsv (which copy shared/data/dlc-images.tsv and
shared/data/dlc-registry-hostnames.txt), so a change in the resolver or the
data shows up here.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mleks.catalogs import dlc as dlc_catalog
from mleks.catalogs import gpu as gpu_catalog
from mleks.catalogs.dlc import latest_version, resolve_dlc_image, volta_issue
from mleks.errors import ConfigError

TODAY = datetime.date(2026, 11, 28)


def _types(*names: str) -> list[gpu_catalog.InstanceType]:
    return [gpu_catalog.catalog()[n] for n in names]


def _resolve(framework: str = "pytorch", version: str = "2.13", **kwargs: Any) -> dlc_catalog.ResolvedImage:
    kwargs.setdefault("region", "us-west-2")
    kwargs.setdefault("today", TODAY)
    return resolve_dlc_image(framework, version, **kwargs)


def _refused(key: str, value: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _resolve(**kwargs)
    assert info.value.key == key
    assert info.value.value == value
    assert repr(value) in str(info.value)
    return info.value


# --- known-good URIs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "uri"),
    [
        pytest.param(
            {"version": "2.13", "region": "us-west-2"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",
            id="unified-pytorch-repo-gpu",
        ),
        pytest.param(
            {"version": "2.10", "region": "us-east-1"},
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-ec2",
            id="legacy-pytorch-training-ec2-tag",
        ),
        pytest.param(
            {"version": "2.13", "region": "cn-north-1"},
            "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch:2.13.0-cu133-amzn2023",
            id="china-account-and-com-cn-host",
        ),
        pytest.param(
            {"version": "2.13", "region": "af-south-1"},
            "626614931356.dkr.ecr.af-south-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",
            id="af-south-1-own-account",
        ),
        pytest.param(
            {"version": "2.13", "region": "ap-east-2"},
            "975050140332.dkr.ecr.ap-east-2.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",
            id="taipei-account-not-the-superseded-763104351884",
        ),
        pytest.param(
            {"version": "2.13", "region": "us-iso-east-1"},
            "886529160074.dkr.ecr.us-iso-east-1.c2s.ic.gov/pytorch:2.13.0-cu133-amzn2023",
            id="iso-partition-host",
        ),
        pytest.param(
            {"version": "2.13", "region": "eusc-de-east-1"},
            "204133271717.dkr.ecr.eusc-de-east-1.amazonaws.eu/pytorch:2.13.0-cu133-amzn2023",
            id="eu-sovereign-cloud-host",
        ),
        pytest.param(
            {"version": "2.13", "accelerator": "cpu"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.13.0-cpu-amzn2023",
            id="unified-repo-cpu",
        ),
        pytest.param(
            {"version": "2.10", "accelerator": "cpu"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.10.0-cpu-py313-ubuntu22.04-ec2",
            id="legacy-cpu-tag-has-no-cuda",
        ),
        pytest.param(
            {"version": "2.7", "instance_types": _types("g5g.xlarge")},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training-arm64:2.7.0-gpu-py312-cu128-ubuntu22.04-ec2",
            id="arm64-instance-types-pick-arm64-repo",
        ),
        pytest.param(
            {"version": "2.7", "instance_types": _types("g5.xlarge")},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.7.1-gpu-py312-cu128-ubuntu22.04-ec2",
            id="same-minor-on-amd64-is-a-different-patch",
        ),
        pytest.param(
            {"version": "2.6", "job_type": "inference", "accelerator": "cpu", "arch": "arm64"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-inference-arm64:2.6.0-cpu-py312-ubuntu22.04-ec2",
            id="arm64-cpu-inference-by-arch",
        ),
        pytest.param(
            {"version": "2.6", "job_type": "inference"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-inference:2.6.0-gpu-py312-cu124-ubuntu22.04-ec2",
            id="inference-repo",
        ),
        pytest.param(
            {"version": "2.12.1"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.12.1-cu130-amzn2023",
            id="full-version-x-y-z",
        ),
        pytest.param(
            {"version": "2.12"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.12.1-cu130-amzn2023",
            id="minor-version-gets-the-catalogued-patch",
        ),
        pytest.param(
            {"version": "2.10", "python": "3.13", "cuda": "13.0"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-ec2",
            id="dotted-python-and-cuda-selectors",
        ),
        pytest.param(
            {"version": "2.10", "python": "py313", "cuda": "cu130"},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-ec2",
            id="tag-token-python-and-cuda-selectors",
        ),
        pytest.param(
            {"version": "2.13", "instance_types": _types("p5.48xlarge", "p4d.24xlarge")},
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",
            id="mixed-amd64-gpu-group",
        ),
    ],
)
def test_resolves_known_uri(kwargs: dict[str, Any], uri: str) -> None:
    assert _resolve(**kwargs).uri == uri


def test_resolved_image_carries_tag_parts_and_dates() -> None:
    image = _resolve(version="2.10", region="af-south-1")
    assert image.repository == "pytorch-training"
    assert image.tag == "2.10.0-gpu-py313-cu130-ubuntu22.04-ec2"
    assert image.registry_account == "626614931356"
    assert image.region == "af-south-1"
    assert image.version == "2.10.0"
    assert (image.python, image.cuda) == ("py313", "cu130")
    assert image.end_of_patch == datetime.date(2027, 1, 21)
    assert image.warnings == ()


def test_cpu_image_has_no_cuda() -> None:
    assert _resolve(accelerator="cpu").cuda is None


@pytest.mark.parametrize("region", sorted(dlc_catalog.registries()))
def test_every_known_region_builds_a_uri_from_its_account_and_host(region: str) -> None:
    registry = dlc_catalog.registries()[region]
    image = _resolve(region=region)
    assert image.uri == f"{registry.account}.dkr.{registry.ecr_host}/pytorch:2.13.0-cu133-amzn2023"
    assert image.uri.startswith(f"{registry.account}.dkr.ecr.{region}.")


def test_registry_table_covers_the_45_regions_of_the_hostnames_file() -> None:
    table = dlc_catalog.registries()
    assert len(table) == 45
    assert table["us-gov-west-1"].account == "442386744353"
    assert table["us-isob-east-1"].ecr_host == "ecr.us-isob-east-1.sc2s.sgov.gov"
    assert table["cn-northwest-1"].ecr_host == "ecr.cn-northwest-1.amazonaws.com.cn"


def test_every_catalogued_tag_starts_with_its_version() -> None:
    for image in dlc_catalog.images():
        assert image.tag.startswith(image.version + "-"), image
        assert image.version.startswith(image.minor + "."), image
        assert (image.cuda is None) == (image.accelerator == "cpu"), image


def test_every_eks_image_in_the_catalog_resolves() -> None:
    eks = [i for i in dlc_catalog.images() if i.platform == "ec2"]
    assert len(eks) == 21
    for i in eks:
        resolved = _resolve(
            framework=i.framework,
            version=i.version,
            accelerator=i.accelerator,
            job_type=i.job_type,
            arch=i.arch,
        )
        assert resolved.uri.endswith(f"/{i.repository}:{i.tag}")


# --- latest_version ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"framework": "pytorch"}, "2.13.0"),
        ({"framework": "pytorch", "accelerator": "cpu"}, "2.13.0"),
        ({"framework": "pytorch", "job_type": "inference"}, "2.6.0"),
        ({"framework": "pytorch", "arch": "arm64"}, "2.7.0"),
    ],
)
def test_latest_version_is_newest_eks_image(kwargs: dict[str, Any], expected: str) -> None:
    assert latest_version(**kwargs) == expected


def test_latest_version_has_no_tensorflow_for_eks() -> None:
    with pytest.raises(ConfigError) as info:
        latest_version("tensorflow")
    assert info.value.key == "framework"
    assert info.value.value == "tensorflow"
    assert "SageMaker only" in str(info.value)


def test_latest_version_rejects_sagemaker_platform() -> None:
    with pytest.raises(ConfigError) as info:
        latest_version("pytorch", platform="sagemaker")
    assert info.value.key == "platform"


# --- errors ---------------------------------------------------------------------


def test_unknown_framework_is_refused() -> None:
    error = _refused("framework", "mxnet", framework="mxnet")
    assert "pytorch" in error.accepted and "tensorflow" in error.accepted


@pytest.mark.parametrize("version", ["two", "2", "2.13.0.1", "v2.13"])
def test_malformed_version_is_refused(version: str) -> None:
    _refused("version", version, version=version)


def test_unknown_version_lists_existing_versions() -> None:
    error = _refused("version", "2.99", version="2.99")
    assert "2.6.0, 2.7.1, 2.8.0, 2.9.0, 2.10.0, 2.11.0, 2.12.1, 2.13.0" in error.accepted
    assert "newer than 2.13.0" in str(error)


def test_unknown_patch_of_known_minor_is_refused() -> None:
    error = _refused("version", "2.12.0", version="2.12.0")
    assert "2.12.1" in error.accepted


def test_inference_newer_than_2_6_is_refused_and_says_2_6_is_past_end_of_patch() -> None:
    error = _refused("version", "2.13", version="2.13", job_type="inference")
    assert "newer than 2.6.0" in str(error)
    assert "2026-06-30, has passed" in str(error)


def test_sagemaker_only_version_is_refused() -> None:
    error = _refused("version", "2.21", framework="tensorflow", version="2.21")
    assert "published for SageMaker only" in str(error)
    assert "tensorflow-training:2.21.0-gpu-py312-cu129-amzn2023-sagemaker" in str(error)
    assert "no tensorflow training gpu amd64 DLC for EC2/EKS" in error.accepted


def test_sagemaker_platform_is_refused() -> None:
    error = _refused("platform", "sagemaker", platform="sagemaker")
    assert "SageMaker only" in str(error)


def test_unknown_platform_is_refused() -> None:
    _refused("platform", "ecs", platform="ecs")


def test_unknown_job_type_is_refused() -> None:
    _refused("job_type", "serving", job_type="serving")


def test_unknown_accelerator_is_refused() -> None:
    _refused("accelerator", "tpu", accelerator="tpu")


def test_unknown_region_is_refused_with_known_regions() -> None:
    error = _refused("region", "us-moon-1", region="us-moon-1")
    assert "us-west-2" in error.accepted and "cn-north-1" in error.accepted


def test_unified_pytorch_repo_on_arm64_group_is_refused() -> None:
    error = _refused("version", "2.13", version="2.13", instance_types=_types("g5g.xlarge"))
    assert "['amd64'] only" in str(error)
    assert "g5g.xlarge" in str(error)
    assert "2.7.0" in error.accepted


def test_mixed_architecture_group_is_refused() -> None:
    _refused("instance_types", ["g5.xlarge", "g5g.xlarge"], instance_types=_types("g5.xlarge", "g5g.xlarge"))


def test_arch_contradicting_instance_types_is_refused() -> None:
    _refused("arch", "arm64", arch="arm64", instance_types=_types("g5.xlarge"))


def test_accelerator_the_version_lacks_is_refused() -> None:
    # pytorch-training-arm64 2.7 is published for GPU only.
    error = _refused("accelerator", "cpu", version="2.7", accelerator="cpu", arch="arm64")
    assert "gpu" in error.accepted


def test_gpu_image_on_non_nvidia_instance_types_is_refused() -> None:
    error = _refused("accelerator", "gpu", instance_types=_types("inf2.xlarge"))
    assert "inf2.xlarge" in str(error)


def test_cuda_selector_with_cpu_image_is_refused() -> None:
    _refused("cuda", "cu133", accelerator="cpu", cuda="cu133")


def test_python_selector_not_in_tag_lists_existing() -> None:
    error = _refused("python", "py311", version="2.10", python="py311")
    assert "py313" in error.accepted


def test_cuda_selector_not_in_tag_lists_existing() -> None:
    error = _refused("cuda", "cu128", version="2.10", cuda="cu128")
    assert "cu130" in error.accepted


@pytest.mark.parametrize("volta_type", ["p3.2xlarge", "p3dn.24xlarge"])
@pytest.mark.parametrize(("version", "cuda"), [("2.13", "cu133"), ("2.10", "cu130"), ("2.9", "cu130")])
def test_cuda_13_image_on_volta_is_refused(volta_type: str, version: str, cuda: str) -> None:
    error = _refused("cuda", cuda, version=version, instance_types=_types(volta_type))
    assert volta_type in str(error)
    assert "2.6.0 (cu126)" in error.accepted


def test_volta_in_a_mixed_group_is_enough_to_refuse() -> None:
    _refused("cuda", "cu133", instance_types=_types("p4d.24xlarge", "p3.16xlarge"))


def test_pytorch_2_11_on_cuda_12_8_is_an_error_on_volta() -> None:
    # No such image is catalogued; the rule is checked directly.
    issue = volta_issue("pytorch", "2.11.0", "cu128")
    assert issue is not None and issue[0] == "error"
    assert "Turing" in issue[1]


@pytest.mark.parametrize(
    ("framework", "version", "cuda", "severity"),
    [
        ("pytorch", "2.13.0", "cu133", "error"),
        ("tensorflow", "2.21.0", "cu130", "error"),
        ("pytorch", "2.12.0", "cu128", "error"),
        ("pytorch", "2.11.0", "cu129", "warning"),
        ("pytorch", "2.8.0", "cu129", "warning"),
        ("pytorch", "2.7.1", "cu128", "warning"),
        ("pytorch", "2.6.0", "cu126", None),
        ("pytorch", "2.6.0", "cu124", None),
        ("tensorflow", "2.21.0", "cu129", None),
    ],
)
def test_volta_issue_severity(framework: str, version: str, cuda: str, severity: str | None) -> None:
    issue = volta_issue(framework, version, cuda)
    assert (issue[0] if issue else None) == severity


def test_image_override_must_not_be_empty() -> None:
    _refused("image_override", "", image_override="")


@pytest.mark.parametrize("bad", ["has space:1", "repo:", "UPPER/case:1", "repo@sha256:short", "repo:tägé", " "])
def test_image_override_must_look_like_an_image_reference(bad: str) -> None:
    _refused("image_override", bad, image_override=bad)


# --- warnings -------------------------------------------------------------------


def test_current_version_has_no_warnings() -> None:
    assert _resolve(version="2.13", instance_types=_types("p5.48xlarge")).warnings == ()


def test_past_end_of_patch_warns_and_names_the_newest() -> None:
    image = _resolve(version="2.9")
    assert len(image.warnings) == 1
    assert "end of patch on 2026-10-15" in image.warnings[0].message
    assert "2.13.0" in image.warnings[0].message


def test_end_of_patch_is_relative_to_today() -> None:
    assert _resolve(version="2.9", today=datetime.date(2026, 10, 15)).warnings == ()
    assert _resolve(version="2.9", today=datetime.date(2026, 10, 16)).warnings != ()


def test_end_of_patch_defaults_to_the_real_date() -> None:
    # 2.6 training reached end of patch on 2026-01-29, before this was written.
    image = resolve_dlc_image("pytorch", "2.6", region="us-west-2")
    assert any("2026-01-29" in w.message for w in image.warnings)


def test_inference_2_6_warns_that_no_newer_image_exists() -> None:
    image = _resolve(version="2.6", job_type="inference")
    assert len(image.warnings) == 1
    assert "2026-06-30" in image.warnings[0].message
    assert "no newer pytorch inference gpu amd64 EC2 image" in image.warnings[0].message


@pytest.mark.parametrize(("version", "cuda"), [("2.8", "cu129"), ("2.7", "cu128")])
def test_cuda_12_8_or_12_9_on_volta_warns(version: str, cuda: str) -> None:
    image = _resolve(version=version, instance_types=_types("p3dn.24xlarge"), today=datetime.date(2026, 1, 1))
    assert image.cuda == cuda
    assert len(image.warnings) == 1
    assert "Volta" in image.warnings[0].message and "p3dn.24xlarge" in image.warnings[0].message


def test_cuda_12_6_on_volta_does_not_warn() -> None:
    assert _resolve(version="2.6", instance_types=_types("p3.2xlarge"), today=datetime.date(2026, 1, 1)).warnings == ()


def test_cpu_image_on_gpu_instances_warns() -> None:
    image = _resolve(accelerator="cpu", instance_types=_types("g5.xlarge"))
    assert image.uri.endswith("/pytorch:2.13.0-cpu-amzn2023")
    assert len(image.warnings) == 1 and "g5.xlarge" in image.warnings[0].message


# --- image_override -----------------------------------------------------------------


def test_image_override_skips_every_check() -> None:
    image = _resolve(
        framework="mxnet",
        version="nonsense",
        region="us-moon-1",
        instance_types=_types("p3.2xlarge"),
        image_override="763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.14.0-cu133-amzn2023",
    )
    assert image.uri == "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch:2.14.0-cu133-amzn2023"
    assert image.registry_account == "763104351884"
    assert (image.repository, image.tag) == ("pytorch", "2.14.0-cu133-amzn2023")
    assert image.warnings == ()


@pytest.mark.parametrize(
    ("reference", "repository", "tag"),
    [
        ("nvcr.io/nvidia/pytorch:25.01-py3", "nvidia/pytorch", "25.01-py3"),
        ("localhost:5000/team/train:v1", "team/train", "v1"),
        ("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", "pytorch/pytorch", "2.5.1-cuda12.4-cudnn9-runtime"),
        ("repo@sha256:" + "a" * 64, "repo", None),
    ],
)
def test_image_override_parses_other_registries(reference: str, repository: str, tag: str | None) -> None:
    image = _resolve(image_override=reference)
    assert (image.uri, image.repository, image.tag, image.registry_account) == (reference, repository, tag, None)
    assert image.warnings == ()


def test_image_override_without_tag_warns_about_latest() -> None:
    image = _resolve(image_override="pytorch/pytorch")
    assert image.repository == "pytorch/pytorch"
    assert len(image.warnings) == 1 and ":latest" in image.warnings[0].message
