"""Base class for typed arguments and config, and the error translation.

Every argument model in this package subclasses :class:`Model`:

* keys are camelCase in stack YAML (``instanceTypes``) and snake_case in Python
  (``instance_types``); both spellings are accepted;
* unknown keys are rejected, because a typo that is silently ignored is worse
  than an error;
* models are frozen, so a validated value cannot be changed afterwards.

:func:`parse` turns pydantic's ``ValidationError`` into our
:class:`~mleks.errors.ConfigErrors`, whose messages name the full key path,
the bad value and what is accepted.

:func:`keyed_entries` (and the :data:`ByName` field type) reads the config
sections whose entries are named by a key: a mapping by key, or a list of
objects that carry the key.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel, to_snake
from pydantic_core import InitErrorDetails

from mleks.errors import ConfigError, ConfigErrors

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class Model(BaseModel):
    """Frozen, strict-keyed pydantic model with camelCase aliases.

    Built directly in Python (``GpuNodeGroupArgs(role="train", ...)``), a model
    raises :class:`~mleks.errors.ConfigErrors` naming every bad argument by its
    Python name (``instance_types[0]``), not pydantic's ``ValidationError``.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
        validate_default=True,
    )

    if not TYPE_CHECKING:  # keep the typed keyword signature pydantic's mypy plugin gives each model

        def __init__(self, /, **data: Any) -> None:
            # pydantic calls a custom __init__ for nested models too; only the
            # outermost call translates, so nested errors keep their locations.
            depth = _VALIDATING.get()
            token = _VALIDATING.set(depth + 1)
            try:
                super().__init__(**data)
            except pydantic.ValidationError as exc:
                if depth:
                    raise
                raise to_config_errors(exc, type(self), python_names=True) from None
            finally:
                _VALIDATING.reset(token)


_VALIDATING: contextvars.ContextVar[int] = contextvars.ContextVar("mleks_validating", default=0)
"""How deep in model validation we are: 0 outside, 1 in a top-level build or :func:`parse`."""


def _format_loc(prefix: str, loc: tuple[Any, ...]) -> str:
    key = prefix
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key and not key.endswith(":") else str(part)
    return key


def _field_names_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The accepted keys of the model that sits at ``loc`` (best effort)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = None
            for name, info in current.model_fields.items():
                if part in (name, info.alias):
                    field = info
                    break
            if field is None:
                return sorted((i.alias or n) for n, i in current.model_fields.items())
            current = _model_in(field.annotation)
        else:
            current = None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted((i.alias or n) for n, i in current.model_fields.items())
    return None


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as ``list[X] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


_CAMEL_PART = re.compile(r"[a-z][a-zA-Z0-9]*")


def _python_key(key: str) -> str:
    """``diskThroughputMibps`` -> ``disk_throughput_mibps``, part by part (label and tag keys are left alone)."""
    # to_snake would also split a letter from a digit ("s3" -> "s_3"), which no field is named.
    return ".".join(re.sub(r"_(\d)", r"\1", to_snake(part)) if _CAMEL_PART.fullmatch(part.split("[", 1)[0]) else part for part in key.split("."))


def _aliases() -> dict[str, str]:
    """camelCase key -> snake_case argument, for every field of every argument model."""
    found: dict[str, str] = {}
    models: list[type[BaseModel]] = [Model]
    while models:
        model = models.pop()
        models.extend(model.__subclasses__())
        for name, info in model.model_fields.items():
            if info.alias and info.alias != name:
                found[info.alias] = name
    return found


_CAMEL_WORD = re.compile(r"(?<![\w/-])[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+(?![\w-])")


def python_spelling(err: ConfigError, owner: str) -> ConfigError:
    """``err`` as a Python user reads it: keyed under ``owner`` (``MLPlatform('ml')``) in snake_case,
    and the argument names its text mentions (``nodeGroups``, ``maxSize``) in snake_case too."""
    aliases = _aliases()

    def words(text: str | None) -> str | None:
        return None if text is None else _CAMEL_WORD.sub(lambda m: aliases.get(m.group(0), m.group(0)), text)

    key = _python_key(err.key)
    where = f"{owner}{'' if not key or key.startswith('[') else '.'}{key}"
    return ConfigError(where, err.value, words(err.accepted) or "", words(err.problem))


def component_errors(errors: list[ConfigError], *, component: str, name: str, config_key: str | None, args_errors: Sequence[ConfigError] = ()) -> ConfigErrors:
    """A component's problems for its reader, all at once.

    ``errors`` are keyed by the component's keyword arguments (``node_group``), ``args_errors`` by
    fields of its Args (``gpusPerNode``).  Built from config (``config_key``, e.g.
    ``mleks:trainingJobs.smoke``), they are keyed under it in the config's spelling; built in
    Python, as ``DLCTrainingJob('smoke').args.gpus_per_node``.
    """
    if config_key:
        return ConfigErrors([e.under(config_key) for e in [*errors, *args_errors]])
    every = [*errors, *(e.under("args") for e in args_errors)]
    return ConfigErrors([python_spelling(e, f"{component}({name!r})") for e in every])


def raised(call: Callable[[], T]) -> tuple[T | None, list[ConfigError]]:
    """``call()``'s result, or the ``ConfigError``\\s it raised (one or several)."""
    try:
        return call(), []
    except ConfigErrors as many:
        return None, list(many.errors)
    except ConfigError as one:
        return None, [one]


