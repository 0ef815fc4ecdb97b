"""The gateway's promises, end to end over the real suite, compactly (the
gateway's own tests cover the details in-process): who gets in, who may do
what, rate limits, deadlines, request ids in every service's log, CORS and
error mapping."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc

from services.gateway.tokens import issue_token
from services.kit.clock import SystemClock
from services.kit.status import error_info
from tests.support.e2e import AUDIENCE, BROWSER_ORIGIN, ISSUER, TRANSPORTS, NodeClient
from tests.support.gateway import http_request
from tools.demo import CAMPAIGNS, GAMES, WALLET, TokenMint, timestamp, wheel_config
from tools.suite import Suite

pytestmark = pytest.mark.asyncio(loop_scope="module")

MEMBER_BURST = 40
SUITE_ENV = {
    # A full bucket of 40 calls per member that practically never refills,
    # so a flood is refused however slowly this machine runs it.
    "GATEWAY_MEMBER_RATE": "0.001",
    "GATEWAY_MEMBER_BURST": str(MEMBER_BURST),
    # Streams are cut by the gateway's cap long before the client's timeout.
    "GATEWAY_MAX_STREAM_SECONDS": "1",
}
MEMBER = "e2e-member"
OTHER = "e2e-someone-else"


def _b64(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def bad_tokens(mint: TokenMint) -> dict[str, tuple[str | None, str | None]]:
    """name -> (token, the ErrorInfo reason when the docs name one)."""
    now = SystemClock().now_us()
    claims = {"sub": MEMBER, "iss": ISSUER, "aud": AUDIENCE, "exp": now // 10**6 + 600}
    return {
        "missing": (None, "TOKEN_MISSING"),
        "malformed": ("not-a-jwt", None),
        "expired": (
            issue_token(
                mint.secret,
                subject=MEMBER,
                roles=["player"],
                issuer=ISSUER,
                audience=AUDIENCE,
                now_us=now - 7200 * 10**6,
                ttl_seconds=3600,
            ),
            "TOKEN_EXPIRED",
        ),
        "wrong issuer": (
            TokenMint(mint.secret, "someone-else", AUDIENCE).issue(MEMBER),
            "TOKEN_WRONG_AUDIENCE_OR_ISSUER",
        ),
        "wrong audience": (
            TokenMint(mint.secret, ISSUER, "another-app").issue(MEMBER),
            "TOKEN_WRONG_AUDIENCE_OR_ISSUER",
        ),
        "alg none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.", None),
        "bad signature": (
            TokenMint(b"not-the-gateway-secret-but-long-enough", ISSUER, AUDIENCE).issue(MEMBER),
            "TOKEN_BAD_SIGNATURE",
        ),
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_only_valid_tokens_get_in(node: NodeClient, mint: TokenMint, transport) -> None:
    for name, (token, reason) in bad_tokens(mint).items():
        auth = {"token": token} if token else {}
        result = await node.raw(transport, WALLET, "GetWallet", request={}, **auth)
        assert not result["ok"], name
        assert result["error"]["code"] == "unauthenticated", (name, result)
        if reason:
            assert result["error"]["reason"] == reason, (name, result)
    admitted = await node.raw(transport, WALLET, "GetWallet", request={}, token=mint.issue(MEMBER))
    assert admitted["ok"], admitted


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_players_act_only_as_themselves(node: NodeClient, mint, transport) -> None:
    player = mint.issue(MEMBER)
    share = {
        "activityId": f"share-{transport}",
        "memberId": OTHER,
        "type": "social_share",
        "occurTime": timestamp(datetime.now(UTC)),
    }
    as_another = [
        (WALLET, "GetWallet", {"memberId": OTHER}),
        (GAMES, "Spin", {"wheelId": "any", "memberId": OTHER, "requestId": "r-1"}),
        (CAMPAIGNS, "TrackActivity", {"activity": share}),
        (WALLET, "WatchWallet", {"memberId": OTHER}),  # a stream
    ]
    for service, method, request in as_another:
        result = await node.raw(transport, service, method, request=request, token=player)
        assert result["error"]["code"] == "permission_denied", (method, result)
        assert result["error"]["reason"] == "MEMBER_MISMATCH", (method, result)

    manager_call = {"campaignId": "not-for-players", "spec": {"displayName": "x"}}
    result = await node.raw(
        transport, CAMPAIGNS, "CreateCampaign", request=manager_call, token=player
    )
    assert (result["error"]["code"], result["error"]["reason"]) == (
        "permission_denied",
        "ROLE_REQUIRED",
    )
    wheel = {"wheelId": "not-for-players", "config": wheel_config()}
    result = await node.raw(transport, GAMES, "CreateWheel", request=wheel, token=player)
    assert (result["error"]["code"], result["error"]["reason"]) == (
        "permission_denied",
        "ROLE_REQUIRED",
    )

    purchase = {**share, "memberId": MEMBER, "type": "purchase"}
    purchase["purchase"] = {"amountMinor": "100", "currency": "EUR"}
    result = await node.raw(
        transport, CAMPAIGNS, "TrackActivity", request={"activity": purchase}, token=player
    )
    assert (result["error"]["code"], result["error"]["reason"]) == (
        "permission_denied",
        "CHOICE_NOT_ALLOWED",
    )


async def test_a_flooding_member_is_rate_limited(node: NodeClient, mint: TokenMint) -> None:
    token = mint.issue("e2e-flooder")
    admitted = 0
    refused = None
    for _ in range(MEMBER_BURST + 20):
        result = await node.raw("grpc", WALLET, "GetWallet", request={}, token=token)
        if not result["ok"]:
            refused = result["error"]
            break
        admitted += 1
    assert refused is not None, "never refused"
    assert admitted >= MEMBER_BURST
    assert (refused["code"], refused["reason"]) == ("resource_exhausted", "RATE_LIMITED")
    assert refused["metadata"]["scope"] == "member"
    assert float(refused["metadata"]["retry_after_seconds"]) > 0

    # On Connect it is HTTP 429 with Retry-After.
    response = await http_request(
        node.port,
        "POST",
        f"/{WALLET}/GetWallet",
        {"content-type": "application/json", "authorization": f"Bearer {token}"},
        b"{}",
    )
    assert response.status == 429
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == "resource_exhausted"

    # Another member is not affected.
    other = await node.raw("grpc", WALLET, "GetWallet", request={}, token=mint.issue("e2e-calm"))
    assert other["ok"], other


async def upsert(node: NodeClient, mint: TokenMint, member_id: str, **fields) -> dict:
    return await node.raw(
        "connect-json",
        CAMPAIGNS,
        "UpsertMember",
        request={"member": {"memberId": member_id}},
        token=mint.issue("e2e-manager", "campaign-manager"),
        **fields,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_gets_the_capped_deadline_upstream(node, mint, transport) -> None:
    """The client allows 30 s; the gateway caps streams at 1 s (SUITE_ENV), so
    the ledger's change feed ends with the gateway's DEADLINE_EXCEEDED first."""
    member = f"e2e-watcher-{transport}"
    assert (await upsert(node, mint, member))["ok"]
    result = await node.raw(
        transport,
        WALLET,
        "WatchWallet",
        request={},
        token=mint.issue(member),
        timeoutMs=30_000,
    )
    assert result["error"]["code"] == "deadline_exceeded", result
    assert result["error"]["reason"] == "UPSTREAM_DEADLINE_EXCEEDED", result


def log_request_ids(path: Path) -> set[str]:
    ids = set()
    for line in path.read_text().splitlines():
        try:
            ids.add(json.loads(line).get("request_id"))
        except (json.JSONDecodeError, AttributeError):
            continue
    return ids


async def test_request_ids_reach_every_service_log(node, mint, suite: Suite) -> None:
    # UpsertMember: gateway -> campaigns -> ledger (the member's wallet is opened).
    member_call = "e2e-request-member-1"
    result = await upsert(node, mint, "e2e-logged-member", headers={"x-request-id": member_call})
    assert result["ok"], result
    assert result["requestId"] == member_call
    # CreateWheel: gateway -> games.
    wheel_call = "e2e-request-wheel-1"
    result = await node.raw(
        "grpc",
        GAMES,
        "CreateWheel",
        request={"wheelId": "e2e-logged-wheel", "config": wheel_config()},
        token=mint.issue("e2e-manager", "campaign-manager"),
        headers={"x-request-id": wheel_call},
    )
    assert result["ok"], result
    assert result["requestId"] == wheel_call

    logs = {name: log_request_ids(s.log_path) for name, s in suite.running.items()}
    assert member_call in logs["campaigns"]
    assert member_call in logs["ledger"]
    assert wheel_call in logs["games"]
    assert {member_call, wheel_call} <= logs["gateway"]


async def test_cors_preflight(node: NodeClient) -> None:
    asked = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,x-request-id",
    }
    path = f"/{WALLET}/GetWallet"
    allowed = await http_request(node.port, "OPTIONS", path, {"origin": BROWSER_ORIGIN, **asked})
    assert allowed.status in (200, 204)
    assert allowed.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    assert {"authorization", "x-request-id"} <= {h.strip() for h in allowed_headers.split(",")}

    refused = await http_request(
        node.port, "OPTIONS", path, {"origin": "http://evil.example", **asked}
    )
    assert refused.status == 403
    assert "access-control-allow-origin" not in refused.headers


async def test_an_upstream_refusal_keeps_its_reason(node, mint, suite: Suite) -> None:
    """A bad activity: campaigns refuses it with INVALID_ARGUMENT; Connect JSON
    carries the same ErrorInfo reason and the field violation."""
    activity = {
        "activityId": "not a valid id!",
        "memberId": MEMBER,
        "type": "social_share",
        "occurTime": timestamp(datetime.now(UTC) - timedelta(minutes=1)),
    }
    async with grpc.aio.insecure_channel(suite.target("campaigns")) as channel:
        direct = campaigns_grpc.CampaignsServiceStub(channel)
        request = campaigns_pb.TrackActivityRequest()
        request.activity.activity_id = activity["activityId"]
        request.activity.member_id = MEMBER
        request.activity.type = "social_share"
        request.activity.occur_time.FromDatetime(datetime.now(UTC) - timedelta(minutes=1))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await direct.TrackActivity(request, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason = error_info(refused.value).reason

    response = await http_request(
        node.port,
        "POST",
        f"/{CAMPAIGNS}/TrackActivity",
        {"content-type": "application/json", "authorization": f"Bearer {mint.issue(MEMBER)}"},
        json.dumps({"activity": activity}).encode(),
    )
    assert response.status == 400
    body = response.json()
    assert body["code"] == "invalid_argument"
    infos = [
        error_details_pb2.ErrorInfo.FromString(base64.b64decode(d["value"] + "=="))
        for d in body["details"]
        if d["type"] == "google.rpc.ErrorInfo"
    ]
    assert [info.reason for info in infos] == [reason]

    result = await node.raw(
        "connect-json",
        CAMPAIGNS,
        "TrackActivity",
        request={"activity": activity},
        token=mint.issue(MEMBER),
    )
    assert result["error"]["reason"] == reason
    assert "activity.activity_id" in {v["field"] for v in result["error"]["fieldViolations"]}
