"""The server kit through a real server: call context, error mapping, health, shutdown."""

from __future__ import annotations

import asyncio
import sqlite3

import grpc
import pytest
import structlog
from grpc.aio import Metadata
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.clock import ManualClock
from services.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.kit.outgoing import call_with_retry
from services.kit.server import ServiceBinding, create_host
from services.kit.sqlite import GroupCommitWriter
from services.kit.status import error_info, field_violations

SERVICE = "kit.test.Probe"
Request, Response = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse


class Probe:
    """Behaviour chosen by the request's `service` field."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def call(self, request: Request, context) -> Response:
        structlog.get_logger().info("probe_called", mode=request.service)
        if request.service == "invalid":
            raise InvalidArgument([FieldViolation("service", "not a known mode")])
        if request.service == "precondition":
            raise FailedPrecondition("NOT_READY", "not ready", {"why": "testing"})
        if request.service == "crash":
            raise RuntimeError("secret internal detail")
        if request.service == "slow":
            self.entered.set()
            await self.release.wait()
        return Response(status=Response.SERVING)

    async def watch(self, request: Request, context):
        """Two messages; "missing": one, then NOT_FOUND."""
        yield Response(status=Response.SERVING)
        if request.service == "missing":
            raise NotFound("NO_SUCH_THING", "there is no such thing")
        yield Response(status=Response.SERVING)


def register(probe: Probe, server: grpc.aio.Server) -> None:
    codec = {
        "request_deserializer": Request.FromString,
        "response_serializer": Response.SerializeToString,
    }
    handlers = {
        "Call": grpc.unary_unary_rpc_method_handler(probe.call, **codec),
        "Watch": grpc.unary_stream_rpc_method_handler(probe.watch, **codec),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture
async def probe_server():
    probe = Probe()
    host = create_host([ServiceBinding(register, probe, SERVICE)], "127.0.0.1:0")
    await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")
    call = channel.unary_unary(
        f"/{SERVICE}/Call",
        request_serializer=Request.SerializeToString,
        response_deserializer=Response.FromString,
    )
    yield host, probe, call, channel
    await channel.close()
    await host.stop(None)


async def test_the_request_id_is_bound_to_every_log_line_of_the_call(probe_server):
    _, _, call, _ = probe_server
    with structlog.testing.capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        await call(Request(service="ok"), metadata=Metadata(("x-request-id", "req-123")))
        await call(Request(service="ok"))
    called = [entry for entry in logs if entry["event"] == "probe_called"]
    assert called[0]["request_id"] == "req-123"
    assert called[0]["rpc"] == f"/{SERVICE}/Call"
    generated = called[1]["request_id"]
    assert len(generated) == 32 and generated != "req-123"


async def test_service_errors_become_rich_statuses(probe_server):
    _, _, call, _ = probe_server
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(Request(service="invalid"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == {"service": "not a known mode"}
    assert error_info(raised.value).reason == "INVALID_ARGUMENT"

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(Request(service="precondition"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(raised.value)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "NOT_READY",
        "loyalty.arcade",
        {"why": "testing"},
    )


async def test_unparsable_requests_are_invalid_and_bugs_leak_nothing(probe_server):
    _, _, call, channel = probe_server
    raw = channel.unary_unary(f"/{SERVICE}/Call")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await raw(b"\x0a\x02\xff\xfe")  # field 1 (a string) holding bad UTF-8
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "MALFORMED_REQUEST"

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(Request(service="crash"))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in raised.value.details()


async def test_health_watch_streams_and_shutdown_drains_calls_in_flight(probe_server):
    host, probe, call, channel = probe_server
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(Request(service=SERVICE))
    assert (await watch.read()).status == Response.SERVING

    in_flight = asyncio.ensure_future(call(Request(service="slow")))
    await probe.entered.wait()
    stopping = asyncio.ensure_future(host.stop(5))
    # Health turns NOT_SERVING before the server stops taking calls.
    assert (await asyncio.wait_for(watch.read(), 5)).status == Response.NOT_SERVING
    probe.release.set()
    assert (await in_flight).status == Response.SERVING
    await stopping


async def test_a_failing_write_rolls_back_alone_in_its_group(tmp_path):
    writer = GroupCommitWriter(tmp_path / "kit.db", ["CREATE TABLE items (name TEXT UNIQUE);"])
    await writer.start()

    def insert(name: str):
        return lambda db: db.execute("INSERT INTO items VALUES (?)", (name,)).rowcount

    results = await asyncio.gather(
        writer.submit(insert("a")),
        writer.submit(insert("a")),
        writer.submit(insert("b")),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], sqlite3.IntegrityError)
    names = await writer.submit(lambda db: [r[0] for r in db.execute("SELECT name FROM items")])
    assert sorted(names) == ["a", "b"]
    await writer.close()

    # Reopening applies no migration twice.
    reopened = GroupCommitWriter(tmp_path / "kit.db", ["CREATE TABLE items (name TEXT UNIQUE);"])
    await reopened.start()
    assert await reopened.submit(lambda db: db.execute("PRAGMA user_version").fetchone()[0]) == 1
    await reopened.close()


def _rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, Metadata(), Metadata(), details=code.name)


async def test_retries_only_unavailable_and_deadline_exceeded():
    attempts: list[str] = []

    async def flaky(request, timeout):
        attempts.append(request)
        if len(attempts) < 3:
            raise _rpc_error(grpc.StatusCode.UNAVAILABLE)
        return "done"

    assert await call_with_retry(flaky, "same-key", deadline=1, first_backoff=0) == "done"
    assert attempts == ["same-key"] * 3

    async def refused(request, timeout):
        attempts.append(request)
        raise _rpc_error(grpc.StatusCode.INVALID_ARGUMENT)

    attempts.clear()
    with pytest.raises(grpc.aio.AioRpcError):
        await call_with_retry(refused, "key", deadline=1, first_backoff=0)
    assert attempts == ["key"]


async def test_manual_clock_wakes_sleepers_in_deadline_order():
    clock = ManualClock(start_us=0)
    woken: list[int] = []

    async def sleeper(deadline: int) -> None:
        await clock.sleep_until(deadline)
        woken.append(deadline)

    tasks = [asyncio.ensure_future(sleeper(d)) for d in (30, 10, 20)]
    await asyncio.sleep(0)
    clock.set(15)
    await asyncio.sleep(0)
    assert woken == [10]
    clock.set(40)
    await asyncio.gather(*tasks)
    assert woken == [10, 20, 30]
    with pytest.raises(ValueError):
        clock.set(39)


def _calls(
    host, code: str, name: str = "loyalty_rpc_requests_total", method: str = "Call"
) -> float:
    labels = {"service": SERVICE, "method": method, "code": code}
    return host.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_every_call_is_counted_with_its_method_and_status_code(probe_server):
    host, _, call, channel = probe_server
    await call(Request(service="ok"))
    for mode in ("invalid", "precondition", "crash"):
        with pytest.raises(grpc.aio.AioRpcError):
            await call(Request(service=mode))
    with pytest.raises(grpc.aio.AioRpcError):
        await channel.unary_unary(f"/{SERVICE}/Call")(b"\x0a\x02\xff\xfe")
    await health_pb2_grpc.HealthStub(channel).Check(Request())
    codes = ("OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "INTERNAL")
    # Counted before the answer leaves, so the client's answer means it is there.
    assert {code: _calls(host, code) for code in codes} == {
        "OK": 1,
        "INVALID_ARGUMENT": 2,
        "FAILED_PRECONDITION": 1,
        "INTERNAL": 1,
    }
    durations = "loyalty_rpc_duration_seconds_count"
    assert {code: _calls(host, code, durations) for code in codes} == {
        "OK": 1,
        "INVALID_ARGUMENT": 2,
        "FAILED_PRECONDITION": 1,
        "INTERNAL": 1,
    }
    # The health service is the kit's own, not the service's: not counted.
    samples = host.metrics.registry.collect()
    services = {s.labels.get("service") for f in samples for s in f.samples}
    assert services <= {SERVICE, None}


async def test_a_stream_is_counted_with_its_code_when_it_ends(probe_server):
    host, _, _, channel = probe_server
    watch = channel.unary_stream(
        f"/{SERVICE}/Watch",
        request_serializer=Request.SerializeToString,
        response_deserializer=Response.FromString,
    )
    assert len([m async for m in watch(Request(service="two"), timeout=10)]) == 2
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [m async for m in watch(Request(service="missing"), timeout=10)]
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert _calls(host, "OK", method="Watch") == 1
    assert _calls(host, "NOT_FOUND", method="Watch") == 1
    # A stream's lifetime is no latency.
    assert _calls(host, "OK", "loyalty_rpc_duration_seconds_count", "Watch") == 0
