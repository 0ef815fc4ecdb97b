"""Fake campaigns and games feeds for progress tests: a gRPC server that
implements only WatchActivities and WatchPlays, from the test proto in
tests/progress/upstream (compiled here once per process, never into gen/)."""

from __future__ import annotations

import asyncio
import functools
import importlib
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_tools import protoc

from services.kit.proto_time import timestamp
from services.progress.adapters.contract import WatchContract

PROTO_DIR = Path(__file__).resolve().parent.parent / "progress" / "upstream"
PROTO = "upstream_feeds.proto"


@functools.cache
def stubs():
    """(messages module, grpc module) of the test proto."""
    out = Path(tempfile.mkdtemp(prefix="progress-upstream-"))
    include = Path(protoc.__file__).parent / "_proto"
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / PROTO),
        ]
    )
    assert status == 0, "the test proto does not compile"
    sys.path.insert(0, str(out))
    return importlib.import_module("upstream_feeds_pb2"), importlib.import_module(
        "upstream_feeds_pb2_grpc"
    )


def contracts() -> dict[str, WatchContract]:
    pb, _ = stubs()
    return {
        "campaigns": WatchContract(
            "/loyalty.progresstest.v1.CampaignsFeedService/WatchActivities",
            pb.WatchActivitiesRequest,
            pb.WatchActivitiesResponse,
        ),
        "games": WatchContract(
            "/loyalty.progresstest.v1.GamesFeedService/WatchPlays",
            pb.WatchPlaysRequest,
            pb.WatchPlaysResponse,
        ),
    }


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
        _, pb_grpc = stubs()
        feeds = self

        class Campaigns(pb_grpc.CampaignsFeedServiceServicer):
            async def WatchActivities(self, request, context):
                async for item in feeds.activities.follow(request.after_sequence):
                    yield item

        class Games(pb_grpc.GamesFeedServiceServicer):
            async def WatchPlays(self, request, context):
                async for item in feeds.plays.follow(request.after_sequence):
                    yield item

        self.server = grpc.aio.server()
        pb_grpc.add_CampaignsFeedServiceServicer_to_server(Campaigns(), self.server)
        pb_grpc.add_GamesFeedServiceServicer_to_server(Games(), self.server)
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
        pb, _ = stubs()
        message = pb.WatchActivitiesResponse(points=points, time_zone=zone)
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
        pb, _ = stubs()
        message = pb.WatchPlaysResponse()
        play = message.play
        play.play_id, play.member_id, play.game_id, play.score = play_id, member, game, score
        play.kind = pb.PLAY_KIND_CATCH if catch else pb.PLAY_KIND_SPIN
        play.play_time.CopyFrom(timestamp(occur_us))
        return await self.plays.append(message)
