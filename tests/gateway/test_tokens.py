"""Every way a token can be wrong is UNAUTHENTICATED; the good ones name the caller."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.gateway.domain import ADMIN, PLAYER
from services.gateway.tokens import (
    HMAC_ALGORITHMS,
    VERIFIED_SECONDS,
    JwksFile,
    SharedSecret,
    TokenVerifier,
    dev_secret,
)
from services.kit.clock import MICROS_PER_SECOND, ManualClock
from services.kit.errors import Unauthenticated

SECRET = b"unit-test-secret-" * 4
ISSUER, AUDIENCE = "issuer-a", "audience-a"


def claims(clock: ManualClock, **overrides) -> dict:
    now = clock.now_us() // MICROS_PER_SECOND
    base = {"sub": "m-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def hmac_verifier(clock: ManualClock) -> TokenVerifier:
    return TokenVerifier(
        SharedSecret(SECRET), issuer=ISSUER, audience=AUDIENCE, leeway_seconds=30, clock=clock
    )


async def reason(verifier: TokenVerifier, authorization: str | None) -> str:
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(authorization)
    return refused.value.reason


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_good_token_names_the_caller_and_roles():
    clock = ManualClock()
    token = jwt.encode(claims(clock, roles=[ADMIN, "wizard"]), SECRET, algorithm="HS256")
    principal = await hmac_verifier(clock).verify(f"Bearer {token}")
    assert principal.subject == "m-1"
    assert principal.roles == frozenset({ADMIN})


async def test_a_token_without_roles_is_a_players():
    clock = ManualClock()
    token = jwt.encode(claims(clock), SECRET, algorithm="HS256")
    assert (await hmac_verifier(clock).verify(f"Bearer {token}")).roles == {PLAYER}


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, "TOKEN_MISSING"),
        ("", "TOKEN_MISSING"),
        ("Basic dXNlcjpwYXNz", "TOKEN_MISSING"),
        ("Bearer ", "TOKEN_MISSING"),
        ("Bearer not.a.jwt", "TOKEN_INVALID"),
        ("Bearer " + "x" * 9000, "TOKEN_MISSING"),
    ],
)
async def test_missing_and_malformed(authorization, expected):
    assert await reason(hmac_verifier(ManualClock()), authorization) == expected


async def test_expired_after_the_leeway_only():
    clock = ManualClock()
    verifier = hmac_verifier(clock)
    token = "Bearer " + jwt.encode(claims(clock), SECRET, algorithm="HS256")
    clock.advance(600 + 29)
    await verifier.verify(token)
    clock.advance(2)
    assert await reason(verifier, token) == "TOKEN_EXPIRED"


class CountedSecret:
    """A shared secret that counts how often a signature needed it, and can change."""

    algorithms = HMAC_ALGORITHMS

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.asked = 0

    async def key_for(self, token: str) -> bytes:
        self.asked += 1
        return self.secret


async def test_a_token_is_verified_once_per_period_and_its_time_at_every_call():
    clock = ManualClock()
    keys = CountedSecret(SECRET)
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=30, clock=clock)
    now = clock.now_us() // MICROS_PER_SECOND
    token = "Bearer " + jwt.encode(claims(clock, exp=now + 900), SECRET, algorithm="HS256")
    for _ in range(3):
        assert (await verifier.verify(token)).subject == "m-1"
    assert keys.asked == 1
    # The key leaves the key set: the token is good until its period ends.
    keys.secret = b"another-secret-" * 4
    clock.advance(VERIFIED_SECONDS - 1)
    assert (await verifier.verify(token)).subject == "m-1"
    clock.advance(2)
    assert await reason(verifier, token) == "TOKEN_BAD_SIGNATURE"
    assert keys.asked == 2
    # The key back: verified again, and refused at its exp, within the new period.
    keys.secret = SECRET
    clock.advance(900 - VERIFIED_SECONDS - 1 + 29)
    await verifier.verify(token)
    clock.advance(2)
    assert await reason(verifier, token) == "TOKEN_EXPIRED"


async def test_a_refused_token_is_not_remembered():
    clock = ManualClock()
    keys = CountedSecret(b"another-secret-" * 4)
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=30, clock=clock)
    token = "Bearer " + jwt.encode(claims(clock), SECRET, algorithm="HS256")
    assert await reason(verifier, token) == "TOKEN_BAD_SIGNATURE"
    keys.secret = SECRET
    assert (await verifier.verify(token)).subject == "m-1"


async def test_not_yet_valid():
    clock = ManualClock()
    now = clock.now_us() // MICROS_PER_SECOND
    token = jwt.encode(claims(clock, nbf=now + 120), SECRET, algorithm="HS256")
    assert await reason(hmac_verifier(clock), f"Bearer {token}") == "TOKEN_NOT_YET_VALID"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"iss": "someone-else"}, "TOKEN_WRONG_AUDIENCE_OR_ISSUER"),
        ({"aud": "another-app"}, "TOKEN_WRONG_AUDIENCE_OR_ISSUER"),
        ({"sub": None}, "TOKEN_CLAIM_MISSING"),
        ({"exp": None}, "TOKEN_CLAIM_MISSING"),
        ({"iss": None}, "TOKEN_CLAIM_MISSING"),
        ({"aud": None}, "TOKEN_CLAIM_MISSING"),
        ({"sub": "  "}, "TOKEN_INVALID"),
        ({"exp": "tomorrow"}, "TOKEN_INVALID"),
        ({"roles": {"not": "a list"}}, "TOKEN_INVALID"),
    ],
)
async def test_wrong_or_missing_claims(overrides, expected):
    clock = ManualClock()
    token = jwt.encode(claims(clock, **overrides), SECRET, algorithm="HS256")
    assert await reason(hmac_verifier(clock), f"Bearer {token}") == expected


async def test_bad_signature():
    clock = ManualClock()
    token = jwt.encode(claims(clock), b"another-secret-entirely-0123456789", algorithm="HS256")
    assert await reason(hmac_verifier(clock), f"Bearer {token}") == "TOKEN_BAD_SIGNATURE"


async def test_alg_none_is_refused():
    clock = ManualClock()
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(clock))}."
    assert await reason(hmac_verifier(clock), f"Bearer {token}") == "TOKEN_INVALID"


async def test_an_algorithm_outside_the_list_is_refused():
    clock = ManualClock()
    token = jwt.encode(claims(clock), SECRET, algorithm="HS512")
    assert await reason(hmac_verifier(clock), f"Bearer {token}") == "TOKEN_INVALID"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_file(tmp_path, *keys_with_ids) -> JwksFile:
    document = {
        "keys": [
            {
                **json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key())),
                "kid": kid,
                "alg": alg,
                "use": "sig",
            }
            for kid, alg, key in keys_with_ids
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    return JwksFile(path)


def public_key_verifier(tmp_path, clock, *keys_with_ids) -> TokenVerifier:
    return TokenVerifier(
        jwks_file(tmp_path, *keys_with_ids),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=30,
        clock=clock,
    )


async def test_rs256_and_es256_from_a_jwks_file(tmp_path):
    clock = ManualClock()
    rsa_private, ec_private = rsa_key(), ec.generate_private_key(ec.SECP256R1())
    verifier = public_key_verifier(
        tmp_path, clock, ("r1", "RS256", rsa_private), ("e1", "ES256", ec_private)
    )
    rs = jwt.encode(claims(clock, sub="m-rs"), rsa_private, "RS256", headers={"kid": "r1"})
    es = jwt.encode(claims(clock, sub="m-es"), ec_private, "ES256", headers={"kid": "e1"})
    assert (await verifier.verify(f"Bearer {rs}")).subject == "m-rs"
    assert (await verifier.verify(f"Bearer {es}")).subject == "m-es"

    stranger = jwt.encode(claims(clock), rsa_key(), "RS256", headers={"kid": "r1"})
    assert await reason(verifier, f"Bearer {stranger}") == "TOKEN_BAD_SIGNATURE"
    unknown = jwt.encode(claims(clock), rsa_private, "RS256", headers={"kid": "r9"})
    assert await reason(verifier, f"Bearer {unknown}") == "TOKEN_KEY_UNKNOWN"


async def test_hmac_signed_with_the_public_key_is_refused(tmp_path):
    """The classic confusion: HS256 keyed with the RSA public key's bytes."""
    clock = ManualClock()
    private = rsa_key()
    verifier = public_key_verifier(tmp_path, clock, ("r1", "RS256", private))
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "r1"})
    body = b64(claims(clock))
    signature = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
        f"{header}.{body}".encode(), public_pem
    )
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert await reason(verifier, f"Bearer {forged}") == "TOKEN_INVALID"


async def test_rsa_token_on_an_hmac_gateway_is_refused():
    clock = ManualClock()
    token = jwt.encode(claims(clock), rsa_key(), "RS256")
    assert await reason(hmac_verifier(clock), f"Bearer {token}") == "TOKEN_INVALID"


def test_dev_secret_prefers_the_environment_then_a_generated_file(tmp_path):
    path = tmp_path / "var" / "gateway-jwt.secret"
    assert dev_secret("from-env", path) == b"from-env"
    assert not path.exists()
    generated = dev_secret("", path)
    assert len(generated) >= 48
    assert path.stat().st_mode & 0o777 == 0o600
    assert dev_secret("", path) == generated
    assert dev_secret("", tmp_path / "other.secret") != generated
