"""Ledger transfer chains: building one, and reading the ledger's answer to it
(what committed, what each refusal was, a balance after). The one place every
service reads a PostTransfersResponse."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

ACCEPTED = frozenset({ledger_pb.TRANSFER_RESULT_CODE_OK, ledger_pb.TRANSFER_RESULT_CODE_EXISTS})
# Refused only because another transfer of its chain was: not a reason of its own.
FOLLOWED = ledger_pb.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED


def linked_chain(transfers: list[ledger_pb.Transfer]) -> ledger_pb.PostTransfersRequest:
    """One atomic chain: every transfer but the last is linked to the next."""
    for transfer in transfers[:-1]:
        transfer.linked = True
    return ledger_pb.PostTransfersRequest(transfers=transfers)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A transfer the ledger refused for a reason of its own."""

    transfer_id: str
    # The result code without its prefix, e.g. "INSUFFICIENT_BALANCE".
    code: str
    field: str


def _code_name(code: int) -> str:
    return ledger_pb.TransferResultCode.Name(code).removeprefix("TRANSFER_RESULT_CODE_")


@dataclass(frozen=True, slots=True)
class ChainAnswer:
    """The ledger's answer to a chain, read once."""

    response: ledger_pb.PostTransfersResponse

    @property
    def accepted(self) -> bool:
        """Every transfer committed, now or on an earlier attempt with the same ids."""
        return all(result.code in ACCEPTED for result in self.response.results)

    @property
    def refusals(self) -> list[Refusal]:
        return [
            Refusal(result.id, _code_name(result.code), result.field)
            for result in self.response.results
            if result.code not in ACCEPTED and result.code != FOLLOWED
        ]

    def refusal_of(self, transfer_id: str) -> Refusal | None:
        return next((r for r in self.refusals if r.transfer_id == transfer_id), None)

    @property
    def transfer_ids(self) -> tuple[str, ...]:
        return tuple(result.transfer.id for result in self.response.results)

    def balance_after(self, account_id: str) -> int | None:
        """The account's posted balance after the last transfer of the chain touching it."""
        latest: tuple[int, int] | None = None
        for result in self.response.results:
            transfer = result.transfer
            for account, balance in (
                (transfer.debit_account_id, transfer.debit_balance_after),
                (transfer.credit_account_id, transfer.credit_balance_after),
            ):
                if account == account_id and (latest is None or transfer.sequence > latest[0]):
                    latest = (transfer.sequence, balance)
        return latest[1] if latest else None
