"""JWT bearer tokens: verification for the gateway and issuing for development.

A fixed algorithm list per key source means a token cannot choose how it is
checked: HS256 with a shared secret in development, RS256/ES256 with public
keys from a JWKS file or URL in production. `exp` and `nbf` are checked against
the injected clock, so tests move time instead of sleeping. Every rejection is
UNAUTHENTICATED with a reason and without the library's wording.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
import structlog

from services.gateway.domain import KNOWN_ROLES, PLAYER, Principal
from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import Unauthenticated

log = structlog.get_logger()

HMAC_ALGORITHMS = ("HS256",)
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
REQUIRED_CLAIMS = ("sub", "exp", "iss", "aud")
MAX_TOKEN_LENGTH = 8192
# A verified token is reused for its caller's next calls, its time still checked
# at each: a signature is checked once per token and period, not once per call.
# The period bounds how long a token outlives its key leaving the key set.
VERIFIED_SECONDS = 300
MAX_VERIFIED_TOKENS = 10_000


class KeySource(Protocol):
    algorithms: tuple[str, ...]

    async def key_for(self, token: str) -> Any:
        """The key that must have signed this token."""
        ...


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires: float | None
    not_before: float | None
    until: float


@dataclass(frozen=True)
class SharedSecret:
    """HS256 with one secret: for development and tests."""

    secret: bytes
    algorithms: tuple[str, ...] = HMAC_ALGORITHMS

    async def key_for(self, token: str) -> bytes:
        return self.secret


class JwksFile:
    """RS256/ES256 public keys from a JWKS document on disk, chosen by `kid`."""

    algorithms = PUBLIC_KEY_ALGORITHMS

    def __init__(self, path: Path) -> None:
        self._keys = jwt.PyJWKSet.from_json(path.read_text())

    async def key_for(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = list(self._keys)
        if kid is None and len(keys) == 1:
            return keys[0]
        try:
            return self._keys[str(kid)]
        except KeyError as error:
            raise Unauthenticated("TOKEN_KEY_UNKNOWN", "the token's key id is unknown") from error


class JwksUrl:
    """RS256/ES256 public keys fetched (and cached) from a JWKS URL."""

    algorithms = PUBLIC_KEY_ALGORITHMS

    def __init__(self, url: str) -> None:
        self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)

    async def key_for(self, token: str) -> jwt.PyJWK:
        try:
            # PyJWKClient fetches with blocking I/O; keep it off the event loop.
            return await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as error:
            log.warning("jwks_unreachable", error=str(error))
            raise Unauthenticated(
                "TOKEN_KEYS_UNAVAILABLE", "the token's keys cannot be fetched"
            ) from error


class TokenVerifier:
    """Turns an `Authorization: Bearer ...` value into a Principal."""

    def __init__(
        self, keys: KeySource, *, issuer: str, audience: str, leeway_seconds: float, clock: Clock
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._clock = clock
        self._verified: dict[str, _Verified] = {}

    async def verify(self, authorization: str | None) -> Principal:
        token = _bearer_token(authorization)
        now = self._clock.now_us() / MICROS_PER_SECOND
        verified = self._verified.get(token)
        if verified is None or verified.until <= now:
            verified = await self._verify(token, now)
        try:
            self._check_time(verified, now)
        except Unauthenticated:
            self._verified.pop(token, None)
            raise
        return verified.principal

    async def _verify(self, token: str, now: float) -> _Verified:
        try:
            key = await self._keys.key_for(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self._keys.algorithms),
                audience=self._audience,
                issuer=self._issuer,
                # Time is checked below against the injected clock.
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("TOKEN_EXPIRED", "the token has expired") from error
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as error:
            raise Unauthenticated(
                "TOKEN_WRONG_AUDIENCE_OR_ISSUER", "the token is not meant for this gateway"
            ) from error
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(
                "TOKEN_CLAIM_MISSING", f"the token lacks the {error.claim!r} claim"
            ) from error
        except jwt.InvalidSignatureError as error:
            raise Unauthenticated(
                "TOKEN_BAD_SIGNATURE", "the token's signature is wrong"
            ) from error
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise Unauthenticated("TOKEN_INVALID", "the token is malformed or unusable") from error
        verified = _Verified(
            _principal(claims),
            _numeric_claim(claims, "exp"),
            _numeric_claim(claims, "nbf"),
            now + VERIFIED_SECONDS,
        )
        self._verified.pop(token, None)
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            # The oldest verified goes first (insertion order).
            del self._verified[next(iter(self._verified))]
        self._verified[token] = verified
        return verified

    def _check_time(self, verified: _Verified, now: float) -> None:
        if verified.expires is not None and verified.expires <= now - self._leeway:
            raise Unauthenticated("TOKEN_EXPIRED", "the token has expired")
        if verified.not_before is not None and verified.not_before > now + self._leeway:
            raise Unauthenticated("TOKEN_NOT_YET_VALID", "the token is not valid yet")


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("TOKEN_MISSING", "send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("TOKEN_MISSING", "send 'Authorization: Bearer <token>'")
    return token


def _numeric_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated("TOKEN_INVALID", f"the token's {name!r} claim is not a number")
    return float(value)


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated("TOKEN_INVALID", "the token's subject is empty")
    raw_roles = claims.get("roles", [PLAYER])
    if isinstance(raw_roles, str):
        raw_roles = [raw_roles]
    if not isinstance(raw_roles, list):
        raise Unauthenticated("TOKEN_INVALID", "the token's roles are not a list")
    # Unknown roles grant nothing; a token without roles is a player's.
    roles = frozenset(role for role in raw_roles if role in KNOWN_ROLES)
    return Principal(subject=subject, roles=roles or frozenset({PLAYER}))


def dev_secret(secret: str, secret_file: Path) -> bytes:
    """The development HS256 secret: from the environment when set, else from
    `secret_file`, created with fresh random bytes on first use."""
    if secret:
        return secret.encode()
    if secret_file.exists():
        return secret_file.read_bytes().strip()
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    generated = secrets.token_urlsafe(48).encode()
    descriptor = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(generated)
    log.info("dev_jwt_secret_generated", path=str(secret_file))
    return generated


def issue_token(
    secret: bytes,
    *,
    subject: str,
    roles: list[str],
    issuer: str,
    audience: str,
    now_us: int,
    ttl_seconds: int,
) -> str:
    """A signed HS256 token for development and tests."""
    now = now_us // MICROS_PER_SECOND
    claims = {
        "sub": subject,
        "roles": roles,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")
