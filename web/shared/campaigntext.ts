// How a campaign's reward reads, for members and managers alike.
import { CampaignKind, type Reward } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { points } from "./format.js";

export function rewardText(kind: CampaignKind, reward: Reward | undefined): string {
  const r = reward;
  switch (kind) {
    case CampaignKind.MULTIPLIER:
      return r ? `${r.multiplierPercent / 100}× points` : "more points";
    case CampaignKind.FIXED_BONUS:
      return `${points(r?.points ?? 0n)} bonus points`;
    case CampaignKind.SURPRISE_BONUS:
      return `${points(r?.points ?? 0n)} points, ${((r?.probabilityPpm ?? 0) / 10_000).toFixed(2).replace(/\.?0+$/, "")}% chance`;
    case CampaignKind.BIRTHDAY_BONUS:
      return `${points(r?.points ?? 0n)} points on your birthday`;
    case CampaignKind.REFERRAL_BONUS:
      return `${points(r?.referrerPoints ?? 0n)} for you, ${points(r?.referredPoints ?? 0n)} for your friend`;
    case CampaignKind.BASE_RULE:
      if (r?.pointsPerUnit) return `${points(r.pointsPerUnit)} points per ${r.minorUnitsPerUnit && r.minorUnitsPerUnit !== 100n ? `${r.minorUnitsPerUnit} minor units` : "unit spent"}`;
      return `${points(r?.points ?? 0n)} points`;
    default:
      return "";
  }
}

export const ACTIVITY_NAMES: Record<string, string> = {
  social_share: "Share a post",
  product_review: "Review a product",
  profile_completed: "Complete your profile",
  app_login: "Open the app",
  referral_invite_sent: "Invite a friend",
  purchase: "Purchase",
};
