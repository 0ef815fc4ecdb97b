"""Fixtures for progress: a real ledger, fake campaigns and games feeds, and a
real progress server on port 0 following them, all on one ManualClock."""

from __future__ import annotations

import pytest_asyncio

from tests.support.progress import running_progress


@pytest_asyncio.fixture
async def running(tmp_path):
    async with running_progress(tmp_path) as world:
        yield world
