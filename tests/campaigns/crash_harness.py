"""python -m tests.campaigns.crash_harness: the real campaigns service, built by
its own build_server, except that applying the ledger's answer to an activity
award kills the process (SIGKILL) inside the transaction that would close the
entry: after the ledger committed and answered, before anything local commits.

Test-only (tests/campaigns/test_crash.py starts it through tools.suite in the
service's place); production code has no switch for it."""

from __future__ import annotations

import os
import signal

from services.campaigns import server
from services.campaigns.store import ACTIVITY_AWARD
from services.kit.entry import run
from services.kit.outbox import LedgerOutbox, Settlement


def die(_unit, _settlement: Settlement) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DyingOutbox(LedgerOutbox):
    """The kit's outbox whose activity-award handler is `die`."""

    def __init__(self, store, ledger, clock, handlers, **options) -> None:
        super().__init__(store, ledger, clock, {**handlers, ACTIVITY_AWARD: die}, **options)


if __name__ == "__main__":
    server.LedgerOutbox = DyingOutbox  # what server.assemble builds its outbox with
    run("campaigns", server.CampaignsSettings, server.build_server)
