"""The tests' PostgreSQL: one real server per session (tools.postgres, the
pgserver wheel, in a temp folder), a new schema for each test that asks."""

from __future__ import annotations

import functools
import itertools
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from services.kit.stores import is_postgres
from tools.postgres import LocalPostgres

ENGINES = ("sqlite", "postgres")
_schemas = itertools.count(1)


@functools.cache
def shared_server() -> LocalPostgres:
    """The session's server, started on first use (the `postgres` fixture stops it).
    Tests kill services, never this server, so commits need not wait for its fsync."""
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="loyalty-pg-")))
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute("ALTER SYSTEM SET synchronous_commit = off")
        connection.execute("SELECT pg_reload_conf()")
    return server


def stop_shared_server() -> None:
    if shared_server.cache_info().currsize:
        server = shared_server()
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
        shared_server.cache_clear()


def fresh_database(tmp_path: Path, engine: str, name: str) -> str:
    """Where a test's service keeps its data: a file in tmp_path, or a schema of its own."""
    if engine == "sqlite":
        return str(tmp_path / f"{name}.db")
    return shared_server().schema(f"t{next(_schemas)}_{name}")


@pytest.fixture(params=ENGINES, name="engine")
def both_engines(request) -> str:
    """A directory's tests on both engines (its conftest imports this fixture)."""
    return request.param


def database_for(request: pytest.FixtureRequest, engine: str, tmp_path: Path, name: str) -> str:
    """Service `name`'s db setting for a test on `engine`: a SQLite file, or a
    fresh PostgreSQL schema (the session then stops the server at its end)."""
    if engine == "postgres":
        request.getfixturevalue("postgres")
    return fresh_database(tmp_path, engine, name)


def stored_rows(db: str, sql: str) -> list[tuple]:
    """What a SELECT (no parameters) finds in a service's database, on either engine."""
    if is_postgres(db):
        with psycopg.connect(db) as connection:
            return [tuple(row) for row in connection.execute(sql).fetchall()]
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return connection.execute(sql).fetchall()
