"""PostgreSQL for every service: the same units of work as on SQLite, run in
real transactions by a pool of connections on worker threads.

Why psycopg 3: it is the maintained PostgreSQL driver with both a sync and an
async API and a connection pool of its own (psycopg_pool); its sync API on
worker threads runs a service's sync unit-of-work functions unchanged, which is
why units are sync (asyncpg is async only: every statement of a unit would have
to become an await). Each `write(work)` is one transaction on its own
connection; a serialization failure, a deadlock or a unique violation (two
replicas inserting the same idempotency key) rolls it back and `work` runs
again, which is why work must be a pure function of its unit.

One SQL text serves both engines: `PgConnection` takes the sqlite3 shape the
units are written against (`?` placeholders, `execute(...).fetchone()`,
`executemany`, `rowcount`) and integer sums come back as ints, not Decimals.
Only what truly differs is per engine: the DDL of the migrations, and the few
statements that lock (`SKIP_LOCKED` below, the ledger's row locks).

Feeds across replicas: a `Watch...` reader waits on its process's CommitSignal
(the store's on_commit). With `wake_feeds`, the store also LISTENs for those
feeds' NOTIFY (sent by `feed_sequences.take_sequences` in the writing
transaction, delivered by PostgreSQL at COMMIT) and calls on_commit for each,
so a replica's readers wake on every replica's commits. LISTEN/NOTIFY rather
than a poll: a wake comes only once the rows are visible, within milliseconds,
and an idle feed costs nothing; notifications lost while the listening
connection is down are covered by one wake after it reconnects.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import psycopg
import psycopg.errors
import structlog
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

from services.kit.errors import Unavailable
from services.kit.feed_sequences import CHANNEL_SQL, run_unit
from services.kit.metrics import StoreMetrics

log = structlog.get_logger()

T = TypeVar("T")
U = TypeVar("U")

# Appended to a SELECT that claims rows any replica could claim (an outbox
# relay, a sweep): rows another transaction holds are skipped, not waited for.
SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"


def refuse_change_function(name: str) -> str:
    """DDL of a trigger function refusing the UPDATE or DELETE it fires on: a
    service's append-only tables (`BEFORE UPDATE OR DELETE ... EXECUTE FUNCTION name()`)."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: rows are never %', TG_TABLE_NAME, lower(TG_OP);
END $$;
"""


class RetryTransaction(Exception):
    """Raised by a unit that found its reads overtaken: the work runs again."""


RETRIED = (
    RetryTransaction,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.UniqueViolation,
)
MAX_ATTEMPTS = 20
# A retried transaction waits a random moment first, so writers that collided
# (on a feed's counter, say) do not collide again at once; the moment doubles
# with each attempt (to 64 times this). Growing by this much each attempt, one
# of two dozen redemptions racing on two rewards replicas lost all 20 attempts
# in one run of eight (tests/rewards/test_replicas.py).
RETRY_JITTER_SECONDS = 0.002
LISTEN_BACKOFF_SECONDS = (0.1, 5.0)
SWITCH_INTERVAL_SECONDS = 0.0002
SERIALIZABLE = "SERIALIZABLE"
READ_COMMITTED = "READ COMMITTED"


class _IntegralNumeric(Loader):
    """SUM() of a BIGINT is NUMERIC: our numbers are integers, so ints they stay."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        return int(text) if "." not in text else float(text)


class _BoolAsInteger(Dumper):
    """Flags are INTEGER columns on both engines, as SQLite stores booleans."""

    format = Format.TEXT

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        self.oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _configure(connection: psycopg.Connection) -> None:
    connection.adapters.register_loader("numeric", _IntegralNumeric)
    connection.adapters.register_dumper(bool, _BoolAsInteger)


class PgConnection:
    """A psycopg connection in the shape of the sqlite3 one the units use."""

    engine = "postgres"

    def __init__(self, connection: psycopg.Connection) -> None:
        self.raw = connection

    def execute(self, sql: str, parameters: Sequence = ()) -> psycopg.Cursor:
        return self.raw.execute(_translated(sql), tuple(parameters))

    def executemany(self, sql: str, rows: Any) -> psycopg.Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(_translated(sql), [tuple(row) for row in rows])
        return cursor


