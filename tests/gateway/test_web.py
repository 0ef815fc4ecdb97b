"""The gateway serves the built web apps (/app/, /console/) with the right
types, caching and security headers, and the development sign-in only with
the development secret: with JWKS keys POST /dev/token does not exist."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.gateway.webapps import CONTENT_SECURITY_POLICY
from tests.support.gateway import (
    AUDIENCE,
    ISSUER,
    SECRET,
    connect_headers,
    http_request,
    probe_settings,
)

SCRIPT = b"console.log('the player app');\n"
INDEX = b'<!doctype html><script type="module" src="./assets/main-ABCD1234.js"></script>'


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    """A build as web/build.mjs writes it: index.html, hashed assets, .gz beside them."""
    root = tmp_path / "dist"
    for app in ("app", "console"):
        assets = root / app / "assets"
        assets.mkdir(parents=True)
        (root / app / "index.html").write_bytes(INDEX)
        (root / app / "index.html.gz").write_bytes(gzip.compress(INDEX))
        (assets / "main-ABCD1234.js").write_bytes(SCRIPT)
        (assets / "main-ABCD1234.js.gz").write_bytes(gzip.compress(SCRIPT))
        (assets / "main-ABCD1234.css").write_bytes(b"body{}")
    (root / "secret.txt").write_text("not under an app")
    return root


@pytest.fixture
async def served(start_gateway, health_upstream, web_dir):
    return await start_gateway(probe_settings(health_upstream, web_dir=web_dir))


def assert_secure(headers: dict[str, str]) -> None:
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "connect-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


async def test_index_is_html_revalidated_every_time(served):
    for app in ("app", "console"):
        response = await http_request(served.port, "GET", f"/{app}/", {})
        assert response.status == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.body == INDEX
        assert_secure(response.headers)
        again = await http_request(
            served.port, "GET", f"/{app}/", {"if-none-match": response.headers["etag"]}
        )
        assert (again.status, again.body) == (304, b"")


async def test_hashed_assets_are_immutable_and_gzipped_for_browsers_that_accept_it(served):
    plain = await http_request(served.port, "GET", "/app/assets/main-ABCD1234.js", {})
    assert plain.status == 200
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plain.body == SCRIPT
    assert "content-encoding" not in plain.headers
    assert_secure(plain.headers)
    zipped = await http_request(
        served.port, "GET", "/app/assets/main-ABCD1234.js", {"accept-encoding": "gzip, br"}
    )
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped.body) == SCRIPT
    css = await http_request(served.port, "GET", "/console/assets/main-ABCD1234.css", {})
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    head = await http_request(served.port, "HEAD", "/app/assets/main-ABCD1234.js", {})
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(SCRIPT)))


async def test_paths_route_to_the_apps_and_nothing_else_is_reachable(served):
    bare = await http_request(served.port, "GET", "/app", {})
    assert (bare.status, bare.headers["location"]) == (308, "/app/")
    root = await http_request(served.port, "GET", "/", {"accept": "text/html,*/*"})
    assert (root.status, root.headers["location"]) == (302, "/app/")
    # Not a browser: the gateway's own answer for a path that names no service.
    assert (await http_request(served.port, "GET", "/", {})).json()["code"] == "unimplemented"
    # A bookmark below the app gets the app (it routes by the fragment).
    deep = await http_request(served.port, "GET", "/console/campaigns/x", {})
    assert (deep.status, deep.body) == (200, INDEX)
    missing = await http_request(served.port, "GET", "/app/assets/main-ZZZZ9999.js", {})
    assert missing.status == 404
    assert_secure(missing.headers)
    for path in ("/app/../secret.txt", "/app/%2e%2e/secret.txt", "/secret.txt"):
        response = await http_request(served.port, "GET", path, {})
        assert b"not under an app" not in response.body, path
    post = await http_request(served.port, "POST", "/app/", {}, b"x")
    assert (post.status, post.headers["allow"]) == (405, "GET, HEAD")


async def test_an_unbuilt_app_says_how_to_build_it(start_gateway, health_upstream, tmp_path):
    host = await start_gateway(probe_settings(health_upstream, web_dir=tmp_path / "none"))
    response = await http_request(host.port, "GET", "/app/", {})
    assert response.status == 404
    assert b"make web" in response.body


async def test_the_apis_are_served_beside_the_apps(served):
    response = await http_request(served.port, "GET", "/healthz", {})
    assert response.status == 200
    response = await http_request(
        served.port, "POST", "/loyalty.gateway.v1.WalletService/GetWallet", connect_headers(), b"{}"
    )
    assert response.json()["code"] == "unauthenticated"


def claims_of(token: str) -> dict:
    # The gateway's clock is a ManualClock: check the signature, not the time.
    return jwt.decode(
        token, SECRET, algorithms=["HS256"], audience=AUDIENCE, options={"verify_exp": False}
    )


async def dev_token(port: int, body: object, content_type: str = "application/json"):
    return await http_request(
        port, "POST", "/dev/token", {"content-type": content_type}, json.dumps(body).encode()
    )


async def test_dev_sign_in_issues_tokens_the_gateway_accepts(served, health_upstream):
    response = await dev_token(served.port, {"subject": "m-7", "role": "player"})
    assert response.status == 200
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    claims = claims_of(answer["token"])
    assert (claims["sub"], claims["roles"], claims["iss"]) == ("m-7", ["player"], ISSUER)
    assert answer["expires_in_seconds"] == claims["exp"] - claims["iat"]
    # The gateway takes it: the call reaches the ledger (here the probe upstream,
    # which answers UNIMPLEMENTED for the ledger's method) instead of UNAUTHENTICATED.
    call = await http_request(
        served.port,
        "POST",
        "/loyalty.gateway.v1.WalletService/GetWallet",
        connect_headers(answer["token"]),
        json.dumps({"member_id": "m-7"}).encode(),
    )
    assert call.status != 401, call.body
    manager = (await dev_token(served.port, {"subject": "ana", "role": "campaign-manager"})).json()
    assert claims_of(manager["token"])["roles"] == ["campaign-manager"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ({"subject": "m-1", "role": "superuser"}, "application/json", 400),
        ({"subject": "m:1"}, "application/json", 400),
        ({"subject": "x" * 65}, "application/json", 400),
        ({"role": "player"}, "application/json", 400),
        ({"subject": "m-1"}, "text/plain", 415),
    ],
)
async def test_dev_sign_in_refuses_what_it_cannot_issue(served, body, content_type, status):
    response = await dev_token(served.port, body, content_type)
    assert response.status == status
    assert "token" not in response.body.decode()


async def test_dev_sign_in_takes_only_post(served):
    response = await http_request(served.port, "GET", "/dev/token", {})
    assert response.status == 405


def jwks_path(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    return path


async def test_dev_sign_in_does_not_exist_with_production_keys(
    start_gateway, health_upstream, web_dir, tmp_path
):
    host = await start_gateway(
        probe_settings(
            health_upstream, web_dir=web_dir, jwt_secret="", jwks_file=str(jwks_path(tmp_path))
        )
    )
    response = await dev_token(host.port, {"subject": "m-1", "role": "admin"})
    assert response.status == 404
    assert "token" not in response.json()
    # The apps are still served: they take the brand's token instead.
    assert (await http_request(host.port, "GET", "/app/", {})).status == 200


async def test_dev_sign_in_can_be_turned_off(start_gateway, health_upstream, web_dir):
    host = await start_gateway(probe_settings(health_upstream, web_dir=web_dir, dev_sign_in=False))
    assert (await dev_token(host.port, {"subject": "m-1"})).status == 404
