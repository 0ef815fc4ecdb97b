"""Issue 14 §2: two gateway processes in front of one ledger and one rewards
service on PostgreSQL. Members redeem through one gateway and send a call left
in doubt, the same, through the other; one gateway is SIGKILLed mid-load.
Afterwards the answers are those of one gateway alone: each acknowledged
redemption issued once with its code, none past the stock, no points taken
twice, every refusal refused again, and the books balance."""

from __future__ import annotations

import asyncio
import secrets

import grpc
import pytest
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.gateway.v1 import gateway_service_pb2_grpc as gateway_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as rewards_grpc

from services.kit.status import error_info
from tests.support import deadlines
from tests.support.e2e import AUDIENCE, ISSUER, suite_env
from tests.support.gateway import bearer
from tests.support.ledger import balance, check_invariants, every_account
from tests.support.postgres import fresh_database
from tests.support.replicas import failing_over, kill_under_load, replica_suites
from tests.support.rewards import FAST_RELAY, FUNDS, PRICE, check_against_the_ledger, set_up
from tools.demo import TokenMint
from tools.suite import wait_ready_http

pytestmark = pytest.mark.slow

MEMBERS = [f"m-{n:02d}" for n in range(16)]
PER_MEMBER = 5
# Fewer units than the members ask for (80): the last requests are refused.
STOCK = 50
CALL_SECONDS = 10.0
# The gateway's readiness wants every upstream; these tests run only two of them.
LIVE = "/healthz"


async def start_gateway(suite) -> None:
    await suite.start("gateway", wait=False)
    await wait_ready_http(suite.target("gateway"), LIVE)


async def test_a_retry_through_the_other_gateway_gives_the_same_answer_once(
    tmp_path, postgres
) -> None:
    databases = {name: fresh_database(tmp_path, "postgres", name) for name in ("ledger", "rewards")}
    secret = secrets.token_urlsafe(32)
    env = suite_env(
        secret,
        LOG_LEVEL="warning",
        # Every call of this test comes from one address, many a second.
        GATEWAY_ADDRESS_RATE="100000",
        GATEWAY_MEMBER_RATE="1000",
        **FAST_RELAY,
    )
    mint = TokenMint(secret.encode(), ISSUER, AUDIENCE)
    async with replica_suites(tmp_path, databases, env=env, shared={"ledger", "rewards"}) as suites:
        await suites[0].start("ledger")
        await suites[0].start("rewards")
        for suite in suites:
            await start_gateway(suite)
        async with (
            deadlines.channel(suites[0].target("ledger")) as ledger_channel,
            deadlines.channel(suites[0].target("rewards")) as rewards_channel,
            grpc.aio.insecure_channel(suites[0].target("gateway")) as zero,
            grpc.aio.insecure_channel(suites[1].target("gateway")) as one,
        ):
            ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
            rewards = rewards_grpc.RewardsServiceStub(rewards_channel)
            await set_up(ledger, rewards, MEMBERS, stock=STOCK)
            gateways = [rewards_grpc.RewardsServiceStub(zero), rewards_grpc.RewardsServiceStub(one)]
            tokens = {member: bearer(mint.issue(member)) for member in MEMBERS}

            def redeeming(member: str, request_id: str):
                request = pb.RedeemRequest(
                    member_id=member, reward_id="coffee", request_id=request_id
                )
                return lambda gateway: gateway.Redeem(
                    request, metadata=tokens[member], timeout=CALL_SECONDS
                )

            sent: list[tuple[str, str]] = []
            answered: dict[tuple[str, str], pb.Redemption] = {}
            refused: dict[tuple[str, str], str] = {}
            doubts: list[str] = []
            progress = asyncio.Event()

            async def member_redeems(n: int, member: str) -> None:
                for k in range(PER_MEMBER):
                    key = (member, f"load-{k}")
                    sent.append(key)
                    try:
                        answer = await failing_over(redeeming(*key), gateways, n + k, doubts)
                    except grpc.aio.AioRpcError as error:
                        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
                        refused[key] = error_info(error).reason
                    else:
                        answered[key] = answer.redemption
                    progress.set()

            load = asyncio.gather(*(member_redeems(n, m) for n, m in enumerate(MEMBERS)))
            await kill_under_load(
                suites[0].running["gateway"], load, progress, lambda: len(answered) >= STOCK // 3
            )
            assert doubts, "the kill cut no call in flight"
            assert set(refused.values()) == {"OUT_OF_STOCK"}, refused

            issued = await check_against_the_ledger(ledger, rewards, MEMBERS, sent, stock=STOCK)
            assert len(issued) == len(answered) == STOCK
            shown = [redemption.code for redemption in answered.values()]
            assert all(shown) and len(set(shown)) == len(shown)
            # The same requests again, through the gateway left: the same answers.
            for key, first in answered.items():
                again = await redeeming(*key)(gateways[1])
                assert (again.redemption.redemption_id, again.redemption.code) == (
                    first.redemption_id,
                    first.code,
                )
            for key, reason in refused.items():
                with pytest.raises(grpc.aio.AioRpcError) as again:
                    await redeeming(*key)(gateways[1])
                assert error_info(again.value).reason == reason
            wallets = gateway_grpc.WalletServiceStub(one)
            for member in MEMBERS:
                issued_to = sum(m == member for m, _ in answered)
                wallet = await wallets.GetWallet(
                    gateway_pb.GetWalletRequest(), metadata=tokens[member], timeout=CALL_SECONDS
                )
                expected = FUNDS - PRICE * issued_to
                assert (wallet.wallet.balance, wallet.wallet.available) == (expected, expected)
                assert await balance(ledger, member) == expected
            state = await every_account(ledger, [*MEMBERS, "reward:coffee:stock"])
            check_invariants([account for account, _ in state.values()])
            assert state["reward:coffee:issued"][0].balance.balance == STOCK
