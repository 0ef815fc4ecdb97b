"""Wheel updates (AIP-134 partial updates with an update mask) and segments'
display metadata, through a real games server."""

from __future__ import annotations

import grpc
from google.protobuf import field_mask_pb2
from loyalty.games.v1 import games_service_pb2 as pb

from services.kit.status import field_violations
from tests.support.errors import expect_error
from tests.support.games import STANDARD_WHEEL, create_stocked_wheel, points, wheel_config

WINDOWED = pb.WheelConfig()
WINDOWED.CopyFrom(STANDARD_WHEEL)
WINDOWED.start_time.FromSeconds(1_767_225_600)


async def update(games, config: pb.WheelConfig, *paths: str, mask: bool | None = None) -> pb.Wheel:
    request = pb.UpdateWheelRequest(wheel_id="w", config=config)
    if paths or mask:
        request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
    return (await games.stub.UpdateWheel(request)).wheel


async def test_without_a_mask_only_the_fields_set_change(games):
    before = await create_stocked_wheel(games.stub, "w", WINDOWED)
    after = await update(games, pb.WheelConfig(cost_points=25))
    assert after.config.cost_points == 25
    expected = pb.WheelConfig()
    expected.CopyFrom(before.config)
    expected.cost_points = 25
    assert after.config == expected
    assert after.odds_version == before.odds_version + 1


async def test_a_mask_sets_what_it_names_even_to_empty_values(games):
    await create_stocked_wheel(games.stub, "w", WINDOWED)
    after = await update(games, pb.WheelConfig(), "cost_points", "start_time")
    assert after.config.cost_points == 0 and not after.config.HasField("start_time")
    assert list(after.config.segments) == list(STANDARD_WHEEL.segments)
    # Fields set but not named are left alone.
    after = await update(games, pb.WheelConfig(cost_points=7, spins_per_day=1), "spins_per_day")
    assert (after.config.cost_points, after.config.spins_per_day) == (0, 1)


async def test_a_star_replaces_the_whole_configuration(games):
    await create_stocked_wheel(games.stub, "w", WINDOWED)
    two = wheel_config(
        pb.Segment(label="Nothing", weight=1),
        pb.Segment(label="5 points", weight=1, prize=points(5)),
        spins_per_day=0,
    )
    after = await update(games, two, "*")
    assert after.config == two


async def test_bad_masks_and_updates_name_the_field_and_change_nothing(games):
    before = await create_stocked_wheel(games.stub, "w", WINDOWED)
    cases = {
        "update_mask.paths[0]": ("weights",),
        "update_mask.paths[1]": ("cost_points", "*"),
        "update_mask": (),
    }
    for field, paths in cases.items():
        error = await expect_error(
            update(games, pb.WheelConfig(cost_points=1), *paths, mask=True),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert field in field_violations(error), field_violations(error)
    # The merged configuration is validated as a whole: a fallback with a prize.
    error = await expect_error(
        update(games, pb.WheelConfig(fallback_segment_index=1)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "config.fallback_segment_index" in field_violations(error)
    after = (await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="w"))).wheel
    assert after.odds_version == before.odds_version


async def test_segments_carry_display_metadata_and_it_is_validated(games):
    config = pb.WheelConfig()
    config.CopyFrom(STANDARD_WHEEL)
    config.segments[1].color = "#FFB400"
    config.segments[1].icon = "coins"
    config.segments[1].short_label = "20 pts"
    created = await games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="w", config=config))
    shown = created.wheel.config.segments[1]
    assert (shown.color, shown.icon, shown.short_label) == ("#FFB400", "coins", "20 pts")
    bad = pb.WheelConfig()
    bad.CopyFrom(STANDARD_WHEEL)
    bad.segments[0].color = "orange"
    bad.segments[0].icon = "Big Coin"
    bad.segments[0].short_label = "x" * 17
    error = await expect_error(
        games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="bad", config=bad)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {
        "config.segments[0].color",
        "config.segments[0].icon",
        "config.segments[0].short_label",
    } <= set(field_violations(error))
