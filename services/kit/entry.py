"""`python -m services.<name>`: every service starts the same way, from its
settings' environment variables to a graceful stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

from services.kit.config import ServiceSettings
from services.kit.logs import configure_logging
from services.kit.server import serve

# A request allocates a few hundred objects that die young (protobuf messages,
# futures, rows: refcounting frees them, they hold no cycles). At the default
# thresholds the collector ran every 700 allocations and rescanned the
# long-lived ones (the ledger's in-memory accounts, grpc's and protobuf's
# objects): 15% of the ledger's batch path (64 -> 54 us per transfer) and 6% of
# the rewards event loop under the bench (py-spy).
GC_THRESHOLDS = (20_000, 50, 100)


def run(
    service: str,
    settings_type: type[ServiceSettings],
    build_server: Callable[[Any], Awaitable[Any]],
) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    settings = settings_type.from_env()
    configure_logging(service, settings.log_level, settings.log_format, settings.log_file)

    async def main() -> None:
        host = await build_server(settings)
        await serve(host, settings.shutdown_grace_seconds)

    asyncio.run(main())
