"""The benchmarks' load generator and echo server, each run as its own process.

    python -m bench.load run --target HOST:PORT --method /pkg.Service/Method \
        --workload bench.ledger:transfer_calls --params '{...}' \
        --concurrency 64 --seconds 5 [--warmup 1] [--calls N]
    python -m bench.load echo --listen 127.0.0.1:PORT --response-bytes N

`run` drives `concurrency` lanes over one grpc.aio channel; lane i sends, one at
a time, the calls `workload(params, i)` yields as (request bytes, metadata). A
warm-up phase runs first and is not measured; the measured phase stops after
`seconds` or `calls` calls. It prints one JSON line: calls, seconds, rps,
p50_ms, p99_ms, errors by status code and calls per lane (warm-up included, so
the caller can replay what was sent).

`--stream` drives one bidirectional stream instead (a method like
PostTransfersStream): the lanes share it, each sending its next message once the
answer to its last one came, so `concurrency` messages are in flight. Field 1 of
every message and answer is its correlation id (a string), which is all the
generator reads of them; an answer holding field 3 (an error) counts as
REFUSED. p50_ms and p99_ms are then per message.

`echo` is a bare grpc.aio server (no interceptor, no parsing) answering every
call on any method with a fixed payload: the transport's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

Metadata = tuple[tuple[str, str], ...]
Call = tuple[bytes, Metadata]
Workload = Callable[[dict, int], Iterator[Call]]

ECHO_METHOD = "/bench.v1.EchoService/Echo"


def load_workload(spec: str) -> Workload:
    """`module:function`, imported in this process."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank; NaN for no values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def correlation_of(message: bytes) -> tuple[str, bool]:
    """(field 1 as a string, whether field 3 is present) of a serialized message."""
    correlation, refused, at = "", False, 0
    while at < len(message):
        key, at = _read_varint(message, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, at = _read_varint(message, at)
            continue
        if wire != 2:
            raise ValueError(f"unexpected wire type {wire}")
        length, at = _read_varint(message, at)
        if number == 1:
            correlation = message[at : at + length].decode()
        elif number == 3:
            refused = True
        at += length
    return correlation, refused


class StreamLanes:
    """One stream shared by the lanes: send a message, wait for its answer."""

    def __init__(self, call) -> None:
        self._call = call
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        # grpc.aio takes one write at a time on a call (TOO_MANY_OPERATIONS otherwise):
        # one writer drains what the lanes queue, cheaper than the lanes taking turns.
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())
        self._reader = asyncio.create_task(self._read())

    async def _write(self) -> None:
        while (message := await self._outgoing.get()) is not None:
            await self._call.write(message)
        await self._call.done_writing()

    async def _read(self) -> None:
        try:
            async for answer in self._call:
                correlation, refused = correlation_of(answer)
                future = self._waiting.pop(correlation, None)
                if future is not None and not future.done():
                    future.set_result(refused)
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("the stream ended"))

    async def send(self, message: bytes) -> bool:
        """True when the answer was a refusal."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[correlation_of(message)[0]] = future
        self._outgoing.put_nowait(message)
        return await future

    async def close(self) -> None:
        self._outgoing.put_nowait(None)
        await self._writer
        await self._reader


async def drive(
    target: str,
    method: str,
    workload: Workload,
    params: dict,
    concurrency: int,
    seconds: float,
    warmup: float,
    max_calls: int | None,
    timeout: float,
    stream: bool = False,
) -> dict:
    lanes = [workload(params, lane) for lane in range(concurrency)]
    lane_calls = [0] * concurrency
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]

    async def phase(stop_at: float, budget: int, record: Callable) -> None:
        # Each phase on a fresh connection: servers may cap requests per
        # connection (hypercorn sends GOAWAY after 1,000), which must not land
        # inside the measured phase just because the warm-up came first.
        left = [budget]
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            await channel.channel_ready()
            if stream:
                await stream_phase(channel, stop_at, left, record)
                return
            stub = channel.unary_unary(method)

            async def lane_loop(lane: int) -> None:
                calls = lanes[lane]
                while time.perf_counter() < stop_at and left[0] != 0:
                    left[0] -= 1
                    request, metadata = next(calls)
                    lane_calls[lane] += 1
                    began = time.perf_counter()
                    try:
                        await stub(request, metadata=metadata or None, timeout=timeout)
                    except grpc.aio.AioRpcError as error:
                        record(None, error)
                        continue
                    record(time.perf_counter() - began, None)

            await asyncio.gather(*(lane_loop(lane) for lane in range(concurrency)))

    async def stream_phase(channel, stop_at: float, left: list[int], record: Callable) -> None:
        shared = StreamLanes(channel.stream_stream(method)())

        async def lane_loop(lane: int) -> None:
            calls = lanes[lane]
            while time.perf_counter() < stop_at and left[0] != 0:
                left[0] -= 1
                request, _metadata = next(calls)
                lane_calls[lane] += 1
                began = time.perf_counter()
                try:
                    refused = await asyncio.wait_for(shared.send(request), timeout)
                except (TimeoutError, ConnectionError) as error:
                    record(None, type(error).__name__)
                    continue
                if refused:
                    record(None, "REFUSED")
                else:
                    record(time.perf_counter() - began, None)

        await asyncio.gather(*(lane_loop(lane) for lane in range(concurrency)))
        await shared.close()

    if warmup > 0:
        await phase(time.perf_counter() + warmup, -1, lambda _latency, _error: None)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}

    def record(latency: float | None, error: grpc.aio.AioRpcError | str | None) -> None:
        if error is None:
            latencies.append(latency)
        elif isinstance(error, str):
            errors[error] += 1
        else:
            errors[error.code().name] += 1
            examples.setdefault(error.code().name, error.details() or "")

    started = time.perf_counter()
    await phase(started + seconds, max_calls or -1, record)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": dict(errors),
        "error_examples": examples,
        "lane_calls": lane_calls,
    }


async def serve_echo(listen: str, response_bytes: int) -> None:
    payload = b"\x00" * response_bytes

    async def echo(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return payload

    class Echo(grpc.GenericRpcHandler):
        def service(self, handler_call_details):
            if handler_call_details.method.startswith("/grpc.health."):
                return None
            return grpc.unary_unary_rpc_method_handler(echo)

    server = grpc.aio.server()
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_generic_rpc_handlers((Echo(),))
    server.add_insecure_port(listen)
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark load generator and echo server")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--target", required=True)
    run.add_argument("--method", required=True)
    run.add_argument("--workload", required=True, help="module:function")
    run.add_argument("--params", default="{}", help="JSON passed to the workload")
    run.add_argument("--concurrency", type=int, default=64)
    run.add_argument("--seconds", type=float, default=5.0)
    run.add_argument("--warmup", type=float, default=1.0)
    run.add_argument("--calls", type=int, default=0, help="stop after this many (0: no bound)")
    run.add_argument("--timeout", type=float, default=30.0)
    run.add_argument("--stream", action="store_true", help="one bidirectional stream")
    echo = commands.add_parser("echo")
    echo.add_argument("--listen", required=True)
    echo.add_argument("--response-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "echo":
        asyncio.run(serve_echo(args.listen, args.response_bytes))
        return
    result = asyncio.run(
        drive(
            args.target,
            args.method,
            load_workload(args.workload),
            json.loads(args.params),
            args.concurrency,
            args.seconds,
            args.warmup,
            args.calls or None,
            args.timeout,
            args.stream,
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
