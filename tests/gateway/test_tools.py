"""The token command and the campaign managers' CLI against a real gateway."""

from __future__ import annotations

import asyncio
import io

import pytest
import pytest_asyncio
import structlog

from services.gateway.server import GatewaySettings
from services.gateway.tokens import SharedSecret, TokenVerifier, dev_secret
from services.kit.clock import SystemClock
from tests.support.gateway import gateway_settings
from tools import admin
from tools import token as token_tool


def test_token_command_prints_a_token_the_gateway_accepts(tmp_path, monkeypatch, capsys):
    secret_file = tmp_path / "var" / "gateway-jwt.secret"
    monkeypatch.setenv("GATEWAY_JWT_SECRET_FILE", str(secret_file))
    monkeypatch.delenv("GATEWAY_JWT_SECRET", raising=False)
    try:
        assert token_tool.main(["--role", "campaign-manager", "--sub", "alice"]) == 0
    finally:
        # The command configures logging for its process; give the tests theirs back.
        structlog.reset_defaults()
    printed = capsys.readouterr().out.strip()
    settings = GatewaySettings.from_env()
    verifier = TokenVerifier(
        SharedSecret(dev_secret("", secret_file)),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_seconds=0,
        clock=SystemClock(),
    )
    principal = asyncio.run(verifier.verify(f"Bearer {printed}"))
    assert (principal.subject, principal.roles) == ("alice", {"campaign-manager"})


@pytest_asyncio.fixture
async def gateway_address(start_gateway, health_upstream):
    # The campaigns target lacks the service: admitted calls come back UNIMPLEMENTED.
    target = health_upstream.target
    gateway = await start_gateway(gateway_settings(ledger_target=target, campaigns_target=target))
    return f"127.0.0.1:{gateway.port}"


async def run_admin(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await asyncio.to_thread(admin.main, list(argv), out)
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("campaign_id: [unclosed", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("campaign_id: c-1\nspec:\n  colour: red\n", "colour"),
        ("spec:\n  display_name: x\n", "campaign_id is required"),
    ],
)
async def test_bad_files_exit_2_with_a_clear_message(tmp_path, capsys, content, message):
    path = tmp_path / "campaign.yaml"
    if content is not None:
        path.write_text(content)
    code, _ = await run_admin("--token", "t", "--gateway", "127.0.0.1:1", "apply", str(path))
    assert code == 2
    assert message in capsys.readouterr().err


async def test_refused_calls_exit_1_with_the_reason(gateway_address, tokens, capsys):
    player = tokens.issue("m-1")
    code, _ = await run_admin("--token", player, "--gateway", gateway_address, "pause", "c-1")
    assert code == 1
    assert "refused: PERMISSION_DENIED ROLE_REQUIRED" in capsys.readouterr().err

    manager = tokens.issue("alice", ["campaign-manager"])
    code, _ = await run_admin("--token", manager, "--gateway", gateway_address, "pause", "c-1")
    assert code == 1
    assert "refused: UNIMPLEMENTED UPSTREAM_UNIMPLEMENTED" in capsys.readouterr().err


async def test_a_token_is_required(capsys):
    assert await run_admin("--token", "", "list") == (2, "")
    assert "no token" in capsys.readouterr().err
