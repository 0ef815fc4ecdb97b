"""The gateway's rules without any server: who acts as whom, buckets, deadlines, CORS."""

from __future__ import annotations

import pytest

from services.gateway.domain import (
    ADMIN,
    CAMPAIGN_MANAGER,
    PLAYER,
    AccessRule,
    Audience,
    CorsPolicy,
    DeadlinePolicy,
    Principal,
    RateLimiter,
    TokenBucket,
    acting_member,
    authorize,
    check_owner,
    retry_after_seconds,
    wallet_account_id,
)
from services.kit.errors import InvalidArgument, PermissionDenied

PLAYER_M1 = Principal("m-1", frozenset({PLAYER}))
MANAGER = Principal("alice", frozenset({CAMPAIGN_MANAGER}))
ADMINISTRATOR = Principal("root", frozenset({ADMIN}))


OWN = AccessRule(Audience.PLAYER, member_field="member_id")
SUPPORT = AccessRule(Audience.PLAYER, member_field="member_id", managers_name_any_member=True)


def test_a_player_acts_only_as_themselves():
    assert acting_member(PLAYER_M1, "", OWN) == "m-1"
    assert acting_member(PLAYER_M1, "m-1", OWN) == "m-1"
    for rule in (OWN, SUPPORT):
        with pytest.raises(PermissionDenied) as refused:
            acting_member(PLAYER_M1, "m-2", rule)
        assert refused.value.reason == "MEMBER_MISMATCH"
    with pytest.raises(PermissionDenied) as refused:
        acting_member(MANAGER, "m-2", OWN)
    # The refusal says which role would do.
    assert refused.value.metadata["roles"] == "admin"


def test_managers_support_members_where_the_rule_says_and_admins_everywhere():
    assert acting_member(MANAGER, "m-2", SUPPORT) == "m-2"
    assert acting_member(ADMINISTRATOR, "m-2", OWN) == "m-2"
    with pytest.raises(PermissionDenied) as refused:
        acting_member(PLAYER_M1, "m-2", SUPPORT)
    assert refused.value.metadata["roles"] == "admin,campaign-manager"


def test_a_player_receives_only_answers_about_themselves():
    check_owner(PLAYER_M1, "m-1")
    check_owner(PLAYER_M1, "")
    check_owner(ADMINISTRATOR, "m-2")
    for caller in (PLAYER_M1, MANAGER):
        with pytest.raises(PermissionDenied) as refused:
            check_owner(caller, "m-2")
        assert (refused.value.reason, refused.value.metadata) == ("MEMBER_MISMATCH", {})


def test_manager_calls_need_a_manager_role():
    manager_rule = AccessRule(Audience.MANAGER)
    authorize(MANAGER, manager_rule, {})
    authorize(ADMINISTRATOR, manager_rule, {})
    with pytest.raises(PermissionDenied) as refused:
        authorize(PLAYER_M1, manager_rule, {})
    assert refused.value.reason == "ROLE_REQUIRED"
    authorize(PLAYER_M1, AccessRule(Audience.PLAYER), {})


def test_players_choose_only_from_the_allowed_values():
    rule = AccessRule(
        Audience.PLAYER, player_choices=(("activity.type", frozenset({"social_share"})),)
    )
    authorize(PLAYER_M1, rule, {"activity.type": "social_share"})
    for forged in ("purchase", ""):
        with pytest.raises(PermissionDenied) as refused:
            authorize(PLAYER_M1, rule, {"activity.type": forged})
        assert refused.value.reason == "CHOICE_NOT_ALLOWED"
    authorize(MANAGER, rule, {"activity.type": "purchase"})


def test_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(capacity=2, rate_per_second=4, tokens=2, updated_us=0)
    assert bucket.take(0) == 0
    assert bucket.take(0) == 0
    assert bucket.take(0) == 250_000
    assert bucket.take(250_000) == 0
    # Idle time never stores more than the capacity.
    assert [bucket.take(10_000_000) for _ in range(3)] == [0, 0, 250_000]


def test_rate_limiter_keeps_one_bucket_per_key_within_bounds():
    limiter = RateLimiter(capacity=1, rate_per_second=1, max_keys=2)
    assert limiter.take("a", 0) == 0
    assert limiter.take("a", 0) == 1_000_000
    assert limiter.take("b", 0) == 0
    assert limiter.take("c", 0) == 0
    # "a" was the least recently used and was forgotten: it starts full again.
    assert limiter.take("a", 0) == 0
    with pytest.raises(ValueError):
        RateLimiter(capacity=0, rate_per_second=1)


def test_retry_after_rounds_up_to_whole_seconds():
    assert retry_after_seconds(1) == 1
    assert retry_after_seconds(1_000_000) == 1
    assert retry_after_seconds(1_000_001) == 2


def test_deadlines_are_capped_and_defaulted():
    policy = DeadlinePolicy(default_seconds=5, max_seconds=30, stream_max_seconds=3600)
    assert policy.upstream_timeout(None, stream=False) == 5
    assert policy.upstream_timeout(2, stream=False) == 2
    assert policy.upstream_timeout(120, stream=False) == 30
    assert policy.upstream_timeout(-1, stream=False) == 0
    assert policy.upstream_timeout(None, stream=True) == 3600
    assert policy.upstream_timeout(7200, stream=True) == 3600


def test_cors_allows_listed_origins_only():
    policy = CorsPolicy.of(["https://app.example.com/", " http://localhost:5173", ""])
    assert policy.allows("https://app.example.com")
    assert policy.allows("http://localhost:5173")
    assert not policy.allows("https://evil.example.com")
    with pytest.raises(ValueError):
        CorsPolicy.of(["*"])


def test_wallet_account_ids_follow_the_ledger_conventions():
    assert wallet_account_id("m-1", "") == "m-1"
    assert wallet_account_id("m-1", "points") == "m-1"
    assert wallet_account_id("m-1", "prize:free-coffee") == "m-1/prize:free-coffee"
    for bad in ("dollars", "prize:", "prize:Free Coffee", "m-2/points"):
        with pytest.raises(InvalidArgument):
            wallet_account_id("m-1", bad)
