"""loyalty-admin: the campaign managers' tool. It talks to the gateway over
gRPC with a manager token, like any other client.

    loyalty-admin apply weekend.yaml        create or update a campaign (idempotent)
    loyalty-admin list                      campaigns and their next occurrence
    loyalty-admin schedule CAMPAIGN_ID      next occurrences in local time and UTC
    loyalty-admin fund CAMPAIGN_ID          fund the budget and schedule a draft
    loyalty-admin pause|resume|cancel CAMPAIGN_ID
    loyalty-admin stats CAMPAIGN_ID
    loyalty-admin dry-run activity.yaml     the breakdown an activity would get now
    loyalty-admin watch                     campaign transitions, live
    loyalty-admin rewards apply coffee.yaml create or update a reward (idempotent)
    loyalty-admin rewards import REWARD_ID codes.csv   import codes, with a progress bar
    loyalty-admin rewards list              the catalog with stock and codes left
    loyalty-admin rewards stock REWARD_ID [--add N]    stock left (after adding N units)
    loyalty-admin rewards report [REWARD_ID]           one reward, or the whole program
    loyalty-admin progress ...              tiers, badges, streaks, challenges (progress --help)

Files are YAML or JSON in the protobuf JSON mapping: a campaign file holds
`campaign_id` and `spec`; an activity file holds an `activity`; a reward file
holds `reward_id` and `spec`. A code file is CSV with the code in the first
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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.rewards.v1 import rewards_service_pb2 as rewards_pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as rewards_grpc

from services.kit.status import error_info, field_violations

CALL_TIMEOUT_SECONDS = 10.0


class UsageError(Exception):
    """A bad argument or file: exit status 2."""


def _load(path: str, message: Message) -> Message:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid YAML or JSON: {error}") from error
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top level")
    try:
        # Dates in YAML load as objects; the JSON mapping wants strings.
        return json_format.ParseDict(json.loads(json.dumps(data, default=str)), message)
    except json_format.ParseError as error:
        raise UsageError(f"{path}: {error}") from error


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [list(map(str, headers)), *([str(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _when(timestamp) -> str:
    if not timestamp.seconds and not timestamp.nanos:
        return "-"
    return timestamp.ToDatetime().strftime("%Y-%m-%d %H:%M UTC")


def _state(value: int) -> str:
    return pb.CampaignState.Name(value).removeprefix("CAMPAIGN_STATE_").lower()


class Admin:
    def __init__(self, stub: campaigns_grpc.CampaignsServiceStub, token: str, out) -> None:
        self._stub = stub
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._out = out

    def _call(self, method: Callable, request: Message):
        return method(request, metadata=self._metadata, timeout=CALL_TIMEOUT_SECONDS)

    def _print(self, text: str) -> None:
        print(text, file=self._out)

    def apply(self, path: str) -> None:
        request = _load(path, pb.CreateCampaignRequest())
        if not request.campaign_id:
            raise UsageError(f"{path}: campaign_id is required")
        try:
            campaign = self._call(self._stub.CreateCampaign, request).campaign
            self._print(f"applied {campaign.campaign_id} (version {campaign.version})")
            return
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        current = self._call(
            self._stub.GetCampaign, pb.GetCampaignRequest(campaign_id=request.campaign_id)
        ).campaign
        # The file is the whole campaign: "*" replaces the spec (no mask would patch it).
        update = pb.UpdateCampaignRequest(
            campaign_id=request.campaign_id,
            spec=request.spec,
            expected_version=current.version,
            update_mask=field_mask_pb2.FieldMask(paths=["*"]),
        )
        campaign = self._call(self._stub.UpdateCampaign, update).campaign
        self._print(f"updated {campaign.campaign_id} (version {campaign.version})")

    def list(self) -> None:
        rows, token = [], ""
        while True:
            page = self._call(
                self._stub.ListCampaigns, pb.ListCampaignsRequest(page_size=100, page_token=token)
            )
            for campaign in page.campaigns:
                schedule = self._call(
                    self._stub.GetSchedule,
                    pb.GetScheduleRequest(campaign_id=campaign.campaign_id, count=1),
                )
                upcoming = schedule.occurrences[0].start_time if schedule.occurrences else None
                rows.append(
                    (
                        campaign.campaign_id,
                        campaign.spec.display_name,
                        _state(campaign.state),
                        _when(upcoming) if upcoming else "-",
                        campaign.budget_remaining,
                    )
                )
            token = page.next_page_token
            if not token:
                break
        self._print(_table(("ID", "NAME", "STATE", "NEXT START", "BUDGET LEFT"), rows))

    def schedule(self, campaign_id: str, count: int, time_zone: str) -> None:
        request = pb.GetScheduleRequest(campaign_id=campaign_id, count=count, time_zone=time_zone)
        schedule = self._call(self._stub.GetSchedule, request)
        rows = [
            (o.local_start, o.local_end, o.time_zone, _when(o.start_time), _when(o.end_time))
            for o in schedule.occurrences
        ]
        self._print(_table(("LOCAL START", "LOCAL END", "ZONE", "UTC START", "UTC END"), rows))

    def transition(self, verb: str, campaign_id: str) -> None:
        method, request = {
            "fund": (self._stub.ScheduleCampaign, pb.ScheduleCampaignRequest),
            "pause": (self._stub.PauseCampaign, pb.PauseCampaignRequest),
            "resume": (self._stub.ResumeCampaign, pb.ResumeCampaignRequest),
            "cancel": (self._stub.CancelCampaign, pb.CancelCampaignRequest),
        }[verb]
        campaign = self._call(method, request(campaign_id=campaign_id)).campaign
        self._print(f"{campaign.campaign_id}: {_state(campaign.state)}")

    def stats(self, campaign_id: str) -> None:
        stats = self._call(
            self._stub.GetCampaignStats, pb.GetCampaignStatsRequest(campaign_id=campaign_id)
        ).stats
        fields = json_format.MessageToDict(stats, always_print_fields_with_no_presence=True)
        rows = [(key, value) for key, value in fields.items() if not isinstance(value, list)]
        self._print(_table(("FIELD", "VALUE"), rows))

    def dry_run(self, path: str) -> None:
        request = _load(path, pb.DryRunActivityRequest())
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
        request = _load(path, rewards_pb.CreateRewardRequest())
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
        self._print(_table(("ID", "TITLE", "KIND", "PRICE", "STOCK", "CODES", "REDEEMED"), rows))

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
        self._print(_table(("FIELD", "VALUE"), rows))


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
    commands.add_parser("apply", help="create or update a campaign").add_argument("file")
    commands.add_parser("list", help="campaigns with their next occurrence")
    schedule = commands.add_parser("schedule", help="next occurrences, local and UTC")
    schedule.add_argument("campaign_id")
    schedule.add_argument("--count", type=int, default=5)
    schedule.add_argument("--tz", default="", help="IANA zone to show (default: the campaign's)")
    for verb in ("fund", "pause", "resume", "cancel", "stats"):
        commands.add_parser(verb).add_argument("campaign_id")
    commands.add_parser("dry-run", help="breakdown of an activity, nothing posted").add_argument(
        "file"
    )
    commands.add_parser("watch", help="follow transitions").add_argument(
        "--after", type=int, default=0
    )
    _rewards_parser(commands)
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
                case "apply":
                    admin.apply(args.file)
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
