"""What the campaigns service asks of the ledger, in the ledger's own terms:
accounts it opens, chains it posts, balances it reads."""

from __future__ import annotations

from collections.abc import Sequence

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.campaigns.domain.evaluation import ISSUANCE_ACCOUNT, Leg
from services.campaigns.domain.model import budget_account_id
from services.campaigns.domain.refund import ClawbackPlan
from services.kit.ledger_accounts import (
    NO_NEGATIVE,
    POINTS,
    PROGRAM_ISSUANCE,
    LedgerAccounts,
    linked_chain,
    points_wallet,
)
from services.kit.proto_time import timestamp


def award_chain(
    activity_id: str, legs: Sequence[Leg], expire_us: int
) -> ledger_pb.PostTransfersRequest:
    return linked_chain(
        [
            ledger_pb.Transfer(
                id=leg.transfer_id(activity_id),
                debit_account_id=leg.from_account,
                credit_account_id=leg.beneficiary,
                amount=leg.points,
                code=(
                    ledger_pb.TRANSFER_CODE_EARN
                    if leg.from_account == ISSUANCE_ACCOUNT
                    else ledger_pb.TRANSFER_CODE_BONUS
                ),
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={"activity_id": activity_id, "campaign_id": leg.campaign_id},
                expire_time=timestamp(expire_us),
            )
            for leg in legs
        ]
    )


def clawback_chain(refund_activity_id: str, plan: ClawbackPlan) -> ledger_pb.PostTransfersRequest:
    return linked_chain(
        [
            ledger_pb.Transfer(
                id=planned.transfer_id(refund_activity_id),
                amount=planned.reverse,
                code=ledger_pb.TRANSFER_CODE_CLAWBACK,
                kind=ledger_pb.TRANSFER_KIND_REVERSAL,
                reverses_transfer_id=planned.leg.transfer_id,
                metadata={
                    "activity_id": refund_activity_id,
                    "campaign_id": planned.leg.campaign_id,
                },
            )
            for planned in plan.legs
            if planned.reverse > 0
        ]
    )


def funding_transfer(
    transfer_id: str, campaign_id: str, amount: int
) -> ledger_pb.PostTransfersRequest:
    return ledger_pb.PostTransfersRequest(
        transfers=[
            ledger_pb.Transfer(
                id=transfer_id,
                debit_account_id=ISSUANCE_ACCOUNT,
                credit_account_id=budget_account_id(campaign_id),
                amount=amount,
                code=ledger_pb.TRANSFER_CODE_FUNDING,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={"campaign_id": campaign_id},
            )
        ]
    )


def parse_request(raw: bytes) -> ledger_pb.PostTransfersRequest:
    return ledger_pb.PostTransfersRequest.FromString(raw)


def balance_after(response: ledger_pb.PostTransfersResponse, member_id: str) -> int | None:
    """The member's posted balance after the last transfer of the chain touching it."""
    latest: tuple[int, int] | None = None
    for result in response.results:
        transfer = result.transfer
        for account, balance in (
            (transfer.credit_account_id, transfer.credit_balance_after),
            (transfer.debit_account_id, transfer.debit_balance_after),
        ):
            if account == member_id and (latest is None or transfer.sequence > latest[0]):
                latest = (transfer.sequence, balance)
    return latest[1] if latest else None


def refusals(response: ledger_pb.PostTransfersResponse) -> list[tuple[str, str, str]]:
    """(transfer id, result code name, field) of every transfer that did not commit
    for a reason of its own (not merely because a linked one failed)."""
    return [
        (result.id, ledger_pb.TransferResultCode.Name(result.code), result.field)
        for result in response.results
        if result.code
        not in (
            ledger_pb.TRANSFER_RESULT_CODE_OK,
            ledger_pb.TRANSFER_RESULT_CODE_EXISTS,
            ledger_pb.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED,
        )
    ]


class LedgerClient(LedgerAccounts):
    """The suite's ledger client, with the accounts campaigns pays from and to."""

    async def open_wallet(self, member_id: str) -> None:
        await self.ensure(PROGRAM_ISSUANCE, points_wallet(member_id))

    async def open_budget(self, campaign_id: str) -> None:
        await self.ensure(
            PROGRAM_ISSUANCE,
            ledger_pb.Account(
                id=budget_account_id(campaign_id),
                unit=POINTS,
                kind=ledger_pb.ACCOUNT_KIND_CAMPAIGN_BUDGET,
                flags=NO_NEGATIVE,
            ),
        )
