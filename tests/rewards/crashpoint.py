"""A test-only harness around the real rewards server: the same process as
`python -m services.rewards`, whose ledger channel kills the process with
SIGKILL at one instant of a redemption. Nothing in the service knows of it.

    CRASH_AT=before-ledger  the code is assigned and the chain recorded; the chain is
                            never sent
    CRASH_AT=after-ledger   the ledger committed the chain (holds and posts); the
                            answer is never applied

    python -m tests.rewards.crashpoint      (with the environment Suite gives rewards)
"""

from __future__ import annotations

import os
import signal

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit import outgoing
from services.kit.entry import run
from services.rewards import server

POST_TRANSFERS = "/loyalty.ledger.v1.LedgerService/PostTransfers"


def _redeems(request) -> bool:
    """A redemption's chain (its holds and their posts), not a stock change."""
    return isinstance(request, ledger_pb.PostTransfersRequest) and any(
        transfer.kind == ledger_pb.TRANSFER_KIND_POST_PENDING for transfer in request.transfers
    )


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashAt(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, instant: str) -> None:
        self.instant = instant

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        redeems = method == POST_TRANSFERS and _redeems(request)
        if self.instant == "before-ledger" and redeems:
            _die()
        call = await continuation(client_call_details, request)
        response = await call
        if self.instant == "after-ledger" and redeems:
            _die()
        return response


def main() -> None:
    instant = os.environ["CRASH_AT"]
    # The crash points sit on unary calls (a lost stream is tests/kit/test_outbox.py's).
    os.environ["REWARDS_LEDGER_STREAMING"] = "false"

    def crashing_channel(target: str, options=()):
        """The kit's channel (request ids forwarded), with the crash point last."""
        return grpc.aio.insecure_channel(
            target,
            options=options,
            interceptors=[
                outgoing.RequestIdUnaryUnary(),
                outgoing.RequestIdUnaryStream(),
                CrashAt(instant),
            ],
        )

    server.open_channel = crashing_channel
    run("rewards", server.RewardsSettings, server.build_server)


if __name__ == "__main__":
    main()
