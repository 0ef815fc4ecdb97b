"""The web apps in a real browser: the real suite as processes on free ports
(tools.suite), and the Playwright flows of web/e2e run against its gateway by
Debian's Chromium. Each flow saves a screenshot in web/test-results/screenshots;
the budgets flow writes what it measured to web/test-results/budgets.json."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import pytest

from tools.suite import Suite

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
RESULTS = WEB / "test-results"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = REPO / "node_modules" / "@playwright" / "test" / "cli.js"
PLAYWRIGHT_SECONDS = 600

pytestmark = [pytest.mark.slow, pytest.mark.timeout(PLAYWRIGHT_SECONDS + 120)]


def built() -> bool:
    return (WEB / "dist" / "app" / "index.html").is_file() and (
        WEB / "dist" / "console" / "index.html"
    ).is_file()


@pytest.fixture
def prerequisites(node_modules: Path) -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"Chromium at {CHROMIUM} (Debian package 'chromium': make setup)")
    if not PLAYWRIGHT.exists():
        missing.append("@playwright/test (make setup runs npm ci)")
    if not built():
        missing.append("the built apps in web/dist (make web)")
    if missing:
        pytest.fail("the browser tests need " + "; ".join(missing))


async def test_the_apps_in_a_real_browser(prerequisites, tmp_path):
    suite = Suite(
        tmp_path / "data",
        env={
            "GATEWAY_JWT_SECRET": secrets.token_urlsafe(32),
            "GATEWAY_WEB_DIR": str(WEB / "dist"),
            # Points expire within the wallet's 90-day "expiring soon" window.
            "CAMPAIGNS_POINTS_TTL_DAYS": "30",
            "LOG_LEVEL": "info",
            "SHUTDOWN_GRACE_SECONDS": "1",
        },
        log_dir=tmp_path / "logs",
    )
    shutil.rmtree(RESULTS, ignore_errors=True)
    (RESULTS / "screenshots").mkdir(parents=True)
    try:
        await suite.start_all()
        process = await asyncio.create_subprocess_exec(
            "node",
            str(PLAYWRIGHT),
            "test",
            "-c",
            str(WEB / "playwright.config.ts"),
            cwd=REPO,
            env={
                **os.environ,
                "WEB_BASE_URL": f"http://{suite.target('gateway')}",
                "CHROMIUM": str(CHROMIUM),
                "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
                "CI": "1",
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), PLAYWRIGHT_SECONDS)
    finally:
        await suite.stop_all()
    text = output.decode(errors="replace")
    sys.stdout.write(text)
    if process.returncode != 0:
        logs = "".join(
            f"\n--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:])
            for log in sorted((tmp_path / "logs").glob("*.log"))
        )
        pytest.fail(f"the browser flows failed (exit {process.returncode}):\n{text}{logs}")
    budgets = RESULTS / "budgets.json"
    if budgets.exists():
        sys.stdout.write(f"measured: {json.loads(budgets.read_text())}\n")
    shots = sorted(path.name for path in (RESULTS / "screenshots").glob("*.png"))
    assert shots, "every flow saves a screenshot"
