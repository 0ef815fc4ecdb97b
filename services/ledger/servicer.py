"""loyalty.ledger.v1 <-> the ledger's domain; errors are mapped by the server kit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

from services.kit.enums import is_known, known
from services.kit.errors import InvalidArgument, Violations
from services.kit.proto_time import (
    MAX_SECONDS,
    MIN_SECONDS,
    duration_micros,
    micros,
    optional_micros,
    timestamp,
)
from services.ledger.domain import (
    Account,
    AccountKind,
    PendingState,
    Result,
    Transfer,
    TransferCode,
    TransferKind,
    TransferOutcome,
    TransferRequest,
)
from services.ledger.service import AccountView, LedgerService
from services.ledger.stream import TransferStream


def account_from_proto(message: pb.Account) -> Account:
    return Account(
        id=message.id,
        unit=message.unit,
        kind=known(AccountKind, message.kind),
        debits_must_not_exceed_credits=message.flags.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=message.flags.credits_must_not_exceed_debits,
        expiring_lots=message.flags.expiring_lots,
        expiry_account_id=message.expiry_account_id,
        metadata=dict(message.metadata),
    )


def account_to_proto(account: Account, expiring=()) -> pb.Account:
    message = pb.Account(
        id=account.id,
        unit=account.unit,
        kind=int(account.kind),
        flags=pb.AccountFlags(
            debits_must_not_exceed_credits=account.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=account.credits_must_not_exceed_debits,
            expiring_lots=account.expiring_lots,
        ),
        expiry_account_id=account.expiry_account_id,
        metadata=account.metadata,
        create_time=timestamp(account.created_at),
        balance=pb.Balance(
            debits_pending=account.debits_pending,
            debits_posted=account.debits_posted,
            credits_pending=account.credits_pending,
            credits_posted=account.credits_posted,
            balance=account.balance,
            available=account.available,
            expiring_soon=[
                pb.ExpiringAmount(amount=lot.amount, expire_time=timestamp(lot.expires_at))
                for lot in expiring
            ],
        ),
    )
    if account.closed_at is not None:
        message.close_time.CopyFrom(timestamp(account.closed_at))
    return message


def _view_to_proto(view: AccountView) -> pb.Account:
    return account_to_proto(view.account, view.expiring_soon)


# Proto3 enums are open: a number outside these is refused by name.
_RESULTS = {member: int(member) for member in Result}
_MAX_DURATION_SECONDS = 315_576_000_000


def _timestamp_micros(value, path: str) -> int:
    """Timestamp.ToMicroseconds with the same checks, without its Python call chain
    (a tenth of a batch's conversion time)."""
    seconds, nanos = value.seconds, value.nanos
    if not (MIN_SECONDS <= seconds <= MAX_SECONDS and 0 <= nanos <= 999_999_999):
        return micros(value, path)  # raises with the field's name
    return seconds * 1_000_000 + nanos // 1000


def request_from_proto(message: pb.Transfer, path: str = "transfer") -> TransferRequest:
    """One transfer as the domain reads it; unknown kind or code numbers read as
    UNSPECIFIED (requests_from_proto refuses them by name first)."""
    return TransferRequest(
        id=message.id,
        kind=known(TransferKind, message.kind),
        debit_account_id=message.debit_account_id,
        credit_account_id=message.credit_account_id,
        amount=message.amount,
        code=known(TransferCode, message.code),
        metadata=dict(message.metadata) if message.metadata else {},
        linked=message.linked,
        pending_id=message.pending_id,
        timeout_us=(
            duration_micros(message.timeout, f"{path}.timeout")
            if message.HasField("timeout")
            else 0
        ),
        expires_at=(
            _timestamp_micros(message.expire_time, f"{path}.expire_time")
            if message.HasField("expire_time")
            else None
        ),
        reverses_id=message.reverses_transfer_id,
    )


def requests_from_proto(transfers) -> list[TransferRequest]:
    """A batch's transfers, converted once each; every unknown enum number and
    unreadable time is named in one INVALID_ARGUMENT."""
    violations = Violations()
    requests: list[TransferRequest] = []
    append = requests.append
    for index, transfer in enumerate(transfers):
        if not is_known(TransferKind, transfer.kind) or not is_known(TransferCode, transfer.code):
            path = f"transfers[{index}]"
            for name, enum in (("kind", TransferKind), ("code", TransferCode)):
                if not is_known(enum, getattr(transfer, name)):
                    violations.add(f"{path}.{name}", "unknown value")
        try:
            append(request_from_proto(transfer, f"transfers[{index}]"))
        except InvalidArgument as error:
            violations.items.extend(error.violations)
    violations.raise_if_any()
    return requests


def fill_transfer(message: pb.Transfer, transfer: Transfer) -> pb.Transfer:
    """Writes `transfer` into an empty message in place: setting fields on the
    message a response already holds costs a third of building one and copying it."""
    message.id = transfer.id
    message.debit_account_id = transfer.debit_account_id
    message.credit_account_id = transfer.credit_account_id
    message.amount = transfer.amount
    message.code = transfer.code
    message.kind = transfer.kind
    if transfer.metadata:
        message.metadata.update(transfer.metadata)
    if transfer.pending_id:
        message.pending_id = transfer.pending_id
    if transfer.reverses_id:
        message.reverses_transfer_id = transfer.reverses_id
    message.sequence = transfer.sequence
    seconds, rest = divmod(transfer.created_at, 1_000_000)
    created = message.create_time
    created.seconds = seconds
    created.nanos = rest * 1000
    message.debit_balance_after = transfer.debit_balance_after
    message.credit_balance_after = transfer.credit_balance_after
    if transfer.timeout_us:
        message.timeout.FromMicroseconds(transfer.timeout_us)
    if transfer.expires_at is not None:
        seconds, rest = divmod(transfer.expires_at, 1_000_000)
        expires = message.expire_time
        expires.seconds = seconds
        expires.nanos = rest * 1000
    return message


def transfer_to_proto(transfer: Transfer) -> pb.Transfer:
    return fill_transfer(pb.Transfer(), transfer)


def results_to_proto(
    outcomes: list[TransferOutcome], response: pb.PostTransfersResponse | None = None
) -> pb.PostTransfersResponse:
    """The batch's results, written into `response` (a new one by default)."""
    if response is None:
        response = pb.PostTransfersResponse()
    add = response.results.add
    for outcome in outcomes:
        if outcome.field:
            result = add(
                index=outcome.index,
                id=outcome.id,
                code=_RESULTS[outcome.result],
                field=outcome.field,
            )
        else:
            result = add(index=outcome.index, id=outcome.id, code=_RESULTS[outcome.result])
        if outcome.transfer is not None:
            fill_transfer(result.transfer, outcome.transfer)
    return response


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, service: LedgerService) -> None:
        self._service = service

    async def OpenAccount(
        self, request: pb.OpenAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenAccountResponse:
        account, created = await self._service.open_account(account_from_proto(request.account))
        return pb.OpenAccountResponse(account=account_to_proto(account), created=created)

    async def CloseAccount(
        self, request: pb.CloseAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseAccountResponse:
        account = await self._service.close_account(request.account_id)
        return pb.CloseAccountResponse(account=account_to_proto(account))

    async def GetAccount(
        self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAccountResponse:
        window = (
            duration_micros(request.expiring_within, "expiring_within")
            if request.HasField("expiring_within")
            else None
        )
        view = await self._service.get_account(request.account_id, window)
        return pb.GetAccountResponse(account=_view_to_proto(view))

    async def PostTransfers(
        self, request: pb.PostTransfersRequest, context: grpc.aio.ServicerContext
    ) -> pb.PostTransfersResponse:
        outcomes = await self._service.post_transfers(requests_from_proto(request.transfers))
        return results_to_proto(outcomes)

    async def PostTransfersStream(
        self,
        requests: AsyncIterator[pb.PostTransfersStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.PostTransfersStreamResponse]:
        # Headers at once: a client learns the stream is open before its first answer.
        await context.send_initial_metadata(())
        stream = TransferStream(requests, self._submit, results_to_proto)
        async for answer in stream.answers():
            yield answer

    def _submit(self, request: pb.PostTransfersRequest) -> asyncio.Future:
        return self._service.submit(requests_from_proto(request.transfers))

    async def GetTransfer(
        self, request: pb.GetTransferRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTransferResponse:
        transfer, reversed_amount, state = await self._service.get_transfer(request.transfer_id)
        return pb.GetTransferResponse(
            transfer=transfer_to_proto(transfer),
            reversed_amount=reversed_amount,
            pending_state=int(state) if state != PendingState.NONE else 0,
        )

    async def ListTransfers(
        self, request: pb.ListTransfersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTransfersResponse:
        page = await self._service.list_transfers(
            request.account_id,
            optional_micros(request, "start_time"),
            optional_micros(request, "end_time"),
            [int(code) for code in request.codes],
            request.page_size,
            request.page_token,
        )
        return pb.ListTransfersResponse(
            entries=[
                pb.AccountEntry(
                    transfer=transfer_to_proto(transfer),
                    balance_after=transfer.balance_after(request.account_id),
                    balance_change=transfer.balance_change(request.account_id),
                )
                for transfer in page.items
            ],
            next_page_token=page.next_page_token,
        )

    async def GetBalanceAt(
        self, request: pb.GetBalanceAtRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBalanceAtResponse:
        balance, sequence = await self._service.balance_at(
            request.account_id, optional_micros(request, "time")
        )
        return pb.GetBalanceAtResponse(balance=balance, sequence=sequence)

    async def SweepExpired(
        self, request: pb.SweepExpiredRequest, context: grpc.aio.ServicerContext
    ) -> pb.SweepExpiredResponse:
        report = await self._service.sweep()
        return pb.SweepExpiredResponse(
            lots_expired=report.lots_expired,
            amount_expired=report.amount_expired,
            pending_expired=report.pending_expired,
        )

    async def WatchTransfers(
        self, request: pb.WatchTransfersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchTransfersResponse]:
        async for transfer in self._service.watch(request.after_sequence, request.account_id):
            yield pb.WatchTransfersResponse(transfer=transfer_to_proto(transfer))

    async def GetTotals(
        self, request: pb.GetTotalsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTotalsResponse:
        totals = await self._service.totals(request.unit)
        return pb.GetTotalsResponse(
            totals=[
                pb.KindTotal(
                    kind=int(total.kind),
                    accounts=total.accounts,
                    balance=total.balance,
                    debits_pending=total.debits_pending,
                )
                for total in totals
            ]
        )
