"""Typed hyper-parameters: dataclass defaults, overridden from Python values or CLI strings."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from sessionrec.errors import ConfigError

P = TypeVar("P")
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert `value` to `tp` (int, float, bool, str, Optional, tuple, Literal) or fail."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)) and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        return _coerce_any(value, args, where)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{where} must be one of {', '.join(map(str, choices))}, got {value!r}"
            )
        return value
    if origin is tuple:
        (elem, *_) = typing.get_args(tp) or (str,)
        if not isinstance(value, str | list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, elem, where) for v in items)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where} must be int, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def _coerce_any(value: Any, types_: list[Any], where: str) -> Any:
    """The first of `types_` that takes `value` (a union such as `bool | Literal["auto"]`)."""
    if len(types_) == 1:  # `X | None`: X's own error
        return _coerce(value, types_[0], where)
    wanted: list[str] = []
    for tp in types_:
        try:
            return _coerce(value, tp, where)
        except ConfigError as e:
            if tp is bool:
                wanted += ["true", "false"]
            elif typing.get_origin(tp) is typing.Literal:
                wanted += map(str, typing.get_args(tp))
            else:
                wanted.append(str(e).removeprefix(f"{where} must be ").rsplit(", got ", 1)[0])
    raise ConfigError(f"{where} must be {', '.join(wanted[:-1])} or {wanted[-1]}, got {value!r}")


def build_params(
    cls: type[P],
    overrides: Mapping[str, Any] | None = None,
    owner: str = "",
    validate: bool = True,
) -> P:
    """Instantiate dataclass `cls` with `overrides`; unknown keys or bad values: ConfigError.

    `validate=False` checks names and types only, not the dataclass's own `validate()`.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(
            f"hyper-parameters of {owner or cls.__name__} must be a mapping of names to "
            f"values, got {type(overrides).__name__}"
        )
    values = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            valid = ", ".join(fields) or "none"
            raise ConfigError(
                f"unknown hyper-parameter '{key}' for {owner or cls.__name__} (valid: {valid})"
            )
        values[key] = _coerce(
            value, hints[key], f"hyper-parameter '{key}' of {owner or cls.__name__}"
        )
    params = cls(**values)
    check = getattr(params, "validate", None)
    if check is not None and validate:
        check()
    return params


def params_dict(params: Any) -> dict[str, Any]:
    """JSON-ready dict of a params dataclass (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(params).items()
    }


def as_recorded(cls: type, saved: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters read back from a saved model or run, where a field added since they
    were written takes the value that reproduces them (`cls.ADDED_SINCE`), not its default."""
    return {**getattr(cls, "ADDED_SINCE", {}), **saved}
