"""Real processes killed with SIGKILL and restarted on the same database (a
SQLite file, a PostgreSQL schema): every redemption either completed or was
fully voided, no code was given twice, and the ledger agrees to the point."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.rewards.v1 import rewards_service_pb2_grpc as rewards_grpc

from services.rewards.domain.redemptions import redemption_id
from tests.support.postgres import stored_rows
from tests.support.rewards import (
    FAST_RELAY,
    RECOVERY_SECONDS,
    TIMEOUT,
    check_against_the_ledger,
    pending_state,
    redeem,
    set_up,
)
from tools.suite import REPO, SPECS, Suite, wait_serving

pytestmark = pytest.mark.slow

MEMBERS = 24


async def test_sigkill_mid_load_then_restart_completes_or_voids_every_redemption(
    tmp_path: Path, rewards_db: str
) -> None:
    suite = Suite(
        tmp_path / "data",
        log_dir=tmp_path / "logs",
        env=FAST_RELAY,
        databases={"rewards": rewards_db},
    )
    members = [f"m-{n:02d}" for n in range(MEMBERS)]
    sent: list[tuple[str, str]] = []
    completed = 0
    enough = asyncio.Event()
    try:
        ledger_process = await suite.start("ledger")
        rewards_process = await suite.start("rewards")
        async with (
            grpc.aio.insecure_channel(ledger_process.target) as ledger_channel,
            grpc.aio.insecure_channel(rewards_process.target) as rewards_channel,
        ):
            ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
            rewards = rewards_grpc.RewardsServiceStub(rewards_channel)
            await set_up(ledger, rewards, members)

            async def lane(member: str) -> str:
                nonlocal completed
                for n in range(1000):
                    request_id = f"load-{n}"
                    sent.append((member, request_id))
                    try:
                        await redeem(rewards, member, "coffee", request_id)
                    except grpc.aio.AioRpcError as error:
                        return error.code().name  # never retried
                    completed += 1
                    if completed >= 3 * MEMBERS:
                        enough.set()
                return "done"

            lanes = [asyncio.ensure_future(lane(member)) for member in members]
            await asyncio.wait_for(enough.wait(), RECOVERY_SECONDS)
            await rewards_process.kill()
            endings = await asyncio.wait_for(asyncio.gather(*lanes), RECOVERY_SECONDS)
            # The kill hit calls in flight, not an idle service.
            assert any(ending != "done" for ending in endings), endings
            assert rewards_process.process.returncode == -signal.SIGKILL

        restarted = await suite.start("rewards")
        async with (
            grpc.aio.insecure_channel(ledger_process.target) as ledger_channel,
            grpc.aio.insecure_channel(restarted.target) as rewards_channel,
        ):
            ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
            rewards = rewards_grpc.RewardsServiceStub(rewards_channel)
            issued = await check_against_the_ledger(ledger, rewards, members, sent)
            assert len(issued) >= completed
    finally:
        await suite.stop_all()


async def start_crashing(suite: Suite, instant: str) -> asyncio.subprocess.Process:
    """The rewards process under the crash-point harness, as Suite would start it."""
    env = {**suite.environment(SPECS["rewards"]), "CRASH_AT": instant}
    with (suite.log_dir / "crashpoint.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.rewards.crashpoint",
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    await wait_serving(suite.target("rewards"))
    return process


def assigned_codes(rewards_db: str, rid: str) -> list[str]:
    """What the rewards database holds for a redemption while its process is dead."""
    return [
        row[0]
        for row in stored_rows(rewards_db, f"SELECT code FROM codes WHERE redemption_id = '{rid}'")
    ]


@pytest.mark.parametrize(
    ("instant", "in_the_ledger"),
    [("before-ledger", None), ("after-ledger", ledger_pb.PENDING_STATE_POSTED)],
)
async def test_killed_before_the_chain_is_sent_or_its_answer_applied_it_finishes_on_restart(
    tmp_path: Path, rewards_db: str, instant: str, in_the_ledger: int | None
) -> None:
    (tmp_path / "logs").mkdir()
    suite = Suite(
        tmp_path / "data",
        log_dir=tmp_path / "logs",
        env=FAST_RELAY,
        databases={"rewards": rewards_db},
    )
    rid = redemption_id("m-00", "r-1")
    try:
        ledger_process = await suite.start("ledger")
        crashing = await start_crashing(suite, instant)
        async with (
            grpc.aio.insecure_channel(ledger_process.target) as ledger_channel,
            grpc.aio.insecure_channel(suite.target("rewards")) as rewards_channel,
        ):
            ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
            rewards = rewards_grpc.RewardsServiceStub(rewards_channel)
            await set_up(ledger, rewards, ["m-00"])
            with pytest.raises(grpc.aio.AioRpcError):
                await redeem(rewards, "m-00", "coffee", "r-1")
            assert await asyncio.wait_for(crashing.wait(), TIMEOUT) == -signal.SIGKILL
            # The kill hit the instant it names: the code is reserved either way, the
            # chain not yet sent, or committed whole with its answer lost.
            assert await pending_state(ledger, f"redeem:{rid}:points") == in_the_ledger
            assert assigned_codes(rewards_db, rid) == ["CODE-0000"]

        restarted = await suite.start("rewards")
        async with (
            grpc.aio.insecure_channel(ledger_process.target) as ledger_channel,
            grpc.aio.insecure_channel(restarted.target) as rewards_channel,
        ):
            ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
            rewards = rewards_grpc.RewardsServiceStub(rewards_channel)
            (issued,) = await check_against_the_ledger(ledger, rewards, ["m-00"], [("m-00", "r-1")])
            again = await redeem(rewards, "m-00", "coffee", "r-1")
            assert again.code == "CODE-0000" and again.redemption_id == issued.redemption_id
    finally:
        await suite.stop_all()
