"""Stack files read as Pulumi reads them: a key written twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word; Pulumi's own YAML parser
refuses the file.  A node group copied and not renamed would then render here and
fail at ``pulumi up``.  :func:`load_yaml` refuses it first, naming the key path as
the stack file spells it and both lines.
"""

from __future__ import annotations

from typing import Any

import yaml

from mleks.errors import ConfigError, ConfigErrors


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.tag}>"


def duplicate_key_errors(text: str, *, skip: tuple[str, ...] = ()) -> list[ConfigError]:
    """A ``ConfigError`` for each key written twice in one mapping of ``text``.

    The key is the dotted path from the document's root, less the leading ``skip`` parts
    (``config`` in a stack file, so errors read ``mleks:nodeGroups.train``).
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    errors: list[ConfigError] = []

    def walk(node: yaml.Node | None, path: list[str]) -> None:
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = _key_text(key_node)
                line = key_node.start_mark.line + 1
                if key in first:
                    shown = path[len(skip) :] if path[: len(skip)] == list(skip) else path
                    dotted = ".".join([*shown, key])
                    errors.append(
                        ConfigError(
                            dotted,
                            key,
                            "each key once in a mapping: rename or merge the second one (Pulumi's YAML parser refuses duplicate keys)",
                            f"written twice, at lines {first[key]} and {line}; without this check the second would silently replace the first",
                        )
                    )
                else:
                    first[key] = line
                walk(value_node, [*path, key])
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, [*path[:-1], f"{path[-1]}[{i}]"] if path else [f"[{i}]"])

    walk(root, [])
    return errors


def load_yaml(text: str, *, skip: tuple[str, ...] = ()) -> Any:
    """``text`` parsed; ``ConfigErrors`` naming every duplicate key (see :func:`duplicate_key_errors`)."""
    errors = duplicate_key_errors(text, skip=skip)
    if errors:
        raise ConfigErrors(errors)
    return yaml.safe_load(text)
