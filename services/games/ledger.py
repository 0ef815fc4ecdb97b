"""What the games service asks of the ledger: the accounts it pays from and to
(opened idempotently with the suite's fields, once per process), balances, and
the transfer chains of spins, catch awards and stocking."""

from __future__ import annotations

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.games import domain
from services.kit.ledger_accounts import NO_NEGATIVE, LedgerAccounts, linked_chain, points_wallet


def member_wallet(member_id: str, unit: str) -> ledger_pb.Account:
    """The member's account for a prize unit (beside their points wallet)."""
    if unit == domain.POINTS:
        return points_wallet(member_id)
    return ledger_pb.Account(
        id=domain.member_account(member_id, unit),
        unit=unit,
        kind=ledger_pb.ACCOUNT_KIND_MEMBER_WALLET,
        flags=NO_NEGATIVE,
    )


def pool(wheel_id: str, unit: str) -> ledger_pb.Account:
    return ledger_pb.Account(
        id=domain.pool_account(wheel_id, unit),
        unit=unit,
        kind=ledger_pb.ACCOUNT_KIND_GAME_PRIZE_POOL,
        flags=NO_NEGATIVE,
    )


def issuance(unit: str) -> ledger_pb.Account:
    return ledger_pb.Account(
        id=domain.issuance_account(unit), unit=unit, kind=ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE
    )


REVENUE = ledger_pb.Account(
    id=domain.REVENUE_ACCOUNT, unit=domain.POINTS, kind=ledger_pb.ACCOUNT_KIND_GAME_REVENUE
)


def spin_chain(
    spin_id: str,
    wheel_id: str,
    member_id: str,
    cost: int,
    prize: domain.Prize,
    attempt: str = "",
) -> ledger_pb.PostTransfersRequest:
    """The cost (member -> games revenue) and the prize (pool -> member), linked
    so they commit together. `attempt` separates the fallback chain's ids."""
    metadata = {"spin_id": spin_id, "wheel_id": wheel_id}
    transfers = []
    if cost:
        transfers.append(
            ledger_pb.Transfer(
                id=f"spin:{spin_id}:{attempt}cost",
                debit_account_id=member_id,
                credit_account_id=domain.REVENUE_ACCOUNT,
                amount=cost,
                code=ledger_pb.TRANSFER_CODE_GAME_COST,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata=metadata,
            )
        )
    if not prize.is_nothing:
        transfers.append(
            ledger_pb.Transfer(
                id=f"spin:{spin_id}:{attempt}prize",
                debit_account_id=domain.pool_account(wheel_id, prize.pool_unit),
                credit_account_id=domain.member_account(member_id, prize.pool_unit),
                amount=prize.amount,
                code=ledger_pb.TRANSFER_CODE_GAME_PRIZE,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata=metadata,
            )
        )
    return linked_chain(transfers)


def catch_award(
    session_id: str, game_id: str, member_id: str, points: int
) -> ledger_pb.PostTransfersRequest:
    return ledger_pb.PostTransfersRequest(
        transfers=[
            ledger_pb.Transfer(
                id=f"catch:{session_id}:award",
                debit_account_id=domain.issuance_account(domain.POINTS),
                credit_account_id=member_id,
                amount=points,
                code=ledger_pb.TRANSFER_CODE_GAME_PRIZE,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={"catch_session_id": session_id, "game_id": game_id},
            )
        ]
    )


def funding(
    wheel_id: str, unit: str, quantity: int, request_id: str
) -> ledger_pb.PostTransfersRequest:
    return ledger_pb.PostTransfersRequest(
        transfers=[
            ledger_pb.Transfer(
                id=f"stock:{wheel_id}:{unit}:{request_id}",
                debit_account_id=domain.issuance_account(unit),
                credit_account_id=domain.pool_account(wheel_id, unit),
                amount=quantity,
                code=ledger_pb.TRANSFER_CODE_FUNDING,
                kind=ledger_pb.TRANSFER_KIND_POSTED,
                metadata={"wheel_id": wheel_id},
            )
        ]
    )


class GamesLedger(LedgerAccounts):
    """The suite's ledger client, plus the last points balances the ledger reported."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        super().__init__(ledger_grpc.LedgerServiceStub(channel), timeout)
        self.channel = channel
        # Points balances seen in the ledger's answers, to skip a read before a spin.
        self._last_seen: dict[str, int] = {}

    def remember(self, account_id: str, balance: int | None) -> None:
        if balance is None:
            self._last_seen.pop(account_id, None)
        else:
            self._last_seen[account_id] = balance

    async def probably_available(self, account_id: str, needed: int) -> int:
        """What the account can spend, for a fast refusal before drawing. The
        ledger is asked unless its channel is up and the last balance it reported
        covers `needed`: the chain itself is what refuses an overdraft, this only
        spares a round trip. A channel that is not up makes the ledger's absence
        show here, before anything is drawn."""
        last = self._last_seen.get(account_id)
        ready = self.channel.get_state() == grpc.ChannelConnectivity.READY
        if ready and last is not None and last >= needed:
            return last
        available = await self.available(account_id)
        self.remember(account_id, available)
        return available

    async def available(self, account_id: str) -> int:
        """What the account can spend now; 0 when it does not exist yet."""
        balance = await self.balance(account_id)
        return balance.available if balance is not None else 0