_TRANSLATED: dict[str, str] = {}


def _translated(sql: str) -> str:
    """sqlite3's qmark placeholders as psycopg's (a literal % doubled)."""
    found = _TRANSLATED.get(sql)
    if found is None:
        found = _TRANSLATED[sql] = sql.replace("%", "%%").replace("?", "%s")
    return found


def skip_locked(connection: object) -> str:
    """SKIP_LOCKED on PostgreSQL; nothing on SQLite, whose one writer claims alone."""
    return SKIP_LOCKED if isinstance(connection, PgConnection) else ""


def migrate(connection: psycopg.Connection, name: str, migrations: Sequence[str]) -> None:
    """Apply `name`'s migrations not yet applied, in one transaction under an
    advisory lock (replicas starting together migrate once); schema_version
    counts them per component, as PRAGMA user_version does on SQLite."""
    with connection.transaction():
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':schema_version'))"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = connection.execute(
            "SELECT version FROM schema_version WHERE component = %s", (name,)
        ).fetchone()
        applied = row[0] if row else 0
        if applied > len(migrations):
            raise RuntimeError(
                f"{name} schema version {applied} is newer than this code ({len(migrations)})"
            )
        for version, script in enumerate(migrations[applied:], start=applied + 1):
            connection.execute(script.encode())
            connection.execute(
                "INSERT INTO schema_version (component, version) VALUES (%s, %s)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (name, version),
            )
            log.info("schema_migrated", component=name, version=version, engine="postgres")


