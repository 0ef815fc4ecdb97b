"""What every benchmark shares: the load generator in its own process, the echo
ceiling, peak memory, targets, bench/results/<name>.json and the printed table.

Services start through tools.suite, as `make run` and the end-to-end tests start them.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc

from tools.suite import REPO, STARTUP_SECONDS, free_port, wait_serving

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# In flight for the scaling tables; 64 is the headline figures' own.
SCALING = (1, 8, 64, 256)


@dataclass(frozen=True)
class LoadResult:
    """One measured phase of `python -m bench.load run`."""

    calls: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    # The first failure's details for each status code.
    error_examples: dict[str, str] = field(default_factory=dict)
    # Calls each lane sent, warm-up included, so a caller can replay the workload.
    lane_calls: list[int] = field(default_factory=list)
    # The server's CPU time per call sent (warm-up included), when its pid was given:
    # a figure that other work on the machine disturbs less than throughput.
    server_cpu_us_per_call: float = math.nan


async def run_load(
    target: str,
    method: str,
    workload: str,
    params: dict,
    *,
    concurrency: int = 64,
    seconds: float = 5.0,
    warmup: float = 1.0,
    calls: int = 0,
    timeout: float = 30.0,
    server_pid: int | None = None,
    stream: bool = False,
) -> LoadResult:
    """Drive `method` on `target` from a separate process (see bench/load.py)."""
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        "run",
        f"--target={target}",
        f"--method={method}",
        f"--workload={workload}",
        f"--params={json.dumps(params)}",
        f"--concurrency={concurrency}",
        f"--seconds={seconds}",
        f"--warmup={warmup}",
        f"--calls={calls}",
        f"--timeout={timeout}",
        *(["--stream"] if stream else []),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load generator exited with {process.returncode}: {stderr.decode()}")
    result = LoadResult(**json.loads(stdout.decode().strip().splitlines()[-1]))
    if server_pid:
        used = cpu_seconds(server_pid) - cpu_before
        result = replace(result, server_cpu_us_per_call=used * 1e6 / sum(result.lane_calls))
    if result.errors:
        print(
            f"  {method} on {target}: failed calls {result.errors}, e.g. {result.error_examples}",
            file=sys.stderr,
        )
    return result


@dataclass
class EchoServer:
    process: asyncio.subprocess.Process
    target: str

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def start_echo(response_bytes: int) -> EchoServer:
    """A bare grpc.aio server in its own process answering `response_bytes` per call."""
    target = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        "echo",
        f"--listen={target}",
        f"--response-bytes={response_bytes}",
        cwd=REPO,
    )
    echo = EchoServer(process, target)
    try:
        await wait_serving(target)
    except BaseException:
        await echo.stop()
        raise
    return echo


async def wait_connectable(target: str, timeout: float = STARTUP_SECONDS) -> None:
    """Wait until a server accepts an HTTP/2 connection at `target`."""
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """A figure's goal: `value >= bound` (at_least) or `value <= bound`."""

    key: str
    bound: float
    at_least: bool = True

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def describe(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"


def report(name: str, results: dict, targets: list[Target] = ()) -> Path:
    """Write bench/results/<name>.json (figures plus each target's verdict) and print
    a table; a missed target is reported, not raised."""
    verdicts = {
        target.key: {"target": target.describe(), "met": target.met(results[target.key])}
        for target in targets
    }
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "targets": verdicts}, indent=2) + "\n")
    rows = [("metric", "value", "target", "")]
    for key, value in results.items():
        if isinstance(value, list):  # a scaling table: its own .md and .png
            continue
        verdict = verdicts.get(key)
        rows.append(
            (
                key,
                f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value),
                verdict["target"] if verdict else "",
                ("PASS" if verdict["met"] else "MISS") if verdict else "",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    print(f"== {name} ==")
    for row in rows:
        print(
            "  ".join(
                cell.rjust(width) if column == 1 else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return path


def scaling_rows(series: dict[str, dict[int, LoadResult]], what: str) -> list[dict]:
    """The scaling table as JSON rows: per number in flight, each series' rate and p99."""
    levels = sorted({c for results in series.values() for c in results})
    return [
        {
            "in_flight": c,
            **{
                f"{name}_{key}": round(value, 1)
                for name, results in series.items()
                if c in results
                for key, value in (
                    (f"{what}_per_s", results[c].rps),
                    ("p99_ms", results[c].p99_ms),
                )
            },
        }
        for c in levels
    ]


def scaling_report(
    name: str, title: str, what: str, series: dict[str, dict[int, LoadResult]], note: list[str]
) -> list[dict]:
    """bench/results/<name>_scaling.md (a table) and <name>_scaling.png (a chart): each
    series' throughput and p99 against the number in flight, so a reader sees the knee.
    Returns the table's rows for the bench's JSON."""
    levels = sorted({c for results in series.values() for c in results})
    header = ["in flight"]
    for label in series:
        header += [f"{label} {what}/s", f"{label} p99 ms"]
    rows = ["| " + " | ".join(header) + " |", "|" + " ---: |" * len(header)]
    for c in levels:
        cells = [str(c)]
        for results in series.values():
            result = results.get(c)
            cells += [f"{result.rps:,.0f}", f"{result.p99_ms:,.1f}"] if result else ["", ""]
        rows.append("| " + " | ".join(cells) + " |")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}_scaling.md").write_text("\n".join([*rows, "", *note]) + "\n")
    _plot(series, title, what, RESULTS_DIR / f"{name}_scaling.png")
    return scaling_rows(series, what)


def _plot(series: dict[str, dict[int, LoadResult]], title: str, what: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (rate, tail) = pyplot.subplots(1, 2, figsize=(10, 4))
    for label, results in series.items():
        levels = sorted(results)
        rate.plot(levels, [results[c].rps for c in levels], marker="o", label=label)
        tail.plot(levels, [results[c].p99_ms for c in levels], marker="o", label=label)
    for axes, label in ((rate, f"{what}/s"), (tail, "p99 latency (ms)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(SCALING, [str(c) for c in SCALING])
        axes.set_xlabel("in flight")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
