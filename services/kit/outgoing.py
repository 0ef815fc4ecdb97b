"""Calls to other services: a deadline on every call, the request id forwarded,
retries only on UNAVAILABLE or DEADLINE_EXCEEDED with the same request, and
what a call costs and how it ended counted by a meter (`measured`, `metered_stream`)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import grpc

from services.kit.logs import current_request_id
from services.kit.metrics import CallMeter
from services.kit.server import REQUEST_ID_HEADER

Response = TypeVar("Response")

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _with_request_id(client_call_details):
    request_id = current_request_id()
    if request_id is None:
        return client_call_details
    metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
    if REQUEST_ID_HEADER not in metadata:
        metadata.add(REQUEST_ID_HEADER, request_id)
    return client_call_details._replace(metadata=metadata)


class RequestIdUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(_with_request_id(client_call_details), request)


class RequestIdUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(_with_request_id(client_call_details), request)


def open_channel(target: str, options: tuple[tuple[str, object], ...] = ()) -> grpc.aio.Channel:
    """A channel to another service that forwards the current request id."""
    return grpc.aio.insecure_channel(
        target, options=options, interceptors=[RequestIdUnaryUnary(), RequestIdUnaryStream()]
    )


async def call_with_retry(
    call: Callable[..., Awaitable[Response]],
    request,
    *,
    deadline: float,
    attempts: int = 4,
    first_backoff: float = 0.05,
) -> Response:
    """`call` must be idempotent for `request` (it carries its idempotency key);
    `deadline` is each attempt's timeout in seconds."""
    backoff = first_backoff
    for attempt in range(1, attempts + 1):
        try:
            return await call(request, timeout=deadline)
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRYABLE or attempt == attempts:
                raise
        # Jitter spreads retries of many callers; it decides no outcome.
        await asyncio.sleep(backoff * (0.5 + random.random()))
        backoff *= 2
    raise AssertionError("unreachable")


async def measured(meter: CallMeter, call: Awaitable[Response]) -> Response:
    """The answer of a unary `call`, counted by `meter` with its code and latency."""
    started = time.perf_counter()
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        meter.answered(error.code().name, time.perf_counter() - started)
        raise
    except asyncio.CancelledError:
        meter.answered("CANCELLED", time.perf_counter() - started)
        raise
    meter.answered("OK", time.perf_counter() - started)
    return response


@contextlib.contextmanager
def metered_stream(meter: CallMeter) -> Iterator[None]:
    """Around reading a stream: counted by `meter` with its code when it ends (a
    reader that stops early, or is cancelled, ends it CANCELLED)."""
    code = "OK"
    try:
        yield
    except grpc.aio.AioRpcError as error:
        code = error.code().name
        raise
    except (asyncio.CancelledError, GeneratorExit):
        code = "CANCELLED"
        raise
    finally:
        meter.ended(code)
