"""loyalty-admin: the campaign managers' tool. It talks to the gateway over
gRPC with a manager token, like any other client.

    loyalty-admin plan weekend.yaml         what apply would change, changing nothing
    loyalty-admin apply weekend.yaml        create or update its campaigns (idempotent)
    loyalty-admin list                      campaigns, their window in local time, budget left
    loyalty-admin schedule CAMPAIGN_ID [--tz ZONE]   next windows, local (or in ZONE) and UTC
    loyalty-admin fund CAMPAIGN_ID          fund the budget and schedule a draft
    loyalty-admin pause|resume|cancel|archive CAMPAIGN_ID
    loyalty-admin stats CAMPAIGN_ID
    loyalty-admin dry-run activity.yaml     the breakdown an activity would get now
    loyalty-admin watch                     campaign transitions, live
    loyalty-admin member get MEMBER_ID      a member's profile
    loyalty-admin member set MEMBER_ID --tier gold ...   change only the fields given
    loyalty-admin wheel apply|stock|odds ...   wheels (wheel --help)
    loyalty-admin rewards apply coffee.yaml create or update a reward (idempotent)
    loyalty-admin rewards import REWARD_ID codes.csv   import codes, with a progress bar
    loyalty-admin rewards list              the catalog with stock and codes left
    loyalty-admin rewards stock REWARD_ID [--add N]    stock left (after adding N units)
    loyalty-admin rewards report [REWARD_ID]           one reward, or the whole program
    loyalty-admin progress ...              tiers, badges, streaks, challenges (progress --help)

Files are YAML or JSON in the protobuf JSON mapping: a campaign file holds
`campaign_id` and `spec` (several campaigns: one per YAML document, `---`
between them); an activity file holds an `activity`; a reward file holds
`reward_id` and `spec`. Durations may be written 48h or 90m, local dates and
times 2026-12-05 or 2026-12-05T18:00 (in the campaign's zone); examples/ has
a ready file for each kind of campaign and a wheel. A code file is CSV with the code in the first
column (a first line "code" is a header); it is streamed in chunks, so its size
does not matter, and each line not added is printed with its number and why.
Connection: --gateway (LOYALTY_GATEWAY, default 127.0.0.1:8080) and --token
(LOYALTY_TOKEN; `make token ROLE=campaign-manager SUB=you` prints one).
Exit status: 0 done, 1 the gateway refused the call (or some codes were not
added), 2 bad usage or file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.rewards.v1 import rewards_service_pb2 as rewards_pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as rewards_grpc

from services.campaigns.servicer import spec_in, spec_out
from services.kit.errors import InvalidArgument
from services.kit.status import error_info, field_violations
from tools import wheel_admin
from tools.admin_files import UsageError, changed_fields, load_documents, table

CALL_TIMEOUT_SECONDS = 10.0


def _load(path: str, message_type: type[Message]) -> Message:
    """A file holding one document."""
    documents = load_documents(path, message_type, "document")
    if len(documents) != 1:
        raise UsageError(f"{path}: expected one document, found {len(documents)}")
    return documents[0]


def _when(timestamp) -> str:
    if not timestamp.seconds and not timestamp.nanos:
        return "-"
    return timestamp.ToDatetime().strftime("%Y-%m-%d %H:%M UTC")


def _state(value: int) -> str:
    return pb.CampaignState.Name(value).removeprefix("CAMPAIGN_STATE_").lower()


# UTC offsets span -12:00 to +14:00: how far a member's window may sit from the campaign zone's.
ZONE_SPREAD = timedelta(hours=26)


def _local(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _local_text(iso: str) -> str:
    """`2026-12-05T18:00:00+01:00` as `2026-12-05 18:00` (the zone is its own column)."""
    return _local(iso).strftime("%Y-%m-%d %H:%M")


def _live_somewhere(occurrence: pb.Occurrence, now: datetime) -> bool:
    """Whether a member-zone window (given on the campaign zone's wall clock) holds
    `now` in some zone: it opens first at UTC+14:00 and closes last at UTC-12:00."""
    start = _local(occurrence.local_start).replace(tzinfo=UTC) - timedelta(hours=14)
    end = _local(occurrence.local_end).replace(tzinfo=UTC) + timedelta(hours=12)
    return start <= now < end


def _as_stored(spec: pb.CampaignSpec) -> pb.CampaignSpec:
    """The spec as the service would store it (its defaults filled in), so that a
    plan lists what a file changes, not what it leaves to the defaults. A spec the
    service would refuse is compared as written: apply shows the refusal."""
    try:
        return spec_out(spec_in(spec))
    except InvalidArgument:
        return spec


def _no_window(spec: pb.CampaignSpec) -> str:
    return "-" if spec.schedule.HasField("start") else "always"


def _budget_text(spec: pb.CampaignSpec) -> str:
    return f", {spec.budget_points} points budget to fund" if spec.budget_points else ""


def _budget_change(current: pb.Campaign, spec: pb.CampaignSpec) -> str:
    added = spec.budget_points - current.spec.budget_points
    if not added:
        return ""
    if current.status == pb.CAMPAIGN_STATUS_DRAFT:
        return f"budget {current.spec.budget_points} -> {spec.budget_points} (funded by fund)"
    if added < 0:
        return f"budget lowered by {-added}: refused once scheduled (BUDGET_DECREASE)"
    return f"budget +{added} points, funded at once"


def _birthday(text: str) -> pb.Birthday:
    """`05-17` or `1990-05-17`."""
    parts = text.split("-")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 2:
        return pb.Birthday(month=numbers[0], day=numbers[1])
    if len(numbers) == 3:
        return pb.Birthday(year=numbers[0], month=numbers[1], day=numbers[2])
    raise UsageError(f"--birthday {text!r}: write MM-DD or YYYY-MM-DD")


def _member_rows(member: pb.Member) -> list[tuple[str, str]]:
    birthday = member.birthday
    born = (
        f"{birthday.year:04d}-{birthday.month:02d}-{birthday.day:02d}"
        if birthday.year
        else f"--{birthday.month:02d}-{birthday.day:02d}"
        if birthday.month
        else "-"
    )
    return [
        ("member_id", member.member_id),
        ("time_zone", member.time_zone or "-"),
        ("birthday", born),
        ("tier", member.tier or "-"),
        ("segments", ", ".join(member.segments) or "-"),
        ("opt_ins", ", ".join(member.opt_ins) or "-"),
        ("referrer_member_id", member.referrer_member_id or "-"),
        ("update_time", _when(member.update_time)),
    ]


class Admin:
    def __init__(self, stub: campaigns_grpc.CampaignsServiceStub, token: str, out) -> None:
        self._stub = stub
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._out = out

    def _call(self, method: Callable, request: Message):
        return method(request, metadata=self._metadata, timeout=CALL_TIMEOUT_SECONDS)

    def _print(self, text: str) -> None:
        print(text, file=self._out)

    def _campaigns_of(self, path: str) -> list[pb.CreateCampaignRequest]:
        requests = load_documents(path, pb.CreateCampaignRequest, "campaigns")
        for number, request in enumerate(requests, start=1):
            if not request.campaign_id:
                raise UsageError(f"{path}: campaign {number}: campaign_id is required")
        return requests

    def _current(self, campaign_id: str) -> pb.Campaign | None:
        try:
            request = pb.GetCampaignRequest(campaign_id=campaign_id)
            return self._call(self._stub.GetCampaign, request).campaign
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None

    def plan(self, path: str) -> None:
        """What apply would do to each campaign of the file; nothing is changed."""
        for request in self._campaigns_of(path):
            current = self._current(request.campaign_id)
            if current is None:
                budget = _budget_text(request.spec)
                self._print(f"create {request.campaign_id}: a draft{budget}")
                continue
            changed = changed_fields(current.spec, _as_stored(request.spec))
            if not changed:
                self._print(f"keep {request.campaign_id} (version {current.version}): no change")
                continue
            self._print(
                f"update {request.campaign_id} (version {current.version} -> "
                f"{current.version + 1}): {', '.join(changed)}"
            )
            if change := _budget_change(current, request.spec):
                self._print(f"  {change}")

    def apply(self, path: str) -> None:
        for request in self._campaigns_of(path):
            self._apply(request)

    def _apply(self, request: pb.CreateCampaignRequest) -> None:
        current = self._current(request.campaign_id)
        if current is None:
            campaign = self._call(self._stub.CreateCampaign, request).campaign
            self._print(f"applied {campaign.campaign_id} (version {campaign.version})")
        else:
            changed = changed_fields(current.spec, _as_stored(request.spec))
            campaign = current
            if not changed:
                self._print(f"{current.campaign_id}: no change (version {current.version})")
            else:
                campaign = self._update(request, current, changed)
        if campaign.status == pb.CAMPAIGN_STATUS_DRAFT:
            funds = (
                f"funds its {campaign.spec.budget_points} points budget and schedules it"
                if campaign.spec.budget_points
                else "schedules it"
            )
            self._print(f"  next: loyalty-admin fund {campaign.campaign_id}  ({funds})")

    def _update(
        self, request: pb.CreateCampaignRequest, current: pb.Campaign, changed: list[str]
    ) -> pb.Campaign:
        # The file is the whole campaign: "*" replaces the spec (no mask would patch it).
        update = pb.UpdateCampaignRequest(
            campaign_id=request.campaign_id,
            spec=request.spec,
            expected_version=current.version,
            update_mask=field_mask_pb2.FieldMask(paths=["*"]),
        )
        campaign = self._call(self._stub.UpdateCampaign, update).campaign
        self._print(
            f"updated {campaign.campaign_id} (version {campaign.version}): {', '.join(changed)}"
        )
        if change := _budget_change(current, request.spec):
            self._print(f"  {change}")
        return campaign

    def list(self) -> None:
        rows, token = [], ""
        now = datetime.now(UTC)
        while True:
            page = self._call(
                self._stub.ListCampaigns, pb.ListCampaignsRequest(page_size=100, page_token=token)
            )
            rows += [self._listed(campaign, now) for campaign in page.campaigns]
            token = page.next_page_token
            if not token:
                break
        headers = ("ID", "NAME", "STATE", "LOCAL START", "LOCAL END", "ZONE", "BUDGET LEFT")
        self._print(table(headers, rows))

    def _listed(self, campaign: pb.Campaign, now: datetime) -> tuple:
        spec, state = campaign.spec, _state(campaign.state)
        zone = spec.schedule.time_zone
        if campaign.state in (pb.CAMPAIGN_STATE_ENDED, pb.CAMPAIGN_STATE_UNSPECIFIED):
            # Over (or cancelled): no window to come, no budget to spend.
            return (campaign.campaign_id, spec.display_name, state, "-", "-", zone, "-")
        member_zone = spec.schedule.zone_mode == pb.ZONE_MODE_MEMBER
        request = pb.GetScheduleRequest(campaign_id=campaign.campaign_id, count=3)
        if member_zone:
            # A member-zone window that ended in the campaign's zone may still run further west.
            request.after_time.FromDatetime(now - ZONE_SPREAD)
        occurrences = list(self._call(self._stub.GetSchedule, request).occurrences)
        if member_zone:
            zone = f"members' ({zone})"
            live = [o for o in occurrences if _live_somewhere(o, now)]
            if live and campaign.state in (pb.CAMPAIGN_STATE_LIVE, pb.CAMPAIGN_STATE_SCHEDULED):
                state = "live in some zones"
            occurrences = live or [o for o in occurrences if _local(o.local_start) > now]
        window = occurrences[0] if occurrences else None
        budget = (
            "-"
            if spec.kind == pb.CAMPAIGN_KIND_BASE_RULE
            else f"{spec.budget_points} to fund"
            if campaign.status == pb.CAMPAIGN_STATUS_DRAFT
            else campaign.budget_remaining
        )
        return (
            campaign.campaign_id,
            spec.display_name,
            state,
            _local_text(window.local_start) if window else _no_window(spec),
            _local_text(window.local_end) if window else "-",
            zone,
            budget,
        )

    def schedule(self, campaign_id: str, count: int, time_zone: str) -> None:
        """The next windows; with a zone, the same instants shown in that zone (a
        member-zone campaign's windows as a member living there has them)."""
        request = pb.GetScheduleRequest(campaign_id=campaign_id, count=count, time_zone=time_zone)
        schedule = self._call(self._stub.GetSchedule, request)
        rows = [
            (o.local_start, o.local_end, o.time_zone, _when(o.start_time), _when(o.end_time))
            for o in schedule.occurrences
        ]
        self._print(table(("LOCAL START", "LOCAL END", "ZONE", "UTC START", "UTC END"), rows))

    def transition(self, verb: str, campaign_id: str) -> None:
        method, request = {
            "fund": (self._stub.ScheduleCampaign, pb.ScheduleCampaignRequest),
            "pause": (self._stub.PauseCampaign, pb.PauseCampaignRequest),
            "resume": (self._stub.ResumeCampaign, pb.ResumeCampaignRequest),
            "cancel": (self._stub.CancelCampaign, pb.CancelCampaignRequest),
            "archive": (self._stub.ArchiveCampaign, pb.ArchiveCampaignRequest),
        }[verb]
        campaign = self._call(method, request(campaign_id=campaign_id)).campaign
        archived = " (archived)" if campaign.status == pb.CAMPAIGN_STATUS_ARCHIVED else ""
        self._print(f"{campaign.campaign_id}: {_state(campaign.state)}{archived}")

    def member_get(self, member_id: str) -> None:
        member = self._call(self._stub.GetMember, pb.GetMemberRequest(member_id=member_id)).member
        self._print(table(("FIELD", "VALUE"), _member_rows(member)))

    def member_set(self, member_id: str, changes: dict[str, Any]) -> None:
        """Changes only the fields given (an empty value clears one), by update_mask."""
        if not changes:
            raise UsageError(
                "member set: give at least one field to change (see member set --help)"
            )
        member = pb.Member(member_id=member_id)
        for name, value in changes.items():
            if name == "birthday":
                if value:
                    member.birthday.CopyFrom(_birthday(value))
            elif isinstance(value, list):
                getattr(member, name).extend(value)
            else:
                setattr(member, name, value)
        request = pb.UpsertMemberRequest(
            member=member, update_mask=field_mask_pb2.FieldMask(paths=sorted(changes))
        )
        answer = self._call(self._stub.UpsertMember, request)
        done = "created" if answer.created else "updated"
        self._print(f"{member_id}: {done} {', '.join(sorted(changes))}")
        self._print(table(("FIELD", "VALUE"), _member_rows(answer.member)))

    def stats(self, campaign_id: str) -> None:
        stats = self._call(
            self._stub.GetCampaignStats, pb.GetCampaignStatsRequest(campaign_id=campaign_id)
        ).stats
        fields = json_format.MessageToDict(stats, always_print_fields_with_no_presence=True)
        rows = [(key, value) for key, value in fields.items() if not isinstance(value, list)]
        self._print(table(("FIELD", "VALUE"), rows))

    def dry_run(self, path: str) -> None:
        request = _load(path, pb.DryRunActivityRequest)
        breakdown = self._call(self._stub.DryRunActivity, request).breakdown
        self._print(json.dumps(json_format.MessageToDict(breakdown), indent=2))

    def watch(self, after_sequence: int) -> None:
        stream = self._stub.WatchCampaigns(
            pb.WatchCampaignsRequest(after_sequence=after_sequence), metadata=self._metadata
        )
        for item in stream:
            change = item.transition
            self._print(
                f"{change.sequence}  {_when(change.effect_time)}  {change.campaign_id}: "
                f"{_state(change.from_state)} -> {_state(change.to_state)}"
            )


# What one ImportCodes call carries: within the gateway's body limit (256 KiB).
CHUNK_LINES = 5000
CHUNK_BYTES = 192 * 1024
LONGEST_LINE = 1024
UNAVAILABLE_ATTEMPTS = 3


class RewardsAdmin:
    """The rewards catalog from the command line."""

    def __init__(self, stub: rewards_grpc.RewardsServiceStub, token: str, out, err) -> None:
        self._stub = stub
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._out = out
        self._err = err

    def _call(self, method: Callable, request: Message):
        """Every rewards call here is idempotent (ids, request ids, import chunks), so a
        call the gateway could not hand on (UNAVAILABLE) is asked again, twice at most."""
        for attempt in range(UNAVAILABLE_ATTEMPTS):
            try:
                return method(request, metadata=self._metadata, timeout=CALL_TIMEOUT_SECONDS)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                if attempt == UNAVAILABLE_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _print(self, text: str) -> None:
        print(text, file=self._out)

    def apply(self, path: str) -> None:
        request = _load(path, rewards_pb.CreateRewardRequest)
        if not request.reward_id:
            raise UsageError(f"{path}: reward_id is required")
        try:
            reward = self._call(self._stub.CreateReward, request).reward
            self._print(f"applied {reward.reward_id} (version {reward.version})")
            return
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        current = self._call(
            self._stub.GetReward, rewards_pb.GetRewardRequest(reward_id=request.reward_id)
        ).reward
        update = rewards_pb.UpdateRewardRequest(
            reward_id=request.reward_id, spec=request.spec, expected_version=current.version
        )
        reward = self._call(self._stub.UpdateReward, update).reward
        self._print(f"updated {reward.reward_id} (version {reward.version})")

    def import_codes(self, reward_id: str, path: str, import_id: str) -> int:
        """Streams the file chunk by chunk; returns how many lines were not added.
        The import id defaults to the file's SHA-256, so importing the same file
        again (after an interruption, say) adds nothing twice."""
        file = Path(path)
        try:
            size = file.stat().st_size
            import_id = import_id or f"csv-{_sha256(file)[:32]}"
        except OSError as error:
            raise UsageError(f"{path}: cannot read: {error.strerror}") from error
        added = problems = lines_sent = replayed = 0
        with file.open("rb") as source:
            for first_line, lines, local in _chunks(source):
                answer = self._call(
                    self._stub.ImportCodes,
                    rewards_pb.ImportCodesRequest(
                        reward_id=reward_id, import_id=import_id, first_line=first_line, lines=lines
                    ),
                )
                reported = sorted(
                    [*local, *((p.line, p.reason, p.detail) for p in answer.problems)]
                )
                for line, reason, detail in reported:
                    self._print(f"line {line}: {reason}: {detail}")
                hidden = answer.problems_total - len(answer.problems)
                if hidden:
                    self._print(f"  ... and {hidden} more lines of this chunk not added")
                if answer.replayed:
                    replayed += 1
                else:
                    added += answer.added
                problems += answer.problems_total + len(local)
                lines_sent += len(lines)
                self._progress(source.tell(), size, lines_sent, answer.codes_free)
        print(file=self._err)
        before = f" ({replayed} chunks were imported before)" if replayed else ""
        self._print(f"{reward_id}: {added} codes added, {problems} lines not added{before}")
        return problems

    def _progress(self, done: int, size: int, lines: int, free: int) -> None:
        fraction = done / size if size else 1.0
        bar = "#" * int(fraction * 30)
        print(
            f"\rimporting [{bar:<30}] {fraction:4.0%}  {lines:,} lines  {free:,} codes free",
            end="",
            file=self._err,
            flush=True,
        )

    def list(self) -> None:
        rows, token = [], ""
        while True:
            page = self._call(
                self._stub.ListRewards,
                rewards_pb.ListRewardsRequest(page_size=100, page_token=token),
            )
            for reward in page.rewards:
                report = self._report(reward.reward_id)
                rows.append(
                    (
                        reward.reward_id,
                        reward.spec.title,
                        rewards_pb.RewardKind.Name(reward.spec.kind)
                        .removeprefix("REWARD_KIND_")
                        .lower(),
                        f"{reward.spec.price} {reward.spec.price_unit or 'points'}",
                        report.stock_left,
                        report.codes_left
                        if reward.spec.kind == rewards_pb.REWARD_KIND_CODE_POOL
                        else "-",
                        report.redemptions,
                    )
                )
            token = page.next_page_token
            if not token:
                break
        self._print(table(("ID", "TITLE", "KIND", "PRICE", "STOCK", "CODES", "REDEEMED"), rows))

    def _report(self, reward_id: str) -> rewards_pb.RewardReport:
        return self._call(
            self._stub.GetRewardReport, rewards_pb.GetRewardReportRequest(reward_id=reward_id)
        ).report

    def stock(self, reward_id: str, add: int, request_id: str) -> None:
        if add:
            request = rewards_pb.StockRewardRequest(
                reward_id=reward_id, quantity=add, request_id=request_id or f"cli-{add}"
            )
            self._call(self._stub.StockReward, request)
        report = self._report(reward_id)
        low = "  (fewer codes than stock)" if report.codes_low else ""
        self._print(
            f"{reward_id}: {report.stock_left} in stock, {report.codes_left} codes free{low}"
        )

    def report(self, reward_id: str) -> None:
        if reward_id:
            fields = json_format.MessageToDict(
                self._report(reward_id), always_print_fields_with_no_presence=True
            )
        else:
            fields = json_format.MessageToDict(
                self._call(self._stub.GetProgramReport, rewards_pb.GetProgramReportRequest()),
                always_print_fields_with_no_presence=True,
            )
        rows = [
            (key, json.dumps(value) if isinstance(value, list | dict) else value)
            for key, value in fields.items()
        ]
        self._print(table(("FIELD", "VALUE"), rows))


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunks(source):
    """(first line number, lines, problems found here) at most CHUNK_LINES lines or
    CHUNK_BYTES at a time. A line too long to send or not UTF-8 is reported here and
    sent empty, so the line numbers stay the file's."""
    first, lines, local, size = 1, [], [], 0
    for number, raw in enumerate(source, start=1):
        text = raw.rstrip(b"\r\n")
        try:
            line = text.decode("utf-8")
        except UnicodeDecodeError:
            line, local = "", [*local, (number, "MALFORMED", "the line is not UTF-8")]
        if len(line) > LONGEST_LINE:
            local.append((number, "MALFORMED", f"the line is {len(line):,} characters long"))
            line = ""
        lines.append(line)
        size += len(line) + 8
        if len(lines) == CHUNK_LINES or size >= CHUNK_BYTES:
            yield first, lines, local
            first, lines, local, size = number + 1, [], [], 0
    if lines:
        yield first, lines, local


def _rewards_command(args, channel, out) -> int:
    admin = RewardsAdmin(rewards_grpc.RewardsServiceStub(channel), args.token, out, sys.stderr)
    match args.rewards_command:
        case "apply":
            admin.apply(args.file)
        case "import":
            return 1 if admin.import_codes(args.reward_id, args.file, args.import_id) else 0
        case "list":
            admin.list()
        case "stock":
            admin.stock(args.reward_id, args.add, args.request_id)
        case "report":
            admin.report(args.reward_id)
    return 0


def _rewards_parser(commands) -> None:
    rewards = commands.add_parser("rewards", help="the rewards catalog, codes and reports")
    verbs = rewards.add_subparsers(dest="rewards_command", required=True)
    verbs.add_parser("apply", help="create or update a reward").add_argument("file")
    importing = verbs.add_parser("import", help="import codes from a CSV file")
    importing.add_argument("reward_id")
    importing.add_argument("file")
    importing.add_argument("--import-id", default="", help="default: the file's SHA-256")
    verbs.add_parser("list", help="the catalog with stock and codes left")
    stock = verbs.add_parser("stock", help="stock left, after adding --add units")
    stock.add_argument("reward_id")
    stock.add_argument("--add", type=int, default=0, help="units to add (negative: withdraw)")
    stock.add_argument("--request-id", default="", help="idempotency key of the change")
    report = verbs.add_parser("report", help="a reward's report, or the program's")
    report.add_argument("reward_id", nargs="?", default="")


MEMBER_OPTIONS = {
    "--time-zone": ("time_zone", "IANA zone, e.g. Europe/Paris"),
    "--birthday": ("birthday", "MM-DD or YYYY-MM-DD"),
    "--tier": ("tier", "the tier campaigns target"),
    "--segments": ("segments", "comma-separated"),
    "--opt-ins": ("opt_ins", "comma-separated"),
    "--referrer": ("referrer_member_id", "the member who referred them"),
}


def _member_parser(commands) -> None:
    member = commands.add_parser("member", help="member profiles")
    verbs = member.add_subparsers(dest="member_command", required=True)
    verbs.add_parser("get", help="a member's profile").add_argument("member_id")
    setting = verbs.add_parser(
        "set", help="change only the fields given; an empty value clears one"
    )
    setting.add_argument("member_id")
    for option, (field, help_text) in MEMBER_OPTIONS.items():
        setting.add_argument(option, dest=field, default=None, help=help_text)


def _member_changes(args) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field, _ in MEMBER_OPTIONS.values():
        value = getattr(args, field)
        if value is not None:
            listed = field in ("segments", "opt_ins")
            changes[field] = [v.strip() for v in value.split(",") if v.strip()] if listed else value
    return changes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-admin",
        description="Run bonus campaigns through the Loyalty Arcade gateway.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--gateway", default=os.environ.get("LOYALTY_GATEWAY", "127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("LOYALTY_TOKEN", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plan", help="what apply would change").add_argument("file")
    commands.add_parser("apply", help="create or update campaigns").add_argument("file")
    commands.add_parser("list", help="campaigns, their window and budget left")
    schedule = commands.add_parser("schedule", help="next occurrences, local and UTC")
    schedule.add_argument("campaign_id")
    schedule.add_argument("--count", type=int, default=5)
    schedule.add_argument("--tz", default="", help="IANA zone to show (default: the campaign's)")
    for verb in ("fund", "pause", "resume", "cancel", "archive", "stats"):
        commands.add_parser(verb).add_argument("campaign_id")
    commands.add_parser("dry-run", help="breakdown of an activity, nothing posted").add_argument(
        "file"
    )
    commands.add_parser("watch", help="follow transitions").add_argument(
        "--after", type=int, default=0
    )
    _member_parser(commands)
    _rewards_parser(commands)
    wheel_admin.add_commands(commands)
    # Imported here: the progress commands use this module's UsageError.
    from tools import progress_admin

    progress_admin.add_commands(commands)
    return parser


def _describe(error: grpc.RpcError) -> str:
    info = error_info(error)
    reason = f" {info.reason}" if info else ""
    lines = [f"refused: {error.code().name}{reason}: {error.details()}"]
    lines += [f"  {field}: {why}" for field, why in field_violations(error).items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None, out=None) -> int:
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    if not args.token:
        print("error: no token: pass --token or set LOYALTY_TOKEN", file=sys.stderr)
        return 2
    with grpc.insecure_channel(args.gateway) as channel:
        admin = Admin(campaigns_grpc.CampaignsServiceStub(channel), args.token, out)
        try:
            match args.command:
                case "plan":
                    admin.plan(args.file)
                case "apply":
                    admin.apply(args.file)
                case "member" if args.member_command == "get":
                    admin.member_get(args.member_id)
                case "member":
                    admin.member_set(args.member_id, _member_changes(args))
                case "wheel":
                    wheel_admin.WheelAdmin(channel, args.token, out).run(args)
                case "list":
                    admin.list()
                case "schedule":
                    admin.schedule(args.campaign_id, args.count, args.tz)
                case "stats":
                    admin.stats(args.campaign_id)
                case "dry-run":
                    admin.dry_run(args.file)
                case "watch":
                    admin.watch(args.after)
                case "rewards":
                    return _rewards_command(args, channel, out)
                case "progress":
                    from tools.progress_admin import ProgressAdmin

                    ProgressAdmin(channel, args.token, out).run(args)
                case verb:
                    admin.transition(verb, args.campaign_id)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except grpc.RpcError as error:
            print(_describe(error), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
