"""A field the message does not define is INVALID_ARGUMENT naming it, in JSON
and in binary, at any depth, before any upstream sees the call."""

from __future__ import annotations

import json
import urllib.parse

import grpc
import pytest
import pytest_asyncio
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb

from services.kit.status import error_info, field_violations
from tests.support.gateway import bearer, connect_headers, gateway_settings, http_request

WALLET = "/loyalty.gateway.v1.WalletService/GetWallet"
TRACK = "/loyalty.campaigns.v1.CampaignsService/TrackActivity"
SUBMIT = "/loyalty.games.v1.GamesService/SubmitCatch"


@pytest_asyncio.fixture
async def gateway(start_gateway, health_upstream):
    # Every upstream is the probe: a call that gets past the gateway is UNIMPLEMENTED there.
    target = health_upstream.target
    return await start_gateway(
        gateway_settings(ledger_target=target, games_target=target, campaigns_target=target)
    )


async def post(gateway, path: str, token: str, body: dict | str) -> tuple[int, dict]:
    payload = body if isinstance(body, str) else json.dumps(body)
    response = await http_request(
        gateway.port, "POST", path, connect_headers(token), payload.encode()
    )
    return response.status, response.json()


def violations_of(body: dict) -> dict[str, str]:
    (bad_request,) = [d["debug"] for d in body["details"] if d["type"] == "google.rpc.BadRequest"]
    return {v["field"]: v["description"] for v in bad_request["fieldViolations"]}


def reason_of(body: dict) -> str:
    (info,) = [d["debug"] for d in body["details"] if d["type"] == "google.rpc.ErrorInfo"]
    return info["reason"]


async def test_a_misspelled_field_is_named_with_a_suggestion(gateway, tokens, health_upstream):
    status, body = await post(gateway, WALLET, tokens.issue(), {"memberid": "m-1"})
    assert (status, body["code"], reason_of(body)) == (400, "invalid_argument", "UNKNOWN_FIELD")
    description = violations_of(body)["memberid"]
    assert "did you mean 'memberId'?" in description
    assert "loyalty.gateway.v1.GetWalletRequest" in description
    assert health_upstream.probe.seen == []


async def test_both_spellings_of_a_field_are_accepted(gateway, tokens):
    token = tokens.issue("m-1")
    for body in ({"member_id": "m-1"}, {"memberId": "m-1"}):
        status, answer = await post(gateway, WALLET, token, body)
        # Admitted: the probe, standing in for the ledger, lacks the call.
        assert (status, reason_of(answer)) == (501, "UPSTREAM_UNIMPLEMENTED"), answer


async def test_unknown_fields_are_found_at_any_depth(gateway, tokens):
    activity = {
        "activityId": "a-1",
        "memberid": "m-1",
        "attributes": {"any-key": "is data, not a field"},
    }
    status, body = await post(gateway, TRACK, tokens.issue(), {"activity": activity, "extra": 1})
    assert status == 400
    assert set(violations_of(body)) == {"activity.memberid", "extra"}

    catches = [{"objectId": 1}, {"objectid": 2}]
    status, body = await post(gateway, SUBMIT, tokens.issue(), {"catches": catches})
    assert set(violations_of(body)) == {"catches[1].objectid"}


async def test_json_that_is_not_the_message_is_malformed(gateway, tokens):
    for body in ('{"unit": 5}', '{"unit": "points", "unit": "prize:gold"}', "[1]", "{"):
        status, answer = await post(gateway, WALLET, tokens.issue(), body)
        assert (status, reason_of(answer)) == (400, "MALFORMED_REQUEST"), body
        assert set(violations_of(answer)) == {"request"}


async def test_get_requests_are_checked_too(gateway, tokens):
    query = urllib.parse.urlencode({"encoding": "json", "message": '{"memberid": "m-1"}'})
    response = await http_request(
        gateway.port, "GET", f"{WALLET}?{query}", {"authorization": f"Bearer {tokens.issue()}"}
    )
    assert response.status == 400
    assert set(violations_of(response.json())) == {"memberid"}


# Field 99 as a varint: defined by none of these messages.
UNKNOWN = b"\x98\x06\x01"
NESTED = campaigns_pb.TrackActivityRequest(
    activity=campaigns_pb.Activity.FromString(
        campaigns_pb.Activity(activity_id="a-1", type="app_login").SerializeToString() + UNKNOWN
    )
)


@pytest.mark.parametrize(
    ("path", "request_bytes", "field"),
    [
        (
            WALLET,
            gateway_pb.GetWalletRequest(unit="points").SerializeToString() + UNKNOWN,
            "request",
        ),
        (TRACK, NESTED.SerializeToString(), "activity"),
    ],
)
async def test_unknown_binary_fields_are_refused(gateway, tokens, path, request_bytes, field):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        call = channel.unary_unary(path)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request_bytes, metadata=bearer(tokens.issue()), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == "UNKNOWN_FIELD"
    assert "has no field number" in field_violations(refused.value)[field]
