"""`python -m tests.games.crash_harness`: the real games service, except that the
first spin whose ledger answer came back accepted kills the process with SIGKILL
inside the transaction that would apply it: after the ledger committed, before
games committed anything of it. Test code only; production has no such switch."""

from __future__ import annotations

import os
import signal

from services.games import server
from services.games.spins import SPIN
from services.kit.entry import run

real_handlers = server.outbox_handlers


def killing_handlers(clock) -> dict:
    handlers = dict(real_handlers(clock))
    settle_spin = handlers[SPIN]

    def settle_or_die(unit, settlement):
        if settlement.answer is not None and settlement.answer.accepted:
            os.kill(os.getpid(), signal.SIGKILL)
        return settle_spin(unit, settlement)

    handlers[SPIN] = settle_or_die
    return handlers


if __name__ == "__main__":
    server.outbox_handlers = killing_handlers
    run("games", server.GamesSettings, server.build_server)
