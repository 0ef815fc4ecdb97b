"""The ledger's metrics, scraped from its real endpoint while real calls come in."""

from __future__ import annotations

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1.ledger_service_pb2_grpc import LedgerServiceStub

from services.kit.clock import ManualClock
from services.ledger.server import SERVICE_NAME
from tests.support.ledger import fund, open_program, posted, start_ledger, wallet_request
from tests.support.metrics import ANY_PORT, scrape
from tools.suite import Suite

REQUESTS = "loyalty_rpc_requests_total"
DURATIONS = "loyalty_rpc_duration_seconds_count"


@pytest.fixture
async def ledger(tmp_path):
    host, channel, stub = await start_ledger(
        tmp_path / "ledger.db", ManualClock(), metrics_listen=ANY_PORT
    )
    yield host, stub
    await channel.close()
    await host.stop(None)


def rpc(method: str, code: str) -> dict[str, str]:
    return {"service": SERVICE_NAME, "method": method, "code": code}


async def test_calls_and_group_commits_move_the_figures(ledger):
    host, stub = ledger
    await open_program(stub)
    await stub.OpenAccount(wallet_request("m-1"))
    before = await scrape(host.metrics_port)

    await fund(stub, "m-1", 100, "first")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetAccount(pb.GetAccountRequest(account_id="nobody"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.PostTransfers(pb.PostTransfersRequest(transfers=[posted("x", "", "m-1", 1)]))

    after = await scrape(host.metrics_port)
    for method, code in (
        ("PostTransfers", "OK"),
        ("GetAccount", "NOT_FOUND"),
        ("PostTransfers", "INVALID_ARGUMENT"),
    ):
        labels = rpc(method, code)
        assert after.value(REQUESTS, **labels) == before.value(REQUESTS, **labels) + 1
        assert after.value(DURATIONS, **labels) == before.value(DURATIONS, **labels) + 1
    # The transfer was one write, in one group commit at least.
    writes = "loyalty_store_commit_writes_sum"
    assert after.value(writes) >= before.value(writes) + 1
    commits = "loyalty_store_commit_duration_seconds_count"
    assert after.value(commits) >= before.value(commits) + 1
    assert after.value("loyalty_store_commit_failures_total") == 0
    # Only the methods called have series: no label value comes from a request.
    assert after.label_values(REQUESTS, "method") == {"OpenAccount", "PostTransfers", "GetAccount"}


async def test_the_suite_gives_a_ledger_process_a_free_metrics_port(tmp_path):
    suite = Suite(tmp_path / "data", log_dir=tmp_path / "logs")
    running = await suite.start("ledger")
    try:
        async with grpc.aio.insecure_channel(running.target) as channel:
            await open_program(LedgerServiceStub(channel))
        host, _, port = running.metrics_target.rpartition(":")
        scraped = await scrape(int(port), host)
        assert scraped.value(REQUESTS, **rpc("OpenAccount", "OK")) == 2
    finally:
        await suite.stop_all()
