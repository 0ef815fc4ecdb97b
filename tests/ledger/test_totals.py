"""GetTotals: the balances of one unit summed by account kind."""

from __future__ import annotations

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as pb

from tests.support.ledger import fund, open_request, post, transfer


async def test_totals_sum_balances_and_holds_by_kind(ledger) -> None:
    stub = ledger.stub
    await fund(stub, "m-1", 100)
    await fund(stub, "m-2", 40)
    await stub.OpenAccount(open_request("shop", pb.ACCOUNT_KIND_REDEMPTION), timeout=5)
    (held,) = await post(stub, transfer("hold-1", "m-1", "shop", 30, kind=pb.TRANSFER_KIND_PENDING))
    assert held.code == pb.TRANSFER_RESULT_CODE_OK
    (spent,) = await post(stub, transfer("spend-1", "m-2", "shop", 15))
    assert spent.code == pb.TRANSFER_RESULT_CODE_OK

    answer = await stub.GetTotals(pb.GetTotalsRequest(unit="points"), timeout=5)

    by_kind = {total.kind: total for total in answer.totals}
    wallets = by_kind[pb.ACCOUNT_KIND_MEMBER_WALLET]
    assert (wallets.accounts, wallets.balance, wallets.debits_pending) == (2, 125, 30)
    assert by_kind[pb.ACCOUNT_KIND_PROGRAM_ISSUANCE].balance == -140
    assert by_kind[pb.ACCOUNT_KIND_REDEMPTION].balance == 15
    assert sum(total.balance for total in answer.totals) == 0
    other = await stub.GetTotals(pb.GetTotalsRequest(unit="prize:coffee"), timeout=5)
    assert list(other.totals) == []


async def test_totals_refuse_a_unit_that_is_not_one(ledger) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger.stub.GetTotals(pb.GetTotalsRequest(unit="gold coins" * 50), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(refused.value.details()) < 400
