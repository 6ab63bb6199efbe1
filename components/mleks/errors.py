"""One error type for bad input, so every failure reads the same way.

A ``ConfigError`` names the config key (or component argument), shows the bad
value and says what would be accepted.  It is raised while the stack config is
parsed, before any resource is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """Bad stack configuration or component argument.

    Attributes:
        key: dotted path of the offending key, e.g. ``nodeGroups.train.instanceTypes[0]``.
        value: the value that was given.
        accepted: a human description of what would be accepted.
    """

    def __init__(self, key: str, value: Any, accepted: str, problem: str | None = None) -> None:
        self.key = key
        self.value = value
        self.accepted = accepted
        self.problem = problem
        super().__init__(key, value, accepted, problem)

    def __str__(self) -> str:
        detail = f": {self.problem}" if self.problem else ""
        # A key left out has no value to show; "= None" would read as if the user had written null.
        given = "is not set" if self.value is None else f"= {self.value!r} is invalid"
        return f"{self.key} {given}{detail}. Accepted: {self.accepted}"

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key placed under ``prefix``: ``prefix.key``, or ``prefix[0]`` for an index."""
        sep = "" if not self.key or self.key.startswith("[") else "."
        return ConfigError(f"{prefix}{sep}{self.key}", self.value, self.accepted, self.problem)


class ConfigErrors(ValueError):
    """Several ``ConfigError``s found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__(errors)

    def __str__(self) -> str:
        lines = "\n".join(f"  - {e}" for e in self.errors)
        return f"{len(self.errors)} problem(s) in the configuration:\n{lines}"


@dataclass(frozen=True)
class ConfigWarning:
    """Accepted input that deserves a second look: it names the key a user sets and the value given.

    ``str()`` reads ``<key> = <value>: <message>``; the Pulumi CLI (and the
    offline render) print it after ``warning:``.
    """

    key: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.key} = {self.value!r}: {self.message}" if self.key else self.message

    def under(self, prefix: str | None) -> ConfigWarning:
        """The same warning keyed under ``prefix`` (``prefix.key``); unchanged for ``None``."""
        if not prefix:
            return self
        sep = "" if not self.key or self.key.startswith("[") or prefix.endswith(":") else "."
        return ConfigWarning(f"{prefix}{sep}{self.key}", self.value, self.message)

    def rekeyed(self, key: str) -> ConfigWarning:
        return ConfigWarning(key, self.value, self.message)
