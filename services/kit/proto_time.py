"""google.protobuf Timestamp and Duration <-> integer microseconds (how we store time)."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2


def timestamp(micros: int) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromMicroseconds(micros)
    return value


def micros(value: timestamp_pb2.Timestamp) -> int:
    return value.ToMicroseconds()


def duration(micros_: int) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromMicroseconds(micros_)
    return value


def duration_micros(value: duration_pb2.Duration) -> int:
    return value.ToMicroseconds()


def optional_micros(message, field: str) -> int | None:
    """The field's microseconds, or None when the field is unset."""
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    return value.ToMicroseconds()
