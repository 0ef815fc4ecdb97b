"""gRPC server reflection for what the gateway exposes, and nothing else, so
`grpcurl -plaintext 127.0.0.1:8080 list` and `describe` work against it.

The descriptors served are the ones the gateway serves calls from, cut down to
the exposed methods: a re-exposed service shows only its allowlisted methods,
and services that are not exposed (the ledger's) do not appear even where a
file defines them. The answers come from grpcio-reflection's own servicer over
a descriptor pool of those cut-down files; the gateway only carries its bidi
stream over the same port and protocols as every other call.

grpc.reflection.v1 is v1alpha under a new package name, message for message and
field for field, so the v1alpha classes read and write both; v1's file
descriptor is derived from v1alpha's for clients that describe it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import Endpoint
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from grpc_reflection.v1alpha import reflection as reflection_v1alpha
from grpc_reflection.v1alpha import reflection_pb2

from services.gateway.descriptors import file_protos

V1ALPHA_PACKAGE = "grpc.reflection.v1alpha"
V1_PACKAGE = "grpc.reflection.v1"
REFLECTION_SERVICE = "ServerReflection"
REFLECTION_METHOD = "ServerReflectionInfo"


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, from v1alpha's descriptor."""
    (v1,) = file_protos(reflection_pb2.DESCRIPTOR)

    def renamed(type_name: str) -> str:
        return type_name.replace(f".{V1ALPHA_PACKAGE}.", f".{V1_PACKAGE}.", 1)

    for message in v1.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = renamed(field.type_name)
    for service in v1.service:
        for method in service.method:
            method.input_type = renamed(method.input_type)
            method.output_type = renamed(method.output_type)
    v1.name = "grpc/reflection/v1/reflection.proto"
    v1.package = V1_PACKAGE
    v1.options.Clear()
    v1.options.java_package = "io.grpc.reflection.v1"
    v1.options.java_outer_classname = "ServerReflectionProto"
    v1.options.java_multiple_files = True
    v1.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    return v1


def _exposed_only(
    proto: descriptor_pb2.FileDescriptorProto, exposed: Mapping[str, frozenset[str]]
) -> descriptor_pb2.FileDescriptorProto:
    """The file with its services cut down to the exposed ones and their exposed methods."""
    kept = descriptor_pb2.FileDescriptorProto()
    kept.CopyFrom(proto)
    del kept.service[:]
    for service in proto.service:
        methods = exposed.get(f"{proto.package}.{service.name}" if proto.package else service.name)
        if methods is None:
            continue
        copy = kept.service.add()
        copy.CopyFrom(service)
        del copy.method[:]
        copy.method.extend(method for method in service.method if method.name in methods)
    return kept


def exposed_pool(
    services: Mapping[ServiceDescriptor, Iterable[str]],
) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """A descriptor pool holding the exposed services (with only their exposed
    methods), their messages, the reflection services; and the service names."""
    exposed = {service.full_name: frozenset(names) for service, names in services.items()}
    for package in (V1_PACKAGE, V1ALPHA_PACKAGE):
        exposed[f"{package}.{REFLECTION_SERVICE}"] = frozenset({REFLECTION_METHOD})
    files = [service.file for service in services]
    pool = descriptor_pool.DescriptorPool()
    for proto in [*file_protos(*files, reflection_pb2.DESCRIPTOR), _v1_file()]:
        pool.Add(_exposed_only(proto, exposed))
    return pool, sorted(exposed)


async def _one(request: reflection_pb2.ServerReflectionRequest):
    yield request


def _resolvable(
    pool: descriptor_pool.DescriptorPool, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionRequest:
    """The request, asking for a method's service when it names an exposed method:
    the descriptor pool finds messages, fields and services by name, not methods,
    and `grpcurl describe Service.Method` asks for the method."""
    if not request.HasField("file_containing_symbol"):
        return request
    service_name, _, method_name = request.file_containing_symbol.rpartition(".")
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        return request
    if method_name not in service.methods_by_name:
        return request
    return reflection_pb2.ServerReflectionRequest(
        host=request.host, file_containing_symbol=service_name
    )


def reflection_endpoints(
    services: Mapping[ServiceDescriptor, Iterable[str]],
) -> dict[str, dict[str, Endpoint]]:
    """service name -> {method name -> Endpoint} for both reflection versions."""
    pool, names = exposed_pool(services)
    servicer = reflection_v1alpha.aio.ReflectionServicer(names, pool=pool)

    async def reflect(
        requests: AsyncIterator[reflection_pb2.ServerReflectionRequest], ctx: RequestContext
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        # One answer per request, in order, on one stream (as grpcurl asks).
        async for request in requests:
            async for response in servicer.ServerReflectionInfo(
                _one(_resolvable(pool, request)), ctx
            ):
                response.original_request.CopyFrom(request)
                yield response

    endpoints = {}
    for package in (V1_PACKAGE, V1ALPHA_PACKAGE):
        info = MethodInfo(
            name=REFLECTION_METHOD,
            service_name=f"{package}.{REFLECTION_SERVICE}",
            input=reflection_pb2.ServerReflectionRequest,
            output=reflection_pb2.ServerReflectionResponse,
            idempotency_level=IdempotencyLevel.NO_SIDE_EFFECTS,
            stream_type=StreamType.BIDI_STREAM,
        )
        endpoints[info.service_name] = {REFLECTION_METHOD: Endpoint.bidi_stream(info, reflect)}
    return endpoints
