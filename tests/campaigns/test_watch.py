"""WatchCampaigns: transitions by the injected clock, resumable across a restart."""

from __future__ import annotations

import asyncio

from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc

from tests.support.campaigns import fixed, launch, program, purchase, start_campaigns, window

# The ManualClock starts at 2026-01-01T00:00:00Z, 01:00 in Paris.
START_S = 1_767_225_600
LIVE_GUARD_SECONDS = 30  # only against a hang; the clock, not waiting, makes things happen


async def next_transition(stream) -> tuple[str, int, int, int]:
    message = await asyncio.wait_for(stream.read(), LIVE_GUARD_SECONDS)
    t = message.transition
    return t.campaign_id, t.from_state, t.to_state, t.effect_time.seconds


async def test_transitions_follow_the_clock_and_resume_after_a_restart(campaigns, ledger):
    stub, clock = campaigns.stub, campaigns.clock
    await launch(stub, "morning", fixed(10, schedule=window("2026-01-01T02:00:00", 2)))
    stream = stub.WatchCampaigns(pb.WatchCampaignsRequest())
    assert await next_transition(stream) == (
        "morning",
        pb.CAMPAIGN_STATE_DRAFT,
        pb.CAMPAIGN_STATE_SCHEDULED,
        START_S,
    )
    clock.advance(3600)
    assert await next_transition(stream) == (
        "morning",
        pb.CAMPAIGN_STATE_SCHEDULED,
        pb.CAMPAIGN_STATE_LIVE,
        START_S + 3600,
    )
    await stub.PauseCampaign(pb.PauseCampaignRequest(campaign_id="morning"))
    assert (await next_transition(stream))[2] == pb.CAMPAIGN_STATE_PAUSED
    await stub.ResumeCampaign(pb.ResumeCampaignRequest(campaign_id="morning"))
    _, _, live_again, _ = await next_transition(stream)
    assert live_again == pb.CAMPAIGN_STATE_LIVE
    stream.cancel()

    # Down while the window ends: the transition is announced on restart with
    # the instant it took effect, and nothing before it is repeated.
    await campaigns.host.stop(None)
    clock.advance(3 * 3600)
    host, channel = await start_campaigns(ledger.target, clock, campaigns.settings.db_path)
    async with channel:
        resumed = pb_grpc.CampaignsServiceStub(channel).WatchCampaigns(
            pb.WatchCampaignsRequest(after_sequence=4)
        )
        message = await asyncio.wait_for(resumed.read(), LIVE_GUARD_SECONDS)
        assert message.transition.sequence == 5
        assert message.transition.to_state == pb.CAMPAIGN_STATE_ENDED
        assert message.transition.effect_time.seconds == START_S + 3 * 3600
        resumed.cancel()
    await host.stop(None)


async def test_a_budget_running_out_is_announced(campaigns):
    stub = campaigns.stub
    await program(stub)
    await launch(stub, "tiny", fixed(10, budget=10))
    stream = stub.WatchCampaigns(pb.WatchCampaignsRequest())
    seen = [await next_transition(stream) for _ in range(2)]
    assert {(c, after) for c, _, after, _ in seen} == {
        ("base", pb.CAMPAIGN_STATE_LIVE),
        ("tiny", pb.CAMPAIGN_STATE_LIVE),
    }
    now = campaigns.clock.now_us()
    await stub.TrackActivity(pb.TrackActivityRequest(activity=purchase("a-1", 100, now)))
    assert await next_transition(stream) == (
        "tiny",
        pb.CAMPAIGN_STATE_LIVE,
        pb.CAMPAIGN_STATE_BUDGET_EXHAUSTED,
        now // 1_000_000,
    )
    stream.cancel()
