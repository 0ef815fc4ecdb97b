"""The examples docs/frontend.md and the README's first page show are what a real
suite answers: each curl command is sent as written (method, path, headers, body)
to the suite's gateway and its answer compared with the documented one, after the
narrow normalisation tests/support/doc_examples.py names; the README's loyalty-admin
steps are run from the checkout and must print what it shows."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio

from services.gateway import api
from services.gateway.domain import Audience
from tests.support import doc_examples as docs
from tools.demo import TokenMint
from tools.suite import Suite

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUITE_ENV = docs.SUITE_ENV


def player_calls() -> set[str]:
    """Every path the gateway exposes to the player role (api.py's allowlist)."""
    rules = {f"/{api.WALLET_SERVICE.full_name}/{m}": r for m, r in api.WALLET_RULES.items()}
    for upstream in (api.GAMES, api.CAMPAIGNS, api.REWARDS, api.PROGRESS):
        rules |= {f"/{upstream.service.full_name}/{m}": r for m, r in upstream.rules.items()}
    return {path for path, rule in rules.items() if rule.audience is Audience.PLAYER}


async def check(examples: docs.Examples, text: str, token: str) -> list[str]:
    """Sends every example of `text` in order; the paths it called."""
    shown = docs.documented(text)
    assert shown, "no examples found"
    paths = []
    for command, expected in shown:
        request = docs.parse_curl(command, token)
        frames = len(expected) if request.stream else 0
        status, answer = await examples.answer(request, frames)
        assert answer == expected, f"{command}\nanswered:\n{json.dumps(answer, indent=2)}"
        refused = isinstance(answer, dict) and "code" in answer
        assert (status == 200) != refused, (command, status)
        paths.append(request.path)
    return paths


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def examples(suite: Suite, mint: TokenMint) -> docs.Examples:
    await docs.prepare(suite.port("gateway"), suite.target("gateway"), mint)
    return docs.Examples(suite.port("gateway"))


async def test_every_player_call_of_the_frontend_doc_answers_as_documented(
    examples: docs.Examples, mint: TokenMint
) -> None:
    paths = await check(examples, docs.DOC.read_text(), mint.issue(docs.MEMBER, "player"))
    assert set(paths) - {"/dev/token"} == player_calls()
    # At least one stream, sent enveloped as Connect streaming wants it.
    assert {"WatchWallet", "WatchCatchObjects", "WatchAchievements"} <= {
        path.rsplit("/", 1)[1] for path in paths
    }


async def test_the_readme_first_page_shows_what_the_suite_and_the_tool_print(
    examples: docs.Examples, suite: Suite, mint: TokenMint
) -> None:
    readme = docs.README.read_text()
    first_page = readme[: readme.index("## Commands")]
    refusal = docs.section(first_page, "try-it-curl")
    await check(examples, refusal, mint.issue(docs.MEMBER, "player"))
    assert '"reason": "TOKEN_INVALID"' in refusal

    run_admin = docs.admin_runner(suite, mint.issue("alice", "campaign-manager"))
    steps = docs.console_steps(docs.section(first_page, "try-it-admin"))
    assert [command for command, _ in steps] == [docs.TRY_IT_LOGIN, *docs.TRY_IT_STEPS]
    for command, output in steps[1:]:
        assert await docs.run_step(command, run_admin) == output, command
