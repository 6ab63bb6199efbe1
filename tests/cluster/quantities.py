"""Kubernetes resource quantities (``100m``, ``1``, ``344Gi``, ``1.5G``) as integers.

Written from the quantity grammar of k8s.io/apimachinery ``pkg/api/resource/quantity.go``:
binary suffixes Ki..Ei (powers of 1024), decimal suffixes n, u, m, k, M, G, T, P, E
(powers of 1000), and plain or exponent numbers.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10**3), "M": Decimal(10**6)}
_DECIMAL |= {"G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")

MIB = 2**20


def value(quantity: Any) -> Decimal:
    """The quantity as a number of base units (cores, bytes, devices)."""
    if isinstance(quantity, int | float):
        return Decimal(str(quantity))
    match = _QUANTITY.match(str(quantity).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def millicores(quantity: Any) -> int:
    """CPU in millicores, rounded up as the API server rounds CPU to 1m."""
    return math.ceil(value(quantity) * 1000)


def mebibytes(quantity: Any) -> Decimal:
    """Memory in MiB (may be fractional)."""
    return value(quantity) / MIB


def whole(quantity: Any) -> int:
    """A countable extended resource (``nvidia.com/gpu``, ``vpc.amazonaws.com/efa``)."""
    return math.ceil(value(quantity))
