"""Where a member's tiers, segments and time zone come from: the campaigns
service's member profile (`CampaignsService/GetMember`), asked with a deadline
and kept for a short while. Its `tiers` are the computed ones: campaigns
follows progress' WatchTierChanges and raises each to the profile's manual
tier where that is higher, so rewards and campaign targeting read one answer,
decided in one place, and rewards follows no feed of its own. Only rewards
with tier, segment, early-access or per-period rules ask at all.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

import grpc
import structlog
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc

from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import Unavailable
from services.kit.outgoing import RETRYABLE, call_with_retry
from services.rewards.domain.eligibility import MemberProfile

log = structlog.get_logger()


class MemberProfiles(Protocol):
    async def profile(self, member_id: str) -> MemberProfile: ...


class CampaignsProfiles:
    """Member profiles from the campaigns service, cached for `ttl_seconds` (a tier
    change shows after at most that long)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        clock: Clock,
        timeout: float,
        ttl_seconds: float,
        capacity: int = 50_000,
    ) -> None:
        self._stub = campaigns_grpc.CampaignsServiceStub(channel)
        self._clock = clock
        self._timeout = timeout
        self._ttl_us = int(ttl_seconds * MICROS_PER_SECOND)
        self._capacity = capacity
        self._cache: OrderedDict[str, tuple[int, MemberProfile]] = OrderedDict()

    async def profile(self, member_id: str) -> MemberProfile:
        now = self._clock.now_us()
        cached = self._cache.get(member_id)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            response = await call_with_retry(
                self._stub.GetMember,
                campaigns_pb.GetMemberRequest(member_id=member_id),
                deadline=self._timeout,
                attempts=2,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                profile = MemberProfile()
            elif error.code() in (*RETRYABLE, grpc.StatusCode.CANCELLED):
                raise Unavailable(
                    "PROFILES_UNAVAILABLE",
                    "member profiles (tiers) cannot be read now; try again shortly",
                ) from error
            else:
                log.warning("profile_refused", code=error.code().name)
                profile = MemberProfile()
        else:
            member = response.member
            profile = MemberProfile(
                frozenset(member.tiers), frozenset(member.segments), member.time_zone
            )
        self._cache[member_id] = (now + self._ttl_us, profile)
        self._cache.move_to_end(member_id)
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return profile
