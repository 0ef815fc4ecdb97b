"""loyalty-admin wheel ...: spin-the-wheel for managers, through the gateway.

    loyalty-admin wheel apply daily.yaml          create or update wheels (idempotent)
    loyalty-admin wheel stock WHEEL_ID UNIT QUANTITY [--request-id ID]   fill a prize pool
    loyalty-admin wheel odds WHEEL_ID             the published odds and what is sold out

A wheel file holds `wheel_id` and `config` (docs/games.md), one wheel per YAML
document; `start_time` and `end_time` may be local times in the wheel's zone.
"""

from __future__ import annotations

import argparse
import uuid

import grpc
from google.protobuf import field_mask_pb2
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as games_grpc

from tools.admin_files import UsageError, changed_fields, load_documents, table

CALL_TIMEOUT_SECONDS = 10.0


def add_commands(commands) -> None:
    parser = commands.add_parser("wheel", help="wheels: apply, stock, odds")
    verbs = parser.add_subparsers(dest="wheel_command", required=True)
    verbs.add_parser("apply", help="create or update wheels").add_argument("file")
    stock = verbs.add_parser("stock", help="add to one of a wheel's prize pools")
    stock.add_argument("wheel_id")
    stock.add_argument("unit", help='"points" or one of its prize units, e.g. prize:free-coffee')
    stock.add_argument("quantity", type=int)
    stock.add_argument(
        "--request-id", default="", help="idempotency key: the same one never adds twice"
    )
    verbs.add_parser("odds", help="published odds").add_argument("wheel_id")


def _prize(prize: pb.Prize) -> str:
    if prize.HasField("item"):
        return f"{prize.item.quantity} x {prize.item.unit}"
    return f"{prize.points} points" if prize.HasField("points") else "nothing"


def _unit(prize: pb.Prize) -> str:
    """The pool a prize is paid from ("" for nothing)."""
    if prize.HasField("item"):
        return prize.item.unit
    return "points" if prize.HasField("points") else ""


class WheelAdmin:
    def __init__(self, channel: grpc.Channel, token: str, out) -> None:
        self._stub = games_grpc.GamesServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._out = out

    def _call(self, name: str, request):
        method = getattr(self._stub, name)
        return method(request, metadata=self._metadata, timeout=CALL_TIMEOUT_SECONDS)

    def _print(self, text: str) -> None:
        print(text, file=self._out)

    def run(self, args: argparse.Namespace) -> None:
        match args.wheel_command:
            case "apply":
                for request in load_documents(args.file, pb.CreateWheelRequest, "wheels"):
                    if not request.wheel_id:
                        raise UsageError(f"{args.file}: wheel_id is required")
                    self._apply(request)
            case "stock":
                self._stock(args.wheel_id, args.unit, args.quantity, args.request_id)
            case "odds":
                self._odds(args.wheel_id)

    def _apply(self, request: pb.CreateWheelRequest) -> None:
        try:
            answer = self._call("CreateWheel", request)
            wheel = answer.wheel
            done = "applied" if answer.created else "no change:"
            self._print(f"{done} {wheel.id} (odds version {wheel.odds_version})")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            current = self._call("GetWheel", pb.GetWheelRequest(wheel_id=request.wheel_id)).wheel
            # The file is the whole wheel: "*" replaces its configuration.
            update = pb.UpdateWheelRequest(
                wheel_id=request.wheel_id,
                config=request.config,
                expected_odds_version=current.odds_version,
                update_mask=field_mask_pb2.FieldMask(paths=["*"]),
            )
            wheel = self._call("UpdateWheel", update).wheel
            changed = ", ".join(changed_fields(current.config, request.config))
            self._print(f"updated {wheel.id} (odds version {wheel.odds_version}): {changed}")
        # A new wheel's pools are empty, and a sold-out segment's pool is.
        created = wheel.odds_version == 1
        empty = sorted(
            {_unit(o.prize) for o in wheel.odds if _unit(o.prize) and (created or o.sold_out)}
        )
        for unit in empty:
            self._print(f"  next: loyalty-admin wheel stock {wheel.id} {unit} QUANTITY")

    def _stock(self, wheel_id: str, unit: str, quantity: int, request_id: str) -> None:
        request_id = request_id or f"cli-{uuid.uuid4().hex[:16]}"
        request = pb.StockWheelRequest(
            wheel_id=wheel_id, unit=unit, quantity=quantity, request_id=request_id
        )
        answer = self._call("StockWheel", request)
        self._print(
            f"{wheel_id}: {unit} pool at {answer.stock} "
            f"(request id {request_id}: repeat it to retry without adding twice)"
        )

    def _odds(self, wheel_id: str) -> None:
        wheel = self._call("GetWheel", pb.GetWheelRequest(wheel_id=wheel_id)).wheel
        rows = [
            (
                o.index,
                o.label,
                _prize(o.prize),
                f"{o.percent}%",
                f"{o.weight}/{o.total_weight}",
                "sold out" if o.sold_out else "fallback" if o.fallback else "",
            )
            for o in wheel.odds
        ]
        self._print(f"{wheel.id} odds version {wheel.odds_version} ({wheel.config_sha256[:12]})")
        self._print(table(("#", "LABEL", "PRIZE", "CHANCE", "EXACT", ""), rows))
