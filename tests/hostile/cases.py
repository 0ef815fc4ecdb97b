"""Seeded hostile requests for any protobuf message, built only from its descriptor.

Every case is raw bytes, so the wire can carry what a Python message cannot hold
(invalid UTF-8, lone surrogates, truncation). The cases of one method all come from one
`random.Random` seeded from the method's full name, so every run sends the same bytes.

A "plausible" request (short valid-looking ids, small positive numbers, times near the
test clock) is the base of most cases: one field at a time is made hostile so that
validation of the other fields passes and the hostile value reaches deeper logic.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

LONG = 70_000
# Huge repeated fields hold small items: the request must stay well under the
# transport's receive limits, or it tests grpc instead of the service.
MANY = (1_000, 10_000)
MAX_DEPTH = 4
# At least this many one-field cases per method; every field gets one even when there are more.
ONE_FIELD_CASES = 40
FEW_FIELDS_CASES = 6
FULLY_HOSTILE_CASES = 10
INVALID_UTF8_CASES = 4

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
SECONDS_PER_DAY = 86_400

HOSTILE_TEXT = (
    "",
    " ",
    " \t\r\n ",
    "\x00",
    "m-1\x00",
    "\x00" * 64,
    "\x01\x07\x08\x1b[31m\x7f\x9f",
    "\u202eevil\u202c",  # right-to-left override
    "\u200f\u200e\u200b\ufeff",  # direction marks, zero-width space, byte-order mark
    "🎰💥👾",
    "👩‍👩‍👧‍👦" * 20,  # one glyph, seven code points each
    "e\u0301" * 40,  # combining marks
    "../../etc/passwd",
    "/dev/null",
    "..\\..\\windows\\win.ini",
    "Europe/" + "x" * 293,  # a 300-character zone-like name
    "Europe/../../../etc/passwd",
    "' OR 1=1 --",
    '"; DROP TABLE x; --',
    "%s%n%x%p",
    "{0}{__class__}",
    "${jndi:ldap://x}",
    "NaN",
    "-1",
    "9" * 40,
    "A" * LONG,
    "🎉" * LONG,
)

INVALID_UTF8 = (
    ("lone high surrogate", b"\xed\xa0\x80"),
    ("lone low surrogate", b"\xed\xbf\xbf"),
    ("overlong '/'", b"\xc0\xaf"),
    ("bytes ff fe", b"\xff\xfe"),
    ("truncated sequence", b"\xe2\x82"),
    ("beyond U+10FFFF", b"\xf4\x90\x80\x80"),
)
# Patched in place on the wire by bytes of the same length, so every length prefix stays right.
MARKER = "hostile-utf8-marker"

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOATS = (
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    3.4028235e38,
)
# (seconds, nanos): outside 0001-9999, past int64, nanos out of range or of the wrong sign.
TIMESTAMPS = (
    (253_402_300_800, 0),
    (-62_135_596_801, 0),
    (2**63 - 1, 0),
    (-(2**63), 0),
    (0, -1),
    (0, 1_000_000_000),
    (0, 2**31 - 1),
    (-1, 999_999_999),
)
DURATIONS = (
    (315_576_000_001, 0),
    (-315_576_000_001, 0),
    (2**63 - 1, 0),
    (-(2**63), 0),
    (1, -1),
    (-1, 1),
    (0, 1_000_000_000),
    (0, -(2**31)),
)


def seed_for(full_name: str) -> int:
    """A seed that depends only on the name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(full_name.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Case:
    index: int
    label: str  # what is hostile, e.g. "config.time_zone = 300 chars"
    payload: bytes
    summary: str  # the request as short printable text


def build_cases(descriptor: Descriptor, seed: int, now_seconds: int) -> list[Case]:
    """The hostile requests for one method's input message, the same for the same seed."""
    builder = _Builder(descriptor, random.Random(seed), now_seconds)
    return [
        Case(index, label, payload, summary)
        for index, (label, payload, summary) in enumerate(builder.cases())
    ]


def describe(message: Message) -> str:
    """Text-format-like, with long values shortened to their start and length."""
    parts = []
    for field, value in message.ListFields():
        if _is_map(field):
            entries = [
                f"{_short(k)}: {_value_text(field, v)}" for k, v in sorted(value.items())[:3]
            ]
            more = f" …({len(value)} entries)" if len(value) > 3 else ""
            parts.append(f"{field.name} {{{', '.join(entries)}{more}}}")
        elif field.is_repeated:
            items = [_item_text(field, item) for item in list(value)[:3]]
            more = f" …({len(value)} items)" if len(value) > 3 else ""
            parts.append(f"{field.name} [{', '.join(items)}{more}]")
        else:
            parts.append(f"{field.name}: {_item_text(field, value)}")
    return " ".join(parts)


def describe_bytes(payload: bytes) -> str:
    more = f"…({len(payload)} bytes)" if len(payload) > 48 else ""
    return f"raw bytes {payload[:48].hex(' ')}{more}"


def _item_text(field: FieldDescriptor, value: Any) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return f"{{{describe(value)}}}"
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known else str(value)
    return _short(value)


def _value_text(map_field: FieldDescriptor, value: Any) -> str:
    return _item_text(map_field.message_type.fields_by_name["value"], value)


def _short(value: Any) -> str:
    if isinstance(value, str | bytes) and len(value) > 40:
        return f"{value[:24]!r}…({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
    return repr(value)


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.is_repeated
        and field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
    )


