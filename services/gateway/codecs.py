"""The message codecs of every protocol the gateway speaks: protobuf binary and
the protobuf JSON mapping, over google.protobuf (the classes grpcio uses).

Both refuse what the request's message does not define. A misspelled JSON field
(`memberid`) is INVALID_ARGUMENT naming it, not a silently empty member id; and
an unknown binary field is refused rather than forwarded, because the gateway
can only guard the fields it knows (an upstream with a newer contract might
read it as a member id the gateway never checked)."""

from __future__ import annotations

import json
from typing import Any

from connectrpc.codec import Codec
from connectrpc.errors import ConnectError
from google.protobuf import json_format, unknown_fields
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from services.gateway.errors import connect_error, did_you_mean
from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.text import shown

# Messages with a JSON form of their own (a string, a list, any object...):
# json_format checks them itself.
SPECIAL_JSON = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.ListValue",
        "google.protobuf.Struct",
        "google.protobuf.Timestamp",
        "google.protobuf.Value",
        *(
            f"google.protobuf.{name}Value"
            for name in ("Bool", "Bytes", "Double", "Float", "Int32", "Int64", "String")
        ),
        *(f"google.protobuf.UInt{bits}Value" for bits in (32, 64)),
    }
)
# One answer names this many unknown fields at most (the kit sends no more).
MAX_VIOLATIONS = 20
UNKNOWN_FIELD = "UNKNOWN_FIELD"
MALFORMED_REQUEST = "MALFORMED_REQUEST"


def _refused(violations: list[FieldViolation], reason: str) -> ConnectError:
    return connect_error(InvalidArgument(violations, reason=reason))


def _path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


class JsonCodec(Codec[Message, Any]):
    """The protobuf JSON mapping; an unknown field is refused with its name."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        message = message_class()
        descriptor = message.DESCRIPTOR
        try:
            value = json.loads(data or b"{}", object_pairs_hook=_no_duplicates)
        except ValueError as error:
            raise _malformed(descriptor, f"not JSON: {error}") from None
        violations: list[FieldViolation] = []
        _unknown_json_fields(value, descriptor, "", violations)
        if violations:
            raise _refused(violations, UNKNOWN_FIELD)
        try:
            json_format.ParseDict(value, message, ignore_unknown_fields=False)
        except json_format.ParseError as error:
            raise _malformed(descriptor, str(error)) from None
        return message


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; the same key twice is ambiguous, so it is refused."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {shown(key)} appears twice")
        found[key] = value
    return found


def _malformed(descriptor: Descriptor, problem: str) -> ConnectError:
    violation = FieldViolation("request", f"not a valid {descriptor.full_name}: {problem}")
    return _refused([violation], MALFORMED_REQUEST)


def _unknown_json_fields(
    value: Any, descriptor: Descriptor, path: str, violations: list[FieldViolation]
) -> None:
    """Adds a violation for each key that names no field of the message, at any depth."""
    if not isinstance(value, dict) or descriptor.full_name in SPECIAL_JSON:
        return  # a wrong shape is json_format's to refuse, with its own message
    fields = {}
    for field in descriptor.fields:
        fields[field.name] = fields[field.json_name] = field
    for key, item in value.items():
        if len(violations) >= MAX_VIOLATIONS:
            return
        field = fields.get(key)
        if field is None:
            violations.append(FieldViolation(_path(path, key), _not_a_field(key, descriptor)))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and item is not None:
            _unknown_json_values(item, field, _path(path, key), violations)


def _unknown_json_values(
    item: Any, field: FieldDescriptor, path: str, violations: list[FieldViolation]
) -> None:
    message = field.message_type
    if message.GetOptions().map_entry:
        value_field = message.fields_by_name["value"]
        if value_field.type == FieldDescriptor.TYPE_MESSAGE and isinstance(item, dict):
            for key, entry in item.items():
                _unknown_json_fields(entry, value_field.message_type, f"{path}[{key}]", violations)
    elif field.is_repeated and isinstance(item, list):
        for index, entry in enumerate(item):
            _unknown_json_fields(entry, message, f"{path}[{index}]", violations)
    else:
        _unknown_json_fields(item, message, path, violations)


def _not_a_field(key: str, descriptor: Descriptor) -> str:
    known = [field.json_name for field in descriptor.fields]
    hint = did_you_mean(key, known)
    return f"{descriptor.full_name} has no field {shown(key)}; {hint}its fields: {', '.join(known)}"


class BinaryCodec(Codec[Message, Any]):
    """Protobuf binary; a field number the message does not define is refused."""

    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        try:
            message = message_class.FromString(bytes(data))
        except DecodeError as error:
            raise _malformed(message_class.DESCRIPTOR, str(error)) from None
        violations: list[FieldViolation] = []
        _unknown_binary_fields(message, "", violations)
        if violations:
            raise _refused(violations, UNKNOWN_FIELD)
        return message


def _unknown_binary_fields(message: Message, path: str, violations: list[FieldViolation]) -> None:
    descriptor = message.DESCRIPTOR
    numbers = sorted({field.field_number for field in unknown_fields.UnknownFieldSet(message)})
    if numbers:
        where = path or "request"
        listed = ", ".join(str(number) for number in numbers)
        violations.append(
            FieldViolation(where, f"{descriptor.full_name} has no field number {listed}")
        )
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        child = _path(path, field.name)
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for key, entry in value.items():
                    _unknown_binary_fields(entry, f"{child}[{key}]", violations)
        elif field.is_repeated:
            for index, entry in enumerate(value):
                _unknown_binary_fields(entry, f"{child}[{index}]", violations)
        else:
            _unknown_binary_fields(value, child, violations)


def gateway_codecs() -> list[Codec]:
    return [BinaryCodec(), JsonCodec()]
