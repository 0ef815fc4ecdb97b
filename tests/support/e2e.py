"""The end-to-end suite's helpers: the real services as separate processes
(tools.suite) on free ports, and the Node clients apps use
(@connectrpc/connect-web over Connect and gRPC-Web, @grpc/grpc-js over gRPC),
one long-lived `tests/gateway/js/call.mjs --serve` process per module."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from tests.support.gateway import NODE_CLIENT, REPO
from tools.demo import CallError, Message, TokenMint
from tools.suite import Suite

TRANSPORTS = ("connect-json", "grpc-web", "grpc")
ISSUER = "loyalty-arcade-e2e"
AUDIENCE = "loyalty-arcade-e2e-apps"
BROWSER_ORIGIN = "http://app.e2e.test"
NODE_CALL_SECONDS = 60


def suite_env(secret: str, **overrides: str) -> dict[str, str]:
    """The gateway configured for testing: its own key, issuer and audience."""
    return {
        "GATEWAY_JWT_SECRET": secret,
        "GATEWAY_JWT_ISSUER": ISSUER,
        "GATEWAY_JWT_AUDIENCE": AUDIENCE,
        "GATEWAY_CORS_ORIGINS": BROWSER_ORIGIN,
        "CAMPAIGNS_POINTS_TTL_DAYS": "30",
        "LOG_LEVEL": "info",
        "SHUTDOWN_GRACE_SECONDS": "1",
        **overrides,
    }


async def start_suite(directory: Path, **overrides: str) -> tuple[Suite, TokenMint]:
    secret = secrets.token_urlsafe(32)
    suite = Suite(
        directory / "data", env=suite_env(secret, **overrides), log_dir=directory / "logs"
    )
    try:
        await suite.start_all()
    except BaseException:
        await suite.stop_all()
        raise
    return suite, TokenMint(secret.encode(), ISSUER, AUDIENCE)


class NodeClient:
    """One `node call.mjs --serve` process: calls go in as JSON lines, results
    come back the same way, one at a time."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self._process = process
        self.port = port
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, descriptors: Path, port: int) -> NodeClient:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_CLIENT),
            "--serve",
            str(descriptors),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        return cls(process, port)

    async def raw(self, transport: str, service: str, method: str, **fields: Any) -> Message:
        """One call; the result as call.mjs reports it: ok, messages, requestId, error."""
        address = f"127.0.0.1:{self.port}"
        call = {
            "transport": transport,
            "url": address if transport == "grpc" else f"http://{address}",
            "service": service,
            "method": method,
            **fields,
        }
        assert self._process.stdin is not None and self._process.stdout is not None
        async with self._lock:
            self._process.stdin.write(json.dumps(call).encode() + b"\n")
            await self._process.stdin.drain()
            line = await asyncio.wait_for(self._process.stdout.readline(), NODE_CALL_SECONDS)
        assert line, f"the Node client exited with {self._process.returncode}"
        return json.loads(line)

    def caller(self, transport: str) -> NodeCaller:
        return NodeCaller(self, transport)

    async def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        await asyncio.wait_for(self._process.wait(), 10)


class NodeCaller:
    """tools.demo's Caller over one Node transport: the story, played by connect-web or grpc-js."""

    def __init__(self, client: NodeClient, transport: str) -> None:
        self.client = client
        self.transport = transport

    async def __call__(self, service: str, method: str, request: Message, token: str) -> Message:
        (message,) = await self.stream(service, method, request, token)
        return message

    async def stream(
        self, service: str, method: str, request: Message, token: str
    ) -> list[Message]:
        """Every message of the call: one for a unary call, all of a stream's."""
        result = await self.client.raw(
            self.transport, service, method, request=request, token=token, timeoutMs=10_000
        )
        if not result["ok"]:
            error = result["error"]
            raise CallError(
                error["code"],
                error["reason"],
                error["message"],
                retry_after=error["retryAfter"],
                metadata=error["metadata"],
                field_violations=error["fieldViolations"],
            )
        return result["messages"]


# loyalty-admin as `pip install -e .` installs it beside this interpreter.
ADMIN = Path(sys.executable).parent / "loyalty-admin"
ADMIN_SECONDS = 60


async def admin(
    suite: Suite, token: str, *args: str, program: Path = ADMIN, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Runs loyalty-admin against the suite's gateway: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(program),
        "--gateway",
        suite.target("gateway"),
        *args,
        cwd=cwd,
        env={**os.environ, "LOYALTY_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), ADMIN_SECONDS)
    return process.returncode, out.decode(), err.decode()
