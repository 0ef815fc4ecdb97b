"""Canonical JSON: the bytes every hash of the games is taken over."""

from __future__ import annotations

import json


def canonical_json(document: object) -> str:
    """Sorted keys, no spaces, ASCII: the same bytes in any language."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
