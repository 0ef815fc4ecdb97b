// My progress: the tier with a bar to the next one (and what keeps the
// current one), badges with their next level, streaks and challenges (joining
// the opt-in ones); new achievements arrive live from WatchAchievements.
import { useEffect, useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { GetMemberProgressResponse, TierStatus } from "../gen/loyalty/progress/v1/progress_service_pb.js";
import { date, points } from "../shared/format.js";
import { announce, Loading, Problem } from "../shared/ui.js";
import { progress } from "./clients.js";
import { useMember } from "./session.js";

function Bar({ value, max, label }: { value: number; max: number; label: string }) {
  return <progress max={Math.max(1, max)} value={Math.min(value, max)} aria-label={label} />;
}

function Tier({ tier, zone }: { tier: TierStatus; zone: string }) {
  const have = Number(tier.qualifyingPoints);
  const target = have + Number(tier.pointsToNext);
  return (
    <div class="card" data-testid="tier">
      <p class="row"><strong>{tier.tierDisplayName || tier.tierId || "No tier yet"}</strong> <small>{tier.programId}</small></p>
      {tier.nextTierId ? (
        <>
          <Bar value={have} max={target} label={`${points(have)} of ${points(target)} qualifying points`} />
          <p>{points(tier.pointsToNext)} points{tier.activitiesToNext > 0n && ` and ${tier.activitiesToNext} activities`} to {tier.nextTierId}.</p>
        </>
      ) : (
        <p>The top tier.</p>
      )}
      {tier.keepByTime && (tier.keepPointsNeeded > 0n || tier.keepActivitiesNeeded > 0n) && (
        <p>Keep it: {points(tier.keepPointsNeeded)} more points by {date(timestampMs(tier.keepByTime), zone)}.</p>
      )}
      {tier.keptUntilTime && <p>Yours until {date(timestampMs(tier.keptUntilTime), zone)}.</p>}
    </div>
  );
}

export function ProgressScreen() {
  const { memberId, zone } = useMember();
  const [state, setState] = useState<GetMemberProgressResponse | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () => progress.getMemberProgress({ memberId }).then(setState, setError);
  useEffect(() => {
    load();
    const abort = new AbortController();
    (async () => {
      try {
        for await (const message of progress.watchAchievements({ memberId }, { signal: abort.signal })) {
          if (message.achievement) {
            announce(`New: ${message.achievement.detail || message.achievement.definitionId}${message.achievement.bonusPoints ? `, +${message.achievement.bonusPoints} points` : ""}.`);
            load();
          }
        }
      } catch {
        // The page went away or the stream broke: the next visit reads again.
      }
    })();
    return () => abort.abort();
  }, [memberId]);

  async function join(challengeId: string) {
    try {
      await progress.joinChallenge({ challengeId, memberId });
      announce("Joined.");
      load();
    } catch (e) {
      setError(e);
    }
  }

  if (error && !state) return <Problem error={error} />;
  if (!state) return <Loading label="Loading your progress" />;
  return (
    <section aria-labelledby="progress-heading">
      <h3 id="progress-heading">My progress</h3>
      {error && <Problem error={error} />}
      {state.tiers.map((t) => <Tier key={t.programId} tier={t} zone={zone} />)}
      <h4>Badges</h4>
      {state.badges.length === 0 ? <p>No badges yet.</p> : (
        <ul class="badges">
          {state.badges.map((b) => (
            <li key={b.badgeId} class="card">
              <strong>{b.displayName}</strong> {b.levels.filter((l) => l.earned).map((l) => <span class="badge">{l.levelId}</span>)}
              {b.nextLevelId && <><Bar value={Number(b.value)} max={Number(b.nextThreshold)} label={`${b.value} of ${b.nextThreshold}`} /><p>{b.progressText || `${b.value} of ${b.nextThreshold} to ${b.nextLevelId}`}</p></>}
            </li>
          ))}
        </ul>
      )}
      <h4>Streaks</h4>
      {state.streaks.length === 0 ? <p>No streaks yet.</p> : (
        <ul>{state.streaks.map((s) => <li key={s.streakId}><strong>{s.displayName}</strong>: {s.current} in a row (best {s.longest}){s.nextMilestone ? `, next milestone at ${s.nextMilestone}` : ""}.</li>)}</ul>
      )}
      <h4>Challenges</h4>
      {state.challenges.length === 0 ? <p>No challenges right now.</p> : (
        <ul>
          {state.challenges.map((c) => (
            <li key={c.challengeId} class="card">
              <strong>{c.displayName}</strong>{c.completed ? <span class="ok"> completed</span> : c.windowEndTime && ` until ${date(timestampMs(c.windowEndTime), zone)}`}
              <ul>{c.steps.map((s) => <li key={s.stepId}>{s.stepId}: {String(s.value)} / {String(s.target)} {s.done && "✓"}</li>)}</ul>
              {c.optIn && !c.joined && <button type="button" onClick={() => join(c.challengeId)}>Join</button>}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
