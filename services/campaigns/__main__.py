"""python -m services.campaigns: the campaigns service, configured from the environment."""

from services.campaigns.server import CampaignsSettings, build_server
from services.kit.entry import run

if __name__ == "__main__":
    run("campaigns", CampaignsSettings, build_server)
