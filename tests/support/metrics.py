"""Scraping a service's metrics endpoint over real HTTP, and the settings value
that keeps a test's in-process servers off the fixed metrics ports."""

from __future__ import annotations

import asyncio
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# In-process servers serve no metrics unless a test asks for them on a free port
# (ANY_PORT): two servers of one service would both want its default port.
NO_METRICS = ""
ANY_PORT = "127.0.0.1:0"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Scrape:
    """One answer of GET /metrics, parsed."""

    text: str
    samples: tuple[Sample, ...]

    def value(self, name: str, **labels: str) -> float:
        """The sample `name` whose labels include `labels` (0 when there is none:
        Prometheus' counters start at zero)."""
        found = [s.value for s in self.samples if s.name == name and _has(s.labels, labels)]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0] if found else 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample `name` whose labels include `labels`."""
        return sum(s.value for s in self.samples if s.name == name and _has(s.labels, labels))

    def has(self, name: str, **labels: str) -> bool:
        return any(s.name == name and _has(s.labels, labels) for s in self.samples)

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def _has(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


async def scrape(port: int, host: str = "127.0.0.1") -> Scrape:
    """GET http://host:port/metrics, as Prometheus does (a thread does the blocking
    HTTP, so the servers on this test's event loop keep running)."""
    status, content_type, text = await asyncio.to_thread(_get, f"http://{host}:{port}/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    samples = tuple(
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    )
    return Scrape(text, samples)
