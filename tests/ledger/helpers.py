"""Small builders for ledger requests, shared by the ledger tests."""

from __future__ import annotations

from loyalty.ledger.v1 import ledger_service_pb2 as pb

from services.kit.proto_time import duration, timestamp

DAY_US = 86_400 * 1_000_000

WALLET_FLAGS = pb.AccountFlags(debits_must_not_exceed_credits=True, expiring_lots=True)


def account(account_id: str, kind=pb.ACCOUNT_KIND_MEMBER_WALLET, unit="points", **fields):
    return pb.OpenAccountRequest(account=pb.Account(id=account_id, unit=unit, kind=kind, **fields))


def wallet(account_id: str, unit: str = "points") -> pb.OpenAccountRequest:
    if unit != "points":
        return account(
            account_id, unit=unit, flags=pb.AccountFlags(debits_must_not_exceed_credits=True)
        )
    return account(account_id, flags=WALLET_FLAGS, expiry_account_id="program:breakage")


def transfer(
    transfer_id: str,
    debit: str = "",
    credit: str = "",
    amount: int = 0,
    *,
    code=pb.TRANSFER_CODE_EARN,
    kind=pb.TRANSFER_KIND_POSTED,
    linked: bool = False,
    expires_at_us: int | None = None,
    timeout_us: int | None = None,
    **fields,
) -> pb.Transfer:
    message = pb.Transfer(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        code=code,
        kind=kind,
        linked=linked,
        **fields,
    )
    if expires_at_us is not None:
        message.expire_time.CopyFrom(timestamp(expires_at_us))
    if timeout_us is not None:
        message.timeout.CopyFrom(duration(timeout_us))
    return message


async def open_program(stub) -> None:
    """The program's issuance and breakage accounts."""
    await stub.OpenAccount(account("program:issuance", pb.ACCOUNT_KIND_PROGRAM_ISSUANCE))
    await stub.OpenAccount(account("program:breakage", pb.ACCOUNT_KIND_BREAKAGE))


async def balance(stub, account_id: str) -> pb.Balance:
    response = await stub.GetAccount(pb.GetAccountRequest(account_id=account_id))
    return response.account.balance


def codes(results) -> list[str]:
    return [
        pb.TransferResultCode.Name(result.code).removeprefix("TRANSFER_RESULT_CODE_")
        for result in results
    ]
