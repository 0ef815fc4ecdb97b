"""Start the suite's services as real processes: `make run`, the end-to-end and
crash tests and the benchmarks all start them through here.

    python -m tools.suite            # every service, data and JSON logs in ./var

`make run` reads each service's address from the variable the service itself
reads (LEDGER_LISTEN, GAMES_LISTEN, ..., GATEWAY_LISTEN), with the same
defaults, and points every client at it: a second copy of the suite runs
beside the first with other addresses and another --data-dir. Metrics the same
way (LEDGER_METRICS_LISTEN, ...); tests and benchmarks give every process a free
metrics port, as they give it a free gRPC port.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.postgres import LocalPostgres

STARTUP_SECONDS = 30.0
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # "module:Class" of the service's settings, whose defaults and variables `make run` uses.
    settings: str
    db_env: str | None
    # env var -> the service whose address it names
    upstreams: Mapping[str, str] = field(default_factory=dict)
    # gRPC services answer grpc.health.v1; the HTTP gateway answers GET /readyz.
    readiness_path: str | None = None

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    @property
    def listen_env(self) -> str:
        return f"{self.name.upper()}_LISTEN"

    @property
    def metrics_env(self) -> str:
        return f"{self.name.upper()}_METRICS_LISTEN"

    def exists(self) -> bool:
        return importlib.util.find_spec(f"{self.module}.__main__") is not None

    def _settings(self):
        module, _, name = self.settings.partition(":")
        return getattr(importlib.import_module(module), name).from_env()

    def listen_address(self) -> str:
        """Where the service listens when started with this environment."""
        return self._settings().listen

    def metrics_address(self) -> str:
        """Where it serves its metrics when started with this environment ("": nowhere)."""
        return self._settings().metrics_listen


SERVICES = (
    ServiceSpec("ledger", "services.ledger.server:LedgerSettings", "LEDGER_DB"),
    ServiceSpec(
        "games",
        "services.games.server:GamesSettings",
        "GAMES_DB",
        {"GAMES_LEDGER_TARGET": "ledger"},
    ),
    ServiceSpec(
        "campaigns",
        "services.campaigns.server:CampaignsSettings",
        "CAMPAIGNS_DB",
        {"CAMPAIGNS_LEDGER_TARGET": "ledger", "CAMPAIGNS_PROGRESS_TARGET": "progress"},
    ),
    ServiceSpec(
        "progress",
        "services.progress.server:ProgressSettings",
        "PROGRESS_DB",
        {
            "PROGRESS_LEDGER_TARGET": "ledger",
            "PROGRESS_CAMPAIGNS_TARGET": "campaigns",
            "PROGRESS_GAMES_TARGET": "games",
        },
    ),
    ServiceSpec(
        "rewards",
        "services.rewards.server:RewardsSettings",
        "REWARDS_DB",
        {"REWARDS_LEDGER_TARGET": "ledger", "REWARDS_CAMPAIGNS_TARGET": "campaigns"},
    ),
    ServiceSpec(
        "gateway",
        "services.gateway.server:GatewaySettings",
        None,
        {
            "GATEWAY_LEDGER_TARGET": "ledger",
            "GATEWAY_GAMES_TARGET": "games",
            "GATEWAY_CAMPAIGNS_TARGET": "campaigns",
            "GATEWAY_PROGRESS_TARGET": "progress",
            "GATEWAY_REWARDS_TARGET": "rewards",
        },
        readiness_path="/readyz",
    ),
)
SPECS = {spec.name: spec for spec in SERVICES}
# The services whose stores run on PostgreSQL too (`--db postgres`).
ON_POSTGRES = frozenset({"ledger", "games", "campaigns", "rewards", "progress"})


def _reachable(address: str) -> str:
    """Where a client reaches "host:port" (a wildcard listen is reached on loopback)."""
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in ('0.0.0.0', '[::]', '') else host}:{port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_serving(target: str, timeout: float = STARTUP_SECONDS) -> None:
    """Wait until the gRPC health service at `target` answers SERVING."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                response = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{target} did not become healthy in {timeout} s")
            await asyncio.sleep(0.05)


