"""Codes: what an imported code may look like, reading one CSV line, and
generated codes with a check character.

Generated codes use an alphabet of 30 characters without look-alikes: the
digits 2 to 9 and the capital letters but I, L, O and U (no 0/O, 1/I/L, U/V).

The check character is Luhn mod N (N = 30, the ISO/IEC 7064 idea applied to
this alphabet): each character has its index in the alphabet as value; walking
the body from the right, the first, third, fifth... value is doubled and its
two base-30 digits summed (2v // 30 + 2v % 30); the check character's value is
the one that brings the total to a multiple of 30. It catches every
single-character error, and every swap of two adjacent characters but "2" with
"Z" (values 0 and 29), as Luhn misses 0 with 9. The body comes from `secrets`
(codes are bearer vouchers, so they must not be predictable); the caller draws
it outside any transaction, so the work that stores it is safe to run twice.
"""

from __future__ import annotations

import csv
import re
import secrets
from dataclasses import dataclass

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
VALUES = {character: index for index, character in enumerate(ALPHABET)}
MAX_CODE = 64
# Imported codes: printable ASCII without spaces, double quotes or commas.
IMPORTED_CODE = re.compile(r"[!#-+\--~]{1,64}")
HEADER = "code"


def _check_value(body: str) -> int:
    base = len(ALPHABET)
    total = 0
    for position, character in enumerate(reversed(body)):
        value = VALUES[character]
        if position % 2 == 0:
            value *= 2
            value = value // base + value % base
        total += value
    return (base - total % base) % base


def check_character(body: str) -> str:
    """The character that completes `body` (letters of ALPHABET only)."""
    return ALPHABET[_check_value(body)]


def is_valid_generated(code: str) -> bool:
    """True when `code` is a body of ALPHABET characters followed by its check character."""
    if len(code) < 2 or any(character not in VALUES for character in code):
        return False
    return check_character(code[:-1]) == code[-1]


def generate_code(length: int, randbelow=secrets.randbelow) -> str:
    """A code of `length` random characters plus its check character."""
    body = "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(length))
    return body + check_character(body)


@dataclass(frozen=True, slots=True)
class CodeLine:
    """One line of an import: a code, nothing (a header or a blank line), or why not."""

    line: int
    code: str | None = None
    problem: str | None = None


def read_line(number: int, text: str) -> CodeLine:
    """The code in the first CSV column of one line. The message of a problem never
    repeats the line (it may be a code)."""
    if len(text) > 1024:
        return CodeLine(number, problem=f"the line is {len(text):,} characters long")
    stripped = text.strip()
    if not stripped:
        return CodeLine(number)
    try:
        (row,) = list(csv.reader([stripped], strict=True))
    except (csv.Error, ValueError):
        return CodeLine(number, problem="the line is not valid CSV (a quote is not closed?)")
    code = row[0].strip() if row else ""
    if number == 1 and code.lower() == HEADER:
        return CodeLine(number)
    if not code:
        return CodeLine(number, problem="the first column is empty")
    if len(code) > MAX_CODE:
        return CodeLine(number, problem=f"the code is {len(code)} characters; at most {MAX_CODE}")
    if not IMPORTED_CODE.fullmatch(code):
        return CodeLine(
            number,
            problem="a code may hold printable ASCII only, without spaces, double quotes or commas",
        )
    return CodeLine(number, code=code)
