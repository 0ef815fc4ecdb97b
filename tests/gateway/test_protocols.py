"""One port, three protocols: the same upstream call over native gRPC (grpcio
and grpc-js), Connect JSON and binary (with GET) and gRPC-Web (connect-web)."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

from tests.support.gateway import HEALTH_SERVICE, bearer, node_call

WEB_TRANSPORTS = ["connect-json", "connect-binary", "grpc-web"]


async def test_grpcio_calls_upstream_through_the_gateway(gateway_channel, tokens):
    stub = health_pb2_grpc.HealthStub(gateway_channel)
    call = stub.Check(health_pb2.HealthCheckRequest(), metadata=bearer(tokens.issue()), timeout=5)
    response = await call
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    request_id = dict(await call.initial_metadata())["x-request-id"]
    assert len(request_id) == 32


async def test_grpcio_client_request_id_is_kept(gateway_channel, tokens):
    stub = health_pb2_grpc.HealthStub(gateway_channel)
    call = stub.Check(
        health_pb2.HealthCheckRequest(),
        metadata=(*bearer(tokens.issue()), ("x-request-id", "trace-abc-123")),
        timeout=5,
    )
    await call
    assert dict(await call.initial_metadata())["x-request-id"] == "trace-abc-123"


async def test_grpcio_server_stream_is_bridged(gateway_channel, tokens, health_upstream):
    stub = health_pb2_grpc.HealthStub(gateway_channel)
    stream = stub.Watch(
        health_pb2.HealthCheckRequest(), metadata=bearer(tokens.issue()), timeout=60
    )
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    await health_upstream.probe.statuses.put(health_pb2.HealthCheckResponse.NOT_SERVING)
    second = await asyncio.wait_for(stream.read(), 10)
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    stream.cancel()


@pytest.mark.parametrize("transport", [*WEB_TRANSPORTS, "grpc"])
async def test_node_clients_call_unary_and_stream(gateway, node, tokens, transport):
    common = node_call(transport, gateway.port, HEALTH_SERVICE, token=tokens.issue())
    unary, stream, refused = await node(
        [
            {**common, "method": "Check", "request": {}, "headers": {"x-request-id": "node-1"}},
            {**common, "method": "Watch", "request": {}, "maxMessages": 1},
            {**common, "method": "Check", "request": {}, "token": "not-a-jwt"},
        ]
    )
    assert unary == {"ok": True, "messages": [{"status": "SERVING"}], "requestId": "node-1"}
    assert stream["ok"], stream
    assert stream["messages"] == [{"status": "SERVING"}]
    assert refused["ok"] is False
    assert refused["error"]["code"] == "unauthenticated"
    assert refused["error"]["reason"] == "TOKEN_INVALID"
    assert refused["error"]["domain"] == "loyalty.arcade"
    assert len(refused["requestId"]) == 32


async def test_connect_get_serves_side_effect_free_calls(gateway, node, tokens):
    with capture_logs() as logs:
        (result,) = await node(
            [
                {
                    "transport": "connect-json",
                    "url": f"http://127.0.0.1:{gateway.port}",
                    "service": "loyalty.gateway.v1.WalletService",
                    "method": "GetWallet",
                    "request": {"unit": "bogus"},
                    "token": tokens.issue(),
                    "useHttpGet": True,
                }
            ]
        )
    assert [log["method"] for log in logs if log["event"] == "http_request"] == ["GET"]
    # GET reached the handler: its validation answered, not the HTTP layer.
    assert result["error"]["code"] == "invalid_argument"
    assert result["error"]["fieldViolations"][0]["field"] == "unit"