class PgStore(Generic[U]):
    """A service's tables on PostgreSQL behind its unit of work: the contract of
    SqliteStore. `write(work)` runs `work(unit)` in one transaction at
    `isolation` (SERIALIZABLE by default: a unit's read-check-write is then
    correct against every other replica with no lock of its own), retried as
    a whole on a conflict; `read(work)` runs it in one REPEATABLE READ READ ONLY
    transaction (one snapshot; a write attempted there fails)."""

    def __init__(
        self,
        url: str,
        name: str,
        migrations: Sequence[str],
        unit: Callable[[PgConnection], U],
        on_commit: Callable[[], None] | None = None,
        *,
        isolation: str = SERIALIZABLE,
        connections: int = 8,
        metrics: StoreMetrics | None = None,
        feeds: Sequence[str] = (),
        wake_feeds: Sequence[str] = (),
    ) -> None:
        self.url = url
        self._name = name
        self._migrations = migrations
        self._unit = unit
        self._on_commit = on_commit
        self._isolation = isolation
        self._connections = connections
        self._metrics = metrics
        self._pool: ConnectionPool | None = None
        self._threads: ThreadPoolExecutor | None = None
        # `feeds`: the feeds its units number with take_sequences; `wake_feeds`:
        # other feeds whose NOTIFY wakes its readers (the ledger's own counter).
        self._feeds = tuple(feeds)
        self._wake_feeds = (*feeds, *wake_feeds)
        self._listener: asyncio.Task | None = None
        # Set once the listening connection is listening (tests wait for it).
        self.listening = asyncio.Event()

    async def open(self) -> None:
        # Each statement's round trip releases the GIL; taking it back from a busy
        # event loop waits up to a switch interval (5 ms by default): a gRPC ledger
        # posted 850 transfers/s with it, 1,190 with this one.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECONDS))
        self._threads = ThreadPoolExecutor(self._connections, thread_name_prefix=f"pg:{self._name}")
        await asyncio.get_running_loop().run_in_executor(self._threads, self._open)
        if self._wake_feeds and self._on_commit is not None:
            self._listener = asyncio.create_task(self._listen(self._on_commit))

    def _open(self) -> None:
        pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._connections,
            configure=_configure,
            # transaction() blocks then issue BEGIN and COMMIT themselves.
            kwargs={"autocommit": True},
            open=False,
            name=self._name,
        )
        pool.open(wait=True, timeout=30)
        try:
            with pool.connection() as connection:
                migrate(connection, self._name, self._migrations)
        except BaseException:
            pool.close()
            raise
        self._pool = pool

    async def _listen(self, wake: Callable[[], None]) -> None:
        """LISTEN for the feeds' NOTIFY on a connection of its own, for ever."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True
                ) as connection:
                    for feed in self._wake_feeds:
                        cursor = await connection.execute(
                            _translated(f"SELECT {CHANNEL_SQL}"), (feed,)
                        )
                        (channel,) = await cursor.fetchone()
                        await connection.execute(f'LISTEN "{channel}"')
                    self.listening.set()
                    failures = 0
                    # Whatever committed while nobody was listening.
                    wake()
                    async for _ in connection.notifies():
                        wake()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.listening.clear()
                failures += 1
                first, most = LISTEN_BACKOFF_SECONDS
                delay = min(most, first * 2 ** min(failures - 1, 10))
                log.warning(
                    "feed_listen_failed", store=self._name, error=str(error), retry_in_seconds=delay
                )
                await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._threads is None:
            return
        threads, self._threads = self._threads, None
        if self._pool is not None:
            await asyncio.get_running_loop().run_in_executor(threads, self._pool.close)
            self._pool = None
        threads.shutdown()

    async def write(self, work: Callable[[U], T]) -> T:
        result = await self._run(self._write, work)
        if self._on_commit is not None:
            self._on_commit()
        return result

    async def read(self, work: Callable[[U], T]) -> T:
        return await self._run(self._read, work)

    async def _run(self, runner: Callable[[Callable[[U], T]], T], work: Callable[[U], T]) -> T:
        if self._threads is None or self._pool is None:
            raise RuntimeError("store not open")
        return await asyncio.get_running_loop().run_in_executor(self._threads, runner, work)

    def _write(self, work: Callable[[U], T]) -> T:
        assert self._pool is not None
        with self._pool.connection() as connection:
            queued = False
            for attempt in range(1, MAX_ATTEMPTS + 1):
                started = time.perf_counter()
                try:
                    with connection.transaction():
                        connection.execute(f"SET TRANSACTION ISOLATION LEVEL {self._isolation}")
                        if queued:
                            # Before the snapshot (LOCK takes none): the counters'
                            # other writers wait, so this attempt's counter update
                            # cannot be overtaken again (see _retry_queues).
                            connection.execute("LOCK TABLE feed_sequences IN EXCLUSIVE MODE")
                        result = run_unit(work, self._unit(PgConnection(connection)))
                except RETRIED as error:
                    if attempt == MAX_ATTEMPTS:
                        log.warning("write_contended", store=self._name, error=str(error))
                        if self._metrics is not None:
                            self._metrics.failed()
                        # Nothing of it committed: the same request may be sent again.
                        raise Unavailable(
                            "STORE_CONTENDED",
                            f"the {self._name} database was too busy to take this write;"
                            " send the same request again",
                        ) from error
                    log.debug("write_retried", store=self._name, attempt=attempt, error=str(error))
                    queued = self._retry_queues()
                    # Jitter spreads the collided writers; it decides no outcome.
                    time.sleep(random.uniform(0, RETRY_JITTER_SECONDS * 2 ** min(attempt - 1, 6)))
                    continue
                except psycopg.Error:
                    if self._metrics is not None:
                        self._metrics.failed()
                    raise
                if self._metrics is not None:
                    self._metrics.committed(1, time.perf_counter() - started)
                return result
        raise AssertionError("unreachable")

    def _retry_queues(self) -> bool:
        """Whether a retried write queues on the feed counters' table. At
        SERIALIZABLE a write that updates a counter after another write
        committed it since this one's snapshot fails, and under load it could
        fail every time; a retry that holds the table lock from before its
        snapshot never loses the counter again. Only writes that collided
        queue, so writes that did not still run side by side."""
        return bool(self._feeds) and self._isolation == SERIALIZABLE

    def _read(self, work: Callable[[U], T]) -> T:
        assert self._pool is not None
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return work(self._unit(PgConnection(connection)))
