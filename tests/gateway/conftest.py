"""Gateway fixtures: a real gateway on port 0 in front of real upstreams,
tokens signed with a per-test secret, and the Node clients run by subprocess."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.gateway.v1 import gateway_service_pb2

from services.gateway.domain import AccessRule, Audience
from services.gateway.server import GatewayHost, GatewaySettings, build_server
from services.gateway.servicer import Upstream
from services.gateway.tokens import issue_token
from services.kit.clock import ManualClock
from services.kit.errors import NotFound
from services.kit.status import to_rpc_status

REPO = Path(__file__).resolve().parents[2]
NODE_CLIENT = REPO / "tests" / "gateway" / "js" / "call.mjs"
SECRET = b"a-test-secret-that-is-long-enough-for-hs256"
ISSUER = "loyalty-arcade-test"
AUDIENCE = "loyalty-arcade"
BROWSER_ORIGIN = "http://app.example.test"

# The gRPC health service re-exposed as if it were a player API: a small,
# real upstream with a unary and a streaming method to prove the bridging.
HEALTH = Upstream(
    name="health",
    service=health_pb2.DESCRIPTOR.services_by_name["Health"],
    rules={"Check": AccessRule(Audience.PLAYER), "Watch": AccessRule(Audience.PLAYER)},
)
HEALTH_SERVICE = HEALTH.service.full_name


class Tokens:
    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    def issue(self, subject: str = "m-1", roles: list[str] | None = None, ttl: int = 3600) -> str:
        return issue_token(
            SECRET,
            subject=subject,
            roles=roles if roles is not None else ["player"],
            issuer=ISSUER,
            audience=AUDIENCE,
            now_us=self._clock.now_us(),
            ttl_seconds=ttl,
        )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tokens(clock: ManualClock) -> Tokens:
    return Tokens(clock)


class ProbeHealth(health_pb2_grpc.HealthServicer):
    """A real upstream speaking the health contract that also records what
    reached it and misbehaves on request (by the `service` field of a Check):
    "refuse" answers NOT_FOUND with the kit's ErrorInfo, "crash" raises,
    "hang" never answers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.statuses: asyncio.Queue[int] = asyncio.Queue()

    def _record(self, request, context) -> None:
        self.seen.append(
            {
                "service": request.service,
                "metadata": dict(context.invocation_metadata()),
                "time_remaining": context.time_remaining(),
            }
        )

    async def Check(self, request, context):
        self._record(request, context)
        if request.service == "refuse":
            error = NotFound("ACCOUNT_NOT_FOUND", "no account m-9", {"account_id": "m-9"})
            await context.abort_with_status(to_rpc_status(error))
        if request.service == "crash":
            raise RuntimeError("secret internal detail /var/lib/ledger.db")
        if request.service == "hang":
            await asyncio.Event().wait()
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    async def Watch(self, request, context):
        self._record(request, context)
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        while True:
            yield health_pb2.HealthCheckResponse(status=await self.statuses.get())


@dataclasses.dataclass
class HealthUpstream:
    server: grpc.aio.Server
    probe: ProbeHealth
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def start_health_upstream(port: int = 0) -> HealthUpstream:
    server = grpc.aio.server()
    probe = ProbeHealth()
    health_pb2_grpc.add_HealthServicer_to_server(probe, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return HealthUpstream(server, probe, bound)


@pytest_asyncio.fixture
async def health_upstream() -> Any:
    """A real gRPC upstream (a plain grpc.aio server with the probe)."""
    upstream = await start_health_upstream()
    yield upstream
    await upstream.server.stop(None)


def gateway_settings(**overrides: Any) -> GatewaySettings:
    base = GatewaySettings(
        games_target=None,
        campaigns_target=None,
        progress_target=None,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_secret=SECRET.decode(),
        cors_origins=(BROWSER_ORIGIN,),
        member_burst=1000,
        address_burst=1000,
        shutdown_grace_seconds=1.0,
    )
    return dataclasses.replace(base, **overrides)


def probe_settings(upstream: HealthUpstream, **overrides: Any) -> GatewaySettings:
    """Settings whose ledger and re-exposed health service are the probe upstream."""
    return gateway_settings(
        ledger_target=upstream.target,
        extra_upstreams=((HEALTH, upstream.target),),
        **overrides,
    )


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


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# Node clients ---------------------------------------------------------------


def _add_file(found: dict[str, FileDescriptor], file: FileDescriptor) -> None:
    for dependency in file.dependencies:
        _add_file(found, dependency)
    found.setdefault(file.name, file)


def descriptor_set(*files: FileDescriptor) -> bytes:
    """A FileDescriptorSet with the files and everything they import, in order."""
    found: dict[str, FileDescriptor] = {}
    for file in files:
        _add_file(found, file)
    result = descriptor_pb2.FileDescriptorSet()
    for file in found.values():
        proto = result.file.add()
        file.CopyToProto(proto)
        for message_proto in proto.message_type:
            _copy_json_names(file.message_types_by_name[message_proto.name], message_proto)
    return result.SerializeToString()


def _copy_json_names(message: Descriptor, proto: descriptor_pb2.DescriptorProto) -> None:
    """CopyToProto leaves json_name out, and JS runtimes read it as given."""
    for field_proto in proto.field:
        field_proto.json_name = message.fields_by_name[field_proto.name].json_name
    for nested_proto in proto.nested_type:
        _copy_json_names(message.nested_types_by_name[nested_proto.name], nested_proto)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The Node packages the project pins, installed by `make setup` (npm ci)."""
    installed = REPO / "node_modules" / ".package-lock.json"
    if shutil.which("node") is None or not installed.exists():
        pytest.fail("Node 20+ and the client packages are required: run `make setup`")
    return REPO / "node_modules"


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


def node_call(transport: str, port: int, service: str, **fields: Any) -> dict[str, Any]:
    """One call for the Node client: gRPC takes host:port, the web transports a URL."""
    address = f"127.0.0.1:{port}"
    url = address if transport == "grpc" else f"http://{address}"
    return {"transport": transport, "url": url, "service": service, **fields}


NodeRunner = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


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


@dataclasses.dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> HttpResponse:
    """A plain HTTP/1.1 exchange, for what client libraries hide (status, headers)."""

    def exchange() -> HttpResponse:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return HttpResponse(
                response.status,
                {key.lower(): value for key, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    return await asyncio.to_thread(exchange)
