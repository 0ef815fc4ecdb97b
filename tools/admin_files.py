"""The managers' files: YAML (or JSON) in the protobuf JSON mapping, one resource per
YAML document (or, where the caller allows it, a list of them per document: a JSON
file of progress definitions), with human units where the mapping wants machine ones:

- a Duration as `48h`, `90m`, `1h30m`, `2d` or `45s` (the mapping's `172800s` too);
- a local date and time (a schedule's `start`, its `exclusions`) as `2026-12-05` or
  `2026-12-05T18:00`;
- a Timestamp (`end_time`) as a local `2026-12-05` or `2026-12-05T18:00` in the zone
  of the nearest `time_zone` beside or above it (the campaign's, the wheel's), or as
  RFC 3339 with an offset (`2026-12-05T17:00:00Z`).

And what a file would change: the fields where a resource differs from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message


class UsageError(Exception):
    """A bad argument or file: exit status 2."""


DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
DURATION_UNITS = (86_400, 3_600, 60, 1)
LOCAL = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?")
OFFSET = re.compile(r".*(?:[Zz]|[+-]\d{2}:\d{2})$")


def load_documents(
    path: str, message_type: type[Message], what: str, lists: bool = False
) -> list[Message]:
    """Every document of the file as a `message_type`; empty documents are skipped.
    With `lists`, a document may also be a list of them (each item one resource)."""
    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid YAML or JSON: {error}") from error
    except ValueError as error:  # a date that does not exist: 2026-02-30
        raise UsageError(f"{path}: {error}") from error
    items = []  # (where, item), named in messages by document, and item in a list
    for number, document in enumerate(documents, start=1):
        where = path if len(documents) == 1 else f"{path}: document {number}"
        if lists and isinstance(document, list):
            items += [(f"{where}: item {i}", item) for i, item in enumerate(document, start=1)]
        else:
            items.append((where, document))
    if not items:
        raise UsageError(f"{path}: no {what} in the file")
    messages = []
    for where, item in items:
        if not isinstance(item, dict):
            raise UsageError(f"{where}: expected a mapping at the top level")
        try:
            plain = _human(item, message_type.DESCRIPTOR, "", "")
            # Anything YAML typed that the mapping wants as text (a bare number as a string).
            messages.append(
                json_format.ParseDict(json.loads(json.dumps(plain, default=str)), message_type())
            )
        except (ValueError, json_format.ParseError) as error:
            raise UsageError(f"{where}: {error}") from error
    return messages


def _field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    return descriptor.fields_by_name.get(key) or next(
        (f for f in descriptor.fields if f.json_name == key), None
    )


def _human(data: dict, descriptor: Descriptor, zone_name: str, at: str) -> dict:
    """`data` with human units turned into the JSON mapping's, by the message's fields."""
    for key in ("time_zone", "timeZone"):
        if isinstance(data.get(key), str):
            zone_name = data[key]
    result: dict[str, Any] = {}
    for key, value in data.items():
        field = _field(descriptor, key) if isinstance(key, str) else None
        path = f"{at}{key}"
        if field is None or field.message_type is None or field.message_type.GetOptions().map_entry:
            result[key] = value
        elif field.is_repeated and isinstance(value, list):
            result[key] = [
                _value(item, field.message_type, zone_name, f"{path}[{index}]")
                for index, item in enumerate(value)
            ]
        else:
            result[key] = _value(value, field.message_type, zone_name, path)
    return result


def _value(value: Any, descriptor: Descriptor, zone_name: str, path: str) -> Any:
    match descriptor.full_name:
        case "google.protobuf.Duration":
            return duration_text(value, path)
        case "google.protobuf.Timestamp":
            return timestamp_text(value, zone_name, path)
        case name if name.endswith(".LocalDateTime"):
            return local_fields(value, path)
    if isinstance(value, dict):
        return _human(value, descriptor, zone_name, f"{path}.")
    return value


def duration_text(value: Any, path: str) -> Any:
    """`48h` -> `172800s`; anything else is left to the mapping (which names the field)."""
    if not isinstance(value, str) or not value:
        return value
    match = DURATION.fullmatch(value.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"{path}: {value!r} is not a duration: write 48h, 90m, 1h30m, 2d or 45s")
    parts = zip(match.groups(), DURATION_UNITS, strict=True)
    seconds = sum(float(part) * unit for part, unit in parts if part)
    # Fixed-point: `:g` writes 30d as 2.592e+06s, which the mapping refuses.
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def _local(value: Any, path: str) -> datetime | None:
    """A date or local date-time from YAML (which reads `2026-12-05` as a date), or None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str) and (match := LOCAL.fullmatch(value.strip())):
        try:
            return datetime(*(int(part or 0) for part in match.groups()))
        except ValueError as error:
            raise ValueError(f"{path}: {value!r}: {error}") from error
    return None


def local_fields(value: Any, path: str) -> Any:
    """`2026-12-05T18:00` -> {year, month, day, hours, minutes, seconds}."""
    moment = _local(value, path)
    if moment is None:
        return value
    if moment.tzinfo is not None:
        raise ValueError(f"{path}: a local time has no offset (the zone is the schedule's)")
    return {
        "year": moment.year,
        "month": moment.month,
        "day": moment.day,
        "hours": moment.hour,
        "minutes": moment.minute,
        "seconds": moment.second,
    }


def timestamp_text(value: Any, zone_name: str, path: str) -> Any:
    """A local date or time in the zone given -> RFC 3339 UTC; an offset is kept as written."""
    if isinstance(value, str) and OFFSET.fullmatch(value.strip()):
        return value
    moment = _local(value, path)
    if moment is None:
        return value
    if moment.tzinfo is None:
        if not zone_name:
            raise ValueError(f"{path}: a local time needs a time_zone beside it, or an offset")
        try:
            moment = moment.replace(tzinfo=ZoneInfo(zone_name))
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{path}: unknown time zone {zone_name!r}") from error
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp.ToJsonString()


def changed_fields(current: Message, wanted: Message, at: str = "") -> list[str]:
    """The paths where `wanted` differs from `current`: field by field inside the
    top level's message fields (a spec's `reward`, `schedule`...), any deeper message
    (a date, a list) being one value."""
    changed = []
    for field in wanted.DESCRIPTOR.fields:
        path = f"{at}{field.name}"
        mine, theirs = getattr(current, field.name), getattr(wanted, field.name)
        if mine == theirs:
            continue
        if not at and field.message_type is not None and not field.is_repeated:
            changed += changed_fields(mine, theirs, f"{path}.") or [path]
        else:
            changed.append(path)
    return changed


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Aligned columns under their headers, as every command prints them."""
    cells = [list(map(str, headers)), *([str(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