async def wait_ready_http(target: str, path: str, timeout: float = STARTUP_SECONDS) -> None:
    """Wait until GET `path` on the HTTP server at `target` answers 200."""
    host, port = target.rsplit(":", 1)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode()
            )
            status_line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            if status_line.split()[1:2] == [b"200"]:
                return
        except (OSError, IndexError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{target}{path} did not answer 200 in {timeout} s")
        await asyncio.sleep(0.05)


@dataclass
class ServiceProcess:
    spec: ServiceSpec
    target: str
    process: asyncio.subprocess.Process
    log_path: Path | None
    # Where Prometheus scrapes it ("" when it serves no metrics).
    metrics_target: str = ""

    @property
    def port(self) -> int:
        return int(self.target.rsplit(":", 1)[1])

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut or an OOM kill."""
        await self.stop(signal.SIGKILL)


class Suite:
    """Services as separate processes, each on its own port, data under `data_dir`.

    `addresses` fixes where services listen ("host:port"); the others get free
    ports on 127.0.0.1, and so do their metrics unless `metrics_addresses` fixes
    them ("" or "0": no metrics). `log_dir` takes each service's output (JSON lines);
    without it, output goes to this terminal and `json_logs`, when given, keeps
    each service's JSON lines in `<json_logs>/<service>.log`.
    """

    def __init__(
        self,
        data_dir: Path,
        ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        addresses: Mapping[str, str] | None = None,
        json_logs: Path | None = None,
        metrics_addresses: Mapping[str, str] | None = None,
        databases: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        # A service's db setting (a postgresql:// URL) in place of its file under data_dir.
        self.databases = dict(databases or {})
        self.json_logs = json_logs
        self.addresses = {name: f"127.0.0.1:{port}" for name, port in (ports or {}).items()}
        self.addresses.update(addresses or {})
        self.metrics_addresses = dict(metrics_addresses or {})
        self.env = dict(env or {})
        self.log_dir = log_dir
        self.running: dict[str, ServiceProcess] = {}

    def address(self, name: str) -> str:
        if name not in self.addresses:
            self.addresses[name] = f"127.0.0.1:{free_port()}"
        return self.addresses[name]

    def metrics_address(self, name: str) -> str:
        if name not in self.metrics_addresses:
            self.metrics_addresses[name] = f"127.0.0.1:{free_port()}"
        return self.metrics_addresses[name]

    def port(self, name: str) -> int:
        return int(self.address(name).rsplit(":", 1)[1])

    def target(self, name: str) -> str:
        """Where clients reach the service (a wildcard listen is reached on loopback)."""
        return _reachable(self.address(name))

    def metrics_target(self, name: str) -> str:
        """Where Prometheus scrapes the service ("" when it serves no metrics)."""
        address = self.metrics_address(name).strip()
        return "" if address in ("", "0") else _reachable(address)

    def environment(self, spec: ServiceSpec) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env[spec.listen_env] = self.address(spec.name)
        env[spec.metrics_env] = self.metrics_address(spec.name)
        if self.json_logs is not None:
            env["LOG_FILE"] = str(self.json_logs / f"{spec.name}.log")
        if spec.db_env:
            env[spec.db_env] = self.databases.get(spec.name, str(self.data_dir / f"{spec.name}.db"))
        for variable, upstream in spec.upstreams.items():
            env[variable] = self.target(upstream)
        return env

    async def start(
        self, name: str, wait: bool = True, module: str | None = None
    ) -> ServiceProcess:
        """Starts `name` as `python -m <its module>`, or as `python -m <module>`:
        a test harness around the service, with the same environment."""
        spec = SPECS[name]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log" if self.log_dir else None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        output = log_path.open("ab") if log_path is not None else None
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module or spec.module,
            env=self.environment(spec),
            cwd=REPO,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT if output is not None else None,
        )
        if output is not None:
            output.close()
        running = ServiceProcess(
            spec, self.target(name), process, log_path, self.metrics_target(name)
        )
        self.running[name] = running
        if wait:
            await self.wait(name)
        return running

    async def wait(self, name: str) -> None:
        running = self.running[name]
        path = running.spec.readiness_path
        waiting = asyncio.ensure_future(
            wait_ready_http(running.target, path) if path else wait_serving(running.target)
        )
        exited = asyncio.ensure_future(running.process.wait())
        done, _ = await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            waiting.cancel()
            raise RuntimeError(f"{name} exited with {running.process.returncode} while starting")
        exited.cancel()
        waiting.result()

    async def start_all(self, names: list[str] | None = None) -> None:
        for name in names or [spec.name for spec in SERVICES if spec.exists()]:
            await self.start(name)

    async def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            await self.running.pop(name).stop()


async def run(data_dir: Path, starter: bool = False, db: str = "sqlite") -> None:
    present = [spec for spec in SERVICES if spec.exists()]
    databases: dict[str, str] = {}
    postgres = None
    if db == "postgres":
        postgres = LocalPostgres(data_dir / "pg")
        # One database per service on the local server; the rest keep their files.
        databases = {
            spec.name: postgres.database(spec.name) for spec in present if spec.name in ON_POSTGRES
        }
    # The terminal gets readable lines; every service also keeps JSON lines in a file.
    suite = Suite(
        data_dir,
        addresses={spec.name: spec.listen_address() for spec in present},
        json_logs=data_dir / "logs",
        metrics_addresses={spec.name: spec.metrics_address() for spec in present},
        databases=databases,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        starting = asyncio.ensure_future(suite.start_all())
        await asyncio.wait([starting, stop], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            return
        starting.result()
        if starter and "gateway" in suite.running:
            # Imported here: the starter speaks through tools.demo, which imports this module.
            from tools import starter as starter_program

            await starter_program.set_up_dev(suite.target("gateway"))
        print("Loyalty Arcade is running (gRPC, then Prometheus metrics):")
        for name, service in suite.running.items():
            metrics = f"http://{service.metrics_target}/metrics" if service.metrics_target else "-"
            print(f"  {name:<10} {service.target:<22} {metrics}")
        if "gateway" in suite.running:
            print(f"  Connect, gRPC-Web and gRPC: http://{suite.target('gateway')}")
            print("  A token for trying things: make token ROLE=player SUB=m-1")
            print(f"  Player app: http://{suite.target('gateway')}/app/")
            print(f"  Managers' console: http://{suite.target('gateway')}/console/")
        print(f"  JSON logs: {data_dir / 'logs'}/<service>.log")
        print("Ctrl-C stops every service.", flush=True)
        exits = [asyncio.ensure_future(s.process.wait()) for s in suite.running.values()]
        await asyncio.wait([stop, *exits], return_when=asyncio.FIRST_COMPLETED)
        for name, service in suite.running.items():
            if service.process.returncode is not None:
                print(f"{name} exited with {service.process.returncode}; stopping the rest")
    finally:
        await suite.stop_all()
        if postgres is not None:
            postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every Loyalty Arcade service.")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var")
    parser.add_argument(
        "--starter", action="store_true", help="set up the starter program (tools/starter.py)"
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: a local PostgreSQL under <data-dir>/pg for the services that support it",
    )
    arguments = parser.parse_args()
    asyncio.run(run(arguments.data_dir, arguments.starter, arguments.db))


if __name__ == "__main__":
    main()
