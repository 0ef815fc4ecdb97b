"""Fixtures of the rewards tests: a real rewards server beside a real ledger."""

from __future__ import annotations

import pytest_asyncio

from tests.support.rewards import rewards_world


@pytest_asyncio.fixture
async def world(tmp_path):
    async with rewards_world(tmp_path) as running:
        yield running
