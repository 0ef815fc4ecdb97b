"""Prometheus metrics for every service, named once here.

Each service builds one `Metrics` (a registry of its own, never prometheus_client's
process-wide default, so one test process can hold several services) and hands it
to what it measures: the call context counts every RPC, the store's writer every
group commit, the outbox relay its retries. Hot paths only touch children looked
up once (a counter and a histogram per method and code: about a microsecond a
call). Figures that live in a database (the outbox backlog, budgets, stock,
codes, tiers) are read through the store at scrape time and kept
`cache_seconds`, so scrapes, however many, cost one read per interval and no
request pays for them. Such a figure describes the database, which replicas of a
service share: aggregate it across replicas with max(), not sum().

`MetricsEndpoint` (metrics_http.py) serves the registry over HTTP.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from services.kit.config import METRICS_CACHE_SECONDS, ServiceSettings

log = structlog.get_logger()

# Every counter would otherwise carry a `_created` series beside it, doubling what
# Prometheus stores for nothing an alert or a rate() uses.
disable_created_metrics()

# RPC and HTTP answers: 1 ms to 10 s (the gateway's default deadline is 5 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A group commit: the statements of every write in it, then COMMIT's fsync.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Writes per group commit, up to the writer's largest group (1,024).
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# A scrape never waits longer than this for one figure: it is left out instead.
READ_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")


class CallMeter:
    """One method's answers, each status code's children looked up once."""

    __slots__ = ("_by_code", "_duration", "_labels", "_requests")

    def __init__(self, requests: Counter, duration: Histogram, labels: tuple[str, ...]) -> None:
        self._requests = requests
        self._duration = duration
        self._labels = labels
        self._by_code: dict[str, tuple[Any, Any]] = {}

    def answered(self, code: str, seconds: float) -> None:
        """A unary call ended with `code` after `seconds`."""
        children = self._by_code.get(code)
        if children is None:
            children = self._by_code[code] = (
                self._requests.labels(*self._labels, code),
                self._duration.labels(*self._labels, code),
            )
        children[0].inc()
        children[1].observe(seconds)

    def ended(self, code: str) -> None:
        """A stream ended with `code`: counted, but its lifetime is no latency."""
        self._requests.labels(*self._labels, code).inc()


class NoMeter:
    """What a call records when its server has no metrics."""

    __slots__ = ()

    def answered(self, code: str, seconds: float) -> None:
        pass

    def ended(self, code: str) -> None:
        pass


NO_METER = NoMeter()


class CallMetrics:
    """A requests counter and a latency histogram over the same labels and the code."""

    def __init__(
        self,
        registry: CollectorRegistry,
        prefix: str,
        labels: tuple[str, ...],
        requests_help: str,
        duration_help: str,
    ) -> None:
        names = (*labels, "code")
        self._requests = Counter(f"{prefix}_requests", requests_help, names, registry=registry)
        self._duration = Histogram(
            f"{prefix}_duration_seconds",
            duration_help,
            names,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def meter(self, *labels: str) -> CallMeter:
        return CallMeter(self._requests, self._duration, labels)


class RpcMetrics(CallMetrics):
    """The RPCs a server answers (its health and reflection services aside)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(
            registry,
            "loyalty_rpc",
            ("service", "method"),
            "RPCs answered, by gRPC service, method and status code (a stream when it ends).",
            "How long unary RPCs took to answer, by service, method and status code.",
        )

    def method(self, path: str) -> CallMeter:
        """The meter of "/package.Service/Method"."""
        service, _, method = path.lstrip("/").partition("/")
        return self.meter(service, method)


class StoreMetrics:
    """What the store's writer does with the writes it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._writes = Histogram(
            "loyalty_store_commit_writes",
            "Writes committed together in one transaction (group commit).",
            buckets=GROUP_BUCKETS,
            registry=registry,
        )
        self._duration = Histogram(
            "loyalty_store_commit_duration_seconds",
            "How long one commit took, from BEGIN to the end of COMMIT's fsync.",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self._failures = Counter(
            "loyalty_store_commit_failures",
            "Commits that failed as a whole (every write in them was refused).",
            registry=registry,
        )

    def committed(self, writes: int, seconds: float) -> None:
        self._writes.observe(writes)
        self._duration.observe(seconds)

    def failed(self) -> None:
        self._failures.inc()


class OutboxMetrics:
    """The relay's retries: entries their own request did not settle."""

    OUTCOMES = ("settled", "deferred", "error")

    def __init__(self, registry: CollectorRegistry) -> None:
        self._retries = Counter(
            "loyalty_outbox_relay_retries",
            "Outbox entries the relay posted again, by kind and outcome (settled; deferred:"
            " the ledger did not answer; error: applying the answer failed).",
            ("kind", "outcome"),
            registry=registry,
        )

    def retried(self, kind: str, outcome: str) -> None:
        self._retries.labels(kind, outcome).inc()


