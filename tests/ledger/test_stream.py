"""PostTransfersStream: the flow of one stream on its own (a post that waits until
told), then through a real server, with the bad input a client can send."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest
from google.rpc import status_pb2
from loyalty.ledger.v1 import ledger_service_pb2 as pb

from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.server import Undecodable
from services.kit.status import error_info
from services.ledger.stream import MAX_IN_FLIGHT, TransferStream
from tests.support.ledger import balance, fund, posted

STREAM = "/loyalty.ledger.v1.LedgerService/PostTransfersStream"
BAD_ENDINGS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}


def message(correlation_id: str, *transfer_ids: str) -> pb.PostTransfersStreamRequest:
    return pb.PostTransfersStreamRequest(
        correlation_id=correlation_id,
        request=pb.PostTransfersRequest(
            transfers=[posted(t, "program:issuance", "m-1", 1) for t in transfer_ids]
        ),
    )


class Gate:
    """Submits that are answered only once the gate opens, with the request's first id."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.open = asyncio.Event()
        self._reached = asyncio.Event()
        self._target = 0
        self._waiters: set[asyncio.Task] = set()

    async def until_started(self, count: int) -> None:
        self._target = count
        if len(self.started) < count:
            self._reached.clear()
            await self._reached.wait()

    def submit(self, request: pb.PostTransfersRequest) -> asyncio.Future:
        self.started.append(request.transfers[0].id if request.transfers else "")
        if self._target and len(self.started) >= self._target:
            self._reached.set()
        if not request.transfers:
            raise InvalidArgument([FieldViolation("transfers", "at least one transfer")])
        future = asyncio.get_running_loop().create_future()

        async def answer_when_open() -> None:
            await self.open.wait()
            future.set_result(request.transfers[0].id)

        waiter = asyncio.create_task(answer_when_open())
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        return future

    @staticmethod
    def fill(first_id: str, response: pb.PostTransfersResponse) -> None:
        response.results.add(id=first_id)


def stream_of(messages, gate: Gate) -> TransferStream:
    return TransferStream(messages, gate.submit, gate.fill)


async def feed(messages, done: asyncio.Event | None = None):
    for item in messages:
        yield item
        await asyncio.sleep(0)
    if done is not None:
        await done.wait()


async def collect(stream: TransferStream) -> list[pb.PostTransfersStreamResponse]:
    return [answer async for answer in stream.answers()]


# ---------------------------------------------------------------- one stream


async def test_each_answer_carries_its_request_s_correlation_id():
    gate = Gate()
    gate.open.set()
    messages = [message(f"c{n}", f"t{n}") for n in range(20)]
    messages.append(pb.PostTransfersStreamRequest(correlation_id="empty"))
    answers = await collect(stream_of(feed(messages), gate))
    by_id = {answer.correlation_id: answer for answer in answers}
    assert sorted(by_id) == sorted(m.correlation_id for m in messages)
    for n in range(20):
        assert by_id[f"c{n}"].response.results[0].id == f"t{n}"
    assert by_id["empty"].WhichOneof("outcome") == "error"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            pb.PostTransfersStreamRequest(request=pb.PostTransfersRequest()),
            "MISSING_CORRELATION_ID",
        ),
        (message("x" * 129, "t"), "INVALID_CORRELATION_ID"),
        (message("bell\x07", "t"), "INVALID_CORRELATION_ID"),
        (message("c1", "again"), "DUPLICATE_CORRELATION_ID"),
        (Undecodable("truncated"), "MALFORMED_REQUEST"),
    ],
    ids=["missing", "too-long", "unprintable", "duplicate", "malformed"],
)
async def test_a_protocol_error_ends_the_stream_after_answering_what_was_taken(bad, reason):
    gate = Gate()
    stream = stream_of(feed([message("c1", "t1"), message("c2", "t2"), bad]), gate)
    answers: list[pb.PostTransfersStreamResponse] = []

    async def read() -> None:
        async for answer in stream.answers():
            answers.append(answer)

    reading = asyncio.create_task(read())
    await gate.until_started(2)
    # c1 and c2 are still in flight (their post waits) when the bad message comes.
    gate.open.set()
    with pytest.raises(InvalidArgument) as raised:
        await reading
    assert raised.value.reason == reason
    assert sorted(a.correlation_id for a in answers) == ["c1", "c2"]


async def test_a_stream_stops_reading_past_its_limit_and_goes_on_as_answers_are_written():
    gate = Gate()
    total = MAX_IN_FLIGHT * 3
    stream = stream_of(feed(message(f"c{n}", f"t{n}") for n in range(total)), gate)
    answers = asyncio.create_task(collect(stream))
    await gate.until_started(MAX_IN_FLIGHT)
    # However long the loop runs now, nothing more is taken until answers are written.
    for _ in range(1_000):
        await asyncio.sleep(0)
    assert len(gate.started) == MAX_IN_FLIGHT
    gate.open.set()
    assert len(await answers) == total


