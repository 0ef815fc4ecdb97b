"""Definitions and events as JSON, for the store (the journal and the
definitions table). One generic codec driven by the dataclasses' type hints,
so a new field needs no new code; a field added later with a default reads
older rows as that default."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from enum import Enum
from typing import Any

from services.progress.domain.definitions import Badge, Challenge, Spec, Streak, TierProgram
from services.progress.domain.events import (
    ActivityEvent,
    ChallengeJoined,
    Event,
    PlayEvent,
    PointsCredited,
    PointsReversed,
)

EVENT_TYPES: dict[str, type] = {
    "points_credited": PointsCredited,
    "points_reversed": PointsReversed,
    "activity": ActivityEvent,
    "play": PlayEvent,
    "challenge_joined": ChallengeJoined,
}
EVENT_KINDS = {kind: name for name, kind in EVENT_TYPES.items()}
SPEC_TYPES: dict[str, type] = {
    "tier_program": TierProgram,
    "badge": Badge,
    "streak": Streak,
    "challenge": Challenge,
}
SPEC_KINDS = {kind: name for name, kind in SPEC_TYPES.items()}


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(plain(item) for item in value)
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return build(hint, value)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(build(args[0], item) for item in value)
        return tuple(build(arg, item) for arg, item in zip(args, value, strict=True))
    if origin is frozenset:
        (arg,) = typing.get_args(hint)
        return frozenset(build(arg, item) for item in value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        names = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{k: build(hints[k], v) for k, v in value.items() if k in names})
    return value


@functools.cache
def _names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


def encode_event(event: Event) -> tuple[str, str]:
    # Events are flat: a faster path than plain() for the journal's hot insert.
    values = {}
    for name in _names(type(event)):
        value = getattr(event, name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = plain(value)
        values[name] = value
    return EVENT_KINDS[type(event)], json.dumps(values, separators=(",", ":"))


def decode_event(kind: str, payload: str) -> Event:
    return build(EVENT_TYPES[kind], json.loads(payload))


def encode_spec(spec: Spec) -> str:
    return json.dumps({SPEC_KINDS[type(spec)]: plain(spec)}, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def decode_spec(text: str) -> Spec:
    """Specs never change once written (a change is a new version), so decoded ones are kept."""
    ((kind, value),) = json.loads(text).items()
    return build(SPEC_TYPES[kind], value)
