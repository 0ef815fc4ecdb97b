"""Definitions and events as JSON, for the store (the journal and the
definitions table). One generic codec driven by the dataclasses' type hints,
so a new field needs no new code; a field added later with a default reads
older rows as that default. What each type needs is worked out once per type
(a catch-up journals every event, a rebuild reads them all back)."""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import types
import typing
from collections.abc import Callable
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


Build = Callable[[Any], Any]


@functools.cache
def builder(hint: Any) -> Build | None:
    """What turns a JSON value into a value of `hint`; None when the JSON value
    is one already (str, int, bool)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        build_inner = builder(inner)
        if build_inner is None:
            return None
        return lambda value: None if value is None else build_inner(value)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            build_item = builder(args[0]) or _same
            return lambda value: tuple(map(build_item, value))
        builds = [builder(arg) or _same for arg in args]
        return lambda value: tuple(b(item) for b, item in zip(builds, value, strict=True))
    if origin is frozenset:
        (arg,) = typing.get_args(hint)
        build_item = builder(arg) or _same
        return lambda value: frozenset(map(build_item, value))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_builder(hint)
    return None


def _same(value: Any) -> Any:
    return value


def _dataclass_builder(cls: type) -> Build:
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    builds = {name: build for name in fields if (build := builder(hints[name])) is not None}
    known = frozenset(fields)

    def build(value: dict[str, Any]) -> Any:
        # Keys the type no longer has (a field removed since the row was written) are dropped.
        arguments = value if value.keys() <= known else {k: value[k] for k in known & value.keys()}
        if builds:
            arguments = {k: builds[k](v) if k in builds else v for k, v in arguments.items()}
        return cls(**arguments)

    return build


def _enum_value(value: Enum) -> Any:
    return value.value


# One encoder, not json.dumps's new one per call with these separators. Events
# are flat: it writes their tuples as lists (as plain() does) and asks
# _enum_value only for their enums.
_JOURNAL = json.JSONEncoder(separators=(",", ":"), default=_enum_value)
# The journal has a column of its own for the member.
_IN_COLUMNS = frozenset({"member_id"})
_NO_DEFAULT = object()


@functools.cache
def _event_values(kind: type) -> tuple[tuple[tuple[str, Any], ...], Callable[[Any], tuple]]:
    fields = [f for f in dataclasses.fields(kind) if f.name not in _IN_COLUMNS]
    defaults = tuple(
        (f.name, _NO_DEFAULT if f.default is dataclasses.MISSING else f.default) for f in fields
    )
    return defaults, operator.attrgetter(*(f.name for f in fields))


def encode_event(event: Event) -> tuple[str, str]:
    """The event's kind and journal payload: every field but the member and those
    at their default, so rows stay small (a journal row's size is much of what
    writing it costs; a journal is written for every event)."""
    kind = type(event)
    defaults, values = _event_values(kind)
    payload = {
        name: value
        for (name, default), value in zip(defaults, values(event), strict=True)
        if value != default
    }
    return EVENT_KINDS[kind], _JOURNAL.encode(payload)


def decode_event(kind: str, payload: str, member_id: str) -> Event:
    """Rows of earlier builds hold the member and every field; both read the same."""
    value = json.loads(payload)
    value.setdefault("member_id", member_id)
    return builder(EVENT_TYPES[kind])(value)


def encode_spec(spec: Spec) -> str:
    return json.dumps({SPEC_KINDS[type(spec)]: plain(spec)}, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def decode_spec(text: str) -> Spec:
    """Specs never change once written (a change is a new version), so decoded ones are kept."""
    ((kind, value),) = json.loads(text).items()
    return builder(SPEC_TYPES[kind])(value)
