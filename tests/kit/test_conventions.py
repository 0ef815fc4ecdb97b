"""The kit's pure conventions: ids, paging tokens, settings, echoed text, logs."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import structlog

from services.kit.config import ConfigError, ServiceSettings, setting
from services.kit.errors import InvalidArgument, Violations
from services.kit.ids import MEMBER_ID, RESOURCE_ID, check_id, member_account
from services.kit.logs import configure_logging
from services.kit.paging import (
    MAX_TOKEN_CHARACTERS,
    decode_page_token,
    encode_page_token,
    page_of,
    page_size,
)
from services.kit.text import clipped, shown


def violations_of(check) -> dict[str, str]:
    violations = Violations()
    check(violations)
    return {v.field: v.description for v in violations.items}


def test_an_id_check_names_the_field_and_shows_a_long_value_truncated():
    assert violations_of(lambda v: check_id(v, "wheel_id", "daily-1")) == {}
    assert violations_of(lambda v: check_id(v, "wheel_id", "")) == {"wheel_id": "is required"}
    found = violations_of(lambda v: check_id(v, "member_id", "m/1" + "x" * 70_000, MEMBER_ID))
    assert len(found["member_id"]) < 250
    assert "70,003 characters" in found["member_id"]
    assert not RESOURCE_ID.matches("a:b")


def test_member_accounts_follow_the_suite_rules():
    assert member_account("m-1") == "m-1"
    assert member_account("m-1", "prize:free-coffee") == "m-1/prize:free-coffee"


def test_a_page_token_is_bound_to_its_query_and_its_type():
    token = encode_page_token(42, ("m-1", None))
    assert decode_page_token(token, ("m-1", None), int) == 42
    assert decode_page_token("", ("m-1", None), int) is None
    for bad in (
        lambda: decode_page_token(token, ("m-2", None), int),
        lambda: decode_page_token(token, ("m-1", None), str),
        lambda: decode_page_token("not a token", ("m-1", None), int),
        lambda: decode_page_token(encode_page_token(-1, ()), (), int),
        lambda: decode_page_token(encode_page_token(2**63, ()), (), int),
        lambda: decode_page_token("A" * 10_000, (), int),
    ):
        with pytest.raises(InvalidArgument) as raised:
            bad()
        assert raised.value.reason == "INVALID_PAGE_TOKEN"


def test_a_page_token_is_compact_unpadded_and_round_trips_every_position():
    query = ("m-1", 7)
    for position in [0, 1, 2**63 - 1, *range(2, 300), "", "e-1", "é/ü?&=+"]:
        token = encode_page_token(position, query)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token), token  # url-safe, no "=" padding
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        assert raw == json.dumps(json.loads(raw), separators=(",", ":"))  # no wasted spaces
        assert decode_page_token(token, query, type(position)) == position


def test_a_page_token_of_the_maximum_length_is_accepted_one_longer_is_not():
    # a str position whose token is exactly MAX_TOKEN_CHARACTERS long
    position = next(
        "k" * n for n in range(400) if len(encode_page_token("k" * n, ())) == MAX_TOKEN_CHARACTERS
    )
    assert decode_page_token(encode_page_token(position, ()), (), str) == position
    longer = encode_page_token(position + "k", ())
    assert len(longer) > MAX_TOKEN_CHARACTERS
    with pytest.raises(InvalidArgument):
        decode_page_token(longer, (), str)


def test_a_bad_page_token_names_the_field_and_says_why():
    with pytest.raises(InvalidArgument) as raised:
        decode_page_token("not a token", (), int)
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("page_token", "is not a token from this query's previous page")
    ]


def test_a_page_carries_a_token_only_when_more_rows_follow():
    query = ("all",)
    last = page_of([1, 2, 3], 3, lambda row: row, query)
    assert (last.items, last.next_page_token) == ([1, 2, 3], "")
    more = page_of([1, 2, 3, 4], 3, lambda row: row, query)
    assert more.items == [1, 2, 3]
    assert decode_page_token(more.next_page_token, query, int) == 3


def test_page_size_zero_is_the_default_negative_is_refused_large_is_clamped():
    assert page_size(Violations(), 0) == 50
    assert page_size(Violations(), 10_000, maximum=500) == 500
    assert violations_of(lambda v: page_size(v, -1)) == {"page_size": "must not be negative"}


@dataclass(frozen=True, kw_only=True)
class SampleSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "SAMPLE"
    db_path: Path = setting(Path("var/sample.db"), "SAMPLE_DB")
    listen: str = "127.0.0.1:1"
    interval_seconds: float = 1.0
    target: str | None = "127.0.0.1:2"
    origins: tuple[str, ...] = ("a",)


def test_settings_come_from_their_variables_with_the_dataclass_defaults():
    assert SampleSettings.from_env({}) == SampleSettings()
    read = SampleSettings.from_env(
        {
            "SAMPLE_DB": "/tmp/x.db",
            "SAMPLE_INTERVAL_SECONDS": "2.5",
            "SAMPLE_TARGET": "",
            "SAMPLE_ORIGINS": "http://a, http://b",
            "LOG_LEVEL": "debug",
        }
    )
    assert read.db_path == Path("/tmp/x.db")
    assert read.interval_seconds == 2.5
    assert read.target is None
    assert read.origins == ("http://a", "http://b")
    assert read.log_level == "debug"
    with pytest.raises(ConfigError, match="SAMPLE_INTERVAL_SECONDS"):
        SampleSettings.from_env({"SAMPLE_INTERVAL_SECONDS": "soon"})


def test_echoed_text_is_short():
    assert shown("abc") == "'abc'"
    assert len(shown("x" * 70_000)) < 130
    assert len(clipped("y" * 5_000, 300)) <= 300


def test_logs_are_json_off_a_terminal_and_also_go_to_a_file_when_asked(tmp_path):
    stream = io.StringIO()
    log_file = tmp_path / "logs" / "sample.log"
    configure_logging("sample", "info", "auto", log_file, stream=stream)
    try:
        structlog.get_logger().info("thing_done", thing_id="t-1")
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert (line["event"], line["thing_id"], line["service"]) == ("thing_done", "t-1", "sample")
        assert json.loads(log_file.read_text().splitlines()[-1])["thing_id"] == "t-1"
        console = io.StringIO()
        configure_logging("sample", "info", "console", None, stream=console)
        structlog.get_logger().info("thing_done", thing_id="t-2")
        assert "thing_done" in console.getvalue() and "{" not in console.getvalue()
    finally:
        structlog.reset_defaults()
