"""SQLite for every service: one writer task that group-commits, readers beside it.

Why not aiosqlite for writes: awaiting it statement by statement costs an
event-loop round trip per statement and capped a gRPC ledger near 1,000-1,400
writes/s here. Why not a writer thread running whole transactions either: every
sqlite3 call releases the GIL, and taking it back from a busy event loop cost up
to a switch interval each time; a ledger that ran its statements on a thread of
its own measured 0.3 of the gRPC echo ceiling. So the writer is a task on the
event loop: it takes every request queued, opens one transaction, runs each
request's statements in its own savepoint (a failing request rolls back alone;
statements hit SQLite's page cache and WAL, microseconds each), and hands only
COMMIT, the fsync, to a thread: one GIL handoff per group, and the loop keeps
serving calls, which queue up for the next group, while the disk syncs.
Reads run on a connection of their own, on a thread of their own (see
SqliteStore), so they never wait behind the writer's fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypedDict, TypeVar

import structlog

from services.kit.feed_sequences import run_unit
from services.kit.metrics import StoreMetrics

log = structlog.get_logger()

T = TypeVar("T")
U = TypeVar("U")

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
    """The database's only writing connection, driven by one task on the loop."""

    def __init__(
        self,
        path: Path | str,
        migrations: Sequence[str],
        max_group: int = 1024,
        on_commit: Callable[[], None] | None = None,
        on_rollback: Callable[[], None] | None = None,
        metrics: StoreMetrics | None = None,
        cache_mb: int | None = None,
    ) -> None:
        self._path = path
        self._cache_mb = cache_mb
        self._migrations = migrations
        self._max_group = max_group
        self._on_commit = on_commit
        self._metrics = metrics
        # Called whenever work is rolled back (one request's savepoint, or a whole
        # group), so state kept beside the database can be dropped with it.
        self._on_rollback = on_rollback or (lambda: None)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._connection: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._syncer: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix=f"commit:{Path(self._path).name}")
        loop = asyncio.get_running_loop()
        self._connection = await loop.run_in_executor(self._syncer, self._open)
        self._task = asyncio.create_task(self._run(), name=f"writer:{Path(self._path).name}")

    def _open(self) -> sqlite3.Connection:
        connection = connect(self._path)
        if self._cache_mb is not None:
            connection.execute(f"PRAGMA cache_size=-{self._cache_mb * 1024}")
        try:
            migrate(connection, self._migrations)
        except BaseException:
            connection.close()
            raise
        return connection

    async def submit(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run work(connection) inside the next group's transaction; its own
        savepoint means an exception rolls back this work alone. `work` runs on
        the event loop and must not block on anything but SQLite."""
        if self._task is None:
            raise RuntimeError("writer not started")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Request(work, future))
        return await future

    async def close(self) -> None:
        if self._task is None:
            return
        self._queue.put_nowait(_STOP)
        await self._task
        self._task = None
        assert self._connection is not None and self._syncer is not None
        self._connection.close()
        self._syncer.shutdown()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is _STOP:
                return
            group = [first]
            stop_after = False
            while len(group) < self._max_group and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _STOP:
                    stop_after = True
                    break
                group.append(item)
            outcomes = await self._commit_group(group)
            for request, result, error in outcomes:
                if request.future.done():
                    continue
                if error is None:
                    request.future.set_result(result)
                else:
                    request.future.set_exception(error)
            if self._on_commit is not None:
                self._on_commit()
            if stop_after:
                return

    async def _commit_group(self, group: list[_Request]):
        connection = self._connection
        assert connection is not None
        outcomes: list[tuple[_Request, Any, BaseException | None]] = []
        started = time.perf_counter()
        try:
            connection.execute("BEGIN IMMEDIATE")
            for request in group:
                connection.execute("SAVEPOINT request")
                try:
                    result = request.work(connection)
                except Exception as error:
                    connection.execute("ROLLBACK TO request")
                    connection.execute("RELEASE request")
                    self._on_rollback()
                    outcomes.append((request, None, error))
                else:
                    connection.execute("RELEASE request")
                    outcomes.append((request, result, None))
            await asyncio.get_running_loop().run_in_executor(
                self._syncer, connection.execute, "COMMIT"
            )
        except BaseException as error:
            self._on_rollback()
            if not isinstance(error, Exception):
                raise
            log.exception("group_commit_failed", size=len(group))
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if self._metrics is not None:
                self._metrics.failed()
            return [(request, None, error) for request in group]
        if self._metrics is not None:
            # Per group, not per write: a few microseconds against a commit's fsync.
            self._metrics.committed(len(group), time.perf_counter() - started)
        return outcomes


class StoreOptions(TypedDict, total=False):
    """What a service's store passes on to SqliteStore as it is."""

    on_commit: Callable[[], None] | None
    metrics: StoreMetrics | None


class SqliteStore(Generic[U]):
    """A service's SQLite file behind its unit of work.

    `write(work)` runs `work(unit)` inside the next group commit; `read(work)`
    runs it on a read-only connection on a thread of its own, in one read
    transaction, so a read sees one committed snapshot and never queues behind
    the writer's fsync. Both hand `work` the same kind of unit, so every SQL
    statement is written once and use cases never see a connection. (aiosqlite
    runs one statement at a time on its thread and has no public way to run a
    whole function there, which is what one shared unit needs.)
    """

    def __init__(
        self,
        path: Path | str,
        migrations: Sequence[str],
        unit: Callable[[sqlite3.Connection], U],
        on_commit: Callable[[], None] | None = None,
        *,
        write_unit: Callable[[sqlite3.Connection], U] | None = None,
        on_rollback: Callable[[], None] | None = None,
        metrics: StoreMetrics | None = None,
        writer_cache_mb: int | None = None,
    ) -> None:
        """`write_unit` builds the writer's units when they differ from the
        readers' (a unit that keeps state between transactions, dropped by
        `on_rollback`); by default both use `unit`. `metrics` counts each group
        commit's writes and duration. `writer_cache_mb`: the writer's page cache
        (SQLite's default is 2 MB)."""
        self.path = Path(path)
        self._unit = unit
        self._write_unit = write_unit or unit
        self._writer = GroupCommitWriter(
            self.path,
            migrations,
            on_commit=on_commit,
            on_rollback=on_rollback,
            metrics=metrics,
            cache_mb=writer_cache_mb,
        )
        self._reading: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._writer.start()
        self._reading = ThreadPoolExecutor(1, thread_name_prefix=f"read:{self.path.name}")
        self._reader = await asyncio.get_running_loop().run_in_executor(
            self._reading, self._open_reader
        )

    def _open_reader(self) -> sqlite3.Connection:
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=ON")
        reader.execute("PRAGMA busy_timeout=5000")
        return reader

    async def close(self) -> None:
        if self._reader is not None and self._reading is not None:
            await asyncio.get_running_loop().run_in_executor(self._reading, self._reader.close)
            self._reading.shutdown()
            self._reader = None
        await self._writer.close()

    async def write(self, work: Callable[[U], T]) -> T:
        return await self._writer.submit(
            lambda connection: run_unit(work, self._write_unit(connection))
        )

    async def read(self, work: Callable[[U], T]) -> T:
        if self._reader is None:
            raise RuntimeError("store not open")
        return await asyncio.get_running_loop().run_in_executor(self._reading, self._read, work)

    def _read(self, work: Callable[[U], T]) -> T:
        reader = self._reader
        assert reader is not None
        reader.execute("BEGIN")
        try:
            return work(self._unit(reader))
        finally:
            reader.execute("ROLLBACK")
