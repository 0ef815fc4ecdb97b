"""The use cases over a real temporary store (SQLite, PostgreSQL), without a gRPC server: the
ledger is a scripted stand-in, so each answer the outbox handlers must cope with
(a refusal, no answer at all) can be given on purpose."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from dataclasses import replace

import grpc
import pytest
import pytest_asyncio
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.clock import ManualClock
from services.kit.errors import FailedPrecondition, Unavailable
from services.kit.outbox import LedgerOutbox
from services.kit.stores import UnitStore
from services.rewards.base import Context
from services.rewards.catalog import StockHandlers
from services.rewards.codes import Codes
from services.rewards.domain.catalog import Limits, Reward, RewardKind, RewardSpec
from services.rewards.domain.eligibility import MemberProfile
from services.rewards.domain.offers import OfferSpec, Preferences
from services.rewards.domain.redemptions import RedemptionState
from services.rewards.offers import OfferHandlers, Offers
from services.rewards.redemptions import RedemptionHandlers, Redemptions
from services.rewards.server import rewards_store
from services.rewards.store import RewardsUnit


class Unreachable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
        )


class ScriptedLedger:
    """Answers PostTransfers like the ledger would, refusing what it is told to."""

    def __init__(self) -> None:
        self.refuse: dict[str, int] = {}
        self.down = False
        self.requests: list[ledger_pb.PostTransfersRequest] = []

    async def PostTransfers(self, request, timeout=None):
        if self.down:
            raise Unreachable()
        self.requests.append(request)
        refused = next((t.id for t in request.transfers if t.id in self.refuse), None)
        results = []
        for index, transfer in enumerate(request.transfers):
            if refused is None:
                code = ledger_pb.TRANSFER_RESULT_CODE_OK
            elif transfer.id == refused:
                code = self.refuse[refused]
            else:
                code = ledger_pb.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED
            result = ledger_pb.TransferResult(index=index, id=transfer.id, code=code)
            if code == ledger_pb.TRANSFER_RESULT_CODE_OK:
                result.transfer.CopyFrom(transfer)
            results.append(result)
        return ledger_pb.PostTransfersResponse(results=results)

    # The LedgerAccounts part the use cases call.
    @property
    def stub(self):
        return self

    async def ensure(self, *accounts) -> None:
        return None

    async def available(self, account_id: str) -> int:
        return 10**6


class Everyone:
    async def profile(self, member_id: str) -> MemberProfile:
        return MemberProfile()


class Service:
    def __init__(
        self, store: UnitStore[RewardsUnit], clock: ManualClock, ledger: ScriptedLedger
    ) -> None:
        self.store, self.clock, self.ledger = store, clock, ledger
        handlers = {
            **RedemptionHandlers(clock).handlers(),
            **StockHandlers(clock).handlers(),
            **OfferHandlers(clock).handlers(),
        }
        self.outbox = LedgerOutbox(store, ledger, clock, handlers)
        context = Context(store, clock, ledger, self.outbox, Everyone())
        self.redemptions = Redemptions(context)
        self.codes = Codes(context)
        self.offers = Offers(context, self.redemptions)

    async def add_reward(self, reward_id: str, **fields) -> None:
        fields.setdefault("title", reward_id)
        fields.setdefault("kind", RewardKind.CODE_POOL)
        fields.setdefault("price", 100)
        reward = Reward(reward_id, 1, RewardSpec(**fields), created_us=1, updated_us=1)
        await self.store.write(lambda unit: unit.insert_reward(reward))

    async def code_states(self, reward_id: str):
        counts = await self.store.read(lambda unit: unit.code_counts(reward_id))
        return counts.free, counts.assigned, counts.void


@pytest_asyncio.fixture
async def service(rewards_db):
    store = rewards_store(rewards_db)
    await store.open()
    yield Service(store, ManualClock(), ScriptedLedger())
    await store.close()


def rid_of(member_id: str, request_id: str) -> str:
    return "rd-" + hashlib.sha256(f"{member_id}\n{request_id}".encode()).hexdigest()[:24]


async def test_the_last_code_is_taken_when_the_redemption_is_recorded(service) -> None:
    await service.add_reward("coffee")
    await service.codes.import_chunk("coffee", "i-1", 1, ["ONLY-1"])
    # Recorded while the ledger is away: the code is reserved for it, not shown.
    service.ledger.down = True
    with pytest.raises(Unavailable):
        await service.redemptions.redeem("m-1", "coffee", 1, "r-1")
    assert await service.code_states("coffee") == (0, 1, 0)
    service.ledger.down = False
    with pytest.raises(FailedPrecondition) as raised:
        await service.redemptions.redeem("m-2", "coffee", 1, "r-2")
    assert raised.value.reason == "CODES_EXHAUSTED"
    # Refused before anything was recorded: the ledger never heard of it.
    assert service.ledger.requests == []
    assert await service.outbox.recover() == 1
    first = await service.redemptions.redeem("m-1", "coffee", 1, "r-1")
    assert first.state == RedemptionState.ISSUED and first.code == "ONLY-1"


async def test_one_chain_holds_and_posts_and_a_refusal_gives_the_code_back(service) -> None:
    await service.add_reward("coffee")
    await service.codes.import_chunk("coffee", "i-1", 1, ["CODE-1"])
    rid = rid_of("m-1", "r-1")
    service.ledger.refuse[f"redeem:{rid}:points"] = (
        ledger_pb.TRANSFER_RESULT_CODE_INSUFFICIENT_BALANCE
    )
    with pytest.raises(FailedPrecondition) as raised:
        await service.redemptions.redeem("m-1", "coffee", 1, "r-1")
    assert raised.value.reason == "INSUFFICIENT_POINTS"
    assert await service.code_states("coffee") == (1, 0, 0)
    failed = await service.store.read(lambda unit: unit.redemption(rid))
    assert failed.state == RedemptionState.FAILED and failed.code == ""
    assert [event.state for event in failed.history] == [
        RedemptionState.PROCESSING,
        RedemptionState.FAILED,
    ]
    (chain,) = service.ledger.requests
    assert [(t.id, t.kind, t.linked) for t in chain.transfers] == [
        (f"redeem:{rid}:points", ledger_pb.TRANSFER_KIND_PENDING, True),
        (f"redeem:{rid}:stock", ledger_pb.TRANSFER_KIND_PENDING, True),
        (f"redeem:{rid}:points:post", ledger_pb.TRANSFER_KIND_POST_PENDING, True),
        (f"redeem:{rid}:stock:post", ledger_pb.TRANSFER_KIND_POST_PENDING, False),
    ]
    # The code went back to the pool: the next member gets it.
    again = await service.redemptions.redeem("m-2", "coffee", 1, "r-1")
    assert again.state == RedemptionState.ISSUED and again.code == "CODE-1"


async def test_a_redemption_left_processing_is_finished_by_recovery(service) -> None:
    await service.add_reward("coffee")
    await service.codes.import_chunk("coffee", "i-1", 1, ["CODE-1"])
    service.ledger.down = True
    with pytest.raises(Unavailable):
        await service.redemptions.redeem("m-1", "coffee", 1, "r-1")
    service.ledger.down = False
    # One entry: the whole chain, then nothing is left.
    assert [await service.outbox.recover() for _ in range(2)] == [1, 0]
    again = await service.redemptions.redeem("m-1", "coffee", 1, "r-1")
    assert again.state == RedemptionState.ISSUED and again.code == "CODE-1"


class Broke(Exception):
    """Work that fails after it changed rows: its savepoint is rolled back."""


async def test_the_writer_hands_out_a_redemption_as_the_table_holds_it(service) -> None:
    # On SQLite the writer keeps the redemptions it stored last, so a settlement
    # does not read them back: after work that changed one and then failed, what
    # it hands out must still be what was committed.
    await service.add_reward("coffee")
    await service.codes.import_chunk("coffee", "i-1", 1, ["CODE-1"])
    rid = rid_of("m-1", "r-1")
    service.ledger.down = True
    with pytest.raises(Unavailable):
        await service.redemptions.redeem("m-1", "coffee", 1, "r-1")

    def change_then_fail(unit: RewardsUnit) -> None:
        pending = unit.redemption(rid)
        unit.save_redemption(pending.moved(RedemptionState.FAILED, 5, "rolled back", code=""))
        raise Broke()

    with pytest.raises(Broke):
        await service.store.write(change_then_fail)
    written = await service.store.write(lambda unit: unit.redemption(rid))
    assert written == await service.store.read(lambda unit: unit.redemption(rid))
    assert written.state == RedemptionState.PROCESSING and written.code == "CODE-1"
    service.ledger.down = False
    assert await service.outbox.recover() == 1
    issued = await service.redemptions.redeem("m-1", "coffee", 1, "r-1")
    assert issued == await service.store.read(lambda unit: unit.redemption(rid))
    assert [event.state for event in issued.history] == [
        RedemptionState.PROCESSING,
        RedemptionState.ISSUED,
    ]


async def test_limits_hold_under_concurrent_redemptions_of_one_member(service) -> None:
    await service.add_reward("coffee", kind=RewardKind.PHYSICAL, limits=Limits(total=2))
    attempts = await asyncio.gather(
        *(service.redemptions.redeem("m-1", "coffee", 1, f"r-{n}") for n in range(10)),
        return_exceptions=True,
    )
    made = [a for a in attempts if not isinstance(a, Exception)]
    refused = [a for a in attempts if isinstance(a, FailedPrecondition)]
    assert len(made) == 2 and len(refused) == 8
    assert {error.reason for error in refused} == {"LIMIT_REACHED"}


async def test_an_import_reports_duplicates_in_the_file_and_against_the_pool(service) -> None:
    await service.add_reward("coffee")
    await service.codes.import_chunk("coffee", "old", 1, ["IN-POOL"])
    first = await service.codes.import_chunk("coffee", "new", 1, ["code", "A-1", "A-2", "A-1"])
    second = await service.codes.import_chunk("coffee", "new", 5, ["A-2", "IN-POOL", "B-1"])
    assert (first.added, second.added) == (2, 1)
    assert [(p.line, p.reason, p.first_seen_line) for p in first.problems] == [
        (4, "DUPLICATE_IN_FILE", 2)
    ]
    assert [(p.line, p.reason, p.first_seen_line) for p in second.problems] == [
        (5, "DUPLICATE_IN_FILE", 3),
        (6, "DUPLICATE_IN_POOL", 0),
    ]
    # A chunk sent again (a retry) gets its first answer and adds nothing.
    retried = await service.codes.import_chunk("coffee", "new", 5, ["A-2", "IN-POOL", "B-1"])
    assert retried == replace(second, replayed=True)
    assert await service.code_states("coffee") == (4, 0, 0)


async def test_the_same_visit_gets_the_same_offer_and_preferences_exclude(service) -> None:
    for offer_id, tag in (("coffee", "drinks:coffee"), ("tea", "drinks:tea"), ("cake", "")):
        await service.offers.upsert(
            offer_id, OfferSpec(title=offer_id, tags=(tag,) if tag else (), bonus_points=10)
        )
    await service.offers.set_preferences("m-1", Preferences(choices=(("drinks", ("tea",)),)))
    shown = [await service.offers.my_offer("m-1", f"visit-{n}") for n in range(12)]
    assert {view.offer.offer_id for view in shown} <= {"tea", "cake"}
    assert await service.offers.my_offer("m-1", "visit-3") == shown[3]
    # Never the same offer as the last visit while another is eligible.
    ids = [view.offer.offer_id for view in shown]
    assert all(a != b for a, b in itertools.pairwise(ids))


async def test_accepting_a_points_offer_awards_once(service) -> None:
    await service.offers.upsert("bonus", OfferSpec(title="50 points", bonus_points=50))
    await service.offers.my_offer("m-1", "v-1")
    accepted = await service.offers.accept("m-1", "v-1")
    again = await service.offers.accept("m-1", "v-1")
    assert accepted.visit.points_awarded and again == accepted
    awards = [r for r in service.ledger.requests if r.transfers[0].id.startswith("offer:")]
    assert len(awards) == 1 and awards[0].transfers[0].amount == 50
