"""The draw, hmac-sha256-v1, exactly as docs/games.md specifies it: a byte stream
from HMAC-SHA256 of the server seed over "{client_seed}:{nonce}:{round}", read as
big-endian 32-bit words, rejection sampling below n, the segment by cumulative weight."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ALGORITHM = "hmac-sha256-v1"
SERVER_SEED_BYTES = 32
WORD_RANGE = 2**32


class DrawStream:
    """HMAC-SHA256(key = server seed bytes, message = UTF-8 of
    "{client_seed}:{nonce}:{round}") for round = 0, 1, 2, ... concatenated, read
    four bytes at a time as big-endian unsigned integers."""

    def __init__(self, server_seed: bytes, client_seed: str, nonce: int) -> None:
        self._key = server_seed
        self._prefix = f"{client_seed}:{nonce}:"
        self._round = 0
        self._buffer = b""

    def next_u32(self) -> int:
        if len(self._buffer) < 4:
            message = f"{self._prefix}{self._round}".encode()
            self._buffer += hmac.new(self._key, message, hashlib.sha256).digest()
            self._round += 1
        word, self._buffer = self._buffer[:4], self._buffer[4:]
        return int.from_bytes(word, "big")

    def uniform_below(self, n: int) -> int:
        return uniform_below(self.next_u32, n)


def uniform_below(next_word: Callable[[], int], n: int) -> int:
    """Rejection sampling over 32-bit words, so every value below n is exactly
    equally likely: a word at or above the largest multiple of n is drawn again."""
    if not 0 < n <= WORD_RANGE:
        raise ValueError(f"n must be in 1..2^32, got {n}")
    limit = (WORD_RANGE // n) * n
    while True:
        x = next_word()
        if x < limit:
            return x % n


def segment_for(weights: Sequence[int], r: int) -> int:
    """The first index whose cumulative weight exceeds r."""
    cumulative = 0
    for index, weight in enumerate(weights):
        cumulative += weight
        if cumulative > r:
            return index
    raise ValueError(f"r={r} is not below the total weight {cumulative}")


@dataclass(frozen=True, slots=True)
class Draw:
    value: int
    segment_index: int


def draw_segment(server_seed: bytes, client_seed: str, nonce: int, weights: Sequence[int]) -> Draw:
    r = DrawStream(server_seed, client_seed, nonce).uniform_below(sum(weights))
    return Draw(value=r, segment_index=segment_for(weights, r))


def seed_commitment(server_seed: bytes) -> str:
    return hashlib.sha256(server_seed).hexdigest()
