"""python -m services.campaigns: the campaigns service, configured from the environment."""

import asyncio

from services.campaigns.server import CampaignsSettings, build_server
from services.kit.logs import configure_logging
from services.kit.server import serve


async def main() -> None:
    settings = CampaignsSettings.from_env()
    configure_logging("campaigns", settings.log_level)
    host = await build_server(settings)
    await serve(host, settings.shutdown_grace_seconds)


if __name__ == "__main__":
    asyncio.run(main())
