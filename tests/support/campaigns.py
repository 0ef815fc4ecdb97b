"""What the campaigns tests that call a real server share: protobuf builders,
a real campaigns server beside a real ledger, and the steps many tests take
(a program of members and a base rule, launching a campaign, points moved
outside the service). Domain objects are in tests/support/campaign_specs.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.campaigns.server import CampaignsSettings, build_server
from services.kit.clock import Clock
from services.kit.server import ServiceHost
from tests.support import deadlines
from tests.support.campaign_specs import ZONE, at
from tests.support.ledger import post, posted


def stamp(micros: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000)


def local(text: str) -> pb.LocalDateTime:
    m = datetime.fromisoformat(text)
    return pb.LocalDateTime(
        year=m.year, month=m.month, day=m.day, hours=m.hour, minutes=m.minute, seconds=m.second
    )


def window(start: str, hours: float, zone: str = ZONE, **fields) -> pb.Schedule:
    return pb.Schedule(
        start=local(start),
        duration=duration_pb2.Duration(seconds=int(hours * 3600)),
        time_zone=zone,
        **fields,
    )


def always(zone: str = ZONE) -> pb.Schedule:
    return pb.Schedule(time_zone=zone)


def campaign(name: str, kind: int, reward: pb.Reward, budget: int, **fields) -> pb.CampaignSpec:
    """A spec, always live unless a schedule is given."""
    return pb.CampaignSpec(
        display_name=name,
        kind=kind,
        reward=reward,
        budget_points=budget,
        schedule=fields.pop("schedule", always()),
        **fields,
    )


def base_rule(points_per_unit: int = 1, **fields) -> pb.CampaignSpec:
    reward = pb.Reward(points_per_unit=points_per_unit)
    return campaign("1 point per euro", pb.CAMPAIGN_KIND_BASE_RULE, reward, 0, **fields)


def fixed(points: int, budget: int = 10_000, **fields) -> pb.CampaignSpec:
    reward = pb.Reward(points=points)
    return campaign(
        f"{points} bonus points", pb.CAMPAIGN_KIND_FIXED_BONUS, reward, budget, **fields
    )


def multiplier(percent: int, budget: int = 10_000, **fields) -> pb.CampaignSpec:
    reward = pb.Reward(multiplier_percent=percent)
    return campaign(f"{percent}% points", pb.CAMPAIGN_KIND_MULTIPLIER, reward, budget, **fields)


def signup_referral(referrer_points: int, referred_points: int, budget: int = 1000):
    """A referral bonus paying both members when the referred one signs up."""
    reward = pb.Reward(
        referral_stage=pb.REFERRAL_STAGE_SIGNUP,
        referrer_points=referrer_points,
        referred_points=referred_points,
    )
    return campaign("Bring a friend", pb.CAMPAIGN_KIND_REFERRAL_BONUS, reward, budget)


def member(member_id: str = "m-1", **fields) -> pb.Member:
    return pb.Member(member_id=member_id, **fields)


def purchase(
    activity_id: str, amount_minor: int, occur_us: int, member_id: str = "m-1", **fields
) -> pb.Activity:
    return pb.Activity(
        activity_id=activity_id,
        member_id=member_id,
        type="purchase",
        occur_time=stamp(occur_us),
        purchase=pb.Purchase(amount_minor=amount_minor, currency="EUR"),
        **fields,
    )


def activity(activity_id: str, kind: str, occur_us: int, member_id: str = "m-1", **fields):
    return pb.Activity(
        activity_id=activity_id,
        member_id=member_id,
        type=kind,
        occur_time=stamp(occur_us),
        **fields,
    )


# Servers.


@dataclass
class RunningCampaigns:
    """A real campaigns server on a free port and stubs to it and to its ledger,
    every call with a deadline (tests/support/deadlines.py)."""

    host: ServiceHost
    stub: pb_grpc.CampaignsServiceStub
    ledger: ledger_grpc.LedgerServiceStub
    clock: Clock
    settings: CampaignsSettings


async def start_campaigns(
    ledger_target: str, clock: Clock, db_path: Path
) -> tuple[ServiceHost, grpc.aio.Channel]:
    """A real campaigns server over `db_path` on a free port, and a channel to it."""
    settings = CampaignsSettings(db_path=db_path, ledger_target=ledger_target)
    host = await build_server(settings, "127.0.0.1:0", clock)
    await host.start()
    return host, deadlines.channel(f"127.0.0.1:{host.port}")


# Steps.


async def track(stub, message: pb.Activity) -> pb.TrackActivityResponse:
    return await stub.TrackActivity(pb.TrackActivityRequest(activity=message))


async def launch(stub, campaign_id: str, spec: pb.CampaignSpec) -> pb.Campaign:
    await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id=campaign_id, spec=spec))
    response = await stub.ScheduleCampaign(pb.ScheduleCampaignRequest(campaign_id=campaign_id))
    return response.campaign


async def program(stub, *member_ids: str) -> None:
    """Members (m-1 by default) and the always-on rule of 1 point per euro."""
    for member_id in member_ids or ("m-1",):
        await stub.UpsertMember(pb.UpsertMemberRequest(member=member(member_id)))
    await launch(stub, "base", base_rule())


async def move_points(ledger, transfer_id: str, debit: str, credit: str, amount: int) -> None:
    """Points leaving an account outside the campaigns service (a redemption, an operator)."""
    await ledger.OpenAccount(
        ledger_pb.OpenAccountRequest(
            account=ledger_pb.Account(
                id=credit, unit="points", kind=ledger_pb.ACCOUNT_KIND_ADJUSTMENT
            )
        )
    )
    (result,) = await post(
        ledger, posted(transfer_id, debit, credit, amount, code=ledger_pb.TRANSFER_CODE_ADJUSTMENT)
    )
    assert result.code == ledger_pb.TRANSFER_RESULT_CODE_OK, result


__all__ = ["ZONE", "at"]
