"""loyalty.ledger.v1 <-> the ledger's domain; errors are mapped by the server kit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

from services.kit.enums import known
from services.kit.errors import InvalidArgument, Violations
from services.kit.proto_time import duration_micros, optional_micros, timestamp
from services.ledger.domain import (
    Account,
    AccountKind,
    PendingState,
    Transfer,
    TransferCode,
    TransferKind,
    TransferOutcome,
    TransferRequest,
)
from services.ledger.service import AccountView, LedgerService


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


def request_from_proto(message: pb.Transfer, path: str = "transfer") -> TransferRequest:
    return TransferRequest(
        id=message.id,
        kind=known(TransferKind, message.kind),
        debit_account_id=message.debit_account_id,
        credit_account_id=message.credit_account_id,
        amount=message.amount,
        code=known(TransferCode, message.code),
        metadata=dict(message.metadata),
        linked=message.linked,
        pending_id=message.pending_id,
        timeout_us=(
            duration_micros(message.timeout, f"{path}.timeout")
            if message.HasField("timeout")
            else 0
        ),
        expires_at=optional_micros(message, "expire_time", f"{path}.expire_time"),
        reverses_id=message.reverses_transfer_id,
    )


def transfer_to_proto(transfer: Transfer) -> pb.Transfer:
    message = pb.Transfer(
        id=transfer.id,
        debit_account_id=transfer.debit_account_id,
        credit_account_id=transfer.credit_account_id,
        amount=transfer.amount,
        code=int(transfer.code),
        kind=int(transfer.kind),
        metadata=transfer.metadata,
        pending_id=transfer.pending_id,
        reverses_transfer_id=transfer.reverses_id,
        sequence=transfer.sequence,
        create_time=timestamp(transfer.created_at),
        debit_balance_after=transfer.debit_balance_after,
        credit_balance_after=transfer.credit_balance_after,
    )
    if transfer.timeout_us:
        message.timeout.FromMicroseconds(transfer.timeout_us)
    if transfer.expires_at is not None:
        message.expire_time.CopyFrom(timestamp(transfer.expires_at))
    return message


def _result_to_proto(outcome: TransferOutcome) -> pb.TransferResult:
    result = pb.TransferResult(
        index=outcome.index, id=outcome.id, code=int(outcome.result), field=outcome.field
    )
    if outcome.transfer is not None:
        result.transfer.CopyFrom(transfer_to_proto(outcome.transfer))
    return result


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
        # Unknown enum numbers would read as UNSPECIFIED, which a post or void accepts
        # as "take the code from the pending transfer": refuse them by name instead.
        violations = Violations()
        requests: list[TransferRequest] = []
        for index, transfer in enumerate(request.transfers):
            path = f"transfers[{index}]"
            for name, enum in (("kind", TransferKind), ("code", TransferCode)):
                if getattr(transfer, name) not in enum._value2member_map_:
                    violations.add(f"{path}.{name}", "unknown value")
            try:
                requests.append(request_from_proto(transfer, path))
            except InvalidArgument as error:
                violations.items.extend(error.violations)
        violations.raise_if_any()
        outcomes = await self._service.post_transfers(requests)
        return pb.PostTransfersResponse(results=[_result_to_proto(o) for o in outcomes])

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