def _padded(text: str, length: int) -> str:
    return text + "x" * (length - len(text))


Mutation = tuple[str, Callable[[Message], None]]


@dataclass(frozen=True)
class _Slot:
    """One field of the plausible request that a case can make hostile."""

    path: tuple[tuple[str, Any], ...]  # (field name, index or key or None) from the root
    field: FieldDescriptor
    key: Any = None  # an index in a repeated field or a key in a map; None: the field itself

    @property
    def name(self) -> str:
        steps = [name + ("" if key is None else f"[{key!r}]") for name, key in self.path]
        own = self.field.name + ("" if self.key is None else f"[{self.key!r}]")
        return ".".join([*steps, own])

    @property
    def address(self) -> tuple[Any, ...]:
        steps = [part for name, key in self.path for part in (name, key) if part is not None]
        return (*steps, self.field.name, *(() if self.key is None else (self.key,)))

    def overlaps(self, other: _Slot) -> bool:
        """True when one of the two is the other or inside it (changing both could clash)."""
        shorter = min(len(self.address), len(other.address))
        return self.address[:shorter] == other.address[:shorter]

    def holder(self, root: Message) -> Message:
        current = root
        for name, key in self.path:
            current = getattr(current, name)
            if key is not None:
                current = current[key]
        return current

    def assign(self, root: Message, value: Any) -> None:
        holder = self.holder(root)
        if self.key is None:
            setattr(holder, self.field.name, value)
        else:
            getattr(holder, self.field.name)[self.key] = value

    def submessage(self, root: Message) -> Message:
        value = getattr(self.holder(root), self.field.name)
        return value if self.key is None else value[self.key]


@dataclass
class _Budget:
    """What a fully hostile request may still hold, so that it stays a few MiB at most."""

    long_values: int = 3
    huge_fields: int = 1


