"""What the campaigns service asks of the ledger, in the ledger's own terms:
the chains it posts (through the outbox), the accounts it opens and the
balances it reads. Answers are read with services.kit.chains.ChainAnswer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.campaigns.domain.evaluation import Leg
from services.campaigns.domain.refund import ClawbackPlan
from services.kit.chains import linked_chain
from services.kit.ids import ISSUANCE_ACCOUNT, POINTS, budget_account
from services.kit.ledger_accounts import (
    NO_NEGATIVE,
    PROGRAM_ISSUANCE,
    LedgerAccounts,
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
                credit_account_id=budget_account(campaign_id),
                amount=amount,
                code=ledger_pb.TRANSFER_CODE_FUNDING,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={"campaign_id": campaign_id},
            )
        ]
    )


class CampaignsLedger(Protocol):
    """The ledger calls the use cases make themselves; chains go through the outbox."""

    async def open_wallet(self, member_id: str) -> None: ...
    async def open_budget(self, campaign_id: str) -> None: ...
    async def balance(self, account_id: str) -> ledger_pb.Balance | None: ...


class LedgerClient(LedgerAccounts):
    """CampaignsLedger over the suite's ledger client: the accounts campaigns pays
    from and to, opened once per process."""

    async def open_wallet(self, member_id: str) -> None:
        await self.ensure(PROGRAM_ISSUANCE, points_wallet(member_id))

    async def open_budget(self, campaign_id: str) -> None:
        await self.ensure(
            PROGRAM_ISSUANCE,
            ledger_pb.Account(
                id=budget_account(campaign_id),
                unit=POINTS,
                kind=ledger_pb.ACCOUNT_KIND_CAMPAIGN_BUDGET,
                flags=NO_NEGATIVE,
            ),
        )
