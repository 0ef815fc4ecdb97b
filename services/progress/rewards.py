"""Points that badges, streak milestones and challenges pay, through the
ledger exactly once: the award and its outbox entry are recorded in the
transaction that found it earned; the kit's outbox posts it (the transfer id
is derived from the award, so posting twice commits once) and closes the
entry in the transaction that marks the award paid or refused."""

from __future__ import annotations

import structlog
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.chains import linked_chain
from services.kit.clock import Clock
from services.kit.errors import FailedPrecondition
from services.kit.ids import ISSUANCE_ACCOUNT, progress_budget_account, wallet_member
from services.kit.ledger_accounts import (
    NO_NEGATIVE,
    PROGRAM_ISSUANCE,
    LedgerAccounts,
    points_wallet,
)
from services.kit.ledger_stream import LedgerPoster, poster_of
from services.kit.metrics import Metrics
from services.kit.outbox import LedgerOutbox, OutboxEntry, Settlement
from services.progress.domain.records import AwardKind, reward_transfer_id
from services.progress.store import ProgressStore, SqliteProgressUnit

log = structlog.get_logger()

# One outbox kind per award kind, each with its handler.
BADGE_BONUS = "badge_bonus"
STREAK_BONUS = "streak_bonus"
CHALLENGE_REWARD = "challenge_reward"
KIND_OF_AWARD = {
    AwardKind.BADGE: BADGE_BONUS,
    AwardKind.STREAK_MILESTONE: STREAK_BONUS,
    AwardKind.CHALLENGE: CHALLENGE_REWARD,
}


def budget_account(budget_id: str) -> ledger_pb.Account:
    return _budget(progress_budget_account(budget_id))


def _budget(account_id: str) -> ledger_pb.Account:
    return ledger_pb.Account(
        id=account_id,
        unit="points",
        kind=ledger_pb.ACCOUNT_KIND_CAMPAIGN_BUDGET,
        flags=NO_NEGATIVE,
    )


def reward_request(
    kind: AwardKind, definition_id: str, detail: str, member_id: str, points: int, budget_id: str
) -> tuple[str, ledger_pb.PostTransfersRequest]:
    transfer_id = reward_transfer_id(kind, definition_id, detail, member_id)
    request = linked_chain(
        [
            ledger_pb.Transfer(
                id=transfer_id,
                debit_account_id=progress_budget_account(budget_id),
                credit_account_id=member_id,
                amount=points,
                code=ledger_pb.TRANSFER_CODE_BONUS,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={
                    "progress_award": kind.value,
                    "definition_id": definition_id,
                    "detail": detail,
                    "member_id": member_id,
                },
            )
        ]
    )
    return transfer_id, request


def record_reward(
    unit: SqliteProgressUnit,
    kind: AwardKind,
    definition_id: str,
    detail: str,
    member_id: str,
    points: int,
    budget_id: str,
    now_us: int,
) -> OutboxEntry:
    entry_id, request = reward_request(kind, definition_id, detail, member_id, points, budget_id)
    return unit.outbox.record(entry_id, KIND_OF_AWARD[kind], request, now_us)


def _settled(unit: SqliteProgressUnit, settlement: Settlement) -> str:
    entry_id = settlement.entry.entry_id
    if settlement.answer is None:
        state, refusal = "refused", settlement.error or "refused"
    elif settlement.answer.accepted:
        state, refusal = "paid", ""
    else:
        refusal = ", ".join(r.code for r in settlement.answer.refusals) or "refused"
        state = "refused"
    unit.settle_award(entry_id, state, refusal)
    return state


HANDLERS = {BADGE_BONUS: _settled, STREAK_BONUS: _settled, CHALLENGE_REWARD: _settled}


class AccountOpeningLedger:
    """The ledger as the outbox sees it: before posting an award it opens the
    member's wallet and the budget (idempotently, once per process), so a
    relayed entry never finds them missing."""

    def __init__(self, accounts: LedgerAccounts, poster: LedgerPoster) -> None:
        self._accounts = accounts
        self._poster = poster

    async def post(
        self, request: ledger_pb.PostTransfersRequest, *, timeout: float
    ) -> ledger_pb.PostTransfersResponse:
        for transfer in request.transfers:
            member = wallet_member(transfer.credit_account_id)
            if member is not None:
                await self._accounts.ensure(PROGRAM_ISSUANCE, points_wallet(member))
            # Every award's debit is a progress budget (reward_request).
            await self._accounts.ensure(_budget(transfer.debit_account_id))
        return await self._poster.post(request, timeout=timeout)

    async def close(self) -> None:
        await self._poster.close()


class Rewards:
    """Settles award entries and funds budgets."""

    def __init__(
        self,
        store: ProgressStore,
        accounts: LedgerAccounts,
        clock: Clock,
        timeout: float,
        metrics: Metrics | None = None,
        streaming: bool = False,
    ) -> None:
        self.accounts = accounts
        self.ledger = AccountOpeningLedger(accounts, poster_of(accounts.stub, streaming=streaming))
        self.outbox = LedgerOutbox(
            store, self.ledger, clock, HANDLERS, timeout=timeout, metrics=metrics
        )

    async def settle(self, entries: list[OutboxEntry]) -> None:
        """Post what a transaction just recorded; an unreachable ledger leaves it to the relay."""
        for entry in entries:
            try:
                await self.outbox.settle(entry)
            except Exception as error:  # the relay retries it after its backoff
                log.warning(
                    "award_left_to_relay",
                    entry_id=entry.entry_id,
                    kind=entry.kind,
                    error=str(error),
                )

    async def fund(self, budget_id: str, points: int, request_id: str) -> tuple[str, int]:
        account = budget_account(budget_id)
        await self.accounts.ensure(PROGRAM_ISSUANCE, account)
        response = await self.accounts.post(
            ledger_pb.PostTransfersRequest(
                transfers=[
                    ledger_pb.Transfer(
                        id=f"progress:fund:{budget_id}:{request_id}",
                        debit_account_id=ISSUANCE_ACCOUNT,
                        credit_account_id=account.id,
                        amount=points,
                        code=ledger_pb.TRANSFER_CODE_FUNDING,
                        kind=ledger_pb.TRANSFER_KIND_POSTED,
                        metadata={"budget_id": budget_id},
                    )
                ]
            )
        )
        (result,) = response.results
        if result.code not in (
            ledger_pb.TRANSFER_RESULT_CODE_OK,
            ledger_pb.TRANSFER_RESULT_CODE_EXISTS,
        ):
            name = ledger_pb.TransferResultCode.Name(result.code)
            raise FailedPrecondition(
                "FUNDING_REFUSED",
                f"the ledger refused the funding: {name}",
                {"ledger_result": name, "request_id": request_id},
            )
        balance = await self.accounts.balance(account.id)
        return account.id, balance.balance if balance is not None else 0
