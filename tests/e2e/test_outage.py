"""An upstream outage: while games is down its calls are UNAVAILABLE (and the
gateway is not ready); when games returns, the gateway serves it again
without a restart of its own."""

from __future__ import annotations

import pytest

from tests.support.e2e import TRANSPORTS, NodeClient
from tests.support.gateway import http_request
from tools.demo import GAMES, WALLET, TokenMint
from tools.suite import Suite, wait_ready_http

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def list_wheels(node: NodeClient, transport: str, token: str) -> dict:
    return await node.raw(transport, GAMES, "ListWheels", request={}, token=token)


async def test_games_outage_and_recovery(node: NodeClient, mint: TokenMint, suite: Suite) -> None:
    token = mint.issue("e2e-outage-member")
    for transport in TRANSPORTS:
        assert (await list_wheels(node, transport, token))["ok"]

    await suite.running["games"].stop()
    for transport in TRANSPORTS:
        result = await list_wheels(node, transport, token)
        assert (result["error"]["code"], result["error"]["reason"]) == (
            "unavailable",
            "UPSTREAM_UNAVAILABLE",
        ), (transport, result)
    # The other upstreams still answer; readiness says games is missing.
    assert (await node.raw("grpc", WALLET, "GetWallet", request={}, token=token))["ok"]
    ready = await http_request(node.port, "GET", "/readyz", {})
    assert ready.status == 503

    await suite.start("games")
    # Readiness polls the same channels the calls use.
    await wait_ready_http(suite.target("gateway"), "/readyz")
    for transport in TRANSPORTS:
        result = await list_wheels(node, transport, token)
        assert result["ok"], (transport, result)
