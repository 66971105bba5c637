"""Turn a parsed TOML table into a frozen dataclass, strictly.

An unknown key, a missing required key or a value of the wrong type is an
error that names the file, the table and the key: a typo in a config on a
headless Pi must fail loudly at start-up, not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from emotion_edge.device.errors import EmotionEdgeError

T = TypeVar("T")


class ConfigError(EmotionEdgeError, ValueError):
    """The configuration is wrong; the message names where and what to do."""


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {_describe(value)} fits none of {hint}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list) or (args and args[-1] is not Ellipsis and len(value) != len(args)):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {_describe(value)}")
        kinds = [args[0]] * len(value) if args and args[-1] is Ellipsis else list(args)
        return tuple(_coerce(v, k, f"{where}[{i}]") for i, (v, k) in enumerate(zip(value, kinds)))
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {_describe(value)}")
    if hint is Path:
        if isinstance(value, str) and value:
            return Path(value).expanduser()
        raise ConfigError(f"{where}: expected a path string, got {_describe(value)}")
    if hint in (int, str, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise ConfigError(f"{where}: expected {hint.__name__}, got {_describe(value)}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {_describe(value)}")
        return build(hint, value, where)
    raise ConfigError(f"{where}: unsupported setting type {hint}")  # a schema bug, not a user error


def build(cls: type[T], raw: dict[str, Any], where: str) -> T:
    """`cls(**raw)` with every key checked against the dataclass's typed fields."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}")
    missing = [name for name, f in fields.items() if name not in raw and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: required key(s) {', '.join(missing)} missing")
    values = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in raw.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
