"""The ledger's tests run on both engines, unless a test pins one."""

from __future__ import annotations

from tests.support.postgres import both_engines  # noqa: F401 (a fixture)
