"""The tests' PostgreSQL: one real server per session (tools.postgres, the
pgserver wheel, in a temp folder), a new schema for each test that asks."""

from __future__ import annotations

import itertools

from tools.postgres import LocalPostgres

ENGINES = ("sqlite", "postgres")
_schemas = itertools.count(1)


def fresh_database(postgres: LocalPostgres | None, tmp_path, engine: str, name: str) -> str:
    """Where a test's service keeps its data: a file in tmp_path, or a schema of its own."""
    if engine == "sqlite":
        return str(tmp_path / f"{name}.db")
    assert postgres is not None
    return postgres.schema(f"t{next(_schemas)}_{name}")
