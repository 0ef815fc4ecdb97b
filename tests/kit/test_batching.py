"""BatchingLedger against a real ledger: concurrent chains go out together, and
each caller gets its own chain's results, refusals and all."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as pb

from services.kit.batching import BatchingLedger
from services.kit.chains import ChainAnswer, linked_chain
from tests.support.ledger import balance, fund, transfer


class Counting:
    """The real stub, counting the PostTransfers calls that reach the ledger."""

    def __init__(self, stub) -> None:
        self.stub = stub
        self.calls = 0

    async def PostTransfers(self, request, timeout=None):
        self.calls += 1
        return await self.stub.PostTransfers(request, timeout=timeout)


def spend(member: str, amount: int, tag: str) -> pb.PostTransfersRequest:
    return linked_chain(
        [
            transfer(f"{tag}:a", member, "program:breakage", amount // 2),
            transfer(f"{tag}:b", member, "program:breakage", amount - amount // 2),
        ]
    )


async def test_concurrent_chains_share_calls_and_fail_alone(ledger) -> None:
    for n in range(20):
        await fund(ledger.stub, f"m-{n}", 100)
    counting = Counting(ledger.stub)
    batching = BatchingLedger(counting)
    # m-3 asks for more than it has: only its own chain is refused.
    requests = [spend(f"m-{n}", 150 if n == 3 else 60, f"spend-{n}") for n in range(20)]

    answers = [
        ChainAnswer(response)
        for response in await asyncio.gather(
            *(batching.PostTransfers(request, timeout=5) for request in requests)
        )
    ]

    assert counting.calls < 20
    assert [answer.accepted for answer in answers] == [n != 3 for n in range(20)]
    assert [r.code for r in answers[3].refusals] == ["INSUFFICIENT_BALANCE"]
    for n, answer in enumerate(answers):
        assert [result.index for result in answer.response.results] == [0, 1]
        assert answer.transfer_ids == ((f"spend-{n}:a", f"spend-{n}:b") if n != 3 else ("", ""))
    assert [await balance(ledger.stub, f"m-{n}") for n in (2, 3)] == [40, 100]


async def test_a_malformed_request_fails_alone(ledger) -> None:
    await fund(ledger.stub, "m-1", 100)
    batching = BatchingLedger(ledger.stub)
    good = spend("m-1", 10, "good")
    bad = pb.PostTransfersRequest(transfers=[transfer("bad", "m-1", "m-1", 5)])

    outcomes = await asyncio.gather(
        batching.PostTransfers(good, timeout=5),
        batching.PostTransfers(bad, timeout=5),
        return_exceptions=True,
    )

    assert ChainAnswer(outcomes[0]).accepted
    assert isinstance(outcomes[1], grpc.aio.AioRpcError)
    assert outcomes[1].code() == grpc.StatusCode.INVALID_ARGUMENT
    # Other methods are the stub's own.
    account = await batching.GetAccount(pb.GetAccountRequest(account_id="m-1"), timeout=5)
    assert account.account.balance.balance == 90


async def test_an_unreachable_ledger_reaches_every_caller() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # nothing listens there
    from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

    batching = BatchingLedger(ledger_grpc.LedgerServiceStub(channel))
    outcomes = await asyncio.gather(
        *(batching.PostTransfers(spend("m-1", 10, f"t{n}"), timeout=2) for n in range(3)),
        return_exceptions=True,
    )
    await channel.close()
    assert {outcome.code() for outcome in outcomes} == {grpc.StatusCode.UNAVAILABLE}
    with pytest.raises(AttributeError):
        batching.NoSuchMethod  # noqa: B018


async def test_batches_in_flight_at_once_are_bounded(ledger) -> None:
    for n in range(12):
        await fund(ledger.stub, f"m-{n}", 100)

    class Slow(Counting):
        """Counts the calls in flight at the same time."""

        def __init__(self, stub) -> None:
            super().__init__(stub)
            self.now = self.most = 0

        async def PostTransfers(self, request, timeout=None):
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                return await super().PostTransfers(request, timeout)
            finally:
                self.now -= 1

    slow = Slow(ledger.stub)
    batching = BatchingLedger(slow, in_flight=2)
    answers = await asyncio.gather(
        *(batching.PostTransfers(spend(f"m-{n}", 10, f"s-{n}"), timeout=5) for n in range(12))
    )
    assert all(ChainAnswer(answer).accepted for answer in answers)
    assert slow.most <= 2