async def test_a_correlation_id_may_come_again_once_its_answer_is_written():
    gate = Gate()
    gate.open.set()
    answered = asyncio.Event()
    first = message("same", "t1")
    requests: asyncio.Queue = asyncio.Queue()
    await requests.put(first)

    async def incoming():
        while True:
            item = await requests.get()
            if item is None:
                return
            yield item

    stream = stream_of(incoming(), gate)
    answers = []
    async for answer in stream.answers():
        answers.append(answer)
        if len(answers) == 1:
            await requests.put(message("same", "t2"))
            await requests.put(None)
            answered.set()
    assert [a.response.results[0].id for a in answers] == ["t1", "t2"]


# ---------------------------------------------------------------- a real server


async def open_stream(ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    return ledger.stub.PostTransfersStream()


async def test_many_requests_over_one_real_stream_commit_once_each(ledger):
    call = await open_stream(ledger)
    count = 2_000
    for n in range(count):
        await call.write(message(f"c{n}", f"t{n}"))
    # The same ids again on the same stream: a retry, answered EXISTS.
    await call.write(message("retry", "t7"))
    await call.done_writing()
    answers = {answer.correlation_id: answer async for answer in call}
    assert await call.code() == grpc.StatusCode.OK
    assert len(answers) == count + 1
    assert all(
        answers[f"c{n}"].response.results[0].code == pb.TRANSFER_RESULT_CODE_OK
        for n in range(count)
    )
    assert answers["retry"].response.results[0].code == pb.TRANSFER_RESULT_CODE_EXISTS
    assert await balance(ledger.stub, "m-1") == 1 + count


async def test_a_refused_request_is_answered_with_the_unary_call_s_status(ledger):
    call = await open_stream(ledger)
    await call.write(
        pb.PostTransfersStreamRequest(
            correlation_id="bad",
            request=pb.PostTransfersRequest(transfers=[posted("t", "", "m-1", 1)]),
        )
    )
    await call.done_writing()
    (answer,) = [answer async for answer in call]
    status = status_pb2.Status.FromString(answer.error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "transfers[0].debit_account_id" in status.message


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x02\xff\xfe",  # a correlation id of invalid UTF-8
        b"\x12\x05\x0a\x03\x0a\x01",  # a truncated nested request
        b"\xff\xff\xff",
    ],
    ids=["bad-utf8", "truncated", "garbage"],
)
async def test_a_message_that_does_not_parse_is_invalid_argument(ledger, raw):
    await fund(ledger.stub, "m-1", 1, "seed")
    channel = grpc.aio.insecure_channel(ledger.target)
    try:
        stream = channel.stream_stream(STREAM)(iter([message("c1", "t1").SerializeToString(), raw]))
        answers = [answer async for answer in _raw_answers(stream)]
        code = await stream.code()
        assert code == grpc.StatusCode.INVALID_ARGUMENT, code
        ended = grpc.aio.AioRpcError(
            code, grpc.aio.Metadata(), await stream.trailing_metadata(), await stream.details()
        )
        assert error_info(ended).reason == "MALFORMED_REQUEST"
        parsed = [pb.PostTransfersStreamResponse.FromString(answer) for answer in answers]
        assert [answer.correlation_id for answer in parsed] == ["c1"]
    finally:
        await channel.close()


async def _raw_answers(stream):
    try:
        async for answer in stream:
            yield answer
    except grpc.aio.AioRpcError:
        return


async def test_hostile_messages_never_end_a_stream_with_unknown_or_internal(ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    rng = random.Random(13)
    channel = grpc.aio.insecure_channel(ledger.target)
    try:
        for _ in range(30):
            good = message(f"c{rng.randrange(5)}", f"t{rng.randrange(50)}").SerializeToString()
            mangled = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                mangled[rng.randrange(len(mangled))] = rng.randrange(256)
            stream = channel.stream_stream(STREAM)(iter([good, bytes(mangled), good]))
            async for _ in _raw_answers(stream):
                pass
            assert await stream.code() not in BAD_ENDINGS, await stream.details()
    finally:
        await channel.close()
    # And the ledger still serves.
    assert await balance(ledger.stub, "m-1") >= 1


async def test_a_cancelled_stream_loses_answers_never_transfers(ledger):
    """Whatever the cancelled stream committed, the same ids sent again commit nothing more."""
    call = await open_stream(ledger)
    for n in range(200):
        await call.write(message(f"c{n}", f"t{n}"))
    got = 0
    async for _ in call:
        got += 1
        if got == 10:
            call.cancel()
            break
    retry = ledger.stub.PostTransfersStream()
    for n in range(200):
        await retry.write(message(f"c{n}", f"t{n}"))
    await retry.done_writing()
    codes = [answer.response.results[0].code async for answer in retry]
    assert len(codes) == 200
    assert set(codes) <= {pb.TRANSFER_RESULT_CODE_OK, pb.TRANSFER_RESULT_CODE_EXISTS}
    assert await balance(ledger.stub, "m-1") == 1 + 200


async def test_a_half_closed_stream_gets_every_answer_then_ends_ok(ledger):
    call = await open_stream(ledger)
    for n in range(50):
        await call.write(message(f"c{n}", f"t{n}"))
    await call.done_writing()
    answers = [answer async for answer in call]
    assert len(answers) == 50
    assert await call.code() == grpc.StatusCode.OK
    # Reads still work beside it.
    await asyncio.wait_for(ledger.stub.GetAccount(pb.GetAccountRequest(account_id="m-1")), 5)
