"""Kubernetes resource quantities (``500m``, ``16Gi``, ``1e9``): parse and check them.

The grammar is the one in ``k8s.io/apimachinery/pkg/api/resource/quantity.go``::

    <quantity>  ::= <sign><number><suffix>
    <number>    ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>    ::= <binarySI> | <decimalSI> | <decimalExponent>
    <binarySI>  ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI> ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= e<signedDigits> | E<signedDigits>

A quantity the API server would reject, or one that makes no sense for the
field (a 10-byte disk, a negative CPU), fails at config load with a
:class:`~mleks.errors.ConfigError` instead of during ``pulumi up``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator

from mleks.errors import ConfigError

_QUANTITY = re.compile(r"^(?P<sign>[+-]?)(?P<number>\d+\.?\d*|\.\d+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}

GIB = Decimal(2**30)
MIB = Decimal(2**20)
_GIB = 2**30
_MIB = 2**20

# gp3 volumes are 1 GiB to 16 TiB (EBS volume types documentation).
GP3_MIN = GIB
GP3_MAX = 16 * 1024 * GIB


def parse_quantity(text: Any) -> Decimal:
    """The value of a Kubernetes quantity in base units (bytes, cores, ...).

    Raises ``ValueError`` if ``text`` is not a quantity.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    match = _QUANTITY.fullmatch(str(text))
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None
    if match["sign"] == "-":
        number = -number
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def _parsed(value: Any, accepted: str) -> Decimal:
    try:
        return parse_quantity(value)
    except ValueError:
        raise ConfigError("", value, accepted, "not a Kubernetes quantity") from None


def storage_size(value: Any) -> str:
    """A gp3 volume size such as ``50Gi``: a quantity from 1Gi to 16Ti."""
    accepted = "a Kubernetes quantity from 1Gi to 16Ti, such as 50Gi or 500Gi"
    size = _parsed(value, accepted)
    if not GP3_MIN <= size <= GP3_MAX:
        raise ConfigError("", value, accepted, "outside the gp3 volume size range")
    return str(value)


def cpu_quantity(value: Any) -> str:
    """A CPU request such as ``500m`` or ``4``: a positive quantity."""
    accepted = "a positive CPU quantity such as 500m, 2 or 7.5"
    cores = _parsed(value, accepted)
    if cores < Decimal("0.001"):
        raise ConfigError("", value, accepted, "below 1m (one thousandth of a core)")
    return str(value)


def memory_quantity(value: Any) -> str:
    """A memory size such as ``16Gi``: a quantity of at least 1Mi."""
    accepted = "a memory quantity of at least 1Mi, such as 512Mi or 24Gi"
    size = _parsed(value, accepted)
    if size < MIB:
        raise ConfigError("", value, accepted, "below 1Mi (a bare number is bytes; did you mean Gi?)")
    return str(value)


CpuQuantity = Annotated[str, AfterValidator(cpu_quantity)]
"""A config field holding a CPU request (see :func:`cpu_quantity`)."""

MemoryQuantity = Annotated[str, AfterValidator(memory_quantity)]
"""A config field holding a memory size (see :func:`memory_quantity`)."""


# -- integer amounts, for arithmetic on requests -------------------------------------


def cpu_millis(quantity: Any) -> int:
    """Millicores of a CPU quantity such as ``"8"``, ``"7.5"`` or ``"500m"``."""
    return math.ceil(_parsed(quantity, 'a CPU quantity such as "8", "7.5" or "7500m"') * 1000)


def memory_bytes(quantity: Any) -> int:
    """Bytes of a memory quantity such as ``"64Gi"``, ``"512Mi"`` or ``"100G"``."""
    return math.ceil(_parsed(quantity, 'a memory quantity such as "64Gi" or "512Mi"'))


def cpu_text(millis: int) -> str:
    """The quantity for ``millis`` millicores: ``"8"`` or ``"7500m"``."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_text(size: int) -> str:
    """The quantity for ``size`` bytes, in the largest binary unit that is exact: ``"64Gi"``, ``"18944Mi"``."""
    if size % _GIB == 0:
        return f"{size // _GIB}Gi"
    if size % _MIB == 0:
        return f"{size // _MIB}Mi"
    return str(size)
