"""python -m services.ledger: the ledger, configured from the environment."""

import asyncio

from services.kit.logs import configure_logging
from services.kit.server import serve
from services.ledger.server import LedgerSettings, build_server


async def main() -> None:
    settings = LedgerSettings.from_env()
    configure_logging("ledger", settings.log_level)
    host = await build_server(settings)
    await serve(host, settings.shutdown_grace_seconds)


if __name__ == "__main__":
    asyncio.run(main())
