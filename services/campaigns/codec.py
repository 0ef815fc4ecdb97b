"""Domain dataclasses <-> JSON text, for the store's columns that hold whole values."""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def from_json(cls: type[T], text: str) -> T:
    return _build(cls, json.loads(text))


def to_plain(value: Any) -> Any:
    """JSON-ready dicts, lists and scalars (for comparing two values field by field)."""
    return _plain(value)


SCALARS = frozenset({str, int, bool, float, type(None)})


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in SCALARS:
        return value
    if isinstance(value, Enum):
        return value.value
    if kind is tuple or kind is list:
        return [item if type(item) in SCALARS else _plain(item) for item in value]
    if isinstance(value, dict):
        return {key.value if isinstance(key, Enum) else key: _plain(v) for key, v in value.items()}
    # Scalars inline: most fields are, and a call per field would double the cost.
    plain = {}
    for name in _field_names(kind):
        field_value = getattr(value, name)
        plain[name] = field_value if type(field_value) in SCALARS else _plain(field_value)
    return plain


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(hint: Any, data: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _build(inner, data)
    if dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        return hint(**{name: _build(hints[name], value) for name, value in data.items()})
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(data)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], item) for item in data)
        return tuple(_build(arg, item) for arg, item in zip(args, data, strict=True))
    if origin in (dict, collections.abc.Mapping):
        key_hint, value_hint = typing.get_args(hint)
        return {_build(key_hint, key): _build(value_hint, value) for key, value in data.items()}
    return data
