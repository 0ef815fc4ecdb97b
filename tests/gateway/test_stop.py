"""Stopping the gateway: open streams end with UNAVAILABLE / GATEWAY_STOPPING
(retryable; a stream resumes after its last sequence), not CANCELLED; unary
calls past the grace period end the same way; and a real gateway process
stopped by Ctrl-C or SIGTERM, after HTTP/2 and TCP probes, writes no
traceback to its log."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.gateway.v1 import gateway_service_pb2_grpc as gateway_grpc

from services.gateway.shutdown import Shutdown
from services.kit.clock import SystemClock
from services.kit.status import error_info
from tests.support.gateway import (
    AUDIENCE,
    HEALTH_SERVICE,
    ISSUER,
    SECRET,
    Tokens,
    bearer,
    gateway_settings,
    node_call,
    probe_settings,
)
from tests.support.ledger import fund
from tools.suite import ServiceProcess, Suite, wait_ready_http

STEP_SECONDS = 10


def assert_stopping(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert error_info(error).reason == "GATEWAY_STOPPING"


async def test_an_open_stream_ends_unavailable(gateway, gateway_channel, tokens):
    stream = health_pb2_grpc.HealthStub(gateway_channel).Watch(
        health_pb2.HealthCheckRequest(), metadata=bearer(tokens.issue()), timeout=60
    )
    first = await asyncio.wait_for(stream.read(), STEP_SECONDS)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.create_task(gateway.stop())
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(stream.read(), STEP_SECONDS)
    assert_stopping(ended.value)
    await asyncio.wait_for(stopping, STEP_SECONDS)


async def test_the_wallet_stream_ends_unavailable(start_gateway, ledger, tokens):
    await fund(ledger.stub, "m-1", 10)
    gateway = await start_gateway(gateway_settings(ledger_target=ledger.target))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stream = gateway_grpc.WalletServiceStub(channel).WatchWallet(
            gateway_pb.WatchWalletRequest(), metadata=bearer(tokens.issue("m-1")), timeout=60
        )
        backlog = await asyncio.wait_for(stream.read(), STEP_SECONDS)
        assert backlog.entry.change == 10
        stopping = asyncio.create_task(gateway.stop())
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(stream.read(), STEP_SECONDS)
        assert_stopping(ended.value)
        await asyncio.wait_for(stopping, STEP_SECONDS)


@pytest.mark.parametrize("transport", ["connect-json", "grpc-web", "grpc"])
async def test_third_party_clients_see_a_stopping_stream_as_unavailable(
    start_gateway, health_upstream, node, tokens, transport
):
    gateway = await start_gateway(probe_settings(health_upstream))
    common = node_call(transport, gateway.port, HEALTH_SERVICE, token=tokens.issue())
    watched = asyncio.create_task(
        node([{**common, "method": "Watch", "request": {}, "maxMessages": 1000}])
    )
    await asyncio.wait_for(health_upstream.probe.watching.wait(), STEP_SECONDS * 3)
    await asyncio.wait_for(gateway.stop(), STEP_SECONDS)
    (result,) = await asyncio.wait_for(watched, STEP_SECONDS * 3)
    # The upstream's first message may or may not have reached the client by then.
    assert result["messages"] in ([], [{"status": "SERVING"}])
    assert (result["error"]["code"], result["error"]["reason"]) == (
        "unavailable",
        "GATEWAY_STOPPING",
    )


async def test_a_call_still_waiting_after_the_grace_ends_unavailable(
    start_gateway, health_upstream, tokens
):
    gateway = await start_gateway(probe_settings(health_upstream, shutdown_grace_seconds=0.2))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        call = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="hang"),
            metadata=bearer(tokens.issue()),
            timeout=60,
        )
        await asyncio.wait_for(health_upstream.probe.hanging.wait(), STEP_SECONDS)
        await asyncio.wait_for(gateway.stop(), STEP_SECONDS)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(call, STEP_SECONDS)
    assert_stopping(ended.value)


# A real process ------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, payload: bytes = b"", flags: int = 0, stream: int = 0) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


SETTINGS = frame(4)
GOAWAY = frame(7, (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))


def probe(port: int, data: bytes) -> None:
    """Connect, send what a scanner or a health checker sends (maybe nothing),
    read what the gateway answers until it closes, and leave."""
    with socket.create_connection(("127.0.0.1", port), timeout=STEP_SECONDS) as connection:
        if not data:
            return
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        while connection.recv(65536):
            pass


PROBES = [
    b"",  # a TCP connect, then close
    PREFACE,  # HTTP/2 prior knowledge, then nothing
    PREFACE + SETTINGS + GOAWAY,  # ... then a GOAWAY
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",  # a TLS ClientHello on a cleartext port
    b"NOT HTTP AT ALL\r\n\r\n",
]


async def start_process(tmp_path: Path, ledger_target: str) -> tuple[Suite, ServiceProcess]:
    suite = Suite(
        tmp_path / "data",
        env={
            "GATEWAY_JWT_SECRET": SECRET.decode(),
            "GATEWAY_JWT_ISSUER": ISSUER,
            "GATEWAY_JWT_AUDIENCE": AUDIENCE,
            "GATEWAY_GAMES_TARGET": "",
            "GATEWAY_CAMPAIGNS_TARGET": "",
            "SHUTDOWN_GRACE_SECONDS": "1",
        },
        log_dir=tmp_path / "logs",
        addresses={"ledger": ledger_target},
    )
    gateway = await suite.start("gateway", wait=False)
    await wait_ready_http(gateway.target, "/healthz")
    return suite, gateway


def assert_calm(log: str) -> None:
    assert '"event": "server_stopped"' in log, log
    for word in ("Traceback", "Exception", "exception", '"level": "error"'):
        assert word not in log, log


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_probes_and_a_stop_leave_no_traceback(tmp_path, ledger, stop_signal):
    suite, gateway = await start_process(tmp_path, ledger.target)
    try:
        for data in PROBES:
            await asyncio.wait_for(asyncio.to_thread(probe, gateway.port, data), STEP_SECONDS)
        # A prober that says nothing after the preface and stays while the gateway stops.
        _, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(PREFACE + SETTINGS)
        await writer.drain()
        assert await gateway.stop(stop_signal, timeout=STEP_SECONDS * 2) == 0
        writer.close()
    finally:
        await suite.stop_all()
    assert_calm(gateway.log_path.read_text())


@pytest.mark.slow
async def test_sigterm_ends_an_open_stream_unavailable(tmp_path, ledger):
    await fund(ledger.stub, "m-1", 10)
    suite, gateway = await start_process(tmp_path, ledger.target)
    try:
        async with grpc.aio.insecure_channel(gateway.target) as channel:
            stream = gateway_grpc.WalletServiceStub(channel).WatchWallet(
                gateway_pb.WatchWalletRequest(),
                metadata=bearer(Tokens(SystemClock()).issue("m-1")),
                timeout=60,
            )
            await asyncio.wait_for(stream.read(), STEP_SECONDS)
            stopped = asyncio.create_task(gateway.stop(signal.SIGTERM, timeout=STEP_SECONDS * 2))
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(stream.read(), STEP_SECONDS)
            assert_stopping(ended.value)
            assert await stopped == 0
    finally:
        await suite.stop_all()
    assert_calm(gateway.log_path.read_text())


async def test_a_client_leaving_a_stream_closes_it_cleanly():
    """A client that goes away mid-stream (a browser leaving a page) cancels the
    handler while it waits for the next message; the stream's generator is
    closed after that wait has ended, without a RuntimeError."""
    closed = asyncio.Event()

    async def upstream():
        try:
            yield 1
            await asyncio.Event().wait()  # no second message
            yield 2
        finally:
            closed.set()

    async def consume():
        async for _ in Shutdown().stream(upstream()):
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert closed.is_set()
