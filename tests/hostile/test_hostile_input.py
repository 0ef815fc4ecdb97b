"""Hostile requests to every RPC every service lists through gRPC reflection (issue #8, 5).

For each (service, method) a fresh server receives a few dozen seeded requests full of
hostile values; no answer may be UNKNOWN, INTERNAL, DATA_LOSS, UNIMPLEMENTED or grpc's own
RESOURCE_EXHAUSTED, no error may be larger than a few KiB, and afterwards the service must
still serve. Adding a service is one entry in TARGETS; the engine (cases.py, probe.py)
knows nothing of any service.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from services.campaigns import server as campaigns_server
from services.games import server as games_server
from services.kit.clock import ManualClock
from services.kit.server import ServiceHost
from services.ledger import server as ledger_server
from services.progress import server as progress_server
from services.rewards import server as rewards_server
from tests.hostile import cases, probe

# Known failures: real bugs the test finds today, by test id, so that the suite passes
# while they stand. Each entry is strict: it fails loudly once its bug is fixed, to be removed.
KNOWN_FAILURES: dict[str, str] = {}

UNARY_TIMEOUT = 10.0
# A stream that validated its request may wait for events forever: its deadline
# ending the wait is an acceptable outcome, so this window bounds only the test's time.
STREAM_WINDOW = 2.0


@dataclass(frozen=True)
class Running:
    address: str
    upstreams: tuple[str, ...]  # addresses of the services this one depends on
    now_seconds: int  # the ManualClock's time, for plausible timestamps


@dataclass(frozen=True)
class Target:
    name: str
    start: Callable[[Path], AbstractAsyncContextManager[Running]]


@contextlib.asynccontextmanager
async def started(host: ServiceHost) -> AsyncIterator[str]:
    await host.start()
    try:
        yield f"127.0.0.1:{host.port}"
    finally:
        await host.stop(None)


async def ledger_host(directory: Path, clock: ManualClock) -> ServiceHost:
    # Expiry sweeps only when asked (SweepExpired): no background work between cases.
    settings = ledger_server.LedgerSettings(
        db_path=directory / "ledger.db", sweep_interval_seconds=10**9
    )
    return await ledger_server.build_server(settings, "127.0.0.1:0", clock)


@contextlib.asynccontextmanager
async def ledger_alone(directory: Path) -> AsyncIterator[Running]:
    clock = ManualClock()
    async with started(await ledger_host(directory, clock)) as ledger:
        yield Running(ledger, (), clock.now_us() // 1_000_000)


@contextlib.asynccontextmanager
async def games_with_ledger(directory: Path) -> AsyncIterator[Running]:
    clock = ManualClock()
    seeds = (bytes([n % 256]) * 32 for n in itertools.count(1))
    async with started(await ledger_host(directory, clock)) as ledger:
        settings = games_server.GamesSettings(
            db_path=directory / "games.db", ledger_target=ledger, relay_interval_seconds=3600
        )
        host = await games_server.build_server(
            settings, "127.0.0.1:0", clock, seed_source=lambda: next(seeds)
        )
        async with started(host) as games:
            yield Running(games, (ledger,), clock.now_us() // 1_000_000)


@contextlib.asynccontextmanager
async def campaigns_with_ledger(directory: Path) -> AsyncIterator[Running]:
    clock = ManualClock()
    async with started(await ledger_host(directory, clock)) as ledger:
        settings = campaigns_server.CampaignsSettings(
            db_path=directory / "campaigns.db", ledger_target=ledger
        )
        host = await campaigns_server.build_server(settings, "127.0.0.1:0", clock)
        async with started(host) as campaigns:
            yield Running(campaigns, (ledger,), clock.now_us() // 1_000_000)


@contextlib.asynccontextmanager
async def rewards_with_ledger_and_campaigns(directory: Path) -> AsyncIterator[Running]:
    # Campaigns is where member tiers come from (until the progress service lands).
    clock = ManualClock()
    async with started(await ledger_host(directory, clock)) as ledger:
        campaigns_settings = campaigns_server.CampaignsSettings(
            db_path=directory / "campaigns.db", ledger_target=ledger
        )
        campaigns_host = await campaigns_server.build_server(
            campaigns_settings, "127.0.0.1:0", clock
        )
        async with started(campaigns_host) as campaigns:
            settings = rewards_server.RewardsSettings(
                db_path=directory / "rewards.db",
                ledger_target=ledger,
                campaigns_target=campaigns,
                relay_interval_seconds=3600,
            )
            host = await rewards_server.build_server(settings, "127.0.0.1:0", clock)
            async with started(host) as rewards:
                yield Running(rewards, (ledger, campaigns), clock.now_us() // 1_000_000)


@contextlib.asynccontextmanager
async def progress_with_ledger(directory: Path) -> AsyncIterator[Running]:
    # The campaigns and games feeds are not followed here: no RPC calls them.
    clock = ManualClock()
    async with started(await ledger_host(directory, clock)) as ledger:
        settings = progress_server.ProgressSettings(
            db_path=directory / "progress.db",
            ledger_target=ledger,
            campaigns_target="",
            games_target="",
            relay_interval_seconds=3600,
            review_interval_seconds=3600,
        )
        host = await progress_server.build_server(settings, "127.0.0.1:0", clock)
        async with started(host) as progress:
            yield Running(progress, (ledger,), clock.now_us() // 1_000_000)


TARGETS = (
    Target("ledger", ledger_alone),
    Target("games", games_with_ledger),
    Target("campaigns", campaigns_with_ledger),
    Target("progress", progress_with_ledger),
    Target("rewards", rewards_with_ledger_and_campaigns),
)


@dataclass(frozen=True)
class Listed:
    target: Target
    path: str
    supported: bool

    @property
    def test_id(self) -> str:
        service, method = self.path.removeprefix("/").split("/")
        return f"{self.target.name}:{service.rsplit('.', 1)[-1]}.{method}"


@functools.cache
def listed_rpcs() -> tuple[Listed, ...]:
    """What each target's reflection lists, asked once at collection time so that every
    RPC is its own test (a failure names it)."""

    async def ask(target: Target) -> list[Listed]:
        with tempfile.TemporaryDirectory() as directory:
            async with (
                target.start(Path(directory)) as running,
                grpc.aio.insecure_channel(running.address) as channel,
            ):
                catalog = await probe.reflect(channel)
        return [Listed(target, rpc.path, True) for rpc in catalog.rpcs] + [
            Listed(target, path, False) for path in catalog.unsupported
        ]

    return tuple(listed for target in TARGETS for listed in asyncio.run(ask(target)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name != "test_hostile_requests":
        return
    params = []
    for listed in listed_rpcs():
        marks = []
        if not listed.supported:
            marks.append(
                pytest.mark.skip(reason="client-streaming and bidirectional RPCs are not fuzzed")
            )
        if listed.test_id in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[listed.test_id]))
        params.append(pytest.param(listed.target, listed.path, id=listed.test_id, marks=marks))
    metafunc.parametrize(("target", "path"), params)


def test_every_known_failure_names_a_listed_rpc() -> None:
    listed = {rpc.test_id for rpc in listed_rpcs()}
    assert set(KNOWN_FAILURES) <= listed, set(KNOWN_FAILURES) - listed


async def test_hostile_requests(target: Target, path: str, tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(target.start(tmp_path))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(running.address))
        upstreams = [
            await stack.enter_async_context(grpc.aio.insecure_channel(address))
            for address in running.upstreams
        ]

        async def upstreams_up() -> bool:
            return all([await probe.serving(upstream) for upstream in upstreams])

        rpc = (await probe.reflect(channel)).find(path)
        seed = cases.seed_for(rpc.method.full_name)
        built = cases.build_cases(rpc.method.input_type, seed, running.now_seconds)
        timeout = STREAM_WINDOW if rpc.streaming else UNARY_TIMEOUT
        outcomes = await probe.send_all(channel, rpc, [case.payload for case in built], timeout)
        failures = []
        for case, outcome in zip(built, outcomes, strict=True):
            if found := await probe.problems(outcome, rpc, upstreams_up):
                failures.append(
                    f"case {case.index} ({case.label[:200]}): {'; '.join(found)}\n"
                    f"    answer: {outcome}\n    request: {case.summary[:500]}"
                )
        # Still serving afterwards: healthy, and the simplest request still gets an answer.
        if not (await probe.serving(channel) and await probe.serving(channel, rpc.service)):
            failures.append("health is no longer SERVING after the hostile requests")
        after = await probe.send(channel, rpc, b"", timeout)
        if found := await probe.problems(after, rpc, upstreams_up):
            failures.append(f"the empty request afterwards: {'; '.join(found)}; answer: {after}")
    assert not failures, (
        f"{len(failures)} problems in {len(built)} hostile requests to {rpc.path}; "
        f"cases.build_cases(input descriptor, seed={seed}, now_seconds={running.now_seconds}) "
        "rebuilds them:\n" + "\n".join(failures[:15])
    )
