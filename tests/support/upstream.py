"""Fake campaigns and games feeds for progress tests: one gRPC server that
implements only the real contracts' WatchActivities (loyalty.campaigns.v1) and
WatchPlays (loyalty.games.v1), serving messages of their real types that the
test appends, so progress reads them through its real adapters."""

from __future__ import annotations

import asyncio

import grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.games.v1 import games_service_pb2_grpc as games_grpc

from services.kit.proto_time import timestamp


class Feed:
    """One gapless feed held in memory, served to every reader after a sequence."""

    def __init__(self) -> None:
        self.items: list = []
        self._changed = asyncio.Condition()
        self.opened = 0

    async def append(self, message) -> int:
        message.sequence = len(self.items) + 1
        self.items.append(message)
        async with self._changed:
            self._changed.notify_all()
        return message.sequence

    async def follow(self, after: int):
        self.opened += 1
        position = after
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda seen=position: len(self.items) > seen)
            while position < len(self.items):
                yield self.items[position]
                position += 1


class FakeUpstream:
    """Campaigns' and games' feeds on one server."""

    def __init__(self) -> None:
        self.activities = Feed()
        self.plays = Feed()
        self.server: grpc.aio.Server | None = None
        self.target = ""

    async def start(self, port: int = 0) -> str:
        feeds = self

        class Campaigns(campaigns_grpc.CampaignsServiceServicer):
            async def WatchActivities(self, request, context):
                async for item in feeds.activities.follow(request.after_sequence):
                    yield item

        class Games(games_grpc.GamesServiceServicer):
            async def WatchPlays(self, request, context):
                async for item in feeds.plays.follow(request.after_sequence):
                    yield item

        self.server = grpc.aio.server()
        campaigns_grpc.add_CampaignsServiceServicer_to_server(Campaigns(), self.server)
        games_grpc.add_GamesServiceServicer_to_server(Games(), self.server)
        bound = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()
        self.target = f"127.0.0.1:{bound}"
        return self.target

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)

    async def activity(
        self,
        activity_id: str,
        member: str,
        kind: str,
        occur_us: int,
        points: int = 0,
        zone: str = "",
        amount: int = 0,
        refunds: str = "",
        record_us: int | None = None,
    ) -> int:
        message = campaigns_pb.WatchActivitiesResponse(points=points, time_zone=zone)
        activity = message.activity
        activity.activity_id, activity.member_id, activity.type = activity_id, member, kind
        activity.occur_time.CopyFrom(timestamp(occur_us))
        if refunds:
            activity.refund.purchase_activity_id = refunds
            activity.refund.amount_minor = amount
        elif amount:
            activity.purchase.amount_minor = amount
        message.record_time.CopyFrom(timestamp(record_us or occur_us))
        return await self.activities.append(message)

    async def play(
        self,
        play_id: str,
        member: str,
        occur_us: int,
        game: str = "wheel-1",
        score: int = 0,
        catch: bool = False,
    ) -> int:
        """A settled spin (a catch with `catch`) recorded at `occur_us`, as games streams it."""
        message = games_pb.WatchPlaysResponse()
        play = message.play
        play.play_id, play.member_id, play.game_id, play.score = play_id, member, game, score
        play.kind = games_pb.PLAY_KIND_CATCH if catch else games_pb.PLAY_KIND_SPIN
        play.status = games_pb.PLAY_STATUS_SETTLED
        play.create_time.CopyFrom(timestamp(occur_us))
        return await self.plays.append(message)
