"""Channels for tests whose every call has a deadline, so a bug that stops a
service from answering fails the test instead of hanging it until pytest's
timeout. A call that sets its own `timeout` keeps it."""

from __future__ import annotations

import grpc

CALL_SECONDS = 30.0


def _bounded(details, seconds: float):
    return details if details.timeout is not None else details._replace(timeout=seconds)


class _UnaryDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(_bounded(client_call_details, self._seconds), request)


class _StreamDeadline(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(_bounded(client_call_details, self._seconds), request)


def channel(target: str, seconds: float = CALL_SECONDS) -> grpc.aio.Channel:
    """An insecure channel to `target` on which a call without a timeout gets `seconds`."""
    return grpc.aio.insecure_channel(
        target, interceptors=[_UnaryDeadline(seconds), _StreamDeadline(seconds)]
    )
