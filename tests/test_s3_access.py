"""S3 access shared by training jobs and inference services: partitions, URIs, policies."""

from __future__ import annotations

import pytest

from mleks.catalogs.partitions import partition_of
from mleks.errors import ConfigError
from mleks.infra.s3_access import S3Location, check_kms_key_arn, parse_s3_uri, s3_policy
from tests.checks import lint_findings

KEY_ID = "0d6b5f3e-1a2b-4c3d-9e8f-0123456789ab"


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-west-2", "aws"),
        ("eu-west-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("us-isof-south-1", "aws-iso-f"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("eusc-de-east-1", "aws-eusc"),
    ],
)
def test_every_partition_is_known_and_every_policy_uses_it(region: str, partition: str) -> None:
    assert partition_of(region) == partition
    for location in (parse_s3_uri("s3://data/x/"), parse_s3_uri("s3://models/llm").as_folder()):
        doc = s3_policy([location], region=region)
        assert doc is not None
        assert all(s["Resource"].startswith(f"arn:{partition}:s3:::{location.bucket}") for s in doc["Statement"])


def test_kms_key_arns_of_every_partition_are_accepted_and_misspelled_ones_refused() -> None:
    for partition in ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"):
        arn = f"arn:{partition}:kms:some-region-1:123456789012:key/{KEY_ID}"
        assert check_kms_key_arn(arn) == arn
    for bad in (f"arn:aws-isob:kms:us-isob-east-1:123456789012:key/{KEY_ID}", f"arn:aws:kms:us-west-2:123456789012:alias/{KEY_ID}"):
        with pytest.raises(ConfigError):
            check_kms_key_arn(bad)


def test_a_multi_region_kms_key_arn_is_accepted() -> None:
    # Multi-Region keys have ids "mrk-" + 32 hex digits, not UUIDs; a bucket encrypted with one is common.
    arn = "arn:aws:kms:us-west-2:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    assert check_kms_key_arn(arn) == arn
    with pytest.raises(ConfigError):
        check_kms_key_arn("arn:aws:kms:us-west-2:123456789012:key/mrk-1234")


def test_a_key_prefix_covers_keys_starting_with_it_and_a_folder_only_what_is_inside() -> None:
    prefix = s3_policy([parse_s3_uri("s3://data/imagenet")], region="us-west-2")
    folder = s3_policy([parse_s3_uri("s3://data/imagenet").as_folder()], region="us-west-2")
    assert prefix is not None and folder is not None
    assert prefix["Statement"][0]["Condition"] == {"StringLike": {"s3:prefix": ["imagenet*"]}}
    assert prefix["Statement"][1]["Resource"] == "arn:aws:s3:::data/imagenet*"
    assert folder["Statement"][0]["Condition"] == {"StringLike": {"s3:prefix": ["imagenet", "imagenet/*"]}}
    assert folder["Statement"][1]["Resource"] == "arn:aws:s3:::data/imagenet/*"
    assert parse_s3_uri("s3://data/imagenet/").as_folder() == parse_s3_uri("s3://data/imagenet").as_folder()
    assert parse_s3_uri("s3://data").as_folder() == S3Location("data", "", folder=True)
    for doc in (prefix, folder):
        assert lint_findings(doc, "permissions") == []


@pytest.mark.parametrize(
    "uri", ["s3://data/*", "s3://data/a?", "s3://data/${aws:username}/", "s3://data/a//b", " s3://data/x", "s3://Data/x", "https://data/x"]
)
def test_uris_that_could_widen_or_bend_a_policy_are_refused(uri: str) -> None:
    with pytest.raises(ConfigError):
        parse_s3_uri(uri)


def test_with_a_key_every_statement_it_needs_and_only_through_s3() -> None:
    doc = s3_policy([parse_s3_uri("s3://models/llm/")], region="us-gov-west-1", kms_key_arn=f"arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/{KEY_ID}")
    assert doc is not None
    decrypt = doc["Statement"][-1]
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-gov-west-1.amazonaws.com"}}
    assert lint_findings(doc, "permissions") == []


def test_every_partition_has_a_dns_suffix_matching_our_ecr_hosts():
    from mleks.catalogs import dlc as dlc_catalog
    from mleks.catalogs.partitions import service_host

    for region, registry in dlc_catalog.registries().items():
        assert registry.ecr_host == service_host("ecr", region), region


def test_kms_via_service_uses_the_regions_own_s3_host():
    key = "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
    policy = s3_policy([parse_s3_uri("s3://models/x/")], region="cn-north-1", kms_key_arn=key)
    conditions = [s["Condition"] for s in policy["Statement"] if s["Action"] == "kms:Decrypt"]
    assert conditions == [{"StringEquals": {"kms:ViaService": "s3.cn-north-1.amazonaws.com.cn"}}]


def test_writing_to_an_sse_kms_bucket_also_grants_a_data_key_through_s3_only():
    key = "arn:aws:kms:us-west-2:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    policy = s3_policy([parse_s3_uri("s3://data/x/")], parse_s3_uri("s3://ckpt/run/"), region="us-west-2", kms_key_arn=key)
    (kms,) = [s for s in policy["Statement"] if "kms:Decrypt" in s["Action"]]
    assert kms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"] and kms["Resource"] == key
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}}
    from tests.checks import lint_findings

    assert lint_findings(policy, "permissions") == []


def test_reading_an_sse_kms_bucket_grants_decrypt_only():
    key = "arn:aws:kms:us-west-2:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    policy = s3_policy([parse_s3_uri("s3://data/x/")], region="us-west-2", kms_key_arn=key)
    assert [s["Action"] for s in policy["Statement"] if "kms:Decrypt" in s["Action"]] == ["kms:Decrypt"]
