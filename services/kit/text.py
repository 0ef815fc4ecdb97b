"""Client text echoed back in errors and logs, kept short: a hostile request must
not turn into a 70 KB error (which a default client then refuses as oversized
metadata) or a log line of the same size."""

from __future__ import annotations

SHOWN_CHARACTERS = 100


def shown(value: str, limit: int = SHOWN_CHARACTERS) -> str:
    """`value` quoted, or its first `limit` characters and its length when longer."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def clipped(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, saying so."""
    if len(text) <= limit:
        return text
    suffix = f"... (cut from {len(text):,} characters)"
    return text[: max(0, limit - len(suffix))] + suffix
