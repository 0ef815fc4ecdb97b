"""python -m services.games: the games service, configured from the environment."""

from services.games.server import GamesSettings, build_server
from services.kit.entry import run

if __name__ == "__main__":
    run("games", GamesSettings, build_server)
