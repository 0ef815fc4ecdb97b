"""loyalty-admin's rewards commands, as installed, through the real gateway."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest_asyncio

from tests.support.rewards import rewards_gateway, rewards_world

ADMIN = Path(sys.executable).parent / "loyalty-admin"
REWARD = """
reward_id: cli-coffee
spec:
  title: {title}
  kind: REWARD_KIND_CODE_POOL
  price: 120
  category: drinks
  value: {{amount_minor: 350, currency: EUR}}
  time_zone: Europe/Paris
"""


@pytest_asyncio.fixture
async def front(tmp_path):
    async with rewards_world(tmp_path) as world, rewards_gateway(world) as gateway:
        yield gateway


async def admin(front, *args: str) -> tuple[int, str, str]:
    token = front.mint.issue("manager-1", "campaign-manager")
    process = await asyncio.create_subprocess_exec(
        str(ADMIN),
        "--gateway",
        front.target,
        "rewards",
        *args,
        env={**os.environ, "LOYALTY_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_a_manager_puts_a_reward_live_from_the_command_line(front, tmp_path) -> None:
    spec = tmp_path / "coffee.yaml"
    spec.write_text(REWARD.format(title="Free coffee"))
    applied = await admin(front, "apply", str(spec))
    assert applied[:2] == (0, "applied cli-coffee (version 1)\n"), applied
    spec.write_text(REWARD.format(title="Free coffee, any size"))
    assert (await admin(front, "apply", str(spec)))[:2] == (0, "updated cli-coffee (version 2)\n")
    assert (await admin(front, "apply", str(spec)))[:2] == (0, "updated cli-coffee (version 2)\n")

    codes = tmp_path / "codes.csv"
    # Enough lines for several chunks, with a duplicate across chunks and bad lines.
    lines = ["code", *(f"CLI-{n:05d}" for n in range(12_000)), "CLI-00007", '"broken', "x" * 2000]
    codes.write_text("\n".join(lines) + "\n")
    status, out, err = await admin(front, "import", "cli-coffee", str(codes))
    assert status == 1  # some lines were not added
    assert "line 12002: DUPLICATE_IN_FILE: the code is already on line 9 of this file" in out
    assert "line 12003: MALFORMED: the line is not valid CSV" in out
    assert "line 12004: MALFORMED: the line is 2,000 characters long" in out
    assert out.endswith("cli-coffee: 12000 codes added, 3 lines not added\n")
    assert "importing [" in err and "100%" in err
    assert "CLI-00007" not in out  # the codes themselves are never printed

    # Importing the same file again adds nothing twice.
    again = await admin(front, "import", "cli-coffee", str(codes))
    assert again[1].endswith(
        "cli-coffee: 0 codes added, 3 lines not added (3 chunks were imported before)\n"
    )

    status, out, _ = await admin(front, "stock", "cli-coffee", "--add", "500", "--request-id", "s1")
    assert (status, out) == (0, "cli-coffee: 500 in stock, 12000 codes free\n")
    status, out, _ = await admin(front, "list")
    assert status == 0 and "cli-coffee" in out and "code_pool" in out and "12000" in out
    status, out, _ = await admin(front, "report", "cli-coffee")
    assert status == 0 and "codesTotal" in out
    status, out, _ = await admin(front, "report")
    assert status == 0 and "outstandingPoints" in out


async def test_bad_files_and_refusals_exit_2_and_1(front, tmp_path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("reward_id: [unclosed")
    assert (await admin(front, "apply", str(broken)))[0] == 2
    assert (await admin(front, "import", "cli-coffee", str(tmp_path / "missing.csv")))[0] == 2
    status, _, err = await admin(front, "stock", "no-such-reward")
    assert status == 1 and "REWARD_NOT_FOUND" in err
