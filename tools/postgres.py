"""A local PostgreSQL 16 with no root and no install beyond pip: the `pgserver`
wheel runs initdb and the server under a folder of ours, on a Unix socket.
`make run DB=postgres` keeps it under ./var/pg; the tests under a temp folder."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import psycopg

NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class LocalPostgres:
    def __init__(self, data_dir: Path) -> None:
        import pgserver  # dev and run dependency; imported here so services never need it

        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # 'stop': the server stops when this process lets go of it; the data stays.
        self._server = pgserver.get_server(data_dir, cleanup_mode="stop")
        self.url = self._server.get_uri()

    def database(self, name: str) -> str:
        """The URL of database `name`, created when missing."""
        _check(name)
        with psycopg.connect(self.url, autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')
        return self._server.get_uri(name)

    def schema(self, name: str) -> str:
        """A URL whose connections work in a new, empty schema `name` (a test's own)."""
        _check(name)
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            connection.execute(f'CREATE SCHEMA "{name}"')
        return with_search_path(self.url, name)

    def stop(self) -> None:
        self._server.cleanup()


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-c search_path={schema}')}"


def _check(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ValueError(f"not a plain PostgreSQL name: {name!r}")
