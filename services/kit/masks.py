"""Partial updates with a google.protobuf.FieldMask (AIP-134), the same for
every update RPC that takes a whole resource.

- A mask names the fields to change; a named field the update leaves empty is
  cleared.
- No mask: the fields that hold a value in the update change, and nothing else,
  so a client that sends one field cannot wipe the others. Inside the message
  fields listed as `groups` (a campaign's `reward`, `schedule`...) the same holds
  field by field; any other message (a date, a time, a birthday) is one value.
- "*" alone replaces the resource whole: the only way to ask for it.
"""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf import field_mask_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.text import shown

WHOLE = "*"


def populated_paths(message: Message, groups: Collection[str] = ()) -> list[str]:
    """The paths of the fields holding a value (one level into `groups`)."""
    paths = []
    for field, value in message.ListFields():
        if field.name in groups and field.message_type is not None:
            paths += [f"{field.name}.{path}" for path in populated_paths(value)]
        else:
            paths.append(field.name)
    return paths


def check_mask(
    mask: field_mask_pb2.FieldMask,
    descriptor: Descriptor,
    *,
    fixed: Collection[str] = (),
    field: str = "update_mask",
) -> None:
    """INVALID_ARGUMENT naming `field` unless every path names a field that may change."""
    paths = list(mask.paths)
    if paths == [WHOLE]:
        return
    for path in paths:
        if path == WHOLE:
            raise InvalidArgument(
                [FieldViolation(field, '"*" replaces everything and stands alone')]
            )
        if not field_mask_pb2.FieldMask(paths=[path]).IsValidForDescriptor(descriptor):
            raise InvalidArgument([FieldViolation(field, f"no field {shown(path)} to update")])
        if path.split(".", 1)[0] in fixed:
            raise InvalidArgument([FieldViolation(field, f"{shown(path)} cannot be changed")])


def apply_update(
    current: Message,
    update: Message,
    mask: field_mask_pb2.FieldMask,
    *,
    groups: Collection[str] = (),
    fixed: Collection[str] = (),
    field: str = "update_mask",
) -> Message:
    """`current` with the masked (or, without a mask, populated) fields of `update`.
    `fixed` fields (ids, output-only times) never change: they are left out of an
    implied mask, refused in a given one, and kept from `current` on "*"."""
    paths = list(mask.paths)
    result = type(current)()
    if paths == [WHOLE]:
        result.CopyFrom(update)
        for name in fixed:
            _copy_field(current, result, name)
        return result
    check_mask(mask, current.DESCRIPTOR, fixed=fixed, field=field)
    if not paths:
        paths = [path for path in populated_paths(update, groups) if path not in fixed]
    # MergeMessage skips a path whose parent the update does not hold, but a named
    # field left empty is cleared: its parents are made present.
    source = type(update)()
    source.CopyFrom(update)
    for path in paths:
        parent = source
        for name in path.split(".")[:-1]:
            parent = getattr(parent, name)
            parent.SetInParent()
    result.CopyFrom(current)
    field_mask_pb2.FieldMask(paths=paths).MergeMessage(
        source, result, replace_message_field=True, replace_repeated_field=True
    )
    return result


def _copy_field(source: Message, destination: Message, name: str) -> None:
    field_mask_pb2.FieldMask(paths=[name]).MergeMessage(
        source, destination, replace_message_field=True, replace_repeated_field=True
    )
