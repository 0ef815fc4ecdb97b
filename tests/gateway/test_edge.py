"""What the gateway adds around every call: error mapping, deadlines, request
ids, outages and readiness, CORS, body limits and rate limits."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.status import error_info, field_violations
from tests.support.gateway import (
    BROWSER_ORIGIN,
    HEALTH,
    bearer,
    connect_headers,
    http_request,
    probe_settings,
    start_health_upstream,
)

CHECK_PATH = f"/{HEALTH.service.full_name}/Check"


# A bound on every wait for the gateway, also when a test sends no deadline of its own.
CALL_SECONDS = 10


async def check(channel, token: str, service: str = "", deadline: float | None = 5):
    stub = health_pb2_grpc.HealthStub(channel)
    call = stub.Check(
        health_pb2.HealthCheckRequest(service=service), metadata=bearer(token), timeout=deadline
    )
    return await asyncio.wait_for(call, CALL_SECONDS)


async def test_upstream_refusal_keeps_its_reason_and_message(gateway, gateway_channel, tokens):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await check(gateway_channel, tokens.issue(), "refuse")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert refused.value.details() == "no account m-9"
    info = error_info(refused.value)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "ACCOUNT_NOT_FOUND",
        "loyalty.arcade",
        {"account_id": "m-9"},
    )

    response = await http_request(
        gateway.port, "POST", CHECK_PATH, connect_headers(tokens.issue()), b'{"service":"refuse"}'
    )
    assert response.status == 404
    body = response.json()
    assert body["code"] == "not_found"
    assert body["details"][0]["type"] == "google.rpc.ErrorInfo"


async def test_upstream_crash_is_internal_without_its_detail(gateway_channel, tokens):
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await check(gateway_channel, tokens.issue(), "crash")
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert failed.value.details() == "the health service failed"
    assert error_info(failed.value).reason == "UPSTREAM_FAILED"
    assert "secret" not in str(failed.value.trailing_metadata())


async def test_client_deadline_is_forwarded(start_gateway, health_upstream, tokens):
    # Bounds far apart, so neither a busy machine nor grpc-timeout's rounding up on
    # the wire (0.3 s arrives as up to about 0.301 s) can blur them: the client's
    # 0.3 s reaches the upstream, not the 20 s default.
    gateway = await start_gateway(probe_settings(health_upstream, default_deadline_seconds=20))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await check(channel, tokens.issue(), "hang", deadline=0.3)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (seen,) = health_upstream.probe.seen
    assert seen["time_remaining"] is not None
    assert seen["time_remaining"] < 5


async def test_deadline_is_capped_and_defaulted(start_gateway, health_upstream, tokens):
    gateway = await start_gateway(
        probe_settings(
            health_upstream,
            default_deadline_seconds=1.5,
            max_deadline_seconds=20,
        )
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        await check(channel, tokens.issue(), deadline=None)
        await check(channel, tokens.issue(), deadline=600)
    defaulted, capped = health_upstream.probe.seen
    # Bounds far apart, so a slow machine cannot blur them: the default, not
    # "no deadline"; the cap, not the client's 600 s. grpc-timeout rounds both up
    # a little on the wire (1.5 s arrives as up to about 1.51 s).
    assert defaulted["time_remaining"] is not None
    assert defaulted["time_remaining"] <= 1.6
    assert 1.5 < capped["time_remaining"] <= 20.1


async def test_request_id_reaches_the_upstream(gateway_channel, tokens, health_upstream):
    stub = health_pb2_grpc.HealthStub(gateway_channel)
    call = stub.Check(health_pb2.HealthCheckRequest(), metadata=bearer(tokens.issue()), timeout=5)
    await call
    returned = dict(await call.initial_metadata())["x-request-id"]
    assert health_upstream.probe.seen[0]["metadata"]["x-request-id"] == returned


async def test_outage_is_unavailable_and_the_gateway_recovers(gateway, tokens, health_upstream):
    port = health_upstream.port
    await health_upstream.server.stop(None)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await check(channel, tokens.issue())
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert down.value.details() == "the health service is unavailable"
        assert error_info(down.value).reason == "UPSTREAM_UNAVAILABLE"
        ready = await http_request(gateway.port, "GET", "/readyz", {})
        assert ready.status == 503
        assert ready.json()["upstreams"]["ledger"] == "UNAVAILABLE"

        back = await start_health_upstream(port)
        try:
            # The gateway's channel reconnects on its own, within its backoff.
            for upstream in gateway.channels.values():
                await asyncio.wait_for(upstream.channel_ready(), 10)
            await check(channel, tokens.issue())
            ready = await http_request(gateway.port, "GET", "/readyz", {})
            assert ready.status == 200
            assert ready.json() == {
                "status": "ready",
                "upstreams": {"ledger": "SERVING", "health": "SERVING"},
            }
        finally:
            await back.server.stop(None)


async def test_liveness(gateway):
    response = await http_request(gateway.port, "GET", "/healthz", {})
    assert (response.status, response.json()) == (200, {"status": "alive"})


async def test_cors_preflight_allows_listed_origins_only(gateway):
    preflight = {
        "origin": BROWSER_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,x-grpc-web",
    }
    allowed = await http_request(gateway.port, "OPTIONS", CHECK_PATH, preflight)
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    for header in ("Authorization", "Connect-Protocol-Version", "X-Grpc-Web", "Grpc-Timeout"):
        assert header in allowed.headers["access-control-allow-headers"]

    refused = await http_request(
        gateway.port, "OPTIONS", CHECK_PATH, {**preflight, "origin": "http://evil.test"}
    )
    assert refused.status == 403
    assert "access-control-allow-origin" not in refused.headers


async def test_cors_exposes_grpc_and_request_id_headers(gateway, tokens):
    response = await http_request(
        gateway.port,
        "POST",
        CHECK_PATH,
        connect_headers(tokens.issue(), origin=BROWSER_ORIGIN),
        b"{}",
    )
    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    exposed = response.headers["access-control-expose-headers"]
    for header in ("Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "X-Request-Id"):
        assert header in exposed
    assert response.headers["x-request-id"]


async def test_bodies_over_the_limit_are_refused(start_gateway, health_upstream, tokens):
    gateway = await start_gateway(probe_settings(health_upstream, max_body_bytes=1024))
    big = json.dumps({"service": "x" * 4096}).encode()
    response = await http_request(
        gateway.port, "POST", CHECK_PATH, connect_headers(tokens.issue()), big
    )
    assert response.status == 413
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check(channel, tokens.issue(), "x" * 4096)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert health_upstream.probe.seen == []


async def test_member_rate_limit_with_retry_after(start_gateway, health_upstream, tokens, clock):
    gateway = await start_gateway(
        probe_settings(
            health_upstream,
            member_burst=2,
            member_rate_per_second=0.5,
        )
    )
    token = tokens.issue("m-1")
    for _ in range(2):
        ok = await http_request(gateway.port, "POST", CHECK_PATH, connect_headers(token), b"{}")
        assert ok.status == 200
    limited = await http_request(gateway.port, "POST", CHECK_PATH, connect_headers(token), b"{}")
    assert limited.status == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["code"] == "resource_exhausted"

    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check(channel, token)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(refused.value)
        assert (info.reason, info.metadata["scope"]) == ("RATE_LIMITED", "member")
        # Another member is not held back by m-1's bucket.
        await check(channel, tokens.issue("m-2"))
        clock.advance(2)
        await check(channel, token)


async def test_address_rate_limit_covers_every_member(start_gateway, health_upstream, tokens):
    gateway = await start_gateway(
        probe_settings(
            health_upstream,
            address_burst=3,
            address_rate_per_second=0.1,
        )
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        for member in ("m-1", "m-2", "m-3"):
            await check(channel, tokens.issue(member))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check(channel, tokens.issue("m-4"))
    info = error_info(refused.value)
    assert (info.reason, info.metadata["scope"]) == ("RATE_LIMITED", "address")


async def test_bad_input_is_invalid_argument_with_fields(gateway_channel, tokens):
    from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
    from loyalty.gateway.v1 import gateway_service_pb2_grpc as gateway_grpc

    stub = gateway_grpc.WalletServiceStub(gateway_channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetWallet(
            gateway_pb.GetWalletRequest(unit="dollars"), metadata=bearer(tokens.issue()), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"unit"}


async def test_a_long_lived_connection_is_never_cut_after_many_calls(
    start_gateway, health_upstream, tokens
):
    # hypercorn's default closed a connection after 1,000 requests (GOAWAY),
    # failing the calls in flight of clients that keep one channel.
    gateway = await start_gateway(
        probe_settings(health_upstream, member_burst=5000, address_burst=5000)
    )
    token = tokens.issue()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        for _ in range(22):
            answers = await asyncio.gather(*(check(channel, token) for _ in range(50)))
            assert all(a.status == health_pb2.HealthCheckResponse.SERVING for a in answers)
