"""`loyalty-admin` as installed (the venv's console script), run against a suite."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tools.suite import Suite

ADMIN = Path(sys.executable).parent / "loyalty-admin"


async def admin(suite: Suite, token: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(ADMIN),
        "--gateway",
        suite.target("gateway"),
        *args,
        env={**os.environ, "LOYALTY_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()
