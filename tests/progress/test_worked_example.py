"""docs/progress.md's worked example, command for command, through a real
gateway, ledger and progress (and the fake campaigns and games feeds): if this
fails, the guide is wrong."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from tests.support.progress import at, caught_up, earn, gateway_in_front, gateway_token
from tools.admin import main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "progress.md"


def example() -> tuple[str, list[tuple[str, str]]]:
    text = GUIDE.read_text()
    block = text[
        text.index("<!-- progress-example:start -->") : text.index("<!-- progress-example:end -->")
    ]
    definitions = re.search(r"```yaml\n(.*?)```", block, re.S).group(1)
    steps = []
    for console in re.findall(r"```console\n(.*?)```", block, re.S):
        for command in re.split(r"^\$ ", console, flags=re.M)[1:]:
            line, _, output = command.partition("\n")
            steps.append((line, output))
    return definitions, steps


async def run(command: str, gateway: str, token: str, directory: Path) -> str:
    arguments = command.split()[1:]  # after "loyalty-admin"
    arguments = [str(directory / a) if a.endswith(".yaml") else a for a in arguments]
    out = io.StringIO()
    status = await asyncio.to_thread(
        main, ["--gateway", gateway, "--token", token, *arguments], out
    )
    assert status == 0, (command, out.getvalue())
    return out.getvalue()


async def test_the_worked_example_prints_what_the_guide_says(running, tmp_path) -> None:
    definitions, steps = example()
    (tmp_path / "progress.yaml").write_text(definitions)
    token = gateway_token(running.clock.now_us(), "ops", "admin")
    async with gateway_in_front(running) as target:
        setup, shown = steps[:2], steps[2:]
        for command, expected in setup:
            assert await run(command, target, token, tmp_path) == expected, command
        # What the member does, as campaigns and games report it.
        bought = at(2026, 3, 2, 9)
        await running.upstream.activity(
            "p1", "m-1", "purchase", bought, 1_200, "Europe/Paris", 12_000
        )
        await earn(running.ledger, "activity:p1:base", "m-1", 1_200, "p1")
        for n in range(3):
            await running.upstream.activity(f"r{n}", "m-1", "product_review", bought)
        await running.upstream.play("s1", "m-1", bought)
        # Progress pays the badge and the challenge: both credits come back on its feed.
        stream = running.ledger.WatchTransfers(ledger_pb.WatchTransfersRequest(), timeout=20)
        bonuses = []
        while len(bonuses) < 2:
            transfer = (await asyncio.wait_for(stream.read(), 20)).transfer
            if transfer.code == ledger_pb.TRANSFER_CODE_BONUS:
                bonuses.append(transfer)
        stream.cancel()
        assert sorted(t.amount for t in bonuses) == [50, 100]
        await caught_up(running.host, "ledger", max(t.sequence for t in bonuses))
        await caught_up(running.host, "campaigns", 4)
        await caught_up(running.host, "games", 1)
        for command, expected in shown:
            assert await run(command, target, token, tmp_path) == expected, command