class _Builder:
    def __init__(self, descriptor: Descriptor, rng: random.Random, now_seconds: int) -> None:
        self.descriptor = descriptor
        self.message_class = message_factory.GetMessageClass(descriptor)
        self.rng = rng
        self.now_seconds = now_seconds
        self.hostile_pools: dict[str, list[Any]] = {}
        self.plausible_days = 0

    def cases(self) -> Iterator[tuple[str, bytes, str]]:
        yield "empty request", b"", "(no fields set)"
        plausible = self.message_class()
        slots: list[tuple[_Slot, list[Mutation]]] = []
        self._fill_plausible(plausible, (), 0, slots)
        yield self._case("plausible", plausible)
        yield from self._one_field_cases(plausible, slots)
        yield from self._few_fields_cases(plausible, slots)
        hostile = []
        for number in range(FULLY_HOSTILE_CASES):
            message = self.message_class()
            self._fill_hostile(message, 0, _Budget())
            hostile.append(message)
            yield self._case(f"fully hostile #{number}", message)
        yield from self._invalid_utf8_cases(plausible, slots)
        yield from self._broken_wire_cases(plausible, hostile[0])

    def _case(self, label: str, message: Message) -> tuple[str, bytes, str]:
        return label, _serialized(message), describe(message)

    # The plausible request, and what each of its fields can be mutated to.

    def _fill_plausible(
        self,
        message: Message,
        path: tuple[tuple[str, Any], ...],
        depth: int,
        slots: list[tuple[_Slot, list[Mutation]]],
    ) -> None:
        unchosen = set()
        for oneof in message.DESCRIPTOR.oneofs:
            chosen = self.rng.choice(oneof.fields)
            unchosen.update(field.name for field in oneof.fields if field is not chosen)
        for field in message.DESCRIPTOR.fields:
            populate = field.name not in unchosen
            if _is_map(field):
                self._plausible_map(message, field, path, depth, slots)
            elif field.is_repeated:
                self._plausible_repeated(message, field, path, depth, slots)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                slot = _Slot(path, field)
                slots.append((slot, self._message_mutations(slot)))
                if populate and depth < MAX_DEPTH:
                    step = (field.name, None)
                    self._plausible_message(
                        getattr(message, field.name), field, step, path, depth, slots
                    )
            else:
                value = self._plausible_scalar(field)
                if populate:
                    setattr(message, field.name, value)
                slot = _Slot(path, field)
                slots.append((slot, self._scalar_mutations(slot, value)))

    def _plausible_message(
        self,
        message: Message,
        field: FieldDescriptor,
        step: tuple[str, Any],
        path: tuple[tuple[str, Any], ...],
        depth: int,
        slots: list[tuple[_Slot, list[Mutation]]],
    ) -> None:
        """`field` has the message's type; `step` leads from `path` to the message."""
        full_name = field.message_type.full_name
        if full_name == TIMESTAMP:
            # Later fields a day later: a start declared before its end comes before it.
            self.plausible_days += 1
            message.seconds = self.now_seconds + self.plausible_days * SECONDS_PER_DAY
        elif full_name == DURATION:
            message.seconds = 3600
        else:
            message.SetInParent()
            self._fill_plausible(message, (*path, step), depth + 1, slots)

    def _plausible_repeated(self, message, field, path, depth, slots) -> None:
        """Two items, because a list often needs more than one."""
        container = getattr(message, field.name)
        slots.append((_Slot(path, field), self._repeated_mutations(_Slot(path, field))))
        element = _Slot(path, field, 0)
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            value = self._plausible_scalar(field)
            container.extend([value, value])
            slots.append((element, self._scalar_mutations(element, value)))
        elif depth < MAX_DEPTH:
            self._plausible_message(container.add(), field, (field.name, 0), path, depth, slots)
            container.add().CopyFrom(container[0])
            slots.append((element, self._message_mutations(element)))

    def _plausible_map(self, message, field, path, depth, slots) -> None:
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        key = self._plausible_scalar(key_field)
        container = getattr(message, field.name)
        whole = _Slot(path, field)
        slots.append((whole, self._map_mutations(whole, key_field, key)))
        entry = _Slot(path, field, key)
        if value_field.type != FieldDescriptor.TYPE_MESSAGE:
            value = self._plausible_scalar(value_field)
            container[key] = value
            slots.append((entry, self._scalar_mutations(entry, value, value_field)))
        elif depth < MAX_DEPTH:
            step = (field.name, key)
            self._plausible_message(container[key], value_field, step, path, depth, slots)
            slots.append((entry, self._message_mutations(entry, value_field)))

    def _plausible_scalar(self, field: FieldDescriptor) -> Any:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            # Field names are all reflection tells about meaning: ids and zones get
            # values that look valid, so validation lets the other fields through.
            name = field.name
            if name.endswith("zone"):
                return "Europe/Paris"
            if name == "id" or name.endswith(("_id", "_ids")):
                return "m-1"
            return "" if name.endswith("token") else "alpha"
        if kind == FieldDescriptor.TYPE_BYTES:
            return self.rng.randbytes(32)
        if kind == FieldDescriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        if kind == FieldDescriptor.TYPE_ENUM:
            numbers = [value.number for value in field.enum_type.values if value.number]
            return self.rng.choice(numbers) if numbers else 0
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return 1.5
        return self.rng.choice((1, 2, 10, 100))

    def _scalar_values(self, field: FieldDescriptor, plausible: Any) -> list[tuple[str, Any]]:
        """(label, value), the most telling first, then the rest in a seeded order."""
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            first = [
                ("300 chars", _padded(plausible, 300)),
                ("70,000 chars", _padded(plausible, LONG)),
                ("with NUL", plausible + "\x00"),
            ]
            rest = [
                ("surrounded by spaces", f" {plausible} "),
                ("upper case", plausible.upper()),
                ("with RTL override", plausible + "\u202e"),
                ("with /../..", plausible + "/../.."),
                ("with emoji", plausible + "🎰"),
                ("with newline", plausible + "\n"),
                *((_short(text), text) for text in HOSTILE_TEXT),
            ]
        elif kind == FieldDescriptor.TYPE_BYTES:
            first = [("70,000 bytes", self.rng.randbytes(LONG)), ("empty", b"")]
            rest = [
                ("64 NULs", b"\x00" * 64),
                ("33 bytes ff", b"\xff" * 33),
                ("1 byte", self.rng.randbytes(1)),
                ("31 bytes", self.rng.randbytes(31)),
                ("invalid UTF-8", b"\xed\xa0\x80"),
            ]
        elif kind == FieldDescriptor.TYPE_BOOL:
            return [(repr(not plausible), not plausible)]
        elif kind == FieldDescriptor.TYPE_ENUM:
            top = max(value.number for value in field.enum_type.values)
            first = [("unknown number", top + 1), ("-1", -1), ("max int32", 2**31 - 1)]
            rest = [("min int32", -(2**31)), ("0", 0)]
            rest += [(value.name, value.number) for value in field.enum_type.values]
        elif kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            first = [(repr(value), value) for value in FLOATS[:3]]
            rest = [(repr(value), value) for value in FLOATS[3:]]
        else:
            low, high = INT_RANGES[kind]
            telling = dict.fromkeys([0, -1 if low else high, low, high])
            first = [(str(value), value) for value in telling]
            extra = [1, low + 1, high - 1, 2**31 - 1, 2**31, 2**53 + 1, -(2**31) - 1]
            rest = [(str(value), value) for value in extra if low <= value <= high]
        # Compared by repr: -0.0 == 0 and nan != nan, but each is a case of its own.
        taken = {repr(value) for _, value in first}
        rest = [item for item in rest if repr(item[1]) not in taken]
        self.rng.shuffle(rest)
        return [*first, *rest]

    def _scalar_mutations(
        self, slot: _Slot, plausible: Any, field: FieldDescriptor | None = None
    ) -> list[Mutation]:
        values = self._scalar_values(field or slot.field, plausible)
        return [(label, _assigning(slot, value)) for label, value in values]

    def _message_mutations(
        self, slot: _Slot, field: FieldDescriptor | None = None
    ) -> list[Mutation]:
        full_name = (field or slot.field).message_type.full_name
        mutations: list[Mutation] = [("left empty", lambda root: _left_empty(slot, root))]
        if slot.key is None:
            mutations.append(("unset", lambda root: slot.holder(root).ClearField(slot.field.name)))
        extremes = {TIMESTAMP: TIMESTAMPS, DURATION: DURATIONS}.get(full_name, ())
        for seconds, nanos in extremes:
            label = f"seconds={seconds} nanos={nanos}"
            mutations.append((label, _setting_time(slot, seconds, nanos)))
        return mutations

    def _repeated_mutations(self, slot: _Slot) -> list[Mutation]:
        count = self.rng.choice(MANY)
        return [
            (f"{count} items", lambda root: _repeat_first(slot, root, count)),
            ("no items", lambda root: slot.holder(root).ClearField(slot.field.name)),
        ]

    def _map_mutations(
        self, slot: _Slot, key_field: FieldDescriptor, plausible_key: Any
    ) -> list[Mutation]:
        count = self.rng.choice(MANY)
        mutations: list[Mutation] = [
            (f"{count} entries", lambda root: _copy_entry(slot, root, plausible_key, count))
        ]
        for label, key in self._scalar_values(key_field, plausible_key)[:4]:
            mutations.append(
                (f"key {label}", lambda root, key=key: _rekey(slot, root, plausible_key, key))
            )
        mutations.append(("no entries", lambda root: slot.holder(root).ClearField(slot.field.name)))
        return mutations

    # Cases built on the plausible request.

    def _mutated(self, plausible: Message, mutations: list[Mutation]) -> Message:
        message = self.message_class()
        message.CopyFrom(plausible)
        for _, mutate in mutations:
            mutate(message)
        return message

    def _one_field_cases(self, plausible, slots) -> Iterator[tuple[str, bytes, str]]:
        """Round after round, each field's next mutation, until every field had one
        and at least ONE_FIELD_CASES were made."""
        budget = max(len(slots), ONE_FIELD_CASES)
        made = 0
        for round_number in range(max((len(mutations) for _, mutations in slots), default=0)):
            for slot, mutations in slots:
                if made == budget:
                    return
                if round_number < len(mutations):
                    label, mutate = mutations[round_number]
                    made += 1
                    message = self._mutated(plausible, [(label, mutate)])
                    yield self._case(f"{slot.name} = {label}", message)

    def _few_fields_cases(self, plausible, slots) -> Iterator[tuple[str, bytes, str]]:
        for _ in range(FEW_FIELDS_CASES if len(slots) > 1 else 0):
            picks: list[tuple[_Slot, Mutation]] = []
            for slot, mutations in self.rng.sample(slots, self.rng.randint(2, min(4, len(slots)))):
                # A field and one inside it are never both changed: clearing a list
                # and then changing its first item cannot be applied.
                if not any(slot.overlaps(picked) for picked, _ in picks):
                    pick = (slot, self.rng.choice(mutations))
                    # Nor two members of one oneof: setting one clears the other, and a
                    # change inside the cleared one then has nothing to change.
                    try:
                        self._mutated(plausible, [mutation for _, mutation in [*picks, pick]])
                    except (IndexError, KeyError):
                        continue
                    picks.append(pick)
            message = self._mutated(plausible, [mutation for _, mutation in picks])
            label = "; ".join(f"{slot.name} = {mutation[0]}" for slot, mutation in picks)
            yield self._case(label, message)

    def _invalid_utf8_cases(self, plausible, slots) -> Iterator[tuple[str, bytes, str]]:
        strings = [slot for slot, _ in slots if _slot_type(slot) == FieldDescriptor.TYPE_STRING]
        chosen = self.rng.sample(strings, min(INVALID_UTF8_CASES, len(strings)))
        marker = MARKER.encode()
        sequences = self.rng.sample(INVALID_UTF8, len(chosen))
        for slot, (label, sequence) in zip(chosen, sequences, strict=True):
            message = self._mutated(plausible, [("marker", _assigning(slot, MARKER))])
            payload = _serialized(message)
            patched = payload.replace(marker, (sequence + marker)[: len(marker)])
            yield f"{slot.name} = invalid UTF-8 ({label})", patched, describe_bytes(patched)

    def _broken_wire_cases(self, *messages: Message) -> Iterator[tuple[str, bytes, str]]:
        for number, message in enumerate(messages):
            payload = _serialized(message)
            if len(payload) > 1:
                cut = payload[: self.rng.randrange(1, len(payload))]
                yield f"truncated message #{number}", cut, describe_bytes(cut)
        for number in range(3):
            blob = self.rng.randbytes(self.rng.choice((1, 3, 16, 256, 4096)))
            yield f"random bytes #{number}", blob, describe_bytes(blob)
        first = min((field.number for field in self.descriptor.fields), default=1)
        crafted = {
            "length prefix past the end": _tag(first, 2) + _varint(1_000_000) + b"ab",
            "eleven-byte varint": _tag(first, 0) + b"\xff" * 10 + b"\x01",
            "field number 0": b"\x00\x01",
            "end group without start": _tag(first, 4),
            "wrong wire type for every field": b"".join(
                _tag(field.number, 5) + b"\xff\xff\xff\xff" for field in self.descriptor.fields
            ),
        }
        for label, payload in crafted.items():
            yield label, payload, describe_bytes(payload)

    # Requests hostile everywhere.

    def _fill_hostile(self, message: Message, depth: int, budget: _Budget) -> None:
        for field in message.DESCRIPTOR.fields:
            if self.rng.random() < 0.4:
                continue
            container = getattr(message, field.name)
            if _is_map(field):
                key_field = field.message_type.fields_by_name["key"]
                value_field = field.message_type.fields_by_name["value"]
                for _ in range(self.rng.randint(0, 3)):
                    key = self._hostile_scalar(key_field, budget)
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        self._hostile_message(container[key], value_field, depth, budget)
                    else:
                        container[key] = self._hostile_scalar(value_field, budget)
            elif field.is_repeated:
                huge = budget.huge_fields > 0 and self.rng.random() < 0.05
                if not huge:
                    for _ in range(self.rng.randint(0, 3)):
                        self._hostile_item(container, field, depth, budget)
                    continue
                # The many items are copies of one that holds nothing long or huge.
                budget.huge_fields -= 1
                self._hostile_item(container, field, depth, _Budget(0, 0))
                container.extend([container[-1]] * (self.rng.choice(MANY) - 1))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                self._hostile_message(container, field, depth, budget)
            else:
                setattr(message, field.name, self._hostile_scalar(field, budget))

    def _hostile_item(self, container, field: FieldDescriptor, depth: int, budget: _Budget) -> None:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            self._hostile_message(container.add(), field, depth, budget)
        else:
            container.append(self._hostile_scalar(field, budget))

    def _hostile_message(self, message, field, depth: int, budget: _Budget) -> None:
        extremes = {TIMESTAMP: TIMESTAMPS, DURATION: DURATIONS}.get(field.message_type.full_name)
        if extremes:
            message.seconds, message.nanos = self.rng.choice(extremes)
        elif depth >= MAX_DEPTH:
            message.SetInParent()  # nested messages left empty
        else:
            message.SetInParent()
            self._fill_hostile(message, depth + 1, budget)

    def _hostile_scalar(self, field: FieldDescriptor, budget: _Budget) -> Any:
        if field.full_name not in self.hostile_pools:
            plausible = self._plausible_scalar(field)
            pool = [value for _, value in self._scalar_values(field, plausible)]
            self.hostile_pools[field.full_name] = pool
        values = self.hostile_pools[field.full_name]
        if budget.long_values <= 0:
            values = [value for value in values if not _is_long(value)]
        value = self.rng.choice(values)
        if _is_long(value):
            budget.long_values -= 1
        return value


