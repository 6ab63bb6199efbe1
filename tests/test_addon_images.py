"""EKS add-on images come from the cluster's own region's registry, in every partition."""

from __future__ import annotations

import copy

import pytest

from mleks import efa_device_plugin
from mleks.catalogs.addon_registry import registries
from mleks.errors import ConfigError
from stacks import offline

# One region per partition the table covers, and a commercial region with its own account.
EXPECTED = {
    "us-west-2": "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-efa-k8s-device-plugin:v0.5.20",
    "af-south-1": "877085696533.dkr.ecr.af-south-1.amazonaws.com/eks/aws-efa-k8s-device-plugin:v0.5.20",
    "cn-north-1": "918309763551.dkr.ecr.cn-north-1.amazonaws.com.cn/eks/aws-efa-k8s-device-plugin:v0.5.20",
    "us-gov-west-1": "013241004608.dkr.ecr.us-gov-west-1.amazonaws.com/eks/aws-efa-k8s-device-plugin:v0.5.20",
}


@pytest.mark.parametrize(("region", "image"), sorted(EXPECTED.items()))
def test_efa_device_plugin_image_is_in_the_regions_own_addon_registry(region: str, image: str):
    assert efa_device_plugin.image_for(region) == image


CN_NORTHWEST = "961992271922.dkr.ecr.cn-northwest-1.amazonaws.com.cn/eks/aws-efa-k8s-device-plugin:v0.5.20"


@pytest.mark.parametrize(("region", "image"), [("cn-northwest-1", CN_NORTHWEST)])
def test_the_rendered_daemonset_uses_the_stack_regions_registry(region: str, image: str):
    cfg = copy.deepcopy(offline.load_stack_file("unified"))
    cfg["aws:region"] = region
    cfg["mleks:trainingJobs"] = {}  # no DLC lookups: this is about the plugin image
    cfg["mleks:inferenceServices"] = {}
    cfg["mleks:notebooks"] = {}
    result = offline.run("unified", config=cfg)
    [plugin] = [o for _, o in result.kube_objects() if o["kind"] == "DaemonSet" and o["metadata"]["name"] == efa_device_plugin.NAME]
    assert plugin["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_a_region_without_a_known_addon_registry_is_refused_naming_the_setting():
    assert "mx-central-1" not in registries()
    with pytest.raises(ConfigError) as err:
        efa_device_plugin.image_for("mx-central-1", key="nodeGroups.train.efa")
    assert err.value.key == "nodeGroups.train.efa" and "mx-central-1" in err.value.problem


def test_every_registry_account_is_a_twelve_digit_aws_account():
    assert len(registries()) >= 35
    assert all(len(a) == 12 and a.isdigit() for a in registries().values())
