"""google.protobuf Timestamp and Duration <-> integer microseconds (how we store time).

Reading a client's Timestamp or Duration names the field: protobuf refuses values
outside years 1 to 9999 (or with nanos out of range) with ValueError, which is the
caller's bad input, INVALID_ARGUMENT, never INTERNAL."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from services.kit.errors import FieldViolation, InvalidArgument


def timestamp(micros_: int) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromMicroseconds(micros_)
    return value


def micros(value: timestamp_pb2.Timestamp, path: str) -> int:
    try:
        return value.ToMicroseconds()
    except ValueError as error:
        raise InvalidArgument(
            [FieldViolation(path, "must be a valid time between years 1 and 9999")]
        ) from error


def optional_micros(message, field: str, path: str | None = None) -> int | None:
    """The field's microseconds, or None when the field is unset; `path` names it
    in a violation (default: the field's name)."""
    if not message.HasField(field):
        return None
    return micros(getattr(message, field), path or field)


def duration(micros_: int) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromMicroseconds(micros_)
    return value


def duration_micros(value: duration_pb2.Duration, path: str) -> int:
    try:
        return value.ToMicroseconds()
    except ValueError as error:
        raise InvalidArgument(
            [FieldViolation(path, "must be a valid duration of at most 10,000 years")]
        ) from error
