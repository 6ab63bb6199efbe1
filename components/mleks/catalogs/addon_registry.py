"""Where a region's nodes pull Amazon EKS add-on images from.

EKS replicates its add-on images (the EFA device plugin, the AWS Load
Balancer Controller in partitions without ECR Public, ...) into one private
registry per region, and most commercial regions share account
602401143452, but not all: af-south-1, ap-east-1, the China and GovCloud
regions and newer regions each have their own account.  A node role may
pull from its own region's registry (``AmazonEC2ContainerRegistryPullOnly``);
an image named in another region's registry fails with ImagePullBackOff in
China and GovCloud, whose partitions cannot reach the commercial one.

The table is ``mleks/catalogs/data/eks_addon_registries.tsv`` (source in the file
and in SOURCES.md).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from mleks.catalogs.partitions import service_host
from mleks.errors import ConfigError


@cache
def registries() -> dict[str, str]:
    """Region -> the account of its EKS add-on registry."""
    rows = resources.files("mleks.catalogs.data").joinpath("eks_addon_registries.tsv").read_text().splitlines()
    data = [line.split("\t") for line in rows if line and not line.startswith("#")]
    header, body = data[0], data[1:]
    assert header == ["region", "account"], header
    return {region: account for region, account in body}


def registry_host(region: str) -> str | None:
    """``<account>.dkr.ecr.<region>.<dns suffix>``, or None where no registry is known."""
    account = registries().get(region)
    return f"{account}.dkr.{service_host('ecr', region)}" if account else None


def addon_image(region: str, repository: str, tag: str, *, key: str) -> str:
    """The image of an EKS add-on in ``region``'s registry; ``key`` names the setting that asked for it."""
    host = registry_host(region)
    if host is None:
        raise ConfigError(
            key,
            True,
            f"a region with a known Amazon EKS add-on registry ({', '.join(sorted(registries()))}), or turn this off",
            f"no EKS add-on image registry is recorded for {region} (mleks/catalogs/data/eks_addon_registries.tsv), so {repository} has nowhere to come from",
        )
    return f"{host}/{repository}:{tag}"