def _serialized(message: Message) -> bytes:
    # Map entries go out sorted by key: upb's own order changes from one process to the next.
    return message.SerializeToString(deterministic=True)


def _is_long(value: Any) -> bool:
    return isinstance(value, str | bytes) and len(value) >= 1_000


def _slot_type(slot: _Slot) -> int:
    if _is_map(slot.field) and slot.key is not None:
        return slot.field.message_type.fields_by_name["value"].type
    if slot.field.is_repeated and slot.key is None:
        return -1  # the repeated field as a whole, not one of its values
    return slot.field.type


def _assigning(slot: _Slot, value: Any) -> Callable[[Message], None]:
    return lambda root: slot.assign(root, value)


def _setting_time(slot: _Slot, seconds: int, nanos: int) -> Callable[[Message], None]:
    def apply(root: Message) -> None:
        target = slot.submessage(root)
        target.seconds, target.nanos = seconds, nanos

    return apply


def _left_empty(slot: _Slot, root: Message) -> None:
    target = slot.submessage(root)
    target.Clear()
    target.SetInParent()


def _repeat_first(slot: _Slot, root: Message, count: int) -> None:
    container = getattr(slot.holder(root), slot.field.name)
    if not container:  # a list of messages below MAX_DEPTH: many empty ones
        container.add()
    container.extend([container[0]] * (count - len(container)))


def _copy_entry(slot: _Slot, root: Message, key: Any, count: int) -> None:
    container = getattr(slot.holder(root), slot.field.name)
    for number in range(count):
        new_key = f"{key}{number}" if isinstance(key, str) else key + number
        if slot.field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
            container[new_key].CopyFrom(container[key])
        else:
            container[new_key] = container[key]


def _rekey(slot: _Slot, root: Message, old: Any, new: Any) -> None:
    container = getattr(slot.holder(root), slot.field.name)
    if slot.field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
        container[new].CopyFrom(container[old])
    else:
        container[new] = container[old]
    if new != old:
        del container[old]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)
