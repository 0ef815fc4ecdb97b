"""`python -m services.<name>`: every service starts the same way, from its
settings' environment variables to a graceful stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from services.kit.config import ServiceSettings
from services.kit.logs import configure_logging
from services.kit.server import serve


def run(
    service: str,
    settings_type: type[ServiceSettings],
    build_server: Callable[[Any], Awaitable[Any]],
) -> None:
    settings = settings_type.from_env()
    configure_logging(service, settings.log_level, settings.log_format, settings.log_file)

    async def main() -> None:
        host = await build_server(settings)
        await serve(host, settings.shutdown_grace_seconds)

    asyncio.run(main())
