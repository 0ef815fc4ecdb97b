"""python -m services.progress: member progress, configured from the environment."""

from services.kit.entry import run
from services.progress.server import ProgressSettings, build_server

if __name__ == "__main__":
    run("progress", ProgressSettings, build_server)
