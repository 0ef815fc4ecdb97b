"""python -m services.games: the games service, configured from the environment."""

import asyncio

from services.games.server import GamesSettings, build_server
from services.kit.logs import configure_logging
from services.kit.server import serve


async def main() -> None:
    settings = GamesSettings.from_env()
    configure_logging("games", settings.log_level)
    host = await build_server(settings)
    await serve(host, settings.shutdown_grace_seconds)


if __name__ == "__main__":
    asyncio.run(main())
