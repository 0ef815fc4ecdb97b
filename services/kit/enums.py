"""Protobuf enum numbers read into the services' IntEnums."""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

E = TypeVar("E", bound=IntEnum)


def is_known(enum: type[E], value: int) -> bool:
    return value in enum._value2member_map_


def known(enum: type[E], value: int) -> E:
    """Unknown numbers (proto3 enums are open) read as UNSPECIFIED (0), which
    validation refuses by name. A map lookup, not enum(value): it is on the
    ledger's per-transfer path."""
    member = enum._value2member_map_.get(value)
    return enum(0) if member is None else member
