"""Replicas as real processes (tools.suite) on one database: several Suites
over the same db settings, each process with ports, data and logs of its own,
and a client that sends a call whose answer is in doubt, the same, to another
replica. The games, campaigns, rewards, progress and gateway replica tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import grpc

from tests.support import deadlines
from tools.suite import ServiceProcess, Suite

S = TypeVar("S")
T = TypeVar("T")

# The call may or may not have been done: only sending it again tells.
IN_DOUBT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Between two tries of one call: a restart, a relay or the other replica is settling it.
POLL_SECONDS = 0.05


@contextlib.asynccontextmanager
async def replica_suites(
    tmp_path: Path,
    databases: Mapping[str, str],
    count: int = 2,
    env: Mapping[str, str] | None = None,
    shared: Collection[str] = (),
) -> AsyncIterator[list[Suite]]:
    """`count` Suites over `databases` (each service's db setting). A service named in
    `shared` is started by the first only and reached by all at its address; every
    other one each starts for itself. Every process is stopped at the end."""
    suites: list[Suite] = []
    for n in range(count):
        suites.append(
            Suite(
                tmp_path / f"data-{n}",
                env={"LOG_LEVEL": "warning", **(env or {})},
                log_dir=tmp_path / f"logs-{n}",
                databases=databases,
                addresses={name: suites[0].target(name) for name in shared} if suites else None,
            )
        )
    try:
        yield suites
    finally:
        for suite in reversed(suites):
            await suite.stop_all()


async def failing_over(
    call: Callable[[S], Awaitable[T]],
    replicas: Sequence[S],
    first: int,
    doubts: list[str] | None = None,
    wait_on: Collection[grpc.StatusCode] = (),
) -> T:
    """`call(replica)` on `replicas[first]`, and while its answer is in doubt the same
    call on the next replica, until one answers (a refusal is an answer: it is raised).
    A code in `wait_on` (the work is under way elsewhere) asks the same replica again.
    Each doubt is appended to `doubts` (its code's name)."""
    turn = first
    while True:
        try:
            return await call(replicas[turn % len(replicas)])
        except grpc.aio.AioRpcError as error:
            if error.code() in IN_DOUBT:
                if doubts is not None:
                    doubts.append(error.code().name)
                turn += 1
            elif error.code() not in wait_on:
                raise
        await asyncio.sleep(POLL_SECONDS)


async def kill_under_load(
    process: ServiceProcess,
    load: Awaitable[object],
    progress: asyncio.Event,
    enough: Callable[[], bool],
    seconds: float = 120.0,
) -> None:
    """SIGKILL `process` mid-load, once `enough()` holds (looked at each time the
    load sets `progress`), then wait for the load to end."""
    while not enough():
        progress.clear()
        await deadlines.within(progress.wait())
    await process.kill()
    await deadlines.within(load, seconds)
