"""The public API: which methods the gateway exposes and who may call them.

The wallet is the gateway's own contract (loyalty.gateway.v1). Games and
campaigns are re-exposed as they are, method by method: anything not listed
here is not reachable from outside.
"""

from __future__ import annotations

from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.progress.v1 import progress_service_pb2 as progress_pb
from loyalty.rewards.v1 import rewards_service_pb2 as rewards_pb

from services.gateway.domain import AccessRule, Audience
from services.gateway.servicer import Upstream

PLAYER = AccessRule(Audience.PLAYER)
MANAGER = AccessRule(Audience.MANAGER)
AS_MEMBER = AccessRule(Audience.PLAYER, member_field="member_id")
PUBLIC = AccessRule(Audience.PUBLIC)

# gRPC reflection (v1 and v1alpha) describes exactly the methods listed below.
REFLECTION_RULE = PUBLIC

WALLET_SERVICE = gateway_pb.DESCRIPTOR.services_by_name["WalletService"]
WALLET_RULES = {
    "GetWallet": AS_MEMBER,
    "ListWalletEntries": AS_MEMBER,
    "WatchWallet": AS_MEMBER,
}

GAMES = Upstream(
    name="games",
    service=games_pb.DESCRIPTOR.services_by_name["GamesService"],
    rules={
        "ListWheels": PLAYER,
        "GetWheel": AS_MEMBER,
        "GetSeedPair": AS_MEMBER,
        "SetClientSeed": AS_MEMBER,
        "RotateSeed": AS_MEMBER,
        "Spin": AS_MEMBER,
        # A spin is asked for by its id; the answer names its member and balance.
        "VerifySpin": AccessRule(Audience.PLAYER, owner_field="spin.member_id"),
        "ListPlays": AS_MEMBER,
        "GetCatchGame": PLAYER,
        "StartCatch": AS_MEMBER,
        "WatchCatchObjects": AS_MEMBER,
        "SubmitCatch": AS_MEMBER,
        "GetLeaderboard": AS_MEMBER,
        "CreateWheel": MANAGER,
        "UpdateWheel": MANAGER,
        "StockWheel": MANAGER,
        "GetWheelStats": MANAGER,
        "CreateCatchGame": MANAGER,
    },
)

# What a member may report about themselves from an app. Purchases, refunds
# and verified referral steps come from trusted back ends with a manager or
# admin token.
PLAYER_ACTIVITY_TYPES = frozenset(
    {"social_share", "product_review", "profile_completed", "app_login", "referral_invite_sent"}
)

# A player reports, or asks what they would earn for, only their own activities
# of these types.
AS_REPORTING_MEMBER = AccessRule(
    Audience.PLAYER,
    member_field="activity.member_id",
    player_choices=(("activity.type", PLAYER_ACTIVITY_TYPES),),
)

CAMPAIGNS = Upstream(
    name="campaigns",
    service=campaigns_pb.DESCRIPTOR.services_by_name["CampaignsService"],
    rules={
        "TrackActivity": AS_REPORTING_MEMBER,
        "DryRunActivity": AS_REPORTING_MEMBER,
        "GetMember": AS_MEMBER,
        # Players see campaigns' public face only: no budget, no targeting.
        "GetPublicCampaign": AS_MEMBER,
        "ListPublicCampaigns": AS_MEMBER,
        "ListCampaigns": MANAGER,
        "GetCampaign": MANAGER,
        "GetSchedule": MANAGER,
        "WatchCampaigns": MANAGER,
        "UpsertMember": MANAGER,
        "CreateCampaign": MANAGER,
        "UpdateCampaign": MANAGER,
        "ScheduleCampaign": MANAGER,
        "PauseCampaign": MANAGER,
        "ResumeCampaign": MANAGER,
        "CancelCampaign": MANAGER,
        "ArchiveCampaign": MANAGER,
        "GetCampaignStats": MANAGER,
    },
)

# A player sees the catalog, redeems and reads their own redemptions, codes and
# offers (every player call names the member, which must be the caller);
# managers run the catalog, stock, codes, fulfilment, refunds and reports.
REWARDS = Upstream(
    name="rewards",
    service=rewards_pb.DESCRIPTOR.services_by_name["RewardsService"],
    rules={
        "ListCatalog": AS_MEMBER,
        "Redeem": AS_MEMBER,
        "ClaimPrize": AS_MEMBER,
        "GetRedemption": AS_MEMBER,
        "ListMyRedemptions": AS_MEMBER,
        "SetPreferences": AS_MEMBER,
        "GetPreferences": AS_MEMBER,
        "GetMyOffer": AS_MEMBER,
        "AcceptOffer": AS_MEMBER,
        "CreateReward": MANAGER,
        "UpdateReward": MANAGER,
        "ArchiveReward": MANAGER,
        "GetReward": MANAGER,
        "ListRewards": MANAGER,
        "StockReward": MANAGER,
        "ImportCodes": MANAGER,
        "GenerateCodes": MANAGER,
        "ListRedemptions": MANAGER,
        "FulfilRedemption": MANAGER,
        "CancelRedemption": MANAGER,
        "RefundRedemption": MANAGER,
        "UpsertOffer": MANAGER,
        "ArchiveOffer": MANAGER,
        "ListOffers": MANAGER,
        "GetRewardReport": MANAGER,
        "GetProgramReport": MANAGER,
    },
)

# Members read their own progress and achievements and join challenges; the rest
# (definitions, floors, rebuilds, stats, budgets, the tier feed) is for managers.
PROGRESS = Upstream(
    name="progress",
    service=progress_pb.DESCRIPTOR.services_by_name["ProgressService"],
    rules={
        "GetMemberProgress": AS_MEMBER,
        "JoinChallenge": AS_MEMBER,
        "WatchAchievements": AS_MEMBER,
        "ApplyDefinition": MANAGER,
        "GetDefinition": MANAGER,
        "ListDefinitions": MANAGER,
        "ArchiveDefinition": MANAGER,
        "DryRunTierProgram": MANAGER,
        "ListMemberEvents": MANAGER,
        "SetTierFloor": MANAGER,
        "RebuildMember": MANAGER,
        "GetProgressStats": MANAGER,
        "GetFeedStatus": MANAGER,
        "FundBudget": MANAGER,
        "WatchTierChanges": MANAGER,
    },
)
