"""The curl examples of docs/frontend.md and the README, run against a real gateway.

One module writes them and checks them, so they cannot drift:

- `python -m tests.support.doc_examples` starts a suite (tools.suite, free ports),
  sets up the program the examples need (the starter program `make run` has, plus
  a reward, an offer and a challenge), makes every call of `CALLS` over real HTTP
  as curl would, and writes each call's curl command and its answer between the
  `<!-- examples:start -->` and `<!-- examples:end -->` marks of docs/frontend.md.
- tests/e2e/test_docs.py parses the examples back out of the documents, sends each
  exactly as the curl command shows it (method, path, headers, body) with a real
  token, and compares the real answer with the documented one.

What varies from run to run is replaced by a placeholder, by `normalised` only (the
doc's "How these examples are checked" says the same): every RFC 3339 time is
`<timestamp>`, the seeds and their hashes are `<seed>`, a token `<token>`, what a
wheel's draw decides (and a catch session's seeded objects) is `<drawn>` whether
present or omitted, the weekend bonus's state `<depends on the day>`; a catch
session's stream shows its first two objects. Everything else is compared as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import secrets
import shlex
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.support.gateway import REPO, enveloped, envelopes, http_request
from tools.demo import TokenMint

DOC = REPO / "docs" / "frontend.md"
README = REPO / "README.md"
START, END = "<!-- examples:start -->", "<!-- examples:end -->"
MEMBER = "m-1"
# The address the examples show; a test sends to its own gateway instead.
SHOWN_GATEWAY = "localhost:8080"
STREAM_SECONDS = 30.0
CATCH_OVER_SECONDS = 60.0
# How many frames of a catch session's stream the doc shows (its objects are drawn).
CATCH_FRAMES = 2
# The activities happen at a fixed time, a Wednesday years ahead, so their answers are
# the same whenever the examples run (no weekend bonus; after the member joins the
# challenge, as its opt-in requires): the suite accepts activities that far ahead.
OCCUR_TIME = "2036-06-04T09:30:00Z"
YEARS = str(12 * 366 * 86_400)
SUITE_ENV = {
    "CAMPAIGNS_LATENESS_SECONDS": YEARS,
    "CAMPAIGNS_MAX_FUTURE_SECONDS": YEARS,
    "CAMPAIGNS_POINTS_TTL_DAYS": "3650",
}
UNARY = "application/json"
STREAMING = "application/connect+json"

Message = Any
GAMES = "loyalty.games.v1.GamesService"
CAMPAIGNS = "loyalty.campaigns.v1.CampaignsService"
WALLET = "loyalty.gateway.v1.WalletService"
REWARDS = "loyalty.rewards.v1.RewardsService"
PROGRESS = "loyalty.progress.v1.ProgressService"


@dataclass(frozen=True)
class Call:
    """One documented player call: its heading, what it is for, its request."""

    service: str
    method: str
    about: str
    request: Message
    stream: bool = False
    # curl's --max-time for a stream that does not end by itself.
    max_time: int = 0
    # How many of a stream's frames the doc shows (the test reads as many).
    frames: int = 0
    # The bearer token the command sends (empty: none).
    token: str = "$TOKEN"

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


# The development sign-in: what the apps' sign-in pages call (docs/gateway.md).
SIGN_IN = [
    Call(
        "dev",
        "token",
        "A development gateway (its own secret, no JWKS keys) issues tokens at "
        "`POST /dev/token` for roles `player`, `campaign-manager` and `admin`.",
        {"subject": MEMBER, "role": "player"},
        token="",
    )
]

# Refusals as curl shows them: the reason and the field violations readable in `debug`.
REFUSALS = [
    Call(
        WALLET,
        "GetWallet",
        "A token that is not one: `UNAUTHENTICATED`, HTTP 401, reason `TOKEN_INVALID`.",
        {},
        token="not-a-token",
    ),
    Call(
        WALLET,
        "GetWallet",
        "A field the request does not have: `INVALID_ARGUMENT`, HTTP 400, the field "
        "named in a BadRequest violation with a suggestion.",
        {"memberid": MEMBER},
    ),
]

# The player calls, in the order a player makes them: the progress calls first
# (progress follows the other services' feeds, so later calls would race them),
# the wallet and rewards before the wheel (whose draw would change the balance).
CALLS = [
    Call(
        PROGRESS,
        "JoinChallenge",
        "Join a challenge (a challenge that asks members to join counts only after it).",
        {"challengeId": "review-twice"},
    ),
    Call(
        PROGRESS,
        "GetMemberProgress",
        "Tiers, badges, streaks and challenges, with what is left to the next step.",
        {},
    ),
    Call(
        CAMPAIGNS,
        "ListPublicCampaigns",
        "The campaigns a member may see: name, description, what they pay, when they are "
        "live for this member. Never a budget or targeting.",
        {},
    ),
    Call(
        CAMPAIGNS,
        "GetPublicCampaign",
        "One campaign's public face.",
        {"campaignId": "earn-review"},
    ),
    Call(
        CAMPAIGNS,
        "GetMember",
        "The member's profile as campaigns knows it (tier, zone, birthday, segments).",
        {},
    ),
    Call(
        CAMPAIGNS,
        "DryRunActivity",
        '"What would I earn": the breakdown an activity would get now; nothing is posted.',
        {"activity": {"activityId": "review-1", "type": "product_review", "occurTime": OCCUR_TIME}},
    ),
    Call(
        CAMPAIGNS,
        "TrackActivity",
        "Report an activity a player may report (social_share, product_review, "
        "profile_completed, app_login, referral_invite_sent); the activity id is the "
        "idempotency key.",
        {"activity": {"activityId": "review-1", "type": "product_review", "occurTime": OCCUR_TIME}},
    ),
    Call(
        CAMPAIGNS,
        "TrackActivity",
        "A second review, which completes the challenge joined above.",
        {"activity": {"activityId": "review-2", "type": "product_review", "occurTime": OCCUR_TIME}},
    ),
    Call(
        PROGRESS,
        "WatchAchievements",
        "A server stream of the member's achievements (badge levels, completed challenges) "
        "as progress records them; it does not end by itself (`--max-time`), and resumes "
        "after the last `sequence` seen.",
        {"afterSequence": "0"},
        stream=True,
        max_time=3,
        frames=1,
    ),
    Call(
        CAMPAIGNS,
        "TrackActivity",
        "An activity no campaign pays earns nothing, and the breakdown says why.",
        {
            "activity": {
                "activityId": "invite-1",
                "type": "referral_invite_sent",
                "occurTime": OCCUR_TIME,
            }
        },
    ),
    Call(
        WALLET,
        "GetWallet",
        "Balance, available (balance minus holds), lifetime earned, what expires soon.",
        {},
    ),
    Call(
        WALLET,
        "ListWalletEntries",
        "The history, oldest first, one page (`pageToken` for the next).",
        {"pageSize": 10},
    ),
    Call(
        WALLET,
        "WatchWallet",
        "A server stream of the member's changes: the history after `afterSequence`, "
        "then each new change as it commits. It does not end by itself: curl stops it "
        "with `--max-time` (exit status 28); resume with the last `sequence` seen.",
        {"afterSequence": "0"},
        stream=True,
        max_time=3,
        frames=2,
    ),
    Call(
        REWARDS,
        "ListCatalog",
        "The rewards the member can see, with whether they can afford each.",
        {"memberId": MEMBER},
    ),
    Call(
        REWARDS,
        "Redeem",
        "Spend points on a reward; `requestId` makes a retry return the same redemption.",
        {"memberId": MEMBER, "rewardId": "coffee", "requestId": "redeem-1"},
    ),
    Call(
        REWARDS,
        "GetRedemption",
        "One redemption, with its code.",
        {"memberId": MEMBER, "redemptionId": "<redemption>"},
    ),
    Call(REWARDS, "ListMyRedemptions", "The member's redemptions.", {"memberId": MEMBER}),
    Call(
        REWARDS,
        "ClaimPrize",
        "Turn a prize won on a wheel (a prize unit such as `prize:free-coffee`) into a "
        "redemption; here the member has none, and the refusal says so.",
        {"memberId": MEMBER, "prizeUnit": "prize:free-coffee", "requestId": "claim-1"},
    ),
    Call(
        REWARDS,
        "SetPreferences",
        "The categories the member likes, for the offers chosen for them.",
        {"memberId": MEMBER, "preferences": {"favouriteCategories": ["drinks"]}},
    ),
    Call(REWARDS, "GetPreferences", "The member's preferences.", {"memberId": MEMBER}),
    Call(
        REWARDS,
        "GetMyOffer",
        "The offer chosen for this visit (the same offer for the same visit id).",
        {"memberId": MEMBER, "visitId": "visit-1"},
    ),
    Call(
        REWARDS,
        "AcceptOffer",
        "Accept the visit's offer.",
        {"memberId": MEMBER, "visitId": "visit-1"},
    ),
    Call(GAMES, "ListWheels", "The wheels, each with its published odds.", {}),
    Call(
        GAMES,
        "GetWheel",
        "One wheel, with the member's spins left today.",
        {"wheelId": "daily"},
    ),
    Call(
        GAMES,
        "GetSeedPair",
        "The commitment to the member's next server seed (its SHA-256), their client "
        "seed and the next nonce: a spin is drawn from these.",
        {},
    ),
    Call(
        GAMES,
        "SetClientSeed",
        "The member's own client seed for the next spins.",
        {"clientSeed": "my-lucky-seed"},
    ),
    Call(
        GAMES,
        "Spin",
        "A spin; `requestId` is the idempotency key (the same id returns the same spin).",
        {"wheelId": "daily", "requestId": "spin-1"},
    ),
    Call(
        GAMES,
        "RotateSeed",
        "Reveal the server seed the spins so far were drawn from, and commit to a new one.",
        {"clientSeed": "my-next-seed"},
    ),
    Call(
        GAMES,
        "VerifySpin",
        "Recompute a spin from its revealed seeds (tools/verify_spin.py does it offline).",
        {"spinId": "<spin>"},
    ),
    Call(
        GAMES,
        "ListPlays",
        "The member's plays in the order they were recorded: a spin is recorded when "
        "drawn (pending, its draw hidden) and again when settled.",
        {},
    ),
    Call(
        GAMES,
        "GetCatchGame",
        "A catch game's rules: the playing field's width, the basket, each object's "
        "size, points and fall time, so a frontend draws what the server scores.",
        {"gameId": "coins"},
    ),
    Call(
        GAMES,
        "StartCatch",
        "Start a session; its objects are revealed by WatchCatchObjects shortly before "
        "each appears.",
        {"gameId": "coins", "requestId": "catch-1"},
    ),
    Call(
        GAMES,
        "WatchCatchObjects",
        "A server stream that ends by itself: each object of the session at its reveal "
        "time, then the end of the stream when the last is out (the doc shows the first "
        "two frames).",
        {"sessionId": "<session>"},
        stream=True,
        frames=CATCH_FRAMES,
    ),
    Call(
        GAMES,
        "SubmitCatch",
        "Submit once the session's duration is over (before then: SUBMITTED_TOO_SOON). "
        "A player sends each catch (`objectId`, `catchMillis`, `basketX`) and the "
        "basket's trace (`millis`, `x` samples); this one sends neither, so the trace "
        "is judged missing and the session pays nothing.",
        {"sessionId": "<session>", "catches": [], "claimedScore": "0"},
    ),
    Call(GAMES, "GetLeaderboard", "This week's best scores.", {"gameId": "coins"}),
]


# Placeholders -----------------------------------------------------------------

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
SEED_FIELDS = frozenset({"serverSeed", "serverSeedSha256", "seedSha256"})
DRAWN = "<drawn>"
TODAY = "<depends on the day>"
SEED = "<seed>"
_SPIN_DRAW = tuple(
    f"spin.{path}"
    for path in (
        "outcome",
        "landedSegmentIndex",
        "prize",
        "pointsBalanceAfter",
        "transferIds",
        "proof.drawValue",
        "proof.drawnSegmentIndex",
    )
)
# By call, what a wheel's draw decides (or a catch session's seed, or a new member's
# random client seed): always shown as its placeholder, even when the value is omitted.
PLACED: dict[str, tuple[tuple[str, str], ...]] = {
    # The starter's weekend bonus (the fifth by id) is live on weekends only.
    "ListPublicCampaigns": (("campaigns.4.state", TODAY),),
    "GetSeedPair": (("seedPair.clientSeed", SEED),),
    "Spin": tuple((path, DRAWN) for path in _SPIN_DRAW),
    "VerifySpin": tuple(
        (path, DRAWN) for path in (*_SPIN_DRAW, "recomputedDrawValue", "recomputedSegmentIndex")
    ),
    "ListPlays": tuple(
        (f"plays.1.{path}", DRAWN)
        for path in (
            "landedSegmentIndex",
            "prize",
            "transferIds",
            "pointsWon",
            "proof.drawValue",
            "proof.drawnSegmentIndex",
        )
    ),
    "WatchCatchObjects": tuple(
        (f"{frame}.object.{key}", DRAWN)
        for frame in range(CATCH_FRAMES)
        for key in ("type", "spawnMillis", "revealMillis", "x", "fallMillis", "points", "width")
    ),
}
# The ids the calls refer to, taken from earlier answers: placeholder -> (call, path).
REFERENCES = {
    "<redemption>": ("Redeem", "redemption.redemptionId"),
    "<spin>": ("Spin", "spin.spinId"),
    "<session>": ("StartCatch", "session.sessionId"),
}


def normalised(method: str, answer: Message) -> Message:
    """The answer as the doc shows it: times, seeds and what a draw decides replaced."""
    plain = _replace(answer)
    for path, placeholder in PLACED.get(method, ()):
        _set(plain, path.split("."), placeholder)
    return plain


def _replace(value: Message, key: str = "") -> Message:
    if isinstance(value, dict):
        return {k: _replace(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(item, key) for item in value]
    if key in SEED_FIELDS:
        return SEED
    if key == "token":
        return "<token>"
    if isinstance(value, str) and TIMESTAMP.fullmatch(value):
        return "<timestamp>"
    return value


def _set(value: Message, path: list[str], placeholder: str) -> None:
    *parents, last = path
    for part in parents:
        value = value[int(part)] if isinstance(value, list) else value.setdefault(part, {})
    if isinstance(value, list):
        value[int(last)] = placeholder
    else:
        value[last] = placeholder


def _get(value: Message, path: str) -> Message:
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


# Requests as curl sends them --------------------------------------------------


@dataclass(frozen=True)
class Request:
    """An HTTP request as a documented curl command makes it."""

    path: str
    headers: dict[str, str]
    body: bytes
    stream: bool

    @property
    def method(self) -> str:
        return self.path.split("/")[-1]


def curl_command(call: Call) -> str:
    """The curl command of a call, as the doc shows it."""
    body = json.dumps(call.request)
    target = f"{SHOWN_GATEWAY}{call.path}"
    auth = f'-H "authorization: Bearer {call.token}" ' if call.token else ""
    if not call.stream:
        return f"curl -s {target} \\\n  {auth}-H 'content-type: {UNARY}' \\\n  -d '{body}'"
    prefix = "".join(f"\\x{byte:02x}" for byte in len(body.encode()).to_bytes(4, "big"))
    limit = f" --max-time {call.max_time}" if call.max_time else ""
    return (
        f"printf '\\x00{prefix}%s' '{body}' |\n"
        f"  curl -s -N{limit} {target} \\\n  {auth}-H 'content-type: {STREAMING}' \\\n"
        "  --data-binary @- --output -"
    )


def parse_curl(command: str, token: str) -> Request:
    """The request a documented curl command sends (the forms curl_command writes)."""
    words = shlex.split(command.replace("\\\n", " ").replace("$TOKEN", token))
    prefix = b""
    if words[0] == "printf":
        # printf '\x00<4-byte length>%s' 'JSON' | curl ... --data-binary @-
        pipe = words.index("|")
        form, argument = words[1:pipe]
        escapes, rest = form.split("%s")
        assert rest == "", form
        prefix = bytes(int(code, 16) for code in re.findall(r"\\x([0-9a-f]{2})", escapes))
        assert escapes == "".join(f"\\x{b:02x}" for b in prefix), form
        words, stdin = words[pipe + 1 :], argument.encode()
        # The prefix is Connect's: flags 0 and the message's length.
        assert prefix == enveloped(stdin)[:5], f"the envelope does not fit its message: {form}"
    assert words[0] == "curl", command
    headers: dict[str, str] = {}
    body, url, index = b"", "", 1
    while index < len(words):
        word = words[index]
        if word in ("-H", "-d", "--data-binary"):
            value = words[index + 1]
            index += 2
            if word == "-H":
                name, _, text = value.partition(":")
                headers[name.strip().lower()] = text.strip()
            elif word == "-d":
                body = value.encode()
            else:
                assert value == "@-" and prefix, command
                body = prefix + stdin
        elif word == "--max-time":
            index += 2
        elif word.startswith("-"):
            index += 1
        else:
            url, index = word, index + 1
    path = "/" + url.split("/", 1)[1]
    return Request(path, headers, body, bool(prefix))


async def send(port: int, request: Request, frames: int = 0) -> tuple[int, Message]:
    """The answer's HTTP status and JSON: a unary call's body, or a stream's first
    `frames` messages (fewer when it ends first; its end is then the last item)."""
    if not request.stream:
        response = await http_request(port, "POST", request.path, request.headers, request.body)
        return response.status, response.json()
    return await asyncio.to_thread(_read_frames, port, request, frames)


def _read_frames(port: int, request: Request, wanted: int) -> tuple[int, Message]:
    """A Connect stream's frames as they come, until `wanted` or its end: a stream
    that never ends is left open no longer than that (as curl's --max-time does), and
    one that sends fewer fails on the socket's timeout, never hangs."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=STREAM_SECONDS)
    try:
        connection.request("POST", request.path, body=request.body, headers=request.headers)
        response = connection.getresponse()
        messages: list[Message] = []
        while len(messages) < wanted:
            head = response.read(5)
            if len(head) < 5:
                break
            ((flags, message),) = envelopes(head + response.read(int.from_bytes(head[1:], "big")))
            messages.append(json.loads(message) if flags == 0 else {"end": json.loads(message)})
            if flags & 0x02:
                break
        return response.status, messages
    finally:
        connection.close()


# The program the examples need ------------------------------------------------


async def prepare(port: int, target: str, mint: TokenMint) -> None:
    """The starter program `make run` sets up, then what only the examples need:
    a coffee for 50 points with its codes, an offer of it, a challenge, the member."""
    from tools import starter

    manager = mint.issue("docs", "campaign-manager")
    await starter.set_up(target, manager)

    async def call(service: str, method: str, body: Message) -> Message:
        status, answer = await send(port, _request(service, method, body, manager))
        assert status == 200, (method, answer)
        return answer

    await call(
        CAMPAIGNS,
        "UpsertMember",
        {"member": {"memberId": MEMBER, "timeZone": "Europe/Paris", "tier": "silver"}},
    )
    reward = {
        "title": "Free coffee",
        "description": "Any coffee, any size",
        "category": "drinks",
        "price": "50",
        "kind": "REWARD_KIND_CODE_POOL",
        "timeZone": "Europe/Paris",
    }
    await call(REWARDS, "CreateReward", {"rewardId": "coffee", "spec": reward})
    await call(REWARDS, "StockReward", {"rewardId": "coffee", "quantity": "3", "requestId": "s1"})
    codes = ["code", "COFFEE-1", "COFFEE-2", "COFFEE-3"]
    await call(
        REWARDS,
        "ImportCodes",
        {"rewardId": "coffee", "importId": "i1", "firstLine": "1", "lines": codes},
    )
    offer = {"title": "A coffee on us", "category": "drinks", "rewardId": "coffee", "weight": 1}
    await call(REWARDS, "UpsertOffer", {"offerId": "coffee-offer", "spec": offer})
    challenge = {
        "id": "review-twice",
        "challenge": {
            "displayName": "Review twice this week",
            "schedule": {
                "timeZone": "Europe/Paris",
                "start": {"year": 2026, "month": 1, "day": 5},
                "duration": f"{7 * 86_400}s",
                "rrule": "FREQ=WEEKLY",
            },
            "steps": [
                {
                    "stepId": "reviews",
                    "rule": {"measure": "MEASURE_ACTIVITY_COUNT", "activityType": "product_review"},
                    "target": "2",
                }
            ],
            "optIn": True,
        },
    }
    await call(PROGRESS, "ApplyDefinition", {"definition": challenge})


def _request(service: str, method: str, body: Message, token: str) -> Request:
    headers = {"content-type": UNARY, "authorization": f"Bearer {token}"}
    return Request(f"/{service}/{method}", headers, json.dumps(body).encode(), False)


class Examples:
    """Sends a document's examples in order; answers as the doc shows them."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.answers: dict[str, Message] = {}

    async def answer(self, request: Request, frames: int = 0) -> tuple[int, Message]:
        """The status and the normalised answer of one documented request (a stream's
        first `frames` messages)."""
        deadline = asyncio.get_running_loop().time() + CATCH_OVER_SECONDS
        while True:
            status, answer = await send(self._port, request, frames)
            too_soon = _reason(answer) == "SUBMITTED_TOO_SOON"
            # A catch is submitted once its session is over, as a player would.
            if not too_soon or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        self.answers[request.method] = answer
        return status, normalised(request.method, answer)

    def filled(self, call: Call) -> Call:
        """The call with the ids it refers to (`<spin>`...) taken from earlier answers:
        the doc shows the real ids (derived from the member and request ids, so the
        same in every run)."""
        body = json.dumps(call.request)
        for placeholder, (method, path) in REFERENCES.items():
            if placeholder in body:
                value = _get(self.answers[method], path)
                body = body.replace(f'"{placeholder}"', json.dumps(value))
        return replace(call, request=json.loads(body))


def _reason(answer: Message) -> str | None:
    if not isinstance(answer, dict):
        return None
    for detail in answer.get("details", []):
        if detail.get("type") == "google.rpc.ErrorInfo":
            return detail.get("debug", {}).get("reason")
    return None


# The documents ------------------------------------------------------------------

EXAMPLE = re.compile(r"```sh\n((?:curl|printf) [^`]*?)\n```\n\n```json\n(.*?)\n```", re.S)
CONSOLE = re.compile(r"```console\n(.*?)```", re.S)
# The README's first page: the managers' tool on an example, as a new user runs it.
TRY_IT_STEPS = (
    "ls examples",
    "bin/loyalty-admin plan examples/bonus-48h.yaml",
    "bin/loyalty-admin apply examples/bonus-48h.yaml",
)
TRY_IT_LOGIN = "export LOYALTY_TOKEN=$(make -s token ROLE=campaign-manager SUB=alice)"


def section(text: str, name: str) -> str:
    begin = text.index(f"<!-- {name}:start -->")
    return text[begin : text.index(f"<!-- {name}:end -->", begin)]


def documented(text: str) -> list[tuple[str, Message]]:
    """Every (curl command, answer) pair of a document: a sh block holding one curl
    command, followed by the json block of its answer."""
    return [(command, json.loads(answer)) for command, answer in EXAMPLE.findall(text)]


def console_steps(text: str) -> list[tuple[str, str]]:
    """The (command, output) pairs of the console blocks in `text`."""
    steps: list[tuple[str, str]] = []
    for block in CONSOLE.findall(text):
        for line in block.splitlines(keepends=True):
            if line.startswith("$ "):
                steps.append((line[2:].strip(), ""))
            else:
                command, output = steps[-1]
                steps[-1] = (command, output + line)
    return steps


def render(command: str, answer: Message) -> str:
    return f"```sh\n{command}\n```\n\n```json\n{json.dumps(answer, indent=2)}\n```\n"


async def _rendered(examples: Examples, calls: list[Call], token: str, headings: bool) -> str:
    """Each call's purpose, command and real answer (under its service's heading)."""
    parts, service = [], ""
    for call in calls:
        if headings and call.service != service:
            service = call.service
            parts.append(f"### {service}\n")
        command = curl_command(examples.filled(call))
        status, answer = await examples.answer(parse_curl(command, token), call.frames)
        refusal = call in REFUSALS or call.method == "ClaimPrize"
        assert (status == 200) != refusal, (call.method, status, answer)
        title = f"#### {call.method}\n\n" if headings else ""
        parts.append(f"{title}{call.about}\n\n{render(command, answer)}")
    return "\n".join(parts)


async def run_step(command: str, run_admin) -> str:
    """What one try-it command prints: `ls` here, loyalty-admin through `run_admin`."""
    if command.startswith("ls "):
        process = await asyncio.create_subprocess_exec(
            *command.split(), cwd=REPO, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        return out.decode()
    return await run_admin(command)


def admin_runner(suite, token: str):
    """Runs a README loyalty-admin command (`bin/loyalty-admin ...`) from the checkout
    against `suite`'s gateway; what it prints."""
    from tests.support.e2e import admin

    async def run_admin(command: str) -> str:
        program, *args = command.split()
        code, out, err = await admin(suite, token, *args, program=REPO / program, cwd=REPO)
        assert code == 0, (command, err)
        return out

    return run_admin


