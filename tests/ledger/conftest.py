"""The ledger's tests run on both engines, unless a test pins one."""

from __future__ import annotations

import pytest

from tests.support.postgres import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param
