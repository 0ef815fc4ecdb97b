"""One paging scheme for every List RPC of the suite (AIP-158).

`page_size` 0 means the default, a negative one is INVALID_ARGUMENT and a
larger one than the method allows is clamped. A page token is opaque to
clients: the position after the last item returned (a sequence number or an
id), bound to the query that made it, so a token from another query, a
forged one or a damaged one is INVALID_PAGE_TOKEN instead of a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.kit.errors import FieldViolation, InvalidArgument, Violations

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
TOKEN_VERSION = 1
MAX_POSITION = 2**63 - 1
MAX_TOKEN_CHARACTERS = 512

Position = TypeVar("Position", int, str)
Item = TypeVar("Item")


def page_size(violations: Violations, requested: int, maximum: int = MAX_PAGE_SIZE) -> int:
    violations.check(requested >= 0, "page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, maximum)


def _query_tag(query: Sequence[object]) -> str:
    return hashlib.sha256(repr(tuple(query)).encode()).hexdigest()[:16]


def encode_page_token(position: int | str, query: Sequence[object]) -> str:
    raw = json.dumps([TOKEN_VERSION, _query_tag(query), position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, query: Sequence[object], kind: type[Position]) -> Position | None:
    """The position a token carries (None for the first page), or INVALID_PAGE_TOKEN."""
    if not token:
        return None
    try:
        if len(token) > MAX_TOKEN_CHARACTERS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, tag, position = json.loads(raw)
        valid = (
            version == TOKEN_VERSION
            and tag == _query_tag(query)
            and type(position) is kind
            and (kind is str or 0 <= position <= MAX_POSITION)
        )
        if not valid:
            raise ValueError("not this query's token")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token from this query's previous page")],
            reason="INVALID_PAGE_TOKEN",
        ) from error
    return position


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    items: list[Item]
    next_page_token: str


def page_of(rows: list[Item], size: int, position_of, query: Sequence[object]) -> Page[Item]:
    """A page from `size + 1` rows fetched after the token's position: the extra
    row only says that there is a next page."""
    if len(rows) <= size:
        return Page(rows, "")
    kept = rows[:size]
    return Page(kept, encode_page_token(position_of(kept[-1]), query))
