"""loyalty-admin's files: human units, several documents, what a file changes."""

from __future__ import annotations

import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.progress.v1 import progress_service_pb2 as progress_pb

from tools.admin_files import UsageError, changed_fields, load_documents

TWO_CAMPAIGNS = """
campaign_id: winter-48h
spec:
  kind: CAMPAIGN_KIND_FIXED_BONUS
  schedule:
    start: 2026-12-05T18:00
    duration: 48h
    exclusions: [2026-12-12, "2026-12-19T18:00"]
    time_zone: Europe/Paris
    end_time: 2026-12-31
---
campaign_id: quick
spec:
  schedule: {start: 2026-01-02, duration: 1h30m, timeZone: America/New_York,
             endTime: "2026-12-31T00:00:00Z"}
"""


def test_durations_dates_and_local_times_read_in_the_campaigns_zone(tmp_path):
    path = tmp_path / "campaigns.yaml"
    path.write_text(TWO_CAMPAIGNS)
    winter, quick = load_documents(str(path), pb.CreateCampaignRequest, "campaigns")
    schedule = winter.spec.schedule
    assert (schedule.start.year, schedule.start.month, schedule.start.day) == (2026, 12, 5)
    assert (schedule.start.hours, schedule.start.minutes) == (18, 0)
    assert schedule.duration.seconds == 48 * 3600
    assert [(e.day, e.hours) for e in schedule.exclusions] == [(12, 0), (19, 18)]
    # Midnight in Paris is 23:00 UTC the day before (winter time).
    assert schedule.end_time.ToJsonString() == "2026-12-30T23:00:00Z"
    assert quick.spec.schedule.duration.seconds == 5400
    assert quick.spec.schedule.end_time.ToJsonString() == "2026-12-31T00:00:00Z"


def test_a_wheels_window_reads_in_the_wheels_zone(tmp_path):
    path = tmp_path / "wheel.yaml"
    path.write_text(
        "wheel_id: w\nconfig: {time_zone: America/New_York, start_time: '2026-07-01T09:00'}\n"
    )
    (wheel,) = load_documents(str(path), games_pb.CreateWheelRequest, "wheels")
    assert wheel.config.start_time.ToJsonString() == "2026-07-01T13:00:00Z"


def test_progress_definitions_take_lists_and_human_units(tmp_path):
    path = tmp_path / "progress.json"
    path.write_text(
        '[{"id": "club", "tierProgram": {"grace": "30d"}},'
        ' {"id": "week", "challenge": {"schedule": {"timeZone": "Europe/Paris",'
        ' "start": "2026-03-02T09:00", "duration": "7d", "endTime": "2026-06-01"}}}]'
    )
    club, week = load_documents(str(path), progress_pb.Definition, "definitions", lists=True)
    assert club.tier_program.grace.seconds == 30 * 86_400
    schedule = week.challenge.schedule
    assert (schedule.start.month, schedule.start.day, schedule.start.hours) == (3, 2, 9)
    assert schedule.duration.seconds == 7 * 86_400
    # Midnight in Paris is 22:00 UTC the day before (summer time).
    assert schedule.end_time.ToJsonString() == "2026-05-31T22:00:00Z"
    # Without `lists` a list is not a resource; with it, each item is named.
    with pytest.raises(UsageError, match="expected a mapping"):
        load_documents(str(path), progress_pb.Definition, "definitions")
    path.write_text('id: ok\n---\n[{"id": "a"}, "not a mapping"]')
    with pytest.raises(UsageError, match="document 2: item 2: expected a mapping"):
        load_documents(str(path), progress_pb.Definition, "definitions", lists=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "spec: {schedule: {duration: 48 hours}}",
            "schedule.duration: '48 hours' is not a duration",
        ),
        ("spec: {schedule: {end_time: 2026-12-31}}", "needs a time_zone beside it"),
        ("spec: {schedule: {start: 2026-02-30}}", "day is out of range for month"),
        ("spec: {schedule: {start: '2026-02-30T10:00'}}", "spec.schedule.start"),
        ("campaign_id: x\n---\n- not a mapping", "document 2: expected a mapping"),
        ("", "no campaigns in the file"),
    ],
)
def test_a_bad_value_names_its_document_and_field(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        load_documents(str(path), pb.CreateCampaignRequest, "campaigns")


def test_changed_fields_go_field_by_field_inside_the_specs_parts():
    current = pb.CampaignSpec(display_name="Weekend", reward=pb.Reward(points=10))
    current.schedule.start.day = 5
    wanted = pb.CampaignSpec()
    wanted.CopyFrom(current)
    assert changed_fields(current, wanted) == []
    wanted.reward.points = 20
    wanted.schedule.start.day = 6
    wanted.budget_points = 5000
    assert changed_fields(current, wanted) == ["reward.points", "schedule.start", "budget_points"]
