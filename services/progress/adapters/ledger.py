"""The ledger's WatchTransfers as progress events.

A credit to a member's points wallet (posted, or a hold posted) is
PointsCredited with its code and the activity in its metadata; a reversal
debiting a member's wallet is PointsReversed. Everything else (spending,
expiry, holds, budgets, prize units) yields nothing but still moves the
cursor: spending never lowers a tier."""

from __future__ import annotations

from collections.abc import AsyncIterator

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.feeds import FeedItem
from services.kit.ids import wallet_member
from services.progress.domain.events import Event, PointsCredited, PointsReversed

FEED = "ledger"
CREDITS = (ledger_pb.TRANSFER_KIND_POSTED, ledger_pb.TRANSFER_KIND_POST_PENDING)
# Once, not TransferCode.Name() for every transfer.
CODES = {
    value.number: value.name.removeprefix("TRANSFER_CODE_")
    for value in ledger_pb.TransferCode.DESCRIPTOR.values
}


def code_name(number: int) -> str:
    """A code this build knows by its name; one a newer ledger added as
    CODE_<number>, which no program can qualify (definitions.QUALIFYING_CODES),
    so the feed goes on past it without counting it."""
    name = CODES.get(number)
    return f"CODE_{number}" if name is None else name


def item_of(response: ledger_pb.WatchTransfersResponse) -> FeedItem[list[Event]]:
    transfer = response.transfer
    commit_us = transfer.create_time.ToMicroseconds()
    return FeedItem(transfer.sequence, _events_of(transfer, commit_us), commit_us)


def _events_of(transfer: ledger_pb.Transfer, commit_us: int) -> list[Event]:
    kind = transfer.kind
    if kind == ledger_pb.TRANSFER_KIND_REVERSAL:
        member = wallet_member(transfer.debit_account_id)
        if member is None or not transfer.reverses_transfer_id:
            return []
        return [
            PointsReversed(
                transfer.id, member, transfer.reverses_transfer_id, transfer.amount, commit_us
            )
        ]
    member = wallet_member(transfer.credit_account_id)
    amount = transfer.amount
    if member is None or kind not in CREDITS or amount <= 0:
        return []
    return [
        PointsCredited(
            transfer.id,
            member,
            code_name(transfer.code),
            amount,
            commit_us,
            transfer.metadata.get("activity_id", ""),
        )
    ]


def opener(stub: ledger_grpc.LedgerServiceStub, recycle_seconds: float):
    async def open_stream(after: int) -> AsyncIterator[FeedItem[list[Event]]]:
        stream = stub.WatchTransfers(
            ledger_pb.WatchTransfersRequest(after_sequence=after), timeout=recycle_seconds
        )
        try:
            async for response in stream:
                yield item_of(response)
        finally:
            stream.cancel()

    return open_stream
