"""`python -m services.gateway`: the gateway on GATEWAY_LISTEN (default 127.0.0.1:8080)."""

from __future__ import annotations

import asyncio

from services.gateway.server import GatewaySettings, build_server
from services.kit.config import env_str
from services.kit.logs import configure_logging
from services.kit.server import serve


async def main() -> None:
    configure_logging("gateway", env_str("LOG_LEVEL", "info"))
    settings = GatewaySettings.from_env()
    host = await build_server(settings, env_str("GATEWAY_LISTEN", "127.0.0.1:8080"))
    await serve(host, settings.shutdown_grace_seconds)


if __name__ == "__main__":
    asyncio.run(main())
