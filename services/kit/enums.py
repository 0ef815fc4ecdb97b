"""Protobuf enum numbers read into the services' IntEnums."""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

E = TypeVar("E", bound=IntEnum)


def known(enum: type[E], value: int) -> E:
    """Unknown numbers (proto3 enums are open) read as UNSPECIFIED (0), which
    validation refuses by name."""
    return enum(value) if value in enum._value2member_map_ else enum(0)
