"""docs/games.md says how to recompute `config_sha256`; this follows the description
with nothing but json and hashlib, against the running service."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from loyalty.games.v1 import games_service_pb2 as pb

from tests.support.games import item, points, wheel_config

DOCS = (Path(__file__).parents[2] / "docs" / "games.md").read_text()


def documented_example() -> tuple[str, str]:
    """The worked example's canonical JSON and the hash the docs state for it."""
    block = re.search(r"<!-- config-hash-example -->\n```json\n(.+?)\n```", DOCS, re.S)
    digest = re.search(r"`config_sha256` \*\*`([0-9a-f]{64})`\*\*", DOCS)
    assert block and digest, "the worked example is missing from docs/games.md"
    return block.group(1), digest.group(1)


def micros(timestamp, present: bool) -> int | None:
    return timestamp.seconds * 1_000_000 + timestamp.nanos // 1000 if present else None


def canonical_document(wheel: pb.Wheel) -> dict:
    """The docs' form 2, built from what GetWheel returns."""
    config = wheel.config

    def prize(message: pb.Prize) -> dict:
        if message.HasField("item"):
            return {"item": {"unit": message.item.unit, "quantity": message.item.quantity}}
        return {"points": message.points} if message.HasField("points") else {}

    return {
        "algorithm": "hmac-sha256-v1",
        "form": 2,
        "config": {
            "display_name": config.display_name,
            "cost_points": config.cost_points,
            "spins_per_day": config.spins_per_day,
            "time_zone": config.time_zone,
            "fallback_segment_index": config.fallback_segment_index,
            "start_time_us": micros(config.start_time, config.HasField("start_time")),
            "end_time_us": micros(config.end_time, config.HasField("end_time")),
            "segments": [
                {
                    "label": s.label,
                    "weight": s.weight,
                    "prize": prize(s.prize),
                    "max_wins_per_member_per_day": s.max_wins_per_member_per_day,
                    "color": s.color,
                    "icon": s.icon,
                    "short_label": s.short_label,
                }
                for s in config.segments
            ],
        },
        "sold_out": sorted(o.index for o in wheel.odds if o.sold_out),
    }


def sha256_of(document: dict) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


DEMO = wheel_config(
    pb.Segment(label="Try again", weight=3),
    pb.Segment(
        label="20 points",
        weight=1,
        prize=points(20),
        color="#FFB400",
        icon="coins",
        short_label="20 pts",
    ),
    pb.Segment(label="Coffee", weight=1, prize=item("prize:free-coffee")),
    display_name="Demo wheel",
    cost_points=10,
    spins_per_day=3,
    time_zone="Europe/Paris",
)


async def test_the_worked_example_hashes_to_what_the_docs_say_and_the_service_publishes(games):
    example, digest = documented_example()
    assert hashlib.sha256(example.encode()).hexdigest() == digest
    wheel = (
        await games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="demo", config=DEMO))
    ).wheel
    assert json.dumps(canonical_document(wheel), sort_keys=True, separators=(",", ":")) == example
    assert wheel.config_sha256 == digest


async def test_config_sha256_is_recomputed_from_the_docs_for_any_version(games):
    """A window, a sold-out mark and text outside ASCII, through the same description."""
    config = pb.WheelConfig()
    config.CopyFrom(DEMO)
    config.display_name = "Roue du café ☕"
    config.start_time.FromSeconds(1_767_225_600)
    config.end_time.FromMicroseconds(1_798_761_600_123_456)
    await games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="cafe", config=config))
    await games.stub.StockWheel(
        pb.StockWheelRequest(wheel_id="cafe", unit="points", quantity=10, request_id="s")
    )
    wheel = (await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="cafe"))).wheel
    assert wheel.config_sha256 == sha256_of(canonical_document(wheel))
