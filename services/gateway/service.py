"""The gateway's one use case: admit a call or refuse it, before any upstream sees it.

Order matters: the per-address limit comes first so floods of bad tokens are
cheap to refuse; then the token; then the per-member limit; then what the
caller may do and as whom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from services.gateway.domain import (
    AccessRule,
    Audience,
    Principal,
    RateLimiter,
    acting_member,
    authorize,
    retry_after_seconds,
)
from services.gateway.tokens import TokenVerifier
from services.kit.clock import Clock
from services.kit.errors import ResourceExhausted

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted call: who calls (None for a public method), and the member it
    acts for (when it names one)."""

    principal: Principal | None
    member_id: str | None


class RateLimited(ResourceExhausted):
    """RESOURCE_EXHAUSTED that knows when to come back (for Retry-After)."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(
            "RATE_LIMITED",
            f"too many calls from this {scope}; retry in {retry_after} s",
            {"scope": scope, "retry_after_seconds": retry_after},
        )
        self.retry_after = retry_after


class Gatekeeper:
    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        member_limits: RateLimiter,
        address_limits: RateLimiter,
        clock: Clock,
    ) -> None:
        self._verifier = verifier
        self._member_limits = member_limits
        self._address_limits = address_limits
        self._clock = clock

    async def admit(
        self,
        *,
        authorization: str | None,
        address: str,
        rule: AccessRule,
        requested_member: str | None,
        chosen: Mapping[str, str],
    ) -> Admission:
        """Raises Unauthenticated, RateLimited or PermissionDenied when refused."""
        self._take(self._address_limits, "address", address)
        if rule.audience is Audience.PUBLIC:
            return Admission(principal=None, member_id=None)
        principal = await self._verifier.verify(authorization)
        structlog.contextvars.bind_contextvars(subject=principal.subject)
        self._take(self._member_limits, "member", principal.subject)
        authorize(principal, rule, chosen)
        member_id = None
        if rule.member_field is not None:
            member_id = acting_member(principal, requested_member or "", rule)
        return Admission(principal=principal, member_id=member_id)

    def _take(self, limits: RateLimiter, scope: str, key: str) -> None:
        wait_us = limits.take(key, self._clock.now_us())
        if wait_us:
            log.info("rate_limited", scope=scope)
            raise RateLimited(scope, retry_after_seconds(wait_us))
