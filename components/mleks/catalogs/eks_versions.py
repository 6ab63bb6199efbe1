"""The EKS Kubernetes version calendar and control-plane prices (``data/eks_versions.json``, sources inside)."""

from __future__ import annotations

import datetime
import json
from functools import cache
from importlib import resources
from typing import Literal

from mleks.errors import ConfigWarning


@cache
def _versions() -> dict[str, dict[str, str]]:
    raw = json.loads(resources.files("mleks.catalogs.data").joinpath("eks_versions.json").read_text())
    return dict(raw["versions"])


def kubernetes_version_status(version: str, today: datetime.date | None = None) -> Literal["standard", "extended", "unsupported"]:
    """Where ``version`` stands in the EKS support calendar on ``today``."""
    today = today or datetime.date.today()
    row = _versions().get(version)
    if row is None:
        return "unsupported"
    if today <= datetime.date.fromisoformat(row["end_of_standard_support"]):
        return "standard"
    if today <= datetime.date.fromisoformat(row["end_of_extended_support"]):
        return "extended"
    return "unsupported"


def end_of_standard_support(version: str) -> str | None:
    """The ISO date ``version`` leaves EKS standard support, if the calendar has it."""
    row = _versions().get(version)
    return row["end_of_standard_support"] if row else None


def control_plane_price(status: Literal["standard", "extended"]) -> float:
    """US dollars per cluster-hour of the EKS control plane (``eks_versions.json``, EKS pricing page)."""
    return float(json.loads(resources.files("mleks.catalogs.data").joinpath("eks_versions.json").read_text())["control_plane_usd_per_hour"][status])


def extended_support_warning(version: str, today: datetime.date | None = None) -> ConfigWarning | None:
    """A warning, keyed ``kubernetesVersion``, when ``version`` is in extended support (and so costs more)."""
    if kubernetes_version_status(version, today) != "extended":
        return None
    standard, extended = control_plane_price("standard"), control_plane_price("extended")
    extra = extended - standard
    ends = _versions()[version]["end_of_extended_support"]
    current = [v for v in supported_kubernetes_versions(today) if kubernetes_version_status(v, today) == "standard"]
    return ConfigWarning(
        "kubernetesVersion",
        version,
        f"in EKS extended support until {ends}: the control plane costs ${extended:.2f} per hour instead of ${standard:.2f}"
        f" (+${extra:.2f} an hour, about ${extra * 730:.0f} a month per cluster); versions in standard support: {current}",
    )


def supported_kubernetes_versions(today: datetime.date | None = None) -> list[str]:
    return [v for v in sorted(_versions(), key=lambda s: tuple(map(int, s.split(".")))) if kubernetes_version_status(v, today) != "unsupported"]
