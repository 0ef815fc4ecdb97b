"""How to call campaigns' WatchActivities and games' WatchPlays: by method
path with the request and response classes of the generated module, found
by name so that a build without the RPC follows nothing rather than failing
at import."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class WatchContract:
    """One server-streaming Watch RPC: its path and message classes."""

    method: str
    request_type: type
    response_type: type

    def open(self, channel: grpc.aio.Channel, after: int, timeout: float) -> Any:
        call = channel.unary_stream(
            self.method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=self.response_type.FromString,
        )
        return call(self.request_type(after_sequence=after), timeout=timeout)


def find_contract(module: Any, service: str, method: str, request: str, response: str):
    """The contract from a generated module, or None while it lacks the RPC."""
    request_type = getattr(module, request, None)
    response_type = getattr(module, response, None)
    if request_type is None or response_type is None:
        return None
    package = module.DESCRIPTOR.package
    return WatchContract(f"/{package}.{service}/{method}", request_type, response_type)


def streaming(
    contract: WatchContract,
    channel: grpc.aio.Channel,
    recycle_seconds: float,
    translate: Callable[[Any], Any],
):
    async def open_stream(after: int) -> AsyncIterator[Any]:
        stream = contract.open(channel, after, recycle_seconds)
        try:
            async for response in stream:
                yield translate(response)
        finally:
            stream.cancel()

    return open_stream
