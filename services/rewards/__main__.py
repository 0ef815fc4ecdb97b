"""python -m services.rewards: the rewards service, configured from the environment."""

from services.kit.entry import run
from services.rewards.server import RewardsSettings, build_server

if __name__ == "__main__":
    run("rewards", RewardsSettings, build_server)
