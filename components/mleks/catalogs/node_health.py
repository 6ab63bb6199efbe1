"""What the EKS node monitoring agent reports, for node auto-repair overrides.

EKS does not check an override's ``nodeMonitoringCondition`` or ``nodeUnhealthyReason``
(EKS API reference, ``NodeRepairConfigOverrides``: both free strings), so a misspelled one
is accepted and never matches.  Only *Fatal* reasons set a condition to False (the agent's
``pkg/manager/node_exporter.go``: a Warning only records an Event), so those are the reasons
a node can be repaired for.

Source: aws/eks-node-monitoring-agent v1.7.0 (c399089d, 2026-08-04): conditions in
``pkg/conditions/conditions.go``, reasons and severities in ``pkg/reasons/reasons.yaml``,
the Xid codes treated as fatal in ``monitors/nvidia/dcgm/dcgm_policies.go``
(``WellKnownXidCodes``).  Re-read them when the add-on version EKS installs moves.
"""

from __future__ import annotations

import re

AGENT_VERSION = "v1.7.0"

# Xid codes the agent treats as Fatal (NvidiaXID<code>Error); any other Xid is only a Warning.
FATAL_XID_CODES = (46, 48, 54, 62, 63, 64, 74, 79, 95, 109, 110, 119, 120, 136, 140, 142, 143, 151, 155, 156, 158)

# Condition -> the Fatal reasons that set it False.  StorageReady has none in v1.7.0.
FATAL_REASONS: dict[str, tuple[str, ...]] = {
    "KernelReady": ("ForkFailedOutOfPIDs",),
    "ContainerRuntimeReady": ("PodStuckTerminating",),
    "NetworkingReady": ("MissingLoopbackInterface", "IPAMDNotReady", "IPAMDNotRunning", "InterfaceNotRunning", "InterfaceNotUp", "NPANotRunning"),
    "AcceleratedHardwareReady": (
        "DCGMDiagnosticFailure",
        "DCGMError",
        "NvidiaDeviceCountMismatch",
        "NvidiaDoubleBitError",
        "NvidiaNVLinkError",
        "FabricManagerNotRunning",
        "NvidiaFabricError",
        "NeuronDMAError",
        "NeuronHBMUncorrectableError",
        "NeuronNCUncorrectableError",
        "NeuronSRAMUncorrectableError",
        *(f"NvidiaXID{code}Error" for code in FATAL_XID_CODES),
    ),
    "StorageReady": (),
}

# Reasons with a number in them: DCGM health codes are Fatal when DCGM's health result is FAIL.
_TEMPLATED = {"AcceleratedHardwareReady": (re.compile(r"DCGMHealthCode\d+"), "DCGMHealthCode<code>")}


def conditions() -> list[str]:
    return list(FATAL_REASONS)


def reason_known(condition: str, reason: str) -> bool:
    """Whether the agent can set ``condition`` False with ``reason``."""
    if reason in FATAL_REASONS.get(condition, ()):
        return True
    pattern = _TEMPLATED.get(condition)
    return pattern is not None and pattern[0].fullmatch(reason) is not None


def reasons_text(condition: str) -> str:
    """The reasons of ``condition``, for an error message."""
    names = [*FATAL_REASONS.get(condition, ()), *([_TEMPLATED[condition][1]] if condition in _TEMPLATED else [])]
    return ", ".join(names) if names else "none: the agent never sets it False with a reason of its own"
