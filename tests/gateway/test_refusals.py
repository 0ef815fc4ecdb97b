"""A request no handler can take gets an error in its own protocol saying what
was wrong and what is accepted: a Connect JSON error body with an ErrorInfo
reason for curl and Connect clients, a gRPC status for gRPC and gRPC-Web
clients. Never a bare status."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.gateway.domain import AccessRule, Audience
from services.gateway.servicer import Upstream
from services.kit.status import error_info
from tests.support.gateway import (
    BROWSER_ORIGIN,
    HEALTH,
    HEALTH_SERVICE,
    bearer,
    connect_headers,
    gateway_settings,
    http_request,
    node_call,
    probe_settings,
)

CHECK_PATH = f"/{HEALTH_SERVICE}/Check"
WATCH_PATH = f"/{HEALTH_SERVICE}/Watch"
WALLET = "loyalty.gateway.v1.WalletService"
# The health service with Check only: Watch is a method the gateway does not expose.
CHECK_ONLY = Upstream(
    name="health", service=HEALTH.service, rules={"Check": AccessRule(Audience.PLAYER)}
)


def info_of(body: dict) -> dict:
    (info,) = [d["debug"] for d in body["details"] if d["type"] == "google.rpc.ErrorInfo"]
    return info


async def test_an_unknown_service_lists_the_services(gateway, tokens):
    response = await http_request(
        gateway.port,
        "POST",
        "/loyalty.ledger.v1.LedgerService/PostTransfers",
        connect_headers(tokens.issue()),
        b"{}",
    )
    assert response.status == 404
    body = response.json()
    assert body["code"] == "unimplemented"
    info = info_of(body)
    assert info["reason"] == "SERVICE_NOT_FOUND"
    assert info["metadata"]["services"].split(",") == [
        HEALTH_SERVICE,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        WALLET,
    ]
    assert "no service 'loyalty.ledger.v1.LedgerService' here" in body["message"]

    root = await http_request(gateway.port, "GET", "/", {})
    assert (root.status, info_of(root.json())["reason"]) == (404, "SERVICE_NOT_FOUND")
    assert root.json()["message"].startswith("'/' is not a call: calls are /<service>/<method>")


async def test_grpc_clients_get_a_status_naming_what_exists(gateway_channel, tokens):
    ledger_post = gateway_channel.unary_unary("/loyalty.ledger.v1.LedgerService/PostTransfers")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await ledger_post(b"", metadata=bearer(tokens.issue()), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert WALLET in unknown.value.details()
    assert error_info(unknown.value).reason == "SERVICE_NOT_FOUND"

    misspelled = gateway_channel.unary_unary(f"/{WALLET}/GetWalet")
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await misspelled(b"", metadata=bearer(tokens.issue()), timeout=5)
    assert wrong.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "did you mean 'GetWallet'?" in wrong.value.details()
    info = error_info(wrong.value)
    assert (info.reason, info.metadata["methods"]) == (
        "METHOD_NOT_FOUND",
        "GetWallet,ListWalletEntries,WatchWallet",
    )


async def test_a_misspelled_method_over_connect_suggests_the_right_one(gateway, tokens):
    response = await http_request(
        gateway.port, "POST", f"/{WALLET}/getwallet", connect_headers(tokens.issue()), b"{}"
    )
    assert response.status == 404
    body = response.json()
    assert info_of(body)["reason"] == "METHOD_NOT_FOUND"
    assert body["message"] == (
        f"{WALLET} has no method 'getwallet' here; did you mean 'GetWallet'? "
        "its methods: GetWallet, ListWalletEntries, WatchWallet"
    )


@pytest.mark.parametrize("transport", ["connect-json", "grpc-web", "grpc"])
async def test_third_party_clients_read_the_refusal(
    start_gateway, health_upstream, node, tokens, transport
):
    gateway = await start_gateway(
        gateway_settings(
            ledger_target=health_upstream.target,
            extra_upstreams=((CHECK_ONLY, health_upstream.target),),
        )
    )
    common = node_call(transport, gateway.port, HEALTH_SERVICE, token=tokens.issue())
    (watched,) = await node([{**common, "method": "Watch", "request": {}, "maxMessages": 1}])
    assert watched["ok"] is False
    assert (watched["error"]["code"], watched["error"]["reason"]) == (
        "unimplemented",
        "METHOD_NOT_FOUND",
    )
    assert watched["error"]["metadata"] == {"methods": "Check"}
    assert health_upstream.probe.seen == []


async def test_a_wrong_content_type_lists_what_is_accepted(gateway, tokens):
    headers = connect_headers(tokens.issue(), **{"content-type": "text/plain"})
    response = await http_request(gateway.port, "POST", CHECK_PATH, headers, b"{}")
    assert response.status == 415
    body = response.json()
    info = info_of(body)
    assert info["reason"] == "UNSUPPORTED_CONTENT_TYPE"
    assert info["metadata"]["content_type"] == "text/plain"
    accepted = info["metadata"]["accepted"].split(",")
    assert accepted[:2] == ["application/proto", "application/json"]
    assert "application/grpc-web+proto" in accepted
    assert "does not take content-type 'text/plain'" in body["message"]
    assert response.headers["accept-post"].startswith("application/proto, application/json")


async def test_a_stream_sent_as_unary_json_says_how_to_send_it(gateway, tokens, health_upstream):
    response = await http_request(
        gateway.port, "POST", WATCH_PATH, connect_headers(tokens.issue()), b"{}"
    )
    assert response.status == 415
    body = response.json()
    assert info_of(body)["reason"] == "STREAM_SENT_AS_UNARY"
    assert body["message"].startswith(f"{HEALTH_SERVICE}/Watch is a server stream")
    assert "application/connect+proto or application/connect+json" in body["message"]
    assert health_upstream.probe.seen == []


async def test_get_on_a_call_with_side_effects_says_post(gateway, tokens):
    response = await http_request(
        gateway.port,
        "GET",
        f"{CHECK_PATH}?encoding=json&message=%7B%7D",
        {"authorization": f"Bearer {tokens.issue()}"},
    )
    assert (response.status, response.headers["allow"]) == (405, "POST")
    body = response.json()
    assert info_of(body)["reason"] == "HTTP_METHOD_NOT_ALLOWED"
    assert "GET is for calls without side effects" in body["message"]


async def test_a_body_over_the_limit_says_the_limit(start_gateway, health_upstream, tokens):
    gateway = await start_gateway(probe_settings(health_upstream, max_body_bytes=1024))
    response = await http_request(
        gateway.port, "POST", CHECK_PATH, connect_headers(tokens.issue()), b"x" * 2048
    )
    assert response.status == 413
    info = info_of(response.json())
    assert (info["reason"], info["metadata"]) == ("BODY_TOO_LARGE", {"max_bytes": "1024"})


async def test_a_refused_preflight_says_why(gateway):
    preflight = {"origin": "http://evil.test", "access-control-request-method": "POST"}
    response = await http_request(gateway.port, "OPTIONS", CHECK_PATH, preflight)
    assert response.status == 403
    assert info_of(response.json())["reason"] == "ORIGIN_NOT_ALLOWED"
    assert "access-control-allow-origin" not in response.headers
    allowed = await http_request(
        gateway.port, "OPTIONS", CHECK_PATH, {**preflight, "origin": BROWSER_ORIGIN}
    )
    assert allowed.status == 204


async def test_the_exposed_methods_still_answer(gateway_channel, tokens):
    response = await health_pb2_grpc.HealthStub(gateway_channel).Check(
        health_pb2.HealthCheckRequest(), metadata=bearer(tokens.issue()), timeout=5
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING
