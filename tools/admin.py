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

Files are YAML or JSON in the protobuf JSON mapping: a campaign file holds
`campaign_id` and `spec`; an activity file holds an `activity`.
Connection: --gateway (LOYALTY_GATEWAY, default 127.0.0.1:8080) and --token
(LOYALTY_TOKEN; `make token ROLE=campaign-manager SUB=you` prints one).
Exit status: 0 done, 1 the gateway refused the call, 2 bad usage or file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc

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
