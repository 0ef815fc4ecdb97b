"""The kit's StreamPoster against a real ledger and against ledgers that misbehave:
answers matched by correlation id, a broken stream is UNAVAILABLE and reopened,
a ledger without the stream is posted to unary, deadlines hold, refusals read
like a unary call's; and the outbox posting through it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import ManualClock
from services.kit.ledger_stream import StreamPoster, UnaryPoster, poster_of
from services.kit.status import error_info, field_violations
from services.ledger.server import LedgerSettings, build_server
from tests.support.ledger import balance, fund, posted, start_ledger
from tests.support.metrics import NO_METRICS


def earn(*transfer_ids: str, amount: int = 1) -> pb.PostTransfersRequest:
    return pb.PostTransfersRequest(
        transfers=[posted(t, "program:issuance", "m-1", amount) for t in transfer_ids]
    )


@pytest.fixture
async def poster(ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    poster = StreamPoster(ledger.stub)
    yield poster
    await poster.close()


async def test_concurrent_posts_share_one_stream_and_get_their_own_answers(ledger, poster):
    requests = [earn(f"a{n}", f"b{n}") for n in range(300)]
    responses = await asyncio.gather(*(poster.post(r, timeout=10) for r in requests))
    for request, response in zip(requests, responses, strict=True):
        assert [r.id for r in response.results] == [t.id for t in request.transfers]
        assert all(r.code == pb.TRANSFER_RESULT_CODE_OK for r in response.results)
    assert poster.streams_opened == 1
    assert await balance(ledger.stub, "m-1") == 1 + 600


async def test_a_refusal_is_the_unary_call_s_error(poster):
    bad = pb.PostTransfersRequest(transfers=[posted("x", "", "m-1", 1)])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await poster.post(bad, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "INVALID_ARGUMENT"
    assert "transfers[0].debit_account_id" in field_violations(raised.value)
    # The stream is still open for the next request.
    await poster.post(earn("after"), timeout=5)
    assert poster.streams_opened == 1


async def test_a_broken_stream_is_a_lost_answer_never_a_lost_or_doubled_transfer(ledger, poster):
    await poster.post(earn("warm"), timeout=5)
    requests = [earn(f"t{n}") for n in range(200)]
    posts = [asyncio.ensure_future(poster.post(r, timeout=10)) for r in requests]
    await asyncio.sleep(0)
    await poster.reset()
    outcomes = await asyncio.gather(*posts, return_exceptions=True)
    lost = [r for r, o in zip(requests, outcomes, strict=True) if isinstance(o, Exception)]
    assert lost, "the stream broke with answers outstanding"
    assert all(
        isinstance(o, grpc.aio.AioRpcError) and o.code() == grpc.StatusCode.UNAVAILABLE
        for o in outcomes
        if isinstance(o, Exception)
    )
    # The callers retry with the same ids: a new stream, each transfer once.
    for request in lost:
        response = await poster.post(request, timeout=10)
        assert response.results[0].code in (
            pb.TRANSFER_RESULT_CODE_OK,
            pb.TRANSFER_RESULT_CODE_EXISTS,
        )
    assert poster.streams_opened == 2
    assert await balance(ledger.stub, "m-1") == 1 + 1 + 200


async def test_a_ledger_that_restarts_is_reached_again(ledger, tmp_path):
    """The ledger goes away and comes back on the same port: posts meanwhile are
    UNAVAILABLE, and afterwards the poster opens a new stream by itself."""
    host, channel, stub = await start_ledger(tmp_path / "own.db", ManualClock())
    port = host.port
    await fund(stub, "m-1", 1, "seed")
    poster = StreamPoster(stub, reopen_after_seconds=0)
    try:
        await poster.post(earn("before"), timeout=5)
        await host.stop(None)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await poster.post(earn("during"), timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        host = await build_server(
            LedgerSettings(
                db_path=tmp_path / "own.db",
                sweep_interval_seconds=10**9,
                metrics_listen=NO_METRICS,
            ),
            f"127.0.0.1:{port}",
            ManualClock(),
        )
        await host.start()
        await asyncio.wait_for(channel.channel_ready(), 30)
        response = await poster.post(earn("during"), timeout=5)
        assert response.results[0].code == pb.TRANSFER_RESULT_CODE_OK
        assert poster.streams_opened == 2
        assert await balance(stub, "m-1") == 3
    finally:
        await poster.close()
        await channel.close()
        await host.stop(None)


async def test_a_malformed_request_merged_with_others_is_refused_alone(ledger, poster):
    """Posts queued together leave as one message; the ledger refuses it whole for
    one bad request, and the poster sends them again one by one: only that caller
    hears INVALID_ARGUMENT, and a trailing linked transfer never links into the
    next caller's chain."""
    unlinked = pb.PostTransfersRequest(transfers=[posted("x", "", "m-1", 1)])
    dangling = earn("d1", "d2")
    dangling.transfers[-1].linked = True
    requests = [earn(f"g{n}") for n in range(40)]
    requests[10:10] = [unlinked]
    requests[25:25] = [dangling]
    outcomes = await asyncio.gather(
        *(poster.post(r, timeout=10) for r in requests), return_exceptions=True
    )
    for request, outcome in zip(requests, outcomes, strict=True):
        if request in (unlinked, dangling):
            assert isinstance(outcome, grpc.aio.AioRpcError)
            assert outcome.code() == grpc.StatusCode.INVALID_ARGUMENT
        else:
            assert [(r.index, r.id, r.code) for r in outcome.results] == [
                (0, request.transfers[0].id, pb.TRANSFER_RESULT_CODE_OK)
            ]
    assert await balance(ledger.stub, "m-1") == 1 + 40


