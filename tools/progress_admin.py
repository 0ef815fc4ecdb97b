"""loyalty-admin progress ...: member progress for managers, through the gateway.

    loyalty-admin progress apply FILE        tier programs, badges, streaks, challenges
    loyalty-admin progress list [--kind K]   definitions and their versions
    loyalty-admin progress archive ID        stop a definition (what it awarded stays)
    loyalty-admin progress show MEMBER       a member's tiers, badges, streaks, challenges
    loyalty-admin progress events MEMBER     the events that made it
    loyalty-admin progress floor PROGRAM MEMBER TIER --until 2026-12-31T00:00:00Z --reason ...
    loyalty-admin progress dry-run FILE      where members would land under a draft program
    loyalty-admin progress fund BUDGET POINTS --request-id ID
    loyalty-admin progress rebuild MEMBER    recompute from the events, report differences
    loyalty-admin progress stats PROGRAM
    loyalty-admin progress feeds             where each followed feed stands

A definitions file holds one definition per YAML document (or a JSON object, or
a list of them) in the protobuf JSON mapping: `id` and one of `tierProgram`,
`badge`, `streak`, `challenge` (docs/progress.md has examples), with the human
units of every admin file (tools/admin_files.py: `7d`, `2026-03-02`).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

import grpc
from google.protobuf import json_format
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from tools.admin_files import UsageError, load_documents

CALL_TIMEOUT_SECONDS = 10.0
KINDS = {"tier-program": 1, "badge": 2, "streak": 3, "challenge": 4}


def add_commands(commands) -> None:
    parser = commands.add_parser("progress", help="tiers, badges, streaks and challenges")
    verbs = parser.add_subparsers(dest="progress_command", required=True)
    verbs.add_parser("apply", help="create or update definitions").add_argument("file")
    listing = verbs.add_parser("list", help="definitions")
    listing.add_argument("--kind", choices=sorted(KINDS), default=None)
    verbs.add_parser("archive", help="archive a definition").add_argument("definition_id")
    verbs.add_parser("show", help="a member's progress").add_argument("member_id")
    verbs.add_parser("events", help="a member's events").add_argument("member_id")
    floor = verbs.add_parser("floor", help="set (or, with no tier, remove) a manual tier floor")
    floor.add_argument("program_id")
    floor.add_argument("member_id")
    floor.add_argument("tier_id", nargs="?", default="")
    floor.add_argument("--until", default="", help="RFC 3339 expiry, e.g. 2026-12-31T00:00:00Z")
    floor.add_argument("--reason", required=True)
    verbs.add_parser("dry-run", help="a draft tier program over history").add_argument("file")
    fund = verbs.add_parser("fund", help="fund a rewards budget")
    fund.add_argument("budget_id")
    fund.add_argument("points", type=int)
    fund.add_argument("--request-id", required=True)
    verbs.add_parser("rebuild", help="recompute a member from events").add_argument("member_id")
    verbs.add_parser("stats", help="members per tier, moves, completions").add_argument(
        "program_id"
    )
    verbs.add_parser("feeds", help="the feeds progress follows: cursor, connection, errors")


class ProgressAdmin:
    def __init__(self, channel: grpc.Channel, token: str, out) -> None:
        self._stub = progress_grpc.ProgressServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._out = out

    def _call(self, name: str, request):
        method = getattr(self._stub, name)
        return method(request, metadata=self._metadata, timeout=CALL_TIMEOUT_SECONDS)

    def _pages(self, name: str, request):
        """Every page of a List call, following next_page_token."""
        while True:
            page = self._call(name, request)
            yield page
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def _print(self, text: str) -> None:
        print(text, file=self._out)

    def _dump(self, message) -> None:
        self._print(json.dumps(json_format.MessageToDict(message), indent=2))

    def run(self, args: argparse.Namespace) -> None:
        match args.progress_command:
            case "apply":
                for definition in load_documents(
                    args.file, pb.Definition, "definitions", lists=True
                ):
                    answer = self._call(
                        "ApplyDefinition", pb.ApplyDefinitionRequest(definition=definition)
                    )
                    applied = answer.definition
                    verb = "applied" if answer.changed else "unchanged"
                    self._print(f"{verb} {applied.id} (version {applied.version})")
            case "list":
                listing = pb.ListDefinitionsRequest(
                    kind=KINDS.get(args.kind or "", 0), page_size=100
                )
                for page in self._pages("ListDefinitions", listing):
                    for d in page.definitions:
                        state = pb.DefinitionState.Name(d.state).removeprefix("DEFINITION_STATE_")
                        self._print(
                            f"{d.id}  {d.WhichOneof('spec')}  v{d.version}  {state.lower()}"
                        )
            case "show":
                progress = self._call(
                    "GetMemberProgress", pb.GetMemberProgressRequest(member_id=args.member_id)
                )
                for tier in progress.tiers:
                    kept = (
                        tier.kept_until_time.ToJsonString()
                        if tier.HasField("kept_until_time")
                        else "-"
                    )
                    self._print(
                        f"tier {tier.program_id}: {tier.tier_id} ({tier.qualifying_points} points;"
                        f" {tier.points_to_next} to {tier.next_tier_id or '-'}; kept until {kept})"
                    )
                for badge in progress.badges:
                    earned = [level.level_id for level in badge.levels if level.earned]
                    self._print(
                        f"badge {badge.badge_id}: {badge.progress_text}"
                        f" (earned: {', '.join(earned) or 'none'})"
                    )
                for streak in progress.streaks:
                    self._print(
                        f"streak {streak.streak_id}: {streak.current} now, {streak.longest} longest"
                    )
                for challenge in progress.challenges:
                    steps = ", ".join(f"{s.step_id} {s.value}/{s.target}" for s in challenge.steps)
                    done = "completed" if challenge.completed else "open"
                    self._print(f"challenge {challenge.challenge_id}: {done} ({steps})")
            case "archive":
                archived = self._call(
                    "ArchiveDefinition", pb.ArchiveDefinitionRequest(id=args.definition_id)
                ).definition
                state = pb.DefinitionState.Name(archived.state).removeprefix("DEFINITION_STATE_")
                self._print(f"{archived.id} (version {archived.version}): {state.lower()}")
            case "events":
                events = pb.ListMemberEventsRequest(member_id=args.member_id, page_size=500)
                for page in self._pages("ListMemberEvents", events):
                    for event in page.events:
                        when = event.occur_time.ToDatetime().isoformat(timespec="seconds")
                        self._print(
                            f"{event.sequence}  {when}  {event.source}  {event.kind}  {event.key}"
                        )
            case "feeds":
                for feed in self._call("GetFeedStatus", pb.GetFeedStatusRequest()).feeds:
                    state = "connected" if feed.connected else "reconnecting"
                    error = f"  {feed.last_error}" if feed.last_error else ""
                    self._print(f"{feed.feed}  cursor {feed.cursor}  {state}{error}")
            case "floor":
                request = pb.SetTierFloorRequest(
                    program_id=args.program_id,
                    member_id=args.member_id,
                    tier_id=args.tier_id,
                    reason=args.reason,
                )
                if args.until:
                    try:
                        moment = datetime.fromisoformat(args.until.replace("Z", "+00:00"))
                    except ValueError as error:
                        raise UsageError(f"--until: not an RFC 3339 time: {args.until}") from error
                    if moment.tzinfo is None:
                        raise UsageError("--until needs a zone, e.g. 2026-12-31T00:00:00Z")
                    request.expire_time.FromDatetime(moment)
                status = self._call("SetTierFloor", request).status
                self._print(f"{status.program_id} {args.member_id}: {status.tier_id}")
            case "dry-run":
                (draft,) = [
                    d
                    for d in load_documents(args.file, pb.Definition, "definitions", lists=True)
                    if d.HasField("tier_program")
                ][:1]
                result = self._call(
                    "DryRunTierProgram", pb.DryRunTierProgramRequest(program=draft.tier_program)
                )
                for tier in result.tiers:
                    self._print(f"{tier.tier_id}: {tier.members}")
                self._print(f"{result.members} members, {result.events} events")
            case "fund":
                answer = self._call(
                    "FundBudget",
                    pb.FundBudgetRequest(
                        budget_id=args.budget_id, points=args.points, request_id=args.request_id
                    ),
                )
                self._print(f"{answer.account_id}: {answer.balance}")
            case "rebuild":
                answer = self._call(
                    "RebuildMember", pb.RebuildMemberRequest(member_id=args.member_id)
                )
                self._print(
                    f"{answer.events} events replayed, {len(answer.differences)} differences"
                )
                for difference in answer.differences:
                    self._print(
                        f"  {difference.subject}: {difference.stored} != {difference.rebuilt}"
                    )
            case "stats":
                self._dump(
                    self._call(
                        "GetProgressStats", pb.GetProgressStatsRequest(program_id=args.program_id)
                    )
                )
