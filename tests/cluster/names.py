"""Kubernetes name and label syntax, written from k8s.io/apimachinery ``pkg/util/validation/validation.go``.

* DNS-1123 label: at most 63 characters, ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``.
* DNS-1123 subdomain: at most 253 characters, dot-separated labels.
* DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
* Qualified name (label and annotation keys): optional DNS-1123 subdomain
  prefix (253) and ``/``, then a name of at most 63 characters,
  ``([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]``.
* Label value: at most 63 characters, empty or the same pattern.
* IANA service name (container port names): at most 15 characters, lowercase
  alphanumerics and ``-``, at least one letter, no leading, trailing or double ``-``.
* Path segment name (RBAC objects, HPAs): not ``.`` or ``..``, no ``/`` or ``%``
  (k8s.io/apimachinery ``pkg/api/validation/path``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def dns_label_problem(name: str) -> str | None:
    if len(name) > 63:
        return f"{name!r} is longer than 63 characters (DNS-1123 label)"
    if not _LABEL.match(name):
        return f"{name!r} is not a DNS-1123 label (lowercase alphanumerics and '-', alphanumeric at both ends)"
    return None


def dns_subdomain_problem(name: str) -> str | None:
    if len(name) > 253:
        return f"{name!r} is longer than 253 characters (DNS-1123 subdomain)"
    if not _SUBDOMAIN.match(name):
        return f"{name!r} is not a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.')"
    return None


def dns1035_label_problem(name: str) -> str | None:
    if len(name) > 63:
        return f"{name!r} is longer than 63 characters (DNS-1035 label)"
    if not _DNS1035.match(name):
        return f"{name!r} is not a DNS-1035 label (starts with a letter; lowercase alphanumerics and '-')"
    return None


def path_segment_problem(name: str) -> str | None:
    if name in (".", "..") or "/" in name or "%" in name or not name:
        return f"{name!r} is not a valid path segment name (no '/', '%', '.' or '..')"
    return None


def qualified_name_problem(key: str) -> str | None:
    """A label or annotation key."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return f"key {key!r} has an empty prefix"
        problem = dns_subdomain_problem(prefix)
        if problem:
            return f"key {key!r}: prefix {problem}"
    if not name:
        return f"key {key!r} has an empty name"
    if len(name) > 63:
        return f"key {key!r}: name part is longer than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return f"key {key!r}: name part must be alphanumerics, '-', '_' or '.', alphanumeric at both ends"
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63:
        return f"value {value!r} is longer than 63 characters"
    if not _LABEL_VALUE.match(value):
        return f"value {value!r} must be empty or alphanumerics, '-', '_' or '.', alphanumeric at both ends"
    return None


def labels_problems(labels: Mapping[str, Any]) -> list[str]:
    """Every key and value problem of a label map."""
    out = []
    for key, value in labels.items():
        for problem in (qualified_name_problem(str(key)), label_value_problem(str(value))):
            if problem:
                out.append(problem)
    return out


def port_name_problem(name: str) -> str | None:
    if len(name) > 15 or not _IANA_SVC.match(name) or "--" in name or not re.search("[a-z]", name):
        return f"port name {name!r} is not an IANA service name (at most 15 lowercase alphanumerics or '-', at least one letter)"
    return None
