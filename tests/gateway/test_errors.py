"""Errors a person can read: over Connect JSON every google.rpc detail carries
`debug`, the detail as JSON, beside its base64 `value`, in unary answers and in
the end-of-stream message of server streams alike."""

from __future__ import annotations

import asyncio
import http.client
import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.kit.status import error_info
from tests.support.gateway import (
    HEALTH_SERVICE,
    bearer,
    connect_headers,
    enveloped,
    envelopes,
    http_request,
    probe_settings,
)

CHECK_PATH = f"/{HEALTH_SERVICE}/Check"
WATCH_PATH = f"/{HEALTH_SERVICE}/Watch"
WALLET_PATH = "/loyalty.gateway.v1.WalletService/GetWallet"
END_STREAM = 0b10


def debug_of(body: dict, detail_type: str) -> dict:
    (detail,) = [d for d in body["details"] if d["type"] == detail_type]
    assert detail["value"], detail
    return detail["debug"]


async def test_a_refused_token_reads_as_json(gateway):
    response = await http_request(gateway.port, "POST", CHECK_PATH, connect_headers("nope"), b"{}")
    assert response.status == 401
    body = response.json()
    assert body["code"] == "unauthenticated"
    info = debug_of(body, "google.rpc.ErrorInfo")
    assert (info["reason"], info["domain"]) == ("TOKEN_INVALID", "loyalty.arcade")


async def test_field_violations_read_as_json(gateway, tokens):
    response = await http_request(
        gateway.port, "POST", WALLET_PATH, connect_headers(tokens.issue()), b'{"unit": "dollars"}'
    )
    assert response.status == 400
    body = response.json()
    assert debug_of(body, "google.rpc.ErrorInfo")["reason"] == "INVALID_ARGUMENT"
    (violation,) = debug_of(body, "google.rpc.BadRequest")["fieldViolations"]
    assert violation["field"] == "unit"
    assert "prize:" in violation["description"]


async def test_an_upstream_refusal_keeps_its_details_readable(gateway, tokens):
    refused = await http_request(
        gateway.port, "POST", CHECK_PATH, connect_headers(tokens.issue()), b'{"service":"refuse"}'
    )
    assert debug_of(refused.json(), "google.rpc.ErrorInfo") == {
        "reason": "ACCOUNT_NOT_FOUND",
        "domain": "loyalty.arcade",
        "metadata": {"account_id": "m-9"},
    }
    busy = await http_request(
        gateway.port, "POST", CHECK_PATH, connect_headers(tokens.issue()), b'{"service":"busy"}'
    )
    assert busy.status == 429
    assert debug_of(busy.json(), "google.rpc.RetryInfo") == {"retryDelay": "3.500s"}


async def test_a_rate_limit_says_when_to_retry_in_every_protocol(
    start_gateway, health_upstream, tokens
):
    gateway = await start_gateway(
        probe_settings(health_upstream, member_burst=1, member_rate_per_second=0.5)
    )
    token = tokens.issue()
    allowed = await http_request(gateway.port, "POST", CHECK_PATH, connect_headers(token), b"{}")
    assert allowed.status == 200
    limited = await http_request(gateway.port, "POST", CHECK_PATH, connect_headers(token), b"{}")
    assert limited.status == 429
    assert debug_of(limited.json(), "google.rpc.RetryInfo") == {"retryDelay": "2s"}

    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), metadata=bearer(token), timeout=5
            )
    status = rpc_status.from_call(refused.value)
    retry = error_details_pb2.RetryInfo()
    assert [d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR)] == [True]
    assert retry.retry_delay.seconds == 2


def end_of_stream(body: bytes) -> dict:
    *_, (flags, last) = envelopes(body)
    assert flags & END_STREAM
    return json.loads(last)


async def test_a_refused_stream_ends_with_a_readable_error(gateway, tokens):
    headers = connect_headers(tokens.issue(ttl=-60), **{"content-type": "application/connect+json"})
    response = await http_request(gateway.port, "POST", WATCH_PATH, headers, enveloped(b"{}"))
    assert response.status == 200
    error = end_of_stream(response.body)["error"]
    assert error["code"] == "unauthenticated"
    assert debug_of(error, "google.rpc.ErrorInfo")["reason"] == "TOKEN_EXPIRED"


async def test_a_stream_that_fails_midway_ends_with_a_readable_error(
    gateway, tokens, health_upstream
):
    loop = asyncio.get_running_loop()
    first_read = asyncio.Event()

    def watch() -> tuple[bytes, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        try:
            headers = connect_headers(
                tokens.issue(), **{"content-type": "application/connect+json"}
            )
            connection.request("POST", WATCH_PATH, body=enveloped(b"{}"), headers=headers)
            response = connection.getresponse()
            head = response.read(5)
            first = head + response.read(int.from_bytes(head[1:], "big"))
            loop.call_soon_threadsafe(first_read.set)
            return first, response.read()
        finally:
            connection.close()

    call = asyncio.create_task(asyncio.to_thread(watch))
    await asyncio.wait_for(first_read.wait(), 10)
    await health_upstream.server.stop(None)
    first, rest = await asyncio.wait_for(call, 10)
    ((flags, message),) = envelopes(first)
    assert (flags, json.loads(message)) == (0, {"status": "SERVING"})
    error = end_of_stream(rest)["error"]
    assert error["code"] == "unavailable"
    assert debug_of(error, "google.rpc.ErrorInfo")["reason"] == "UPSTREAM_UNAVAILABLE"


async def test_grpc_clients_still_read_the_same_details(gateway_channel, tokens):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await health_pb2_grpc.HealthStub(gateway_channel).Check(
            health_pb2.HealthCheckRequest(service="refuse"),
            metadata=bearer(tokens.issue()),
            timeout=5,
        )
    assert error_info(refused.value).metadata["account_id"] == "m-9"
