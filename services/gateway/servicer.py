"""Connect handlers: calls come in over Connect, gRPC-Web or gRPC, are admitted
by the Gatekeeper, and go on to the internal services over grpc.aio channels
with a deadline (errors.py says how failures are written).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.gateway.domain import AccessRule, DeadlinePolicy, check_owner, wallet_account_id
from services.gateway.errors import as_connect_error, failure, grpc_code_name, upstream_error
from services.gateway.service import Admission, Gatekeeper, RateLimited
from services.gateway.shutdown import Shutdown
from services.kit.errors import FieldViolation, InvalidArgument, ServiceError
from services.kit.logs import current_request_id
from services.kit.metrics import CallMeter, CallMetrics, RpcMetrics
from services.kit.outgoing import measured, metered_stream
from services.kit.server import REQUEST_ID_HEADER

log = structlog.get_logger()


# Admission ------------------------------------------------------------------


def _client_timeout_seconds(ctx: RequestContext) -> float | None:
    remaining_ms = ctx.timeout_ms
    return None if remaining_ms is None else remaining_ms / 1000


def _client_address(ctx: RequestContext) -> str:
    address = ctx.client_address or "unknown"
    return address.rsplit(":", 1)[0]


def _ended_with(error: BaseException) -> str:
    """The gRPC code name a call that raised `error` ends with."""
    if isinstance(error, ConnectError):
        return grpc_code_name(error.code)
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return "INTERNAL"


class GateInterceptor:
    """Admits every call by its method's AccessRule before the handler runs,
    ends it with GATEWAY_STOPPING when the gateway stops, is the last line
    that turns any failure into a clear status, and counts every call with its
    code, whatever protocol carried it."""

    def __init__(
        self,
        gatekeeper: Gatekeeper,
        rules: Mapping[str, AccessRule],
        shutdown: Shutdown,
        rpc: RpcMetrics,
    ) -> None:
        self._gatekeeper = gatekeeper
        self._rules = rules
        self._shutdown = shutdown
        self._rpc = rpc
        self._meters: dict[str, CallMeter] = {}

    def _meter(self, ctx: RequestContext) -> CallMeter:
        # Only exposed methods reach an interceptor (the edge routes no other).
        method = ctx.method
        key = f"{method.service_name}/{method.name}"
        meter = self._meters.get(key)
        if meter is None:
            meter = self._meters[key] = self._rpc.meter(method.service_name, method.name)
        return meter

    async def intercept_unary(self, call_next, request, ctx: RequestContext, /):
        meter = self._meter(ctx)
        started = time.perf_counter()
        try:
            rule, admission = await self._admit(request, ctx)
            try:
                response = await self._shutdown.call(call_next(request, ctx))
                _check_owner(rule, admission, response)
            except Exception as error:
                raise as_connect_error(error) from None
        except BaseException as error:
            meter.answered(_ended_with(error), time.perf_counter() - started)
            raise
        meter.answered("OK", time.perf_counter() - started)
        return response

    def intercept_server_stream(self, call_next, request, ctx: RequestContext, /):
        return self._stream(request, ctx, lambda: call_next(request, ctx))

    async def intercept_bidi_stream(self, call_next, requests, ctx: RequestContext, /):
        # Only public methods (reflection) are bidi streams, and their rule names no
        # request field. The call is admitted once its first request has arrived:
        # refused while the client was still sending it, the client's send fails
        # (the server resets the finished stream) and it reports INTERNAL instead
        # of the refusal.
        first = await anext(requests, None)
        if first is None:
            return
        replayed = _prepended(first, requests)
        async for response in self._stream(None, ctx, lambda: call_next(replayed, ctx)):
            yield response

    async def _stream(self, request, ctx: RequestContext, responses: Callable[[], AsyncIterator]):
        meter = self._meter(ctx)
        code = "OK"
        try:
            rule, admission = await self._admit(request, ctx)
            try:
                async for response in self._shutdown.stream(aiter(responses())):
                    _check_owner(rule, admission, response)
                    yield response
            except Exception as error:
                raise as_connect_error(error) from None
        except BaseException as error:
            code = _ended_with(error)
            raise
        finally:
            meter.ended(code)

    async def _admit(self, request, ctx: RequestContext) -> tuple[AccessRule, Admission]:
        procedure = f"{ctx.method.service_name}/{ctx.method.name}"
        structlog.contextvars.bind_contextvars(rpc=procedure)
        rule = self._rules.get(procedure)
        if rule is None:
            raise failure(Code.PERMISSION_DENIED, "NOT_EXPOSED", "this call is not exposed")
        requested = _read_field(request, rule.member_field) if rule.member_field else None
        try:
            admission = await self._gatekeeper.admit(
                authorization=ctx.request_headers.get("authorization"),
                address=_client_address(ctx),
                rule=rule,
                requested_member=requested,
                chosen={path: _read_field(request, path) for path, _ in rule.player_choices},
            )
        except RateLimited as error:
            ctx.response_headers["retry-after"] = str(error.retry_after)
            raise as_connect_error(error) from None
        except ServiceError as error:
            raise as_connect_error(error) from None
        if rule.member_field is not None:
            _write_field(request, rule.member_field, admission.member_id)
        return rule, admission


async def _prepended(first, rest: AsyncIterator) -> AsyncIterator:
    yield first
    async for item in rest:
        yield item


def _check_owner(rule: AccessRule, admission: Admission, response) -> None:
    """Raises MEMBER_MISMATCH when the answer is about another member than the caller."""
    if rule.owner_field is not None and admission.principal is not None:
        check_owner(admission.principal, _read_field(response, rule.owner_field))


def _read_field(message, path: str):
    for name in path.split("."):
        message = getattr(message, name)
    return message


def _write_field(message, path: str, value) -> None:
    *parents, last = path.split(".")
    for name in parents:
        message = getattr(message, name)
    setattr(message, last, value)


# The wallet -----------------------------------------------------------------

ENTRY_REASONS = {
    ledger_pb.TRANSFER_CODE_EARN: gateway_pb.ENTRY_REASON_EARN,
    ledger_pb.TRANSFER_CODE_REDEEM: gateway_pb.ENTRY_REASON_REDEEM,
    ledger_pb.TRANSFER_CODE_BONUS: gateway_pb.ENTRY_REASON_BONUS,
    ledger_pb.TRANSFER_CODE_GAME_PRIZE: gateway_pb.ENTRY_REASON_GAME_PRIZE,
    ledger_pb.TRANSFER_CODE_GAME_COST: gateway_pb.ENTRY_REASON_GAME_COST,
    ledger_pb.TRANSFER_CODE_EXPIRY: gateway_pb.ENTRY_REASON_EXPIRY,
    ledger_pb.TRANSFER_CODE_REVERSAL: gateway_pb.ENTRY_REASON_REVERSAL,
    ledger_pb.TRANSFER_CODE_CLAWBACK: gateway_pb.ENTRY_REASON_CLAWBACK,
    ledger_pb.TRANSFER_CODE_ADJUSTMENT: gateway_pb.ENTRY_REASON_ADJUSTMENT,
}
# Holds and their release reserve points but leave the posted balance alone.
BALANCE_NEUTRAL_KINDS = frozenset(
    {
        ledger_pb.TRANSFER_KIND_PENDING,
        ledger_pb.TRANSFER_KIND_VOID_PENDING,
        ledger_pb.TRANSFER_KIND_EXPIRE_PENDING,
    }
)


def _entry(transfer: ledger_pb.Transfer, change: int, balance_after: int):
    return gateway_pb.WalletEntry(
        transfer_id=transfer.id,
        reason=ENTRY_REASONS.get(transfer.code, gateway_pb.ENTRY_REASON_UNSPECIFIED),
        change=change,
        balance_after=balance_after,
        create_time=transfer.create_time,
        sequence=transfer.sequence,
        metadata=transfer.metadata,
    )


def _entry_for_account(transfer: ledger_pb.Transfer, account_id: str):
    """The entry a feed transfer makes in one account, or None if it does not touch it."""
    if transfer.credit_account_id == account_id:
        sign, balance_after = 1, transfer.credit_balance_after
    elif transfer.debit_account_id == account_id:
        sign, balance_after = -1, transfer.debit_balance_after
    else:
        return None
    change = 0 if transfer.kind in BALANCE_NEUTRAL_KINDS else sign * transfer.amount
    return _entry(transfer, change, balance_after)


class WalletServicer:
    """loyalty.gateway.v1.WalletService over the ledger. The Gatekeeper has
    already replaced member_id with the member the caller may act for."""

    def __init__(
        self,
        ledger: ledger_grpc.LedgerServiceStub,
        deadlines: DeadlinePolicy,
        upstream: CallMetrics,
    ) -> None:
        self._ledger = ledger
        self._deadlines = deadlines
        self._get_account = upstream.meter("ledger", "GetAccount")
        self._list_transfers = upstream.meter("ledger", "ListTransfers")
        self._watch_transfers = upstream.meter("ledger", "WatchTransfers")

    def _timeout(self, ctx: RequestContext, *, stream: bool = False) -> float:
        return self._deadlines.upstream_timeout(_client_timeout_seconds(ctx), stream=stream)

    async def get_wallet(
        self, request: gateway_pb.GetWalletRequest, ctx: RequestContext
    ) -> gateway_pb.GetWalletResponse:
        account_id = wallet_account_id(request.member_id, request.unit)
        query = ledger_pb.GetAccountRequest(account_id=account_id)
        if request.HasField("expiring_within"):
            query.expiring_within.CopyFrom(request.expiring_within)
        wallet = gateway_pb.Wallet(member_id=request.member_id, unit=request.unit or "points")
        try:
            response = await measured(
                self._get_account, self._ledger.GetAccount(query, timeout=self._timeout(ctx))
            )
        except grpc.aio.AioRpcError as error:
            # A member who never earned anything has no account yet: an empty wallet.
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return gateway_pb.GetWalletResponse(wallet=wallet)
            raise upstream_error("ledger", error) from None
        balance = response.account.balance
        wallet.balance = balance.balance
        wallet.available = balance.available
        wallet.lifetime_earned = balance.credits_posted
        wallet.expiring_soon.extend(
            gateway_pb.ExpiringPoints(amount=item.amount, expire_time=item.expire_time)
            for item in balance.expiring_soon
        )
        return gateway_pb.GetWalletResponse(wallet=wallet)

    async def list_wallet_entries(
        self, request: gateway_pb.ListWalletEntriesRequest, ctx: RequestContext
    ) -> gateway_pb.ListWalletEntriesResponse:
        query = ledger_pb.ListTransfersRequest(
            account_id=wallet_account_id(request.member_id, request.unit),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        try:
            page = await measured(
                self._list_transfers, self._ledger.ListTransfers(query, timeout=self._timeout(ctx))
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND and not request.page_token:
                return gateway_pb.ListWalletEntriesResponse()
            raise upstream_error("ledger", error) from None
        return gateway_pb.ListWalletEntriesResponse(
            entries=[
                _entry(item.transfer, item.balance_change, item.balance_after)
                for item in page.entries
            ],
            next_page_token=page.next_page_token,
        )

    async def watch_wallet(
        self, request: gateway_pb.WatchWalletRequest, ctx: RequestContext
    ) -> AsyncIterator[gateway_pb.WatchWalletResponse]:
        if request.after_sequence < 0:
            raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
        account_id = wallet_account_id(request.member_id, request.unit)
        feed = self._ledger.WatchTransfers(
            ledger_pb.WatchTransfersRequest(
                after_sequence=request.after_sequence, account_id=account_id
            ),
            timeout=self._timeout(ctx, stream=True),
        )
        try:
            with metered_stream(self._watch_transfers):
                async for item in feed:
                    # The ledger filters by account; checking again keeps a
                    # member's stream their own whatever the upstream does.
                    entry = _entry_for_account(item.transfer, account_id)
                    if entry is not None:
                        yield gateway_pb.WatchWalletResponse(entry=entry)
        except grpc.aio.AioRpcError as error:
            raise upstream_error("ledger", error) from None
        finally:
            feed.cancel()


def wallet_handlers(servicer: WalletServicer) -> dict[str, Callable]:
    return {
        "GetWallet": servicer.get_wallet,
        "ListWalletEntries": servicer.list_wallet_entries,
        "WatchWallet": servicer.watch_wallet,
    }


# Upstream contracts re-exposed as they are ------------------------------------

IDEMPOTENCY = {
    descriptor_pb2.MethodOptions.IDEMPOTENCY_UNKNOWN: IdempotencyLevel.UNKNOWN,
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS: IdempotencyLevel.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT: IdempotencyLevel.IDEMPOTENT,
}


@dataclass(frozen=True)
class Upstream:
    """An internal service whose methods (only those in `rules`) are re-exposed."""

    name: str
    service: ServiceDescriptor
    rules: Mapping[str, AccessRule]

    def procedures(self) -> dict[str, AccessRule]:
        return {f"{self.service.full_name}/{name}": rule for name, rule in self.rules.items()}


def _method_info(method: MethodDescriptor) -> MethodInfo:
    return MethodInfo(
        name=method.name,
        service_name=method.containing_service.full_name,
        input=message_factory.GetMessageClass(method.input_type),
        output=message_factory.GetMessageClass(method.output_type),
        idempotency_level=IDEMPOTENCY[method.GetOptions().idempotency_level],
        stream_type=StreamType.SERVER_STREAM if method.server_streaming else StreamType.UNARY,
    )


def _request_id() -> tuple[tuple[str, str], ...]:
    """The call's request id as upstream metadata. Forwarded calls go over plain
    channels: a grpc.aio client interceptor costs each call a task of its own."""
    request_id = current_request_id()
    return ((REQUEST_ID_HEADER, request_id),) if request_id is not None else ()


def _forward_unary(
    upstream: str, call: Callable[..., Awaitable[Any]], deadlines: DeadlinePolicy, meter: CallMeter
) -> Callable[[Any, RequestContext], Awaitable[Any]]:
    async def forward(request, ctx: RequestContext):
        timeout = deadlines.upstream_timeout(_client_timeout_seconds(ctx), stream=False)
        try:
            return await measured(meter, call(request, timeout=timeout, metadata=_request_id()))
        except grpc.aio.AioRpcError as error:
            raise upstream_error(upstream, error) from None

    return forward


def _forward_stream(
    upstream: str, call: Callable[..., Any], deadlines: DeadlinePolicy, meter: CallMeter
) -> Callable[[Any, RequestContext], AsyncIterator[Any]]:
    async def forward(request, ctx: RequestContext):
        timeout = deadlines.upstream_timeout(_client_timeout_seconds(ctx), stream=True)
        responses = call(request, timeout=timeout, metadata=_request_id())
        try:
            with metered_stream(meter):
                async for response in responses:
                    yield response
        except grpc.aio.AioRpcError as error:
            raise upstream_error(upstream, error) from None
        finally:
            responses.cancel()

    return forward


def forwarding_handlers(
    upstream: Upstream,
    channel: grpc.aio.Channel,
    deadlines: DeadlinePolicy,
    metrics: CallMetrics,
) -> dict[str, Callable]:
    """One handler per allowlisted method, each a plain grpc.aio call upstream,
    counted with its code and latency in `metrics`."""
    handlers: dict[str, Callable] = {}
    for name in upstream.rules:
        method = upstream.service.methods_by_name[name]
        info = _method_info(method)
        path = f"/{upstream.service.full_name}/{name}"
        codec = {
            "request_serializer": info.input.SerializeToString,
            "response_deserializer": info.output.FromString,
        }
        meter = metrics.meter(upstream.name, name)
        if method.server_streaming:
            call = channel.unary_stream(path, **codec)
            handlers[name] = _forward_stream(upstream.name, call, deadlines, meter)
        else:
            handlers[name] = _forward_unary(
                upstream.name, channel.unary_unary(path, **codec), deadlines, meter
            )
    return handlers


class ServiceApplication(ConnectASGIApplication):
    """Serves one protobuf service's endpoints over Connect, gRPC-Web and gRPC."""

    def __init__(self, service_name: str, endpoints: Mapping[str, Endpoint], **options) -> None:
        paths = {f"/{service_name}/{name}": endpoint for name, endpoint in endpoints.items()}
        super().__init__(service=service_name, endpoints=lambda _service: paths, **options)
        self.service_name = service_name
        self._methods = {name: endpoint.method for name, endpoint in endpoints.items()}

    @property
    def path(self) -> str:
        return f"/{self.service_name}"

    @property
    def methods(self) -> Mapping[str, MethodInfo]:
        """The exposed methods, by name."""
        return self._methods


def service_application(
    service: ServiceDescriptor, handlers: Mapping[str, Callable], **options
) -> ServiceApplication:
    """The service's handlers, each exposed under its method's name. Endpoints come
    from the service's descriptor (the same google.protobuf classes grpcio uses),
    so a method is exposed by naming its handler."""
    endpoints = {
        name: _endpoint(service.methods_by_name[name], handler)
        for name, handler in handlers.items()
    }
    return ServiceApplication(service.full_name, endpoints, **options)


def _endpoint(method: MethodDescriptor, handler: Callable) -> Endpoint:
    if method.client_streaming:
        raise ValueError(f"{method.full_name}: client streams are not bridged")
    info = _method_info(method)
    if method.server_streaming:
        return Endpoint.server_stream(info, handler)
    return Endpoint.unary(info, handler)