def _replaced(text: str, name: str, content: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    begin, finish = text.index(start) + len(start), text.index(end)
    return f"{text[:begin]}\n{content}{text[finish:]}"


async def generate(directory: Path) -> None:
    from tests.support.e2e import start_suite

    suite, mint = await start_suite(directory, **SUITE_ENV)
    try:
        port = suite.port("gateway")
        await prepare(port, suite.target("gateway"), mint)
        examples, token = Examples(port), mint.issue(MEMBER, "player")
        doc = DOC.read_text()
        for name, calls, headings in (
            ("sign-in", SIGN_IN, False),
            ("refusals", REFUSALS, False),
            ("examples", CALLS, True),
        ):
            doc = _replaced(doc, name, await _rendered(examples, calls, token, headings))
        readme = README.read_text()
        readme = _replaced(
            readme, "try-it-curl", await _rendered(examples, REFUSALS[:1], token, False)
        )
        run_admin = admin_runner(suite, mint.issue("alice", "campaign-manager"))
        steps = [f"$ {TRY_IT_LOGIN}\n"]
        for command in TRY_IT_STEPS:
            steps.append(f"$ {command}\n{await run_step(command, run_admin)}")
        readme = _replaced(readme, "try-it-admin", "```console\n" + "".join(steps) + "```\n")
    finally:
        await suite.stop_all()
    DOC.write_text(doc)
    README.write_text(readme)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory(prefix=f"doc-examples-{secrets.token_hex(2)}-") as tmp:
        asyncio.run(generate(Path(tmp)))


if __name__ == "__main__":
    main()
