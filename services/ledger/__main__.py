"""python -m services.ledger: the ledger, configured from the environment."""

from services.kit.entry import run
from services.ledger.server import LedgerSettings, build_server

if __name__ == "__main__":
    run("ledger", LedgerSettings, build_server)
