"""Every EC2 instance type name, for checking types that are not GPU types (the system group).

Data: ``mleks/catalogs/data/ec2_instance_types.txt`` (botocore's EC2 API model, source
and date in the file).  GPU and other accelerated types are in
:mod:`mleks.catalogs.gpu`.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources

from mleks.catalogs import gpu as gpu_catalog
from mleks.errors import ConfigError


@cache
def instance_types() -> frozenset[str]:
    text = resources.files("mleks.catalogs.data").joinpath("ec2_instance_types.txt").read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check_cpu_instance_type(name: str) -> str:
    """A real EC2 type with no accelerator; ``ConfigError`` (empty key) otherwise."""
    if name not in instance_types():
        close = difflib.get_close_matches(name, sorted(instance_types()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError("", name, "an EC2 instance type name such as m7i.large or m7g.large", f"not an EC2 instance type{hint}")
    accelerated = gpu_catalog.catalog().get(name)
    if accelerated is not None:
        raise ConfigError(
            "",
            name,
            "a general-purpose CPU type such as m7i.large: system nodes run CoreDNS and the controllers, and no autoscaler ever removes them",
            f"{name} carries {accelerated.accelerator_count} {accelerated.accelerator_model} accelerator(s), which would sit idle around the clock",
        )
    return name
