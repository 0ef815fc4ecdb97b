"""What the games service asks of the ledger: the accounts it pays from and to
(opened idempotently with the suite's fields, once per process), balances, and
the transfer chains of spins, catch awards and stocking."""

from __future__ import annotations

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.games import domain
from services.kit.errors import Unavailable
from services.kit.outgoing import RETRYABLE, call_with_retry

MEMBER_WALLET = ledger_pb.ACCOUNT_KIND_MEMBER_WALLET
NO_NEGATIVE = ledger_pb.AccountFlags(debits_must_not_exceed_credits=True)
BREAKAGE_ACCOUNT = "program:breakage"


def member_wallet(member_id: str, unit: str) -> ledger_pb.Account:
    """The fields docs/CONVENTIONS.md gives, so any service opening it agrees."""
    if unit == domain.POINTS:
        return ledger_pb.Account(
            id=member_id,
            unit=domain.POINTS,
            kind=MEMBER_WALLET,
            flags=ledger_pb.AccountFlags(debits_must_not_exceed_credits=True, expiring_lots=True),
            expiry_account_id=BREAKAGE_ACCOUNT,
        )
    return ledger_pb.Account(
        id=domain.member_account(member_id, unit), unit=unit, kind=MEMBER_WALLET, flags=NO_NEGATIVE
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
BREAKAGE = ledger_pb.Account(
    id=BREAKAGE_ACCOUNT, unit=domain.POINTS, kind=ledger_pb.ACCOUNT_KIND_BREAKAGE
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
    for transfer in transfers[:-1]:
        transfer.linked = True
    return ledger_pb.PostTransfersRequest(transfers=transfers)


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


# A ledger shutting down cancels the calls in flight: to us that is an
# unavailable ledger too. Every write we send is idempotent, so asking again is safe.
UNREACHABLE = (*RETRYABLE, grpc.StatusCode.CANCELLED)


def as_unavailable(error: grpc.aio.AioRpcError) -> Exception:
    """UNAVAILABLE for a ledger that could not answer; other errors unchanged."""
    if error.code() not in UNREACHABLE:
        return error
    return Unavailable(
        "LEDGER_UNAVAILABLE",
        f"the ledger is unavailable ({error.code().name}); try again shortly",
    )


class LedgerAccounts:
    """Opens accounts once per process and reads balances, with deadlines."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self.channel = channel
        self.stub = ledger_grpc.LedgerServiceStub(channel)
        self._timeout = timeout
        self._opened: set[str] = set()
        # Points balances seen in the ledger's answers, to skip a read before a spin.
        self._last_seen: dict[str, int] = {}

    async def _call(self, method, request):
        """One call with a deadline and retries; an unreachable ledger is UNAVAILABLE."""
        try:
            return await call_with_retry(method, request, deadline=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise as_unavailable(error) from error

    async def ensure(self, *accounts: ledger_pb.Account) -> None:
        for account in accounts:
            if account.id in self._opened:
                continue
            # The expiry account must exist before a wallet that names it.
            if account.expiry_account_id:
                await self.ensure(BREAKAGE)
            await self._call(self.stub.OpenAccount, ledger_pb.OpenAccountRequest(account=account))
            self._opened.add(account.id)

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
        try:
            response = await self._call(
                self.stub.GetAccount, ledger_pb.GetAccountRequest(account_id=account_id)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return 0
            raise
        return response.account.balance.available

    async def post(
        self, request: ledger_pb.PostTransfersRequest
    ) -> ledger_pb.PostTransfersResponse:
        return await self._call(self.stub.PostTransfers, request)
