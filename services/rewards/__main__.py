"""python -m services.rewards: the rewards service, configured from the environment."""

import gc

from services.kit.entry import run
from services.rewards.server import RewardsSettings, build_server

# A redemption allocates a few hundred objects that die young (protobuf messages,
# futures, rows; refcounting frees them, they hold no cycles). At the default
# thresholds the collector ran every 700 allocations, every other redemption,
# and its full passes rescanned grpc's and protobuf's long-lived objects: 6% of
# the event loop under the bench (py-spy). The ledger's thresholds.
GC_THRESHOLDS = (20_000, 50, 100)

if __name__ == "__main__":
    gc.set_threshold(*GC_THRESHOLDS)
    run("rewards", RewardsSettings, build_server)
