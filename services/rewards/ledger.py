"""What the rewards service asks of the ledger: the accounts of a reward (its
stock, where redeemed stock and payments go), the transfer chains of a
redemption (its holds and their posts, in one chain; reversals), stock changes
and offer points, and the figures of the program report.

Transfer ids derive from the redemption id, so every retry and every relay
reuses them:

    one linked chain per redemption:
    redeem:<rid>:points        PENDING  member -> rewards:redeemed[:<unit>]
    redeem:<rid>:stock         PENDING  reward:<id>:stock -> reward:<id>:issued
                                        (a prize-unit reward: -> <member>/<unit>)
    redeem:<rid>:points:post, redeem:<rid>:stock:post      POST_PENDING
    redeem:<rid>:credit        POSTED   program:issuance -> member (a credit reward)
    after issue:
    redeem:<rid>:points:back, redeem:<rid>:stock:back      REVERSAL of the posts
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.chains import linked_chain
from services.kit.errors import FailedPrecondition
from services.kit.ids import (
    ISSUANCE_ACCOUNT,
    POINTS,
    issuance_account,
    member_account,
    redemption_account,
    reward_issued_account,
)
from services.kit.ledger_accounts import NO_NEGATIVE, LedgerAccounts, points_wallet
from services.kit.proto_time import timestamp
from services.rewards.domain.catalog import Reward, RewardKind
from services.rewards.domain.redemptions import Redemption

PREFIX = "redeem"


def _id(redemption_id: str, leg: str) -> str:
    return f"{PREFIX}:{redemption_id}:{leg}"


def points_hold_id(redemption_id: str) -> str:
    return _id(redemption_id, "points")


def stock_hold_id(redemption_id: str) -> str:
    return _id(redemption_id, "stock")


def issuance(unit: str) -> ledger_pb.Account:
    return ledger_pb.Account(
        id=issuance_account(unit), unit=unit, kind=ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE
    )


def member_wallet(member_id: str, unit: str) -> ledger_pb.Account:
    if unit == POINTS:
        return points_wallet(member_id)
    return ledger_pb.Account(
        id=member_account(member_id, unit),
        unit=unit,
        kind=ledger_pb.ACCOUNT_KIND_MEMBER_WALLET,
        flags=NO_NEGATIVE,
    )


def redeemed(unit: str) -> ledger_pb.Account:
    return ledger_pb.Account(
        id=redemption_account(unit), unit=unit, kind=ledger_pb.ACCOUNT_KIND_REDEMPTION
    )


def reward_accounts(reward: Reward) -> list[ledger_pb.Account]:
    """Every account a reward's redemptions and stock changes touch, but members'."""
    unit = reward.stock_unit
    accounts = [
        issuance(unit),
        ledger_pb.Account(
            id=reward.stock_account,
            unit=unit,
            kind=ledger_pb.ACCOUNT_KIND_REWARD_STOCK,
            flags=NO_NEGATIVE,
        ),
        ledger_pb.Account(
            id=reward_issued_account(reward.reward_id),
            unit=unit,
            kind=ledger_pb.ACCOUNT_KIND_REDEMPTION,
        ),
        redeemed(reward.spec.price_unit),
    ]
    if reward.spec.kind == RewardKind.CREDIT:
        accounts.append(issuance(POINTS))
    return accounts


def _stock_destination(reward: Reward, member_id: str) -> str:
    if reward.spec.kind == RewardKind.PRIZE_UNIT:
        return member_account(member_id, reward.spec.prize_unit)
    return reward_issued_account(reward.reward_id)


def redeem_chain(
    redemption: Redemption, reward: Reward, credit_points: int
) -> ledger_pb.PostTransfersRequest:
    """One atomic chain: the member's payment and the stock held, both holds
    posted, and a credit reward's points. The ledger commits all of it or none,
    so a refusal anywhere leaves nothing held or taken, and nothing is ever left
    held between two calls."""
    rid = redemption.redemption_id
    metadata = {"redemption_id": rid, "reward_id": reward.reward_id}
    holds = []
    if redemption.price_total:
        holds.append(
            ledger_pb.Transfer(
                id=points_hold_id(rid),
                kind=ledger_pb.TRANSFER_KIND_PENDING,
                debit_account_id=member_account(redemption.member_id, redemption.price_unit),
                credit_account_id=redemption_account(redemption.price_unit),
                amount=redemption.price_total,
                code=ledger_pb.TRANSFER_CODE_REDEEM,
                metadata=metadata,
            )
        )
    holds.append(
        ledger_pb.Transfer(
            id=stock_hold_id(rid),
            kind=ledger_pb.TRANSFER_KIND_PENDING,
            debit_account_id=reward.stock_account,
            credit_account_id=_stock_destination(reward, redemption.member_id),
            amount=redemption.quantity,
            code=ledger_pb.TRANSFER_CODE_REDEEM,
            metadata=metadata,
        )
    )
    posts = [
        ledger_pb.Transfer(
            id=f"{hold.id}:post", kind=ledger_pb.TRANSFER_KIND_POST_PENDING, pending_id=hold.id
        )
        for hold in holds
    ]
    if credit_points:
        posts.append(
            ledger_pb.Transfer(
                id=_id(rid, "credit"),
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                debit_account_id=ISSUANCE_ACCOUNT,
                credit_account_id=redemption.member_id,
                amount=credit_points * redemption.quantity,
                code=ledger_pb.TRANSFER_CODE_BONUS,
                metadata={"redemption_id": rid},
            )
        )
    return linked_chain([*holds, *posts])


def reversal_chain(redemption: Redemption, *, stock_too: bool) -> ledger_pb.PostTransfersRequest:
    """The points back to the member (and, for a cancellation, the stock back)."""
    posts: list[tuple[str, int]] = []
    if redemption.price_total:
        posts.append((points_hold_id(redemption.redemption_id), redemption.price_total))
    if stock_too:
        posts.append((stock_hold_id(redemption.redemption_id), redemption.quantity))
    return linked_chain(
        [
            ledger_pb.Transfer(
                id=f"{pending}:back",
                kind=ledger_pb.TRANSFER_KIND_REVERSAL,
                reverses_transfer_id=f"{pending}:post",
                amount=amount,
                code=ledger_pb.TRANSFER_CODE_REVERSAL,
                metadata={"redemption_id": redemption.redemption_id},
            )
            for pending, amount in posts
        ]
    )


def stock_transfer(
    reward: Reward, quantity: int, transfer_id: str
) -> ledger_pb.PostTransfersRequest:
    """Units into the stock from the unit's issuance, or free units back out."""
    source, target = issuance_account(reward.stock_unit), reward.stock_account
    if quantity < 0:
        source, target = target, source
    return ledger_pb.PostTransfersRequest(
        transfers=[
            ledger_pb.Transfer(
                id=transfer_id,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                debit_account_id=source,
                credit_account_id=target,
                amount=abs(quantity),
                code=ledger_pb.TRANSFER_CODE_FUNDING,
                metadata={"reward_id": reward.reward_id},
            )
        ]
    )