class HttpMetrics:
    """An HTTP server's requests by route (a bounded set of names) and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "loyalty_http_requests",
            "HTTP requests answered, by route and HTTP status.",
            ("route", "status"),
            registry=registry,
        )
        self._duration = Histogram(
            "loyalty_http_request_duration_seconds",
            "How long HTTP requests took to answer, by route (streams excluded).",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def answered(self, route: str, status: int, seconds: float | None) -> None:
        """`seconds` is None for a stream, whose lifetime is no latency."""
        self._requests.labels(route, str(status)).inc()
        if seconds is not None:
            self._duration.labels(route).observe(seconds)


class Sampled(Generic[T]):
    """Figures read at scrape time (`read`, awaited at most every `cache_seconds`)
    and turned into metric families by `families` whenever the registry is
    collected, so a figure derived from the time (an age) stays current."""

    def __init__(
        self,
        name: str,
        read: Callable[[], Awaitable[T]],
        families: Callable[[T], Iterable[Metric]],
        cache_seconds: float,
    ) -> None:
        self.name = name
        self._read = read
        self._families = families
        self._cache_seconds = cache_seconds
        self._snapshot: T | None = None
        self._fresh_until = -math.inf
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() < self._fresh_until:
                return
            try:
                self._snapshot = await asyncio.wait_for(self._read(), READ_TIMEOUT_SECONDS)
            except Exception as error:
                # A figure that cannot be read is left out, not served stale.
                self._snapshot = None
                log.warning("metrics_read_failed", figures=self.name, error=repr(error)[:300])
            # A failed read waits for the next interval too, so scrapes never pile up.
            self._fresh_until = time.monotonic() + self._cache_seconds

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot
        return [] if snapshot is None else list(self._families(snapshot))


@dataclass(frozen=True, slots=True)
class Figure:
    """One labelled value of a gauge read from a store."""

    labels: tuple[str, ...]
    value: float


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def labelled_gauge(
    name: str, documentation: str, labels: Sequence[str], figures: Iterable[Figure]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for figure in figures:
        family.add_metric(list(figure.labels), figure.value)
    return family


class Metrics:
    """One service's registry and where it is served (`listen`: "host:port"; empty
    serves nothing, and the figures are still counted)."""

    def __init__(self, listen: str = "", cache_seconds: float = METRICS_CACHE_SECONDS) -> None:
        self.listen = "" if listen.strip() in ("", "0") else listen.strip()
        self.cache_seconds = cache_seconds
        self.registry = CollectorRegistry()
        self._sampled: list[Sampled] = []

    @classmethod
    def of(cls, settings: ServiceSettings) -> Metrics:
        """From a service's settings (`metrics_listen`, `metrics_cache_seconds`)."""
        return cls(settings.metrics_listen, settings.metrics_cache_seconds)

    @cached_property
    def rpc(self) -> RpcMetrics:
        return RpcMetrics(self.registry)

    @cached_property
    def store(self) -> StoreMetrics:
        return StoreMetrics(self.registry)

    @cached_property
    def outbox(self) -> OutboxMetrics:
        return OutboxMetrics(self.registry)

    @cached_property
    def http(self) -> HttpMetrics:
        return HttpMetrics(self.registry)

    @cached_property
    def upstream(self) -> CallMetrics:
        return CallMetrics(
            self.registry,
            "loyalty_upstream",
            ("upstream", "method"),
            "Calls to upstream services, by upstream, method and status code (a stream when"
            " it ends).",
            "How long unary calls to upstream services took, by upstream, method and code.",
        )

    def sample(
        self,
        name: str,
        read: Callable[[], Awaitable[T]],
        families: Callable[[T], Iterable[Metric]],
    ) -> None:
        """Serve `families(await read())`, read again at most every cache_seconds."""
        sampled = Sampled(name, read, families, self.cache_seconds)
        self._sampled.append(sampled)
        self.registry.register(sampled)

    def register(self, collector: Any) -> None:
        """A collector whose figures are already in memory (read at every scrape)."""
        self.registry.register(collector)

    async def refresh(self) -> None:
        """Bring the figures read from stores up to date (each scrape calls this)."""
        await asyncio.gather(*(sampled.refresh() for sampled in self._sampled))
