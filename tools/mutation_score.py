"""Prints the mutation score from mutmut's CI stats, then the surviving mutants
(`make mutants`); `mutmut show <name>` shows one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    stats = json.loads(Path(sys.argv[1]).read_text())
    judged = stats["killed"] + stats["survived"] + stats["timeout"] + stats["suspicious"]
    score = (stats["killed"] + stats["timeout"]) / judged if judged else 0.0
    print(
        f"mutation score {score:.1%}: {stats['killed']} killed, {stats['timeout']} timed out,"
        f" {stats['survived']} survived, {stats['no_tests']} with no test, of {stats['total']}"
    )
    survivors = subprocess.run(
        [Path(sys.executable).parent / "mutmut", "results"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(survivors, end="")


if __name__ == "__main__":
    main()