def offer_points(transfer_id: str, member_id: str, points: int, offer_id: str):
    return ledger_pb.PostTransfersRequest(
        transfers=[
            ledger_pb.Transfer(
                id=transfer_id,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                debit_account_id=ISSUANCE_ACCOUNT,
                credit_account_id=member_id,
                amount=points,
                code=ledger_pb.TRANSFER_CODE_BONUS,
                metadata={"offer_id": offer_id},
            )
        ]
    )


@dataclass(frozen=True, slots=True)
class KindTotals:
    """What the accounts of each kind of one unit hold (ledger AccountKind -> balance)."""

    balances: dict[int, int]

    def of(self, kind: int) -> int:
        return self.balances.get(kind, 0)


class RewardsLedger(LedgerAccounts):
    """The suite's ledger client, with the reads the rewards service needs."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        super().__init__(ledger_grpc.LedgerServiceStub(channel), timeout)
        self.channel = channel

    async def available(self, account_id: str) -> int:
        """What the account can spend now; 0 when it does not exist yet."""
        balance = await self.balance(account_id)
        return balance.available if balance is not None else 0

    async def available_many(self, account_ids: Sequence[str]) -> dict[str, int]:
        found = {}
        for account_id in dict.fromkeys(account_ids):
            found[account_id] = await self.available(account_id)
        return found

    async def totals(self, unit: str) -> KindTotals:
        response = await self.call(self.stub.GetTotals, ledger_pb.GetTotalsRequest(unit=unit))
        return KindTotals({total.kind: total.balance for total in response.totals})

    async def balance_at(self, account_id: str, moment_us: int) -> int:
        """The account's posted balance at an instant; 0 before it existed."""
        request = ledger_pb.GetBalanceAtRequest(account_id=account_id, time=timestamp(moment_us))
        try:
            response = await self.call(self.stub.GetBalanceAt, request)
        except FailedPrecondition as error:
            if error.metadata.get("ledger_code") == grpc.StatusCode.NOT_FOUND.name:
                return 0
            raise
        return response.balance