def to_config_errors(exc: pydantic.ValidationError, model: type[BaseModel], prefix: str = "", *, python_names: bool = False) -> ConfigErrors:
    """Translate a pydantic error into ``ConfigErrors`` with full key paths (in Python spelling with ``python_names``)."""
    translated = _to_config_errors(exc, model, prefix)
    if python_names:
        for err in translated.errors:
            err.key = _python_key(err.key)
    return translated


def _to_config_errors(exc: pydantic.ValidationError, model: type[BaseModel], prefix: str) -> ConfigErrors:
    errors: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = _format_loc(prefix, loc)
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, ConfigError):
            # Field validators leave ``key`` empty; model validators name the
            # sub-key relative to the model they validate.
            if original.key:
                sep = "" if original.key.startswith("[") or not key or key.endswith(":") else "."
                key = f"{key}{sep}{original.key}"
            errors.append(ConfigError(key, original.value, original.accepted, original.problem))
            continue
        if err["type"] == "extra_forbidden":
            names = _field_names_at(model, loc[:-1]) or []
            errors.append(ConfigError(key, err["input"], f"one of the known keys {names}", "unknown key"))
            continue
        if err["type"] == "missing":
            errors.append(ConfigError(key, None, "a value (this key is required)", "missing"))
            continue
        msg = str(err["msg"]).removeprefix("Value error, ")
        errors.append(ConfigError(key, err.get("input"), msg))
    return ConfigErrors(errors)


def error_line(error: ConfigError) -> InitErrorDetails:
    """One pydantic line error that carries ``error`` (see :func:`raise_all`)."""
    return InitErrorDetails(type="value_error", loc=(), input=error.value, ctx={"error": error})


def raise_all(title: str, errors: list[ConfigError]) -> NoReturn:
    """Raise several ``ConfigError``s from one validator, so one run reports them all.

    pydantic-core turns a ``ValidationError`` raised inside a validator into
    its line errors, and :func:`to_config_errors` reads each ``ConfigError``
    back from its line's context, key and all.
    """
    raise pydantic.ValidationError.from_exception_data(title, [error_line(e) for e in errors])


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate ``data`` into ``model``; raise ``ConfigErrors`` naming every bad key."""
    token = _VALIDATING.set(_VALIDATING.get() + 1)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise to_config_errors(exc, model, prefix) from None
    finally:
        _VALIDATING.reset(token)


# -- entries named by a key ------------------------------------------------------


def keyed_entries(value: Any, key_field: str = "name", *, null_is_empty: bool = False) -> Any:
    """Entries named by a key, given as a mapping by key or as a list of objects that carry it.

    Both spellings become one mapping ``{key: body}`` with the key filled into
    each body under ``key_field``, so the rest of the code, and every error
    message, names an entry by its key (``trainingJobs.gpu-smoke.gpusPerNode``),
    never by its position in a list:

    * a mapping: a body may repeat its key under ``key_field``, but not
      contradict it (an error at ``<key>.<key_field>``);
    * a list: every entry needs a string ``key_field``, and no two entries the
      same one (an error at ``[i].<key_field>``).

    ``null_is_empty``: a ``null`` section (a YAML key left empty) means no
    entries.  Anything else is returned unchanged, for the field's type to refuse.
    """
    if value is None and null_is_empty:
        return {}
    if isinstance(value, list):
        out: dict[Any, Any] = {}
        first: dict[Any, int] = {}
        for i, body in enumerate(value):
            key = body.get(key_field) if isinstance(body, Mapping) else None
            if not isinstance(key, str):
                given = body.get(key_field) if isinstance(body, Mapping) else body
                example = f"an object with a {key_field}, e.g. {{{key_field}: ..., ...}}"
                raise ConfigError(f"[{i}].{key_field}", given, example, f"missing {key_field}")
            if key in first:
                raise ConfigError(f"[{i}].{key_field}", key, f"a {key_field} not used by entry [{first[key]}]", f"duplicate {key_field}")
            first[key] = i
            out[key] = dict(body)
        return out
    if isinstance(value, Mapping):
        fixed: dict[Any, Any] = {}
        for key, body in value.items():
            if isinstance(body, Mapping):
                given = body.get(key_field, key)
                if given != key:
                    raise ConfigError(f"{key}.{key_field}", given, f"{key!r} (the {key_field} is the entry's key)", f"{key_field} differs from its key")
                body = {**body, key_field: key}
            fixed[key] = body
        return fixed
    return value


def keyed_by(key_field: str = "name", *, null_is_empty: bool = False) -> BeforeValidator:
    """The field validator for a section of entries named by ``key_field`` (see :func:`keyed_entries`)."""
    return BeforeValidator(partial(keyed_entries, key_field=key_field, null_is_empty=null_is_empty))


ByName = Annotated[dict[str, T], keyed_by("name")]
"""A config section of entries by ``name``: a mapping by name, or a list of objects with ``name``."""


# -- versions YAML would read as numbers --------------------------------------------


def quoted_version(value: Any) -> Any:
    """Refuse a version that YAML read as a number: ``1.30`` arrives as ``1.3``, ``2.10`` as ``2.1``.

    The value is already wrong by the time it reaches us, so no number is
    accepted, even one that happens to survive (``1.35``).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ConfigError(
            "",
            value,
            f'the version as a quoted string, e.g. "{value}" (or "{value}0" if you meant that)',
            "an unquoted number: YAML reads 1.30 as 1.3 and 2.10 as 2.1, so put the version in quotes",
        )
    return value


VersionText = Annotated[str, BeforeValidator(quoted_version)]
"""A config field holding a version such as ``"1.35"`` or ``"2.10"``, which must be quoted in YAML."""