class Counting(ledger_grpc.LedgerServiceServicer):
    """A stream that commits every transfer and counts the messages it reads."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def PostTransfersStream(self, requests, context):
        await context.send_initial_metadata(())
        async for message in requests:
            self.sizes.append(len(message.request.transfers))
            results = [
                pb.TransferResult(index=i, id=t.id, code=pb.TRANSFER_RESULT_CODE_OK)
                for i, t in enumerate(message.request.transfers)
            ]
            yield pb.PostTransfersStreamResponse(
                correlation_id=message.correlation_id,
                response=pb.PostTransfersResponse(results=results),
            )


async def test_posts_queued_together_leave_as_one_message_and_are_split_back(fake_ledger):
    counting = Counting()
    poster = StreamPoster(await fake_ledger(counting), max_merged_transfers=50)
    try:
        requests = [earn(f"a{n}", f"b{n}") for n in range(200)]
        responses = await asyncio.gather(*(poster.post(r, timeout=10) for r in requests))
        for request, response in zip(requests, responses, strict=True):
            assert [(r.index, r.id) for r in response.results] == [
                (0, request.transfers[0].id),
                (1, request.transfers[1].id),
            ]
        assert sum(counting.sizes) == 400
        assert len(counting.sizes) < len(requests)
        assert max(counting.sizes) <= 50
    finally:
        await poster.close()


class UnaryOnly(ledger_grpc.LedgerServiceServicer):
    """A ledger from before the stream: PostTransfers only."""

    def __init__(self) -> None:
        self.calls = 0

    async def PostTransfers(self, request, context):
        self.calls += 1
        return pb.PostTransfersResponse(
            results=[pb.TransferResult(index=0, id=request.transfers[0].id, code=1)]
        )


class Silent(ledger_grpc.LedgerServiceServicer):
    """A ledger whose stream opens and never answers."""

    async def PostTransfersStream(self, requests, context):
        await context.send_initial_metadata(())
        async for _ in requests:
            pass
        await asyncio.Event().wait()


@pytest.fixture
async def fake_ledger():
    servers = []

    async def start(servicer) -> ledger_grpc.LedgerServiceStub:
        server = grpc.aio.server()
        ledger_grpc.add_LedgerServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        servers.append((server, channel))
        return ledger_grpc.LedgerServiceStub(channel)

    yield start
    for server, channel in servers:
        await channel.close()
        await server.stop(None)


async def test_a_ledger_without_the_stream_is_posted_to_unary(fake_ledger):
    servicer = UnaryOnly()
    poster = StreamPoster(await fake_ledger(servicer))
    for n in range(3):
        response = await poster.post(earn(f"t{n}"), timeout=5)
        assert response.results[0].id == f"t{n}"
    assert servicer.calls == 3
    assert poster.streams_opened == 0


async def test_an_answer_that_does_not_come_is_deadline_exceeded(fake_ledger):
    poster = StreamPoster(await fake_ledger(Silent()))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await poster.post(earn("t"), timeout=0.5)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await poster.close()


async def test_an_unreachable_ledger_is_unavailable():
    async with grpc.aio.insecure_channel("127.0.0.1:1") as nowhere:
        poster = StreamPoster(ledger_grpc.LedgerServiceStub(nowhere))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await poster.post(earn("t"), timeout=2)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_stub_is_posted_to_unary_and_a_poster_is_kept():
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        stub = ledger_grpc.LedgerServiceStub(channel)
        assert isinstance(poster_of(stub), UnaryPoster)
        streaming = StreamPoster(stub)
        assert poster_of(streaming) is streaming
