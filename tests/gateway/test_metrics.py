"""The gateway's metrics, scraped from its real endpoint: RPCs by method and
code whatever the protocol, HTTP requests by route and status (a made-up path
is one route), and the latency of its calls to the ledger."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import grpc
import pytest
import pytest_asyncio
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.gateway.v1 import gateway_service_pb2_grpc as gateway_grpc

from services.gateway.api import WALLET_SERVICE
from tests.support.gateway import bearer, gateway_settings
from tests.support.ledger import fund
from tests.support.metrics import ANY_PORT, scrape

CALL_SECONDS = 10
WALLET = WALLET_SERVICE.full_name
REQUESTS = "loyalty_rpc_requests_total"
HTTP = "loyalty_http_requests_total"
UPSTREAM = "loyalty_upstream_requests_total"
UPSTREAM_LATENCY = "loyalty_upstream_duration_seconds_count"


@pytest_asyncio.fixture
async def gateway(start_gateway, ledger):
    await fund(ledger.stub, "m-1", 100)
    return await start_gateway(
        gateway_settings(ledger_target=ledger.target, metrics_listen=ANY_PORT)
    )


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=CALL_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_calls_routes_and_upstream_calls_move_the_figures(gateway, tokens):
    port = gateway.metrics_port
    before = await scrape(port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        wallet = gateway_grpc.WalletServiceStub(channel)
        for member in ("m-1", "m-new"):
            await wallet.GetWallet(
                gateway_pb.GetWalletRequest(),
                metadata=bearer(tokens.issue(member)),
                timeout=CALL_SECONDS,
            )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await wallet.GetWallet(gateway_pb.GetWalletRequest(), timeout=CALL_SECONDS)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    base = f"http://127.0.0.1:{gateway.port}"
    assert await asyncio.to_thread(_http_status, f"{base}/healthz") == 200
    unknown = await asyncio.to_thread(_http_status, f"{base}/made.Up/Path")
    after = await scrape(port)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved(REQUESTS, service=WALLET, method="GetWallet", code="OK") == 2
    assert moved(REQUESTS, service=WALLET, method="GetWallet", code="UNAUTHENTICATED") == 1
    # gRPC answers every call with HTTP 200 (its status is in the trailers).
    assert moved(HTTP, route=f"{WALLET}/GetWallet", status="200") == 3
    assert moved(HTTP, route="/healthz", status="200") == 1
    assert moved(HTTP, route="unmatched", status=str(unknown)) == 1
    assert after.label_values(HTTP, "route") <= {f"{WALLET}/GetWallet", "/healthz", "unmatched"}
    # One ledger read per admitted call: the new member's wallet is NOT_FOUND there.
    assert moved(UPSTREAM, upstream="ledger", method="GetAccount", code="OK") == 1
    assert moved(UPSTREAM, upstream="ledger", method="GetAccount", code="NOT_FOUND") == 1
    assert moved(UPSTREAM_LATENCY, upstream="ledger", method="GetAccount", code="OK") == 1
