"""SQLite for every service: one writer thread that group-commits, readers on aiosqlite.

Why a thread of our own for writes: awaiting aiosqlite statement by statement
costs an event-loop round trip per statement and capped a gRPC ledger near
1,000-1,400 writes/s here. The writer thread runs each group's whole
transaction in one hop: it takes every request queued, opens one transaction,
runs each request inside its own savepoint (a failing request rolls back alone),
commits once (one fsync for the group) and hands the results back to the loop.
aiosqlite's public API has no such hop, so reads stay on aiosqlite and the
group-commit path owns a plain sqlite3 connection.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog

log = structlog.get_logger()

T = TypeVar("T")

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: an acknowledged write survives power loss, not only a process crash.
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def connect(path: Path | str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        connection.execute(pragma)
    return connection


def migrate(connection: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """Apply the migrations not yet applied; PRAGMA user_version counts them."""
    applied = connection.execute("PRAGMA user_version").fetchone()[0]
    if applied > len(migrations):
        raise RuntimeError(
            f"database schema version {applied} is newer than this code ({len(migrations)})"
        )
    for version, script in enumerate(migrations[applied:], start=applied + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version={version}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        log.info("schema_migrated", version=version)


def _statements(script: str) -> list[str]:
    """Split a script on complete statements (triggers hold semicolons inside)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current!r}")
    return statements


@dataclass(slots=True)
class _Request:
    work: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


_STOP = object()


class GroupCommitWriter:
    """The database's only writing connection, on a thread of its own."""

    def __init__(
        self,
        path: Path | str,
        migrations: Sequence[str],
        max_group: int = 1024,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._path = path
        self._migrations = migrations
        self._max_group = max_group
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"writer:{Path(self._path).name}", daemon=True
        )
        self._thread.start()
        await ready

    async def submit(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run work(connection) inside the next group's transaction; its own
        savepoint means an exception rolls back this work alone."""
        if self._thread is None:
            raise RuntimeError("writer not started")
        future = asyncio.get_running_loop().create_future()
        self._queue.put(_Request(work, future))
        return await future

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _run(self, ready: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            connection = connect(self._path)
            migrate(connection, self._migrations)
        except BaseException as error:
            loop.call_soon_threadsafe(ready.set_exception, error)
            return
        loop.call_soon_threadsafe(ready.set_result, None)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                stop_after = False
                while len(group) < self._max_group:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop_after = True
                        break
                    group.append(item)
                outcomes = self._commit_group(connection, group)
                loop.call_soon_threadsafe(self._resolve, outcomes)
                if stop_after:
                    return
        finally:
            connection.close()

    def _commit_group(self, connection: sqlite3.Connection, group: list[_Request]):
        outcomes: list[tuple[_Request, Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for request in group:
                connection.execute("SAVEPOINT request")
                try:
                    result = request.work(connection)
                except Exception as error:
                    connection.execute("ROLLBACK TO request")
                    connection.execute("RELEASE request")
                    outcomes.append((request, None, error))
                else:
                    connection.execute("RELEASE request")
                    outcomes.append((request, result, None))
            connection.execute("COMMIT")
        except Exception as error:
            log.exception("group_commit_failed", size=len(group))
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return [(request, None, error) for request in group]
        return outcomes

    def _resolve(self, outcomes) -> None:
        for request, result, error in outcomes:
            if request.future.done():
                continue
            if error is None:
                request.future.set_result(result)
            else:
                request.future.set_exception(error)
        if self._on_commit is not None:
            self._on_commit()


async def open_reader(path: Path | str) -> aiosqlite.Connection:
    """A read-only connection; WAL lets it read a committed snapshot beside the writer."""
    reader = await aiosqlite.connect(path)
    await reader.execute("PRAGMA query_only=ON")
    await reader.execute("PRAGMA busy_timeout=5000")
    return reader
