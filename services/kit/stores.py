"""The one place a service's db setting picks its engine: a path keeps SQLite,
a `postgresql://` URL selects PostgreSQL. Both stores keep one contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
U = TypeVar("U")
S = TypeVar("S")


class UnitStore(Protocol[U]):
    """What a service's use cases see of its store, on either engine."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def write(self, work: Callable[[U], Any]) -> Any: ...
    async def read(self, work: Callable[[U], Any]) -> Any: ...


def is_postgres(db: object) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


def store_for(db: Path | str, *, sqlite: Callable[[Path], S], postgres: Callable[[str], S]) -> S:
    return postgres(str(db)) if is_postgres(db) else sqlite(Path(db))
