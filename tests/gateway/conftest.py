"""Gateway fixtures: a real gateway on port 0 in front of real upstreams,
tokens signed with a per-test secret, and the Node clients run by subprocess.
The helpers they use live in tests/support/gateway.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from loyalty.gateway.v1 import gateway_service_pb2

from services.gateway.server import GatewayHost, GatewaySettings, build_server
from services.kit.clock import ManualClock
from tests.support.gateway import (
    NODE_CLIENT,
    REPO,
    HealthUpstream,
    NodeRunner,
    Tokens,
    descriptor_set,
    probe_settings,
    start_health_upstream,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tokens(clock: ManualClock) -> Tokens:
    return Tokens(clock)


@pytest_asyncio.fixture
async def health_upstream() -> Any:
    """A real gRPC upstream (a plain grpc.aio server with the probe)."""
    upstream = await start_health_upstream()
    yield upstream
    await upstream.server.stop(None)


@pytest_asyncio.fixture
async def start_gateway(clock: ManualClock) -> Any:
    """Starts gateways with the given settings; stops them after the test."""
    hosts: list[GatewayHost] = []

    async def start(settings: GatewaySettings) -> GatewayHost:
        host = await build_server(settings, "127.0.0.1:0", clock)
        await host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        await host.stop(1.0)


@pytest_asyncio.fixture
async def gateway(start_gateway, health_upstream: HealthUpstream) -> GatewayHost:
    """A gateway whose ledger target and re-exposed health service are the health upstream."""
    return await start_gateway(probe_settings(health_upstream))


@pytest_asyncio.fixture
async def gateway_channel(gateway: GatewayHost) -> Any:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield channel


@pytest.fixture(scope="session")
def descriptors(node_modules: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("descriptors") / "gateway.binpb"
    path.write_bytes(
        descriptor_set(
            health_pb2.DESCRIPTOR,
            gateway_service_pb2.DESCRIPTOR,
            error_details_pb2.DESCRIPTOR,
            status_pb2.DESCRIPTOR,
        )
    )
    return path


@pytest.fixture
def node(descriptors: Path, tmp_path: Path) -> NodeRunner:
    """Runs a batch of calls through the Node clients and returns their results."""

    async def run(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        spec = tmp_path / "calls.json"
        spec.write_text(json.dumps({"descriptorSet": str(descriptors), "calls": calls}))
        process = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_CLIENT),
            str(spec),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, stderr.decode()
        return json.loads(stdout)

    return run
