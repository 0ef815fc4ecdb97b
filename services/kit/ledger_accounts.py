"""The suite's ledger accounts (docs/CONVENTIONS.md) and a client that opens them
idempotently and reads balances, for every service that pays through the ledger."""

from __future__ import annotations

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.errors import FailedPrecondition, Unavailable
from services.kit.outgoing import RETRYABLE, call_with_retry

POINTS = "points"
ISSUANCE_ACCOUNT = "program:issuance"
BREAKAGE_ACCOUNT = "program:breakage"
NO_NEGATIVE = ledger_pb.AccountFlags(debits_must_not_exceed_credits=True)

PROGRAM_ISSUANCE = ledger_pb.Account(
    id=ISSUANCE_ACCOUNT, unit=POINTS, kind=ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE
)
BREAKAGE = ledger_pb.Account(id=BREAKAGE_ACCOUNT, unit=POINTS, kind=ledger_pb.ACCOUNT_KIND_BREAKAGE)


def points_wallet(member_id: str) -> ledger_pb.Account:
    """A member's points wallet, with the same fields whichever service opens it
    first: no overdraft, and points that expire into breakage."""
    return ledger_pb.Account(
        id=member_id,
        unit=POINTS,
        kind=ledger_pb.ACCOUNT_KIND_MEMBER_WALLET,
        flags=ledger_pb.AccountFlags(debits_must_not_exceed_credits=True, expiring_lots=True),
        expiry_account_id=BREAKAGE_ACCOUNT,
    )


def linked_chain(transfers: list[ledger_pb.Transfer]) -> ledger_pb.PostTransfersRequest:
    """One atomic chain: every transfer but the last is linked to the next."""
    for transfer in transfers[:-1]:
        transfer.linked = True
    return ledger_pb.PostTransfersRequest(transfers=transfers)


# A ledger shutting down cancels the calls in flight: to us that is an
# unavailable ledger too. Every write we send is idempotent, so asking again is safe.
UNREACHABLE = (*RETRYABLE, grpc.StatusCode.CANCELLED)


class LedgerAccounts:
    """Opens accounts once per process and reads balances, with deadlines and
    retries. An unreachable ledger is UNAVAILABLE; any other refusal of a call
    (which a well-formed request never gets) is FAILED_PRECONDITION."""

    def __init__(self, stub: ledger_grpc.LedgerServiceStub, timeout: float) -> None:
        self.stub = stub
        self._timeout = timeout
        self._opened: set[str] = set()

    async def call(self, method, request):
        try:
            return await call_with_retry(method, request, deadline=self._timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() in UNREACHABLE:
                raise Unavailable(
                    "LEDGER_UNAVAILABLE",
                    f"the ledger is unavailable ({error.code().name}); try again shortly",
                ) from error
            raise FailedPrecondition(
                "LEDGER_REFUSED",
                f"the ledger refused: {error.code().name} {error.details()}",
                {"ledger_code": error.code().name},
            ) from error

    async def ensure(self, *accounts: ledger_pb.Account) -> None:
        for account in accounts:
            if account.id in self._opened:
                continue
            # The expiry account must exist before a wallet that names it.
            if account.expiry_account_id == BREAKAGE_ACCOUNT:
                await self.ensure(BREAKAGE)
            await self.call(self.stub.OpenAccount, ledger_pb.OpenAccountRequest(account=account))
            self._opened.add(account.id)

    async def balance(self, account_id: str) -> ledger_pb.Balance | None:
        """The account's balances; None when it does not exist yet."""
        try:
            response = await self.call(
                self.stub.GetAccount, ledger_pb.GetAccountRequest(account_id=account_id)
            )
        except FailedPrecondition as error:
            if error.metadata.get("ledger_code") == grpc.StatusCode.NOT_FOUND.name:
                return None
            raise
        return response.account.balance

    async def post(
        self, request: ledger_pb.PostTransfersRequest
    ) -> ledger_pb.PostTransfersResponse:
        return await self.call(self.stub.PostTransfers, request)
