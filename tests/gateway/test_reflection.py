"""gRPC reflection (v1 and v1alpha) of what the gateway exposes, and only that,
read with grpcio-reflection's own client as grpcurl reads it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from services.gateway.api import CAMPAIGNS, GAMES, WALLET_RULES
from services.gateway.domain import AccessRule, Audience
from services.gateway.servicer import Upstream
from services.kit.status import error_info
from tests.support.gateway import HEALTH, gateway_settings

WALLET = "loyalty.gateway.v1.WalletService"
CHECK_ONLY = Upstream(
    name="health", service=HEALTH.service, rules={"Check": AccessRule(Audience.PLAYER)}
)
V1_INFO = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


@pytest_asyncio.fixture
async def gateway(start_gateway, health_upstream):
    target = health_upstream.target
    return await start_gateway(
        gateway_settings(
            ledger_target=target,
            games_target=target,
            campaigns_target=target,
            extra_upstreams=((CHECK_ONLY, target),),
        )
    )


def described(port: int) -> dict:
    """What a reflection client (grpcurl's way: list, then describe) learns."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        services = database.get_services()
        methods = {
            name: {m.name for m in pool.FindServiceByName(name).methods} for name in services
        }
        spin = pool.FindMessageTypeByName("loyalty.games.v1.SpinRequest")
        try:
            pool.FindServiceByName("loyalty.ledger.v1.LedgerService")
            ledger_found = True
        except KeyError:
            ledger_found = False
        return {
            "services": services,
            "methods": methods,
            "spin_fields": [field.name for field in spin.fields],
            "ledger_found": ledger_found,
        }


async def test_list_and_describe_show_the_exposed_methods_only(gateway):
    seen = await asyncio.wait_for(asyncio.to_thread(described, gateway.port), 30)
    assert seen["services"] == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "loyalty.campaigns.v1.CampaignsService",
        "loyalty.games.v1.GamesService",
        WALLET,
    ]
    methods = seen["methods"]
    assert methods[WALLET] == set(WALLET_RULES)
    assert methods["loyalty.games.v1.GamesService"] == set(GAMES.rules)
    assert methods["loyalty.campaigns.v1.CampaignsService"] == set(CAMPAIGNS.rules)
    # The health service is exposed with Check only: Watch is not described.
    assert methods["grpc.health.v1.Health"] == {"Check"}
    assert seen["spin_fields"] == ["wheel_id", "member_id", "request_id"]
    assert seen["ledger_found"] is False


async def test_one_stream_answers_request_after_request(gateway):
    # grpcurl keeps one stream open and sends each request after the last answer.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=10)
        await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await asyncio.wait_for(stream.read(), 10)
        # grpcurl describe loyalty.gateway.v1.WalletService.GetWallet
        method = reflection_pb2.ServerReflectionRequest(
            file_containing_symbol=f"{WALLET}.GetWallet"
        )
        await stream.write(method)
        files = await asyncio.wait_for(stream.read(), 10)
        await stream.write(
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="loyalty.ledger.v1.LedgerService"
            )
        )
        missing = await asyncio.wait_for(stream.read(), 10)
        await stream.done_writing()
    assert WALLET in [service.name for service in listed.list_services_response.service]
    protos = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in files.file_descriptor_response.file_descriptor_proto
    ]
    assert "loyalty/gateway/v1/gateway_service.proto" in [proto.name for proto in protos]
    assert files.original_request == method
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_v1_answers_like_v1alpha(gateway):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        reflect = channel.stream_stream(
            V1_INFO,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        stream = reflect(timeout=10)
        await stream.write(
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="grpc.reflection.v1.ServerReflection"
            )
        )
        answer = await asyncio.wait_for(stream.read(), 10)
        await stream.done_writing()
    (raw,) = answer.file_descriptor_response.file_descriptor_proto
    v1 = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert (v1.name, v1.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    (method,) = v1.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"


async def test_reflection_needs_no_token_but_counts_against_the_address(
    start_gateway, health_upstream
):
    gateway = await start_gateway(
        gateway_settings(
            ledger_target=health_upstream.target, address_burst=2, address_rate_per_second=0.01
        )
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        for _ in range(2):
            answers = stub.ServerReflectionInfo(iter([request]), timeout=10)
            assert [a.WhichOneof("message_response") async for a in answers] == [
                "list_services_response"
            ]
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            async for _ in stub.ServerReflectionInfo(iter([request]), timeout=10):
                pass
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(limited.value).reason == "RATE_LIMITED"


async def test_reflection_can_be_turned_off(start_gateway, health_upstream):
    gateway = await start_gateway(
        gateway_settings(ledger_target=health_upstream.target, reflection=False)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stub.ServerReflectionInfo(iter([request]), timeout=10):
                pass
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error_info(refused.value).reason == "SERVICE_NOT_FOUND"
