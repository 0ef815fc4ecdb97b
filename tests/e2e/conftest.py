"""End to end: each test module starts one suite (module-scoped fixtures on the
module's event loop) and one long-lived Node client process (helpers in
tests/support/e2e.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from google.rpc import error_details_pb2, status_pb2
from loyalty.campaigns.v1 import campaigns_service_pb2
from loyalty.games.v1 import games_service_pb2
from loyalty.gateway.v1 import gateway_service_pb2
from loyalty.progress.v1 import progress_service_pb2
from loyalty.rewards.v1 import rewards_service_pb2

from tests.support.e2e import NodeClient, start_suite
from tests.support.gateway import descriptor_set
from tools.demo import TokenMint
from tools.suite import Suite


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running(request, tmp_path_factory) -> AsyncIterator[tuple[Suite, TokenMint]]:
    """This module's suite, with the module's SUITE_ENV on top of suite_env()."""
    overrides = getattr(request.module, "SUITE_ENV", {})
    suite, mint = await start_suite(tmp_path_factory.mktemp("suite"), **overrides)
    yield suite, mint
    await suite.stop_all()


@pytest.fixture(scope="module")
def suite(running: tuple[Suite, TokenMint]) -> Suite:
    return running[0]


@pytest.fixture(scope="module")
def mint(running: tuple[Suite, TokenMint]) -> TokenMint:
    return running[1]


@pytest.fixture(scope="session")
def e2e_descriptors(node_modules: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("e2e-descriptors") / "api.binpb"
    path.write_bytes(
        descriptor_set(
            games_service_pb2.DESCRIPTOR,
            campaigns_service_pb2.DESCRIPTOR,
            gateway_service_pb2.DESCRIPTOR,
            rewards_service_pb2.DESCRIPTOR,
            progress_service_pb2.DESCRIPTOR,
            error_details_pb2.DESCRIPTOR,
            status_pb2.DESCRIPTOR,
        )
    )
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(e2e_descriptors: Path, suite: Suite) -> AsyncIterator[NodeClient]:
    """The Node clients, pointed at this module's gateway."""
    client = await NodeClient.start(e2e_descriptors, suite.port("gateway"))
    yield client
    await client.close()
