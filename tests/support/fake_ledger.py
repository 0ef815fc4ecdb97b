"""An in-memory ledger stub for service tests that run use cases without a
server: the three calls a paying service makes (OpenAccount, GetAccount,
PostTransfers) with the rules its callers rely on, and a few faults to inject.

What it keeps of the real ledger: transfer ids are idempotency keys (the same
transfer again is EXISTS, other content is EXISTS_WITH_DIFFERENT_FIELDS);
linked transfers commit all or none (the others are LINKED_TRANSFER_FAILED);
an account with `debits_must_not_exceed_credits` never goes negative; a
reversal sends back at most what is left of the transfer it names; every
committed transfer carries its sequence and both balances after it. Not
modelled: pending transfers, expiring lots, units, closing accounts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as pb

R = pb.TransferResult


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@dataclass
class _Account:
    account: pb.Account
    debits: int = 0
    credits: int = 0

    @property
    def balance(self) -> int:
        return self.credits - self.debits


@dataclass
class FakeLedger:
    accounts: dict[str, _Account] = field(default_factory=dict)
    transfers: dict[str, pb.Transfer] = field(default_factory=dict)
    reversed: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)
    # Every call fails UNAVAILABLE, as while the ledger is down.
    down: bool = False
    # The next this many PostTransfers commit, and then their answer is lost
    # (UNAVAILABLE), as when the connection drops after the ledger committed.
    lose_answers: int = 0
    # PostTransfers naming one of these transfer ids is INVALID_ARGUMENT.
    malformed: set[str] = field(default_factory=set)

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if self.down:
            raise _error(grpc.StatusCode.UNAVAILABLE, "the fake ledger is down")

    async def OpenAccount(self, request: pb.OpenAccountRequest, timeout=None):
        self._call("OpenAccount")
        created = request.account.id not in self.accounts
        if created:
            self.accounts[request.account.id] = _Account(pb.Account())
            self.accounts[request.account.id].account.CopyFrom(request.account)
        return pb.OpenAccountResponse(account=self._view(request.account.id), created=created)

    async def GetAccount(self, request: pb.GetAccountRequest, timeout=None):
        self._call("GetAccount")
        if request.account_id not in self.accounts:
            raise _error(grpc.StatusCode.NOT_FOUND, f"no account {request.account_id}")
        return pb.GetAccountResponse(account=self._view(request.account_id))

    def balance(self, account_id: str) -> int:
        held = self.accounts.get(account_id)
        return held.balance if held is not None else 0

    def _view(self, account_id: str) -> pb.Account:
        held = self.accounts[account_id]
        view = pb.Account()
        view.CopyFrom(held.account)
        view.balance.CopyFrom(
            pb.Balance(
                debits_posted=held.debits,
                credits_posted=held.credits,
                balance=held.balance,
                available=held.balance,
            )
        )
        return view

    async def PostTransfers(self, request: pb.PostTransfersRequest, timeout=None):
        self._call("PostTransfers")
        if any(transfer.id in self.malformed for transfer in request.transfers):
            raise _error(grpc.StatusCode.INVALID_ARGUMENT, "a malformed transfer")
        results: list[R] = []
        chain: list[pb.Transfer] = []
        for transfer in request.transfers:
            chain.append(transfer)
            if not transfer.linked:
                results += self._post_chain(chain, len(results))
                chain = []
        if chain:
            results += self._post_chain(chain, len(results))
        response = pb.PostTransfersResponse(results=results)
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise _error(grpc.StatusCode.UNAVAILABLE, "the answer was lost")
        return response

    # A poster too (services.kit.ledger_stream): what the outbox posts through.
    async def post(self, request: pb.PostTransfersRequest, *, timeout: float):
        return await self.PostTransfers(request, timeout=timeout)

    async def close(self) -> None:
        """Nothing to release."""

    def _post_chain(self, chain: list[pb.Transfer], first_index: int) -> list[R]:
        """All or none: each transfer is tried on a copy; a refusal rolls the chain back."""
        saved = (
            {
                key: _Account(held.account, held.debits, held.credits)
                for key, held in self.accounts.items()
            },
            dict(self.transfers),
            Counter(self.reversed),
        )
        results = []
        for offset, transfer in enumerate(chain):
            result = self._post_one(transfer)
            result.index = first_index + offset
            results.append(result)
            if result.code not in (pb.TRANSFER_RESULT_CODE_OK, pb.TRANSFER_RESULT_CODE_EXISTS):
                self.accounts, self.transfers, self.reversed = saved
                return [
                    result
                    if other is result
                    else R(
                        index=other.index,
                        id=other.id,
                        code=pb.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED,
                    )
                    for other in results
                ] + [
                    R(
                        index=first_index + index,
                        id=rest.id,
                        code=pb.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED,
                    )
                    for index, rest in enumerate(chain[offset + 1 :], start=offset + 1)
                ]
        return results

    def _post_one(self, transfer: pb.Transfer) -> R:
        existing = self.transfers.get(transfer.id)
        if existing is not None:
            same = (existing.amount, existing.code, existing.kind) == (
                transfer.amount,
                transfer.code,
                transfer.kind,
            )
            code = (
                pb.TRANSFER_RESULT_CODE_EXISTS
                if same
                else pb.TRANSFER_RESULT_CODE_EXISTS_WITH_DIFFERENT_FIELDS
            )
            return R(id=transfer.id, code=code, transfer=existing)
        debit, credit = transfer.debit_account_id, transfer.credit_account_id
        if transfer.kind == pb.TRANSFER_KIND_REVERSAL:
            original = self.transfers.get(transfer.reverses_transfer_id)
            if original is None:
                return R(id=transfer.id, code=pb.TRANSFER_RESULT_CODE_REVERSED_TRANSFER_NOT_FOUND)
            left = original.amount - self.reversed[original.id]
            if transfer.amount > left:
                return R(id=transfer.id, code=pb.TRANSFER_RESULT_CODE_EXCEEDS_REVERSIBLE_AMOUNT)
            debit, credit = original.credit_account_id, original.debit_account_id
        if debit not in self.accounts or credit not in self.accounts:
            return R(id=transfer.id, code=pb.TRANSFER_RESULT_CODE_ACCOUNT_NOT_FOUND)
        payer, payee = self.accounts[debit], self.accounts[credit]
        flags = payer.account.flags
        if flags.debits_must_not_exceed_credits and payer.balance < transfer.amount:
            return R(
                id=transfer.id,
                code=pb.TRANSFER_RESULT_CODE_INSUFFICIENT_BALANCE,
                field="debit_account_id",
            )
        payer.debits += transfer.amount
        payee.credits += transfer.amount
        if transfer.kind == pb.TRANSFER_KIND_REVERSAL:
            self.reversed[transfer.reverses_transfer_id] += transfer.amount
        stored = pb.Transfer()
        stored.CopyFrom(transfer)
        stored.debit_account_id, stored.credit_account_id = debit, credit
        stored.linked = False
        stored.sequence = len(self.transfers) + 1
        stored.debit_balance_after, stored.credit_balance_after = payer.balance, payee.balance
        self.transfers[transfer.id] = stored
        return R(id=transfer.id, code=pb.TRANSFER_RESULT_CODE_OK, transfer=stored)
