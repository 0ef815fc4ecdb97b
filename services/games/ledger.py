"""What the games service asks of the ledger: the accounts it pays from and to
(opened once per process with the suite's fields), balances, and the transfer
chains of spins, catch awards and prize stocking, each with its ids named."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.games.domain.wheel import Prize
from services.kit.chains import linked_chain
from services.kit.ids import (
    GAMES_REVENUE_ACCOUNT,
    POINTS,
    issuance_account,
    member_account,
    prize_pool_account,
)
from services.kit.ledger_accounts import NO_NEGATIVE, LedgerAccounts, points_wallet


def member_wallet(member_id: str, unit: str) -> ledger_pb.Account:
    """The member's account for a unit: the points wallet or a prize unit beside it."""
    if unit == POINTS:
        return points_wallet(member_id)
    return ledger_pb.Account(
        id=member_account(member_id, unit),
        unit=unit,
        kind=ledger_pb.ACCOUNT_KIND_MEMBER_WALLET,
        flags=NO_NEGATIVE,
    )


def pool(wheel_id: str, unit: str) -> ledger_pb.Account:
    return ledger_pb.Account(
        id=prize_pool_account(wheel_id, unit),
        unit=unit,
        kind=ledger_pb.ACCOUNT_KIND_GAME_PRIZE_POOL,
        flags=NO_NEGATIVE,
    )


def issuance(unit: str) -> ledger_pb.Account:
    return ledger_pb.Account(
        id=issuance_account(unit), unit=unit, kind=ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE
    )


REVENUE = ledger_pb.Account(
    id=GAMES_REVENUE_ACCOUNT, unit=POINTS, kind=ledger_pb.ACCOUNT_KIND_GAME_REVENUE
)


@dataclass(frozen=True, slots=True)
class SpinChain:
    """A spin's linked chain and which of its transfers is which ("" when absent)."""

    request: ledger_pb.PostTransfersRequest
    cost_id: str
    prize_id: str


def spin_transfer_ids(spin_id: str, fallback: bool = False) -> tuple[str, str]:
    """The ids a spin's cost and prize transfers have when its chain holds them;
    a fallback chain has ids of its own."""
    attempt = "fallback:" if fallback else ""
    return f"spin:{spin_id}:{attempt}cost", f"spin:{spin_id}:{attempt}prize"


def spin_chain(
    spin_id: str, wheel_id: str, member_id: str, cost: int, prize: Prize, fallback: bool = False
) -> SpinChain:
    """The cost (member -> games revenue) and the prize (pool -> member), linked
    so they commit together."""
    metadata = {"spin_id": spin_id, "wheel_id": wheel_id}
    transfers = []
    cost_id, prize_id = spin_transfer_ids(spin_id, fallback)
    if cost:
        transfers.append(
            ledger_pb.Transfer(
                id=cost_id,
                debit_account_id=member_account(member_id),
                credit_account_id=GAMES_REVENUE_ACCOUNT,
                amount=cost,
                code=ledger_pb.TRANSFER_CODE_GAME_COST,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata=metadata,
            )
        )
    else:
        cost_id = ""
    if not prize.is_nothing:
        transfers.append(
            ledger_pb.Transfer(
                id=prize_id,
                debit_account_id=prize_pool_account(wheel_id, prize.pool_unit),
                credit_account_id=member_account(member_id, prize.pool_unit),
                amount=prize.amount,
                code=ledger_pb.TRANSFER_CODE_GAME_PRIZE,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata=metadata,
            )
        )
    else:
        prize_id = ""
    return SpinChain(linked_chain(transfers), cost_id, prize_id)


def catch_award_id(session_id: str) -> str:
    return f"catch:{session_id}:award"


def catch_award(
    session_id: str, game_id: str, member_id: str, points: int
) -> ledger_pb.PostTransfersRequest:
    return ledger_pb.PostTransfersRequest(
        transfers=[
            ledger_pb.Transfer(
                id=catch_award_id(session_id),
                debit_account_id=issuance_account(POINTS),
                credit_account_id=member_account(member_id),
                amount=points,
                code=ledger_pb.TRANSFER_CODE_GAME_PRIZE,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={"catch_session_id": session_id, "game_id": game_id},
            )
        ]
    )


def stocking_id(wheel_id: str, unit: str, request_id: str) -> str:
    return f"stock:{wheel_id}:{unit}:{request_id}"


def stocking(
    wheel_id: str, unit: str, quantity: int, request_id: str
) -> ledger_pb.PostTransfersRequest:
    return ledger_pb.PostTransfersRequest(
        transfers=[
            ledger_pb.Transfer(
                id=stocking_id(wheel_id, unit, request_id),
                debit_account_id=issuance_account(unit),
                credit_account_id=prize_pool_account(wheel_id, unit),
                amount=quantity,
                code=ledger_pb.TRANSFER_CODE_FUNDING,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={"wheel_id": wheel_id},
            )
        ]
    )


class GamesLedger(LedgerAccounts):
    """The suite's ledger client, plus the last points balances the ledger reported."""

    def __init__(
        self,
        stub: ledger_grpc.LedgerServiceStub,
        timeout: float,
        connected: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(stub, timeout)
        self._connected = connected
        # Points balances seen in the ledger's answers, to skip a read before a spin.
        self._last_seen: dict[str, int] = {}

    def all_opened(self, account_ids: Iterable[str]) -> bool:
        """Whether this process opened (or found) every one of these accounts."""
        return all(account_id in self._opened for account_id in account_ids)

    def remember(self, account_id: str, balance: int | None) -> None:
        if balance is None:
            self._last_seen.pop(account_id, None)
        else:
            self._last_seen[account_id] = balance

    async def probably_available(self, account_id: str, needed: int) -> int:
        """What the account can spend, for a fast refusal before drawing. The
        ledger is asked unless it is connected and the last balance it reported
        covers `needed`: the chain itself is what refuses an overdraft, this only
        spares a round trip. A ledger that is not connected makes its absence
        show here, before anything is drawn."""
        last = self._last_seen.get(account_id)
        if self._connected() and last is not None and last >= needed:
            return last
        available = await self.available(account_id)
        self.remember(account_id, available)
        return available

    async def available(self, account_id: str) -> int:
        """What the account can spend now; 0 when it does not exist yet."""
        balance = await self.balance(account_id)
        return balance.available if balance is not None else 0
