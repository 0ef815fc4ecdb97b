"""loyalty.progress.v1 <-> the progress use cases; errors are mapped by the server kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as pb_grpc

from services.kit.errors import Violations
from services.kit.feeds import FeedState
from services.kit.proto_time import optional_micros
from services.progress import codec
from services.progress.catalog import CatalogUseCases
from services.progress.feeding import FeedUseCases
from services.progress.members import MemberUseCases
from services.progress.rewards import Rewards
from services.progress.watching import WatchUseCases

STATS_PERIODS = {0: "DAY", pb.STATS_PERIOD_DAY: "DAY", pb.STATS_PERIOD_WEEK: "WEEK"}
STATS_PERIODS[pb.STATS_PERIOD_MONTH] = "MONTH"


@dataclass
class UseCases:
    catalog: CatalogUseCases
    members: MemberUseCases
    feeds: FeedUseCases
    watch: WatchUseCases
    rewards: Rewards
    feed_states: list[FeedState]


class ProgressServicer(pb_grpc.ProgressServiceServicer):
    def __init__(self, cases: UseCases) -> None:
        self._cases = cases

    async def ApplyDefinition(
        self, request: pb.ApplyDefinitionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyDefinitionResponse:
        violations = Violations()
        spec = codec.spec_from_proto(request.definition, violations)
        expected = request.expected_version if request.HasField("expected_version") else None
        definition, changed = await self._cases.catalog.apply(
            request.definition.id, spec, expected, violations
        )
        return pb.ApplyDefinitionResponse(
            definition=codec.definition_to_proto(definition), changed=changed
        )

    async def GetDefinition(
        self, request: pb.GetDefinitionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDefinitionResponse:
        definition = await self._cases.catalog.get(request.id)
        return pb.GetDefinitionResponse(definition=codec.definition_to_proto(definition))

    async def ListDefinitions(
        self, request: pb.ListDefinitionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDefinitionsResponse:
        page = await self._cases.catalog.list(
            codec.kind_from_proto(request.kind), request.page_size, request.page_token
        )
        return pb.ListDefinitionsResponse(
            definitions=[codec.definition_to_proto(d) for d in page.items],
            next_page_token=page.next_page_token,
        )

    async def ArchiveDefinition(
        self, request: pb.ArchiveDefinitionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ArchiveDefinitionResponse:
        definition = await self._cases.catalog.archive(request.id)
        return pb.ArchiveDefinitionResponse(definition=codec.definition_to_proto(definition))

    async def DryRunTierProgram(
        self, request: pb.DryRunTierProgramRequest, context: grpc.aio.ServicerContext
    ) -> pb.DryRunTierProgramResponse:
        violations = Violations()
        program = codec.program_from_proto(violations, "program", request.program)
        counts, members, events = await self._cases.catalog.dry_run(
            program, optional_micros(request, "as_of_time"), violations
        )
        return pb.DryRunTierProgramResponse(
            tiers=[pb.TierCount(tier_id=tier, members=count) for tier, count in counts.items()],
            members=members,
            events=events,
        )

    async def GetMemberProgress(
        self, request: pb.GetMemberProgressRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMemberProgressResponse:
        return codec.progress_to_proto(await self._cases.members.progress(request.member_id))

    async def ListMemberEvents(
        self, request: pb.ListMemberEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMemberEventsResponse:
        page = await self._cases.members.events(
            request.member_id, request.page_size, request.page_token
        )
        return pb.ListMemberEventsResponse(
            events=[codec.event_to_proto(recorded) for recorded in page.items],
            next_page_token=page.next_page_token,
        )

    async def SetTierFloor(
        self, request: pb.SetTierFloorRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetTierFloorResponse:
        view = await self._cases.members.set_floor(
            request.program_id,
            request.member_id,
            request.tier_id,
            optional_micros(request, "expire_time"),
            request.reason,
        )
        return pb.SetTierFloorResponse(status=codec.tier_status(view))

    async def JoinChallenge(
        self, request: pb.JoinChallengeRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinChallengeResponse:
        view = await self._cases.members.join(request.challenge_id, request.member_id)
        return pb.JoinChallengeResponse(progress=codec.challenge_progress(view))

    async def RebuildMember(
        self, request: pb.RebuildMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.RebuildMemberResponse:
        events, differences = await self._cases.members.rebuild(request.member_id)
        return pb.RebuildMemberResponse(
            events=events,
            differences=[
                pb.Difference(subject=d.subject, stored=d.stored, rebuilt=d.rebuilt)
                for d in differences
            ],
        )

    async def GetProgressStats(
        self, request: pb.GetProgressStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetProgressStatsResponse:
        violations = Violations()
        period = STATS_PERIODS.get(request.period)
        violations.check(period is not None, "period", "unknown period")
        violations.raise_if_any()
        stats = await self._cases.members.stats(
            request.program_id,
            optional_micros(request, "start_time"),
            optional_micros(request, "end_time"),
            period or "DAY",
        )
        return pb.GetProgressStatsResponse(
            tiers=[pb.TierCount(tier_id=tier, members=count) for tier, count in stats.tiers],
            moves=[
                pb.TierMoves(
                    period_start_time=codec.timestamp(m.period_start_us), up=m.up, down=m.down
                )
                for m in stats.moves
            ],
            badges=[_completion(c) for c in stats.badges],
            challenges=[_completion(c) for c in stats.challenges],
        )

    async def GetFeedStatus(
        self, request: pb.GetFeedStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFeedStatusResponse:
        return pb.GetFeedStatusResponse(
            feeds=[
                pb.FeedStatus(
                    feed=state.name,
                    cursor=state.cursor,
                    connected=state.connected,
                    applied=state.applied,
                    last_error=state.last_error,
                    catching_up=state.catching_up,
                )
                for state in self._cases.feed_states
            ]
        )

    async def FundBudget(
        self, request: pb.FundBudgetRequest, context: grpc.aio.ServicerContext
    ) -> pb.FundBudgetResponse:
        account_id, balance = await self._cases.members.fund(
            request.budget_id, request.points, request.request_id
        )
        return pb.FundBudgetResponse(account_id=account_id, balance=balance)

    async def WatchTierChanges(
        self, request: pb.WatchTierChangesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchTierChangesResponse]:
        async for change in self._cases.watch.tier_changes(
            request.after_sequence, request.program_id
        ):
            yield pb.WatchTierChangesResponse(change=codec.change_to_proto(change))

    async def WatchAchievements(
        self, request: pb.WatchAchievementsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchAchievementsResponse]:
        async for achievement in self._cases.watch.achievements(
            request.member_id, request.after_sequence
        ):
            yield pb.WatchAchievementsResponse(achievement=codec.achievement_to_proto(achievement))


def _completion(completion) -> pb.CompletionStats:
    rate = completion.completions / completion.participants if completion.participants else 0.0
    return pb.CompletionStats(
        definition_id=completion.definition_id,
        participants=completion.participants,
        completions=completion.completions,
        completion_rate=min(rate, 1.0),
    )
