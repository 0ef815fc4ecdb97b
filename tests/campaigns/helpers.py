"""Shared steps of the integration tests."""

from __future__ import annotations

import grpc
import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.status import error_info, field_violations
from tests.campaigns.messages import base_rule, member


async def launch(stub, campaign_id: str, spec: pb.CampaignSpec) -> pb.Campaign:
    await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id=campaign_id, spec=spec))
    response = await stub.ScheduleCampaign(pb.ScheduleCampaignRequest(campaign_id=campaign_id))
    return response.campaign


async def program(stub, *member_ids: str) -> None:
    """Members (m-1 by default) and the always-on rule of 1 point per euro."""
    for member_id in member_ids or ("m-1",):
        await stub.UpsertMember(pb.UpsertMemberRequest(member=member(member_id)))
    await launch(stub, "base", base_rule())


async def balance(ledger, account_id: str) -> int:
    response = await ledger.stub.GetAccount(ledger_pb.GetAccountRequest(account_id=account_id))
    return response.account.balance.balance


async def rejected(call, code: grpc.StatusCode) -> tuple[str, dict[str, str]]:
    """The ErrorInfo reason and field violations of a call that must fail with `code`."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    info = error_info(raised.value)
    assert info is not None
    return info.reason, field_violations(raised.value)


async def move_points(ledger, transfer_id: str, debit: str, credit: str, amount: int) -> None:
    """Points leaving an account outside the campaigns service (a redemption, an operator)."""
    await ledger.stub.OpenAccount(
        ledger_pb.OpenAccountRequest(
            account=ledger_pb.Account(
                id=credit, unit="points", kind=ledger_pb.ACCOUNT_KIND_ADJUSTMENT
            )
        )
    )
    response = await ledger.stub.PostTransfers(
        ledger_pb.PostTransfersRequest(
            transfers=[
                ledger_pb.Transfer(
                    id=transfer_id,
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount=amount,
                    code=ledger_pb.TRANSFER_CODE_ADJUSTMENT,
                    kind=ledger_pb.TRANSFER_KIND_POSTED,
                )
            ]
        )
    )
    assert response.results[0].code == ledger_pb.TRANSFER_RESULT_CODE_OK
