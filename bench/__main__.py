"""`make bench`: every bench/<name>.py with a main(), each in its own process.

The ledger runs first, then games, campaigns and gateway, then any other. A missed
target is reported in each table (MISS) and does not fail the run; a benchmark
that crashes does, after the others have run.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

ORDER = ("ledger", "games", "campaigns", "gateway")
NOT_BENCHMARKS = {"common", "load"}


def benchmarks() -> list[str]:
    names = [
        module.name
        for module in pkgutil.iter_modules([str(Path(__file__).resolve().parent)])
        if not module.name.startswith("_") and module.name not in NOT_BENCHMARKS
    ]
    names.sort(key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))
    return [name for name in names if callable(getattr(_module(name), "main", None))]


def _module(name: str):
    return importlib.import_module(f"bench.{name}")


def main() -> int:
    crashed = []
    for name in benchmarks():
        print(f"-- bench.{name}", flush=True)
        code = subprocess.call(
            [sys.executable, "-c", f"import sys; from bench.{name} import main; main(sys.argv[1:])"]
        )
        if code != 0:
            print(f"-- bench.{name} crashed (exit {code})", flush=True)
            crashed.append(name)
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
