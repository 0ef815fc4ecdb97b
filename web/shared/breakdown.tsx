// An activity's breakdown as both apps show it: the base points, each
// campaign that applied and why, each that matched but gave nothing and why.
import { RefusalReason, type Breakdown } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { points } from "./format.js";

export const REASONS: Partial<Record<RefusalReason, string>> = {
  [RefusalReason.BUDGET_EXHAUSTED]: "its budget is spent",
  [RefusalReason.MEMBER_LIMIT_REACHED]: "you reached its limit",
  [RefusalReason.MEMBER_QUOTA_REACHED]: "its places are taken",
  [RefusalReason.OUTSIDE_WINDOW]: "not running now",
  [RefusalReason.LOST_STACKING]: "a better offer applied",
  [RefusalReason.NOT_DRAWN]: "not drawn this time",
  [RefusalReason.ALREADY_GRANTED]: "already given",
  [RefusalReason.PAUSED]: "paused",
  [RefusalReason.NO_BASE_POINTS]: "no base points to multiply",
  [RefusalReason.NO_CAMPAIGN]: "no campaign pays for this",
  [RefusalReason.NOT_ELIGIBLE]: "not for you this time",
};

export function BreakdownView({ breakdown }: { breakdown: Breakdown }) {
  return (
    <div class="card breakdown" data-testid="breakdown" data-total={String(breakdown.totalPoints)}>
      <p>
        <strong>+{points(breakdown.totalPoints)} points</strong>. Balance {points(breakdown.balance)}.
      </p>
      <ul>
        {breakdown.basePoints > 0n && <li>{points(breakdown.basePoints)} base points{breakdown.baseCampaignId && ` (${breakdown.baseCampaignId})`}</li>}
        {breakdown.applied.map((a) => (
          <li key={a.campaignId}>+{points(a.points)}: {a.campaignId}, {a.explanation}</li>
        ))}
        {breakdown.refused.map((r) => (
          <li key={r.campaignId} class="muted">{r.campaignId}: nothing, {REASONS[r.reason] ?? r.explanation}</li>
        ))}
        {breakdown.noPoints && <li>{REASONS[breakdown.noPoints.reason] ?? ""} {breakdown.noPoints.explanation}</li>}
      </ul>
    </div>
  );
}

