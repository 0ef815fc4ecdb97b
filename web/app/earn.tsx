// Earn: the activities a member may report from the app (the gateway allows
// shares, reviews, a completed profile, app logins and invites), what each
// would earn now (DryRunActivity) and, once reported, the breakdown: base
// points, each campaign that applied and why, each that gave nothing and why.
import { useState } from "preact/hooks";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Breakdown } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { BreakdownView } from "../shared/breakdown.js";
import { ACTIVITY_NAMES } from "../shared/campaigntext.js";
import { points } from "../shared/format.js";
import { announce, Problem } from "../shared/ui.js";
import { campaigns } from "./clients.js";
import { useMember } from "./session.js";

export const REPORTABLE = ["social_share", "product_review", "profile_completed", "app_login", "referral_invite_sent"] as const;

export function EarnScreen() {
  const { memberId } = useMember();
  const [results, setResults] = useState<Record<string, Breakdown>>({});
  const [previews, setPreviews] = useState<Record<string, Breakdown>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const activity = (type: string, id: string) => ({ activityId: id, memberId, type, occurTime: timestampFromMs(Date.now()) });

  async function preview(type: string) {
    try {
      const answer = await campaigns.dryRunActivity({ activity: activity(type, `preview-${crypto.randomUUID().slice(0, 20)}`) });
      if (answer.breakdown) setPreviews((p) => ({ ...p, [type]: answer.breakdown! }));
    } catch (e) {
      setError(e);
    }
  }

  async function report(type: string) {
    setBusy(type);
    setError(null);
    try {
      const answer = await campaigns.trackActivity({ activity: activity(type, `${type.slice(0, 12)}-${crypto.randomUUID()}`.slice(0, 50)) });
      if (answer.breakdown) {
        setResults((r) => ({ ...r, [type]: answer.breakdown! }));
        announce(`${ACTIVITY_NAMES[type]}: ${answer.breakdown.totalPoints} points.`);
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  }

  return (
    <section aria-labelledby="earn-heading">
      <h3 id="earn-heading">Earn points</h3>
      {error && <Problem error={error} />}
      <ul class="earn-list">
        {REPORTABLE.map((type) => (
          <li key={type} class="card">
            <p class="row">
              <strong>{ACTIVITY_NAMES[type]}</strong>
              <button type="button" class="primary" disabled={busy === type} onClick={() => report(type)} data-testid={`report-${type}`}>
                {busy === type ? "Sending…" : "I did it"}
              </button>
              <button type="button" onClick={() => preview(type)}>What would I earn?</button>
            </p>
            {previews[type] && !results[type] && <p>You would earn {points(previews[type]!.totalPoints)} points now.</p>}
            {results[type] && <BreakdownView breakdown={results[type]!} />}
          </li>
        ))}
      </ul>
    </section>
  );
}
