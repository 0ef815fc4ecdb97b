"""The README's worked example runs as documented against a real ledger."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from services.kit.clock import SystemClock
from services.ledger.server import LedgerSettings, build_server
from tests.support.metrics import NO_METRICS

README = Path(__file__).resolve().parent.parent / "README.md"


def _section(text: str, start: str, end: str) -> str:
    begin = text.index(start) + len(start)
    return text[begin : text.index(end, begin)]


async def test_the_ledger_worked_example_prints_what_the_readme_says(tmp_path):
    readme = README.read_text()
    block = _section(readme, "<!-- worked-example:start -->", "<!-- worked-example:end -->")
    script = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    expected = _section(readme, "It prints:\n\n```\n", "```")
    # The example runs on wall-clock time, as it would against `make run`.
    host = await build_server(
        LedgerSettings(db_path=tmp_path / "ledger.db", metrics_listen=NO_METRICS),
        "127.0.0.1:0",
        SystemClock(),
    )
    await host.start()
    try:
        example = tmp_path / "example.py"
        example.write_text(script)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(example),
            env={**os.environ, "LEDGER_TARGET": f"127.0.0.1:{host.port}"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await host.stop(None)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode() == expected
