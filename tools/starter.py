"""The starter program `make run` sets up, so that a new user who opens
http://127.0.0.1:8080/app/ has something to play: a daily wheel with a
stocked points pool, the catch game `coins` (the player app's default), base
rules for the activities players report, and a weekend share bonus. Everything
goes through the gateway's manager API with a development token, and every
call is idempotent: running it against a suite that has the program changes
nothing. A refused step is printed and the rest goes on.

    python -m tools.starter [--gateway 127.0.0.1:8080]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.games.v1 import games_service_pb2_grpc as games_grpc

from services.gateway.server import GatewaySettings
from tools.demo import TokenMint

ZONE = "Europe/Paris"
CALL_SECONDS = 10.0

WHEEL = {
    "wheelId": "daily",
    "config": {
        "displayName": "Daily wheel",
        "segments": [
            {"label": "Try again", "weight": "45", "color": "#5B3DF5"},
            {"label": "10 points", "weight": "30", "prize": {"points": "10"}, "color": "#10B981"},
            {"label": "25 points", "weight": "15", "prize": {"points": "25"}, "color": "#F59E0B"},
            {"label": "100 points", "weight": "8", "prize": {"points": "100"}, "color": "#EF4444"},
            {"label": "500 points", "weight": "2", "prize": {"points": "500"}, "color": "#0EA5E9"},
        ],
        "fallbackSegmentIndex": 0,
        "costPoints": "0",
        "spinsPerDay": 5,
        "timeZone": ZONE,
    },
}
CATCH = {
    "gameId": "coins",
    "config": {
        "displayName": "Catch the coins",
        "durationMillis": 20000,
        "spawnIntervalMillis": 700,
        "fieldWidth": 100,
        "basketWidth": 16,
        "basketTopSpeed": 90,
        "catchWindowMillis": 250,
        "objectTypes": [
            {"name": "coin", "points": "2", "spawnWeight": "6", "fallMillis": 1800, "width": 4},
            {"name": "star", "points": "10", "spawnWeight": "1", "fallMillis": 1400, "width": 4},
            {"name": "bomb", "points": "-5", "spawnWeight": "2", "fallMillis": 2000, "width": 6},
        ],
        "sessionScoreCap": "200",
        "dailyPointsCap": "500",
        "timeZone": ZONE,
        "submitGraceMillis": 60000,
    },
}
BASE_RULES = {
    "earn-share": ("10 points per share", "social_share", 10),
    "earn-review": ("25 points per review", "product_review", 25),
    "earn-profile": ("50 points for a complete profile", "profile_completed", 50),
    "earn-login": ("2 points for opening the app", "app_login", 2),
}
WEEKEND = {
    "campaignId": "weekend-share-bonus",
    "spec": {
        "displayName": "Weekend share bonus",
        "description": "15 extra points per share, every weekend",
        "kind": "CAMPAIGN_KIND_FIXED_BONUS",
        "budgetPoints": "1000000",
        "reward": {"points": "15"},
        "conditions": {"activityTypes": ["social_share"]},
        "schedule": {
            "start": {"year": 2026, "month": 1, "day": 3},
            "duration": "172800s",
            "rrule": "FREQ=WEEKLY;BYDAY=SA",
            "timeZone": ZONE,
        },
        "limits": {"memberLimits": [{"period": "LIMIT_PERIOD_DAY", "maxPoints": "75"}]},
    },
}


async def _step(name: str, call: Callable[[], Awaitable[Any]]) -> None:
    try:
        await call()
        print(f"  {name}")
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.ALREADY_EXISTS:
            print(f"  {name} (already there)")
        else:
            print(f"  {name}: refused, {error.code().name} {error.details()}")


async def set_up(gateway: str, token: str) -> None:
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(gateway) as channel:
        games = games_grpc.GamesServiceStub(channel)
        campaigns = campaigns_grpc.CampaignsServiceStub(channel)

        def call(method, request_type, body):
            request = json_format.ParseDict(body, request_type())
            return method(request, metadata=metadata, timeout=CALL_SECONDS)

        print("Starter program (python -m tools.starter):")
        await _step(
            "wheel daily", lambda: call(games.CreateWheel, games_pb.CreateWheelRequest, WHEEL)
        )
        stock = {"wheelId": "daily", "unit": "points", "quantity": "1000000"}
        stock["requestId"] = "starter"
        await _step(
            "wheel daily: 1,000,000 points in its pool",
            lambda: call(games.StockWheel, games_pb.StockWheelRequest, stock),
        )
        await _step(
            "catch game coins",
            lambda: call(games.CreateCatchGame, games_pb.CreateCatchGameRequest, CATCH),
        )
        campaigns_to_make = [
            {
                "campaignId": campaign_id,
                "spec": {
                    "displayName": name,
                    "kind": "CAMPAIGN_KIND_BASE_RULE",
                    "reward": {"points": str(points)},
                    "conditions": {"activityTypes": [activity]},
                    "schedule": {"timeZone": ZONE},
                },
            }
            for campaign_id, (name, activity, points) in BASE_RULES.items()
        ] + [WEEKEND]
        for body in campaigns_to_make:
            campaign_id = body["campaignId"]
            await _step(
                f"campaign {campaign_id}",
                lambda body=body: call(
                    campaigns.CreateCampaign, campaigns_pb.CreateCampaignRequest, body
                ),
            )
            await _step(
                f"campaign {campaign_id} scheduled",
                lambda campaign_id=campaign_id: call(
                    campaigns.ScheduleCampaign,
                    campaigns_pb.ScheduleCampaignRequest,
                    {"campaignId": campaign_id},
                ),
            )


async def set_up_dev(gateway: str) -> None:
    """The starter program, as a manager with the gateway's development secret."""
    mint = TokenMint.from_settings(GatewaySettings.from_env())
    await set_up(gateway, mint.issue("starter", "campaign-manager"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default=GatewaySettings.from_env().listen)
    arguments = parser.parse_args()
    asyncio.run(set_up_dev(arguments.gateway))


if __name__ == "__main__":
    main()
