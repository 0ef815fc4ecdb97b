// Member lookup: the wallet, its history page by page, and the marketing
// profile. The gateway lets only an admin read another member's wallet.
import { useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Member } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import type { ListWalletEntriesResponse, Wallet } from "../gen/loyalty/gateway/v1/gateway_service_pb.js";
import { refusal } from "../shared/errors.js";
import { date, dateTime, points, signedPoints } from "../shared/format.js";
import { browserZone } from "../shared/time.js";
import { Problem } from "../shared/ui.js";
import { campaigns, progress, rewards, wallet as walletClient } from "./api.js";
import type { GetMemberProgressResponse } from "../gen/loyalty/progress/v1/progress_service_pb.js";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Redemption } from "../gen/loyalty/rewards/v1/rewards_service_pb.js";

const PAGE = 25;

interface Found {
  memberId: string;
  wallet: Wallet | null;
  profile: Member | null;
  profileProblem: unknown;
  redemptions: Redemption[] | null;
  progress: GetMemberProgressResponse | null;
}

export function MembersScreen() {
  const [query, setQuery] = useState("");
  const [found, setFound] = useState<Found | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [page, setPage] = useState<ListWalletEntriesResponse | null>(null);
  const [tokens, setTokens] = useState<string[]>([""]);

  async function loadPage(memberId: string, pageToken: string) {
    setPage(await walletClient.listWalletEntries({ memberId, pageSize: PAGE, pageToken }));
  }

  async function lookUp(event: Event) {
    event.preventDefault();
    const memberId = query.trim();
    setError(null);
    setFound(null);
    setPage(null);
    setTokens([""]);
    try {
      const [walletAnswer, profile] = await Promise.all([
        walletClient.getWallet({ memberId, expiringWithin: { seconds: 90n * 86400n, nanos: 0 } }),
        campaigns.getMember({ memberId }).then(
          (answer) => ({ profile: answer.member ?? null, problem: null as unknown }),
          (problem) => ({ profile: null, problem }),
        ),
      ]);
      const redemptions = await rewards.listMyRedemptions({ memberId, pageSize: 50 }).then((a) => a.redemptions, () => null);
      const memberProgress = await progress.getMemberProgress({ memberId }).catch(() => null);
      setFound({ memberId, wallet: walletAnswer.wallet ?? null, profile: profile.profile, profileProblem: profile.problem, redemptions, progress: memberProgress });
      await loadPage(memberId, "");
    } catch (e) {
      setError(e);
    }
  }

  const zone = found?.profile?.timeZone || browserZone();
  const problem = error ? refusal(error) : null;
  return (
    <section aria-labelledby="members-heading">
      <h2 id="members-heading">Members</h2>
      <form class="row" role="search" onSubmit={lookUp}>
        <label for="member-query">Member id</label>
        <input id="member-query" value={query} required onInput={(e) => setQuery(e.currentTarget.value)} style={{ maxWidth: "20rem" }} />
        <button type="submit" class="primary">
          Look up
        </button>
      </form>
      {problem?.reason === "MEMBER_MISMATCH" ? (
        <p role="alert" class="problem">Reading another member's wallet needs the admin role. Sign in as an admin.</p>
      ) : (
        error && <Problem error={error} />
      )}
      {found && (
        <div class="member-grid">
          <section class="card" aria-labelledby="wallet-h">
            <h3 id="wallet-h">Wallet of {found.memberId}</h3>
            {found.wallet && (
              <dl class="figures">
                <div><dt>Balance</dt><dd data-testid="member-balance">{points(found.wallet.balance)}</dd></div>
                <div><dt>Available</dt><dd>{points(found.wallet.available)}</dd></div>
                <div><dt>Earned in all</dt><dd>{points(found.wallet.lifetimeEarned)}</dd></div>
                <div>
                  <dt>Expiring in 90 days</dt>
                  <dd>
                    {found.wallet.expiringSoon.length === 0
                      ? "nothing"
                      : found.wallet.expiringSoon.map((e) => `${points(e.amount)} on ${e.expireTime ? date(timestampMs(e.expireTime), zone) : "?"}`).join(", ")}
                  </dd>
                </div>
              </dl>
            )}
          </section>
          <section class="card" aria-labelledby="profile-h">
            <h3 id="profile-h">Profile</h3>
            {found.profile ? (
              <dl class="figures">
                <div><dt>Time zone</dt><dd>{found.profile.timeZone || "campaign's zone"}</dd></div>
                <div><dt>Tier</dt><dd>{found.profile.tier || "none"}</dd></div>
                <div><dt>Segments</dt><dd>{found.profile.segments.join(", ") || "none"}</dd></div>
                <div><dt>Birthday</dt><dd>{found.profile.birthday ? `${found.profile.birthday.day}/${found.profile.birthday.month}${found.profile.birthday.year ? "/" + found.profile.birthday.year : ""}` : "unknown"}</dd></div>
                <div><dt>Referred by</dt><dd>{found.profile.referrerMemberId || "nobody"}</dd></div>
                <div><dt>Opt-ins</dt><dd>{found.profile.optIns.join(", ") || "none"}</dd></div>
              </dl>
            ) : found.profileProblem ? (
              <Problem error={found.profileProblem} />
            ) : null}
          </section>
          <section class="card" aria-labelledby="progress-h">
            <h3 id="progress-h">Tier and badges</h3>
            {!found.progress ? <p>Not available.</p> : (
              <>
                <ul>{found.progress.tiers.map((t) => <li key={t.programId}>{t.programId}: <strong>{t.tierDisplayName || t.tierId || "none"}</strong>{t.floor?.tierId && ` (floor ${t.floor.tierId}: ${t.floor.reason})`}, {points(t.qualifyingPoints)} qualifying points{t.nextTierId && `, ${points(t.pointsToNext)} to ${t.nextTierId}`}</li>)}</ul>
                <p>Badges: {found.progress.badges.flatMap((b) => b.levels.filter((l) => l.earned).map((l) => `${b.displayName} ${l.levelId}`)).join(", ") || "none"}</p>
                <TierFloorForm memberId={found.memberId} programs={found.progress.tiers.map((t) => t.programId)} />
              </>
            )}
          </section>
          <section class="card" aria-labelledby="redemptions-h">
            <h3 id="redemptions-h">Redemptions</h3>
            {found.redemptions === null ? <p>Not available (the rewards service answers admins).</p> : found.redemptions.length === 0 ? <p>None.</p> : (
              <ul>{found.redemptions.map((r) => <li key={r.redemptionId}><span class="mono">{r.redemptionId}</span>: {r.rewardId} × {r.quantity}, {points(r.priceTotal)} {r.priceUnit}{r.code && <> (code <span class="mono">{r.code}</span>)</>}</li>)}</ul>
            )}
          </section>
          <section class="card wide" aria-labelledby="history-h">
            <h3 id="history-h">History</h3>
            {page && (
              <>
                <table>
                  <caption class="visually-hidden">Wallet history, oldest first, page {tokens.length}</caption>
                  <thead>
                    <tr><th scope="col">When ({zone})</th><th scope="col">Transfer</th><th scope="col" class="number">Change</th><th scope="col" class="number">Balance</th></tr>
                  </thead>
                  <tbody>
                    {page.entries.map((e) => (
                      <tr key={e.transferId}>
                        <td>{e.createTime ? dateTime(timestampMs(e.createTime), zone) : ""}</td>
                        <td class="mono">{e.transferId}</td>
                        <td class="number">{signedPoints(e.change)}</td>
                        <td class="number">{points(e.balanceAfter)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                <p class="row">
                  <span>Page {tokens.length}</span>
                  <button type="button" disabled={tokens.length <= 1} onClick={async () => {
                    const previous = tokens.slice(0, -1);
                    setTokens(previous);
                    await loadPage(found.memberId, previous[previous.length - 1]!);
                  }}>Previous page</button>
                  <button type="button" disabled={!page.nextPageToken} onClick={async () => {
                    setTokens([...tokens, page.nextPageToken]);
                    await loadPage(found.memberId, page.nextPageToken);
                  }}>Next page</button>
                </p>
              </>
            )}
          </section>
        </div>
      )}
    </section>
  );
}

// A manual tier floor: the member keeps at least this tier until the date
// (service recovery, a VIP), whatever their points say.
function TierFloorForm({ memberId, programs }: { memberId: string; programs: string[] }) {
  const [program, setProgram] = useState(programs[0] ?? "");
  const [tier, setTier] = useState("");
  const [until, setUntil] = useState("");
  const [reason, setReason] = useState("");
  const [fields, setFields] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string | null>(null);
  if (!programs.length) return null;
  async function submit(event: Event) {
    event.preventDefault();
    setFields({});
    try {
      const answer = await progress.setTierFloor({ programId: program, memberId, tierId: tier, reason, expireTime: until ? timestampFromMs(Date.parse(until)) : undefined });
      setDone(`Now ${answer.status?.tierDisplayName || answer.status?.tierId}.`);
    } catch (e) {
      const r = refusal(e);
      setFields({ ...r.fields, form: Object.keys(r.fields).length ? "" : r.message });
    }
  }
  return (
    <form onSubmit={submit}>
      <h4>Manual tier floor</h4>
      <div class="row">
        <label>Program <select value={program} onChange={(e) => setProgram(e.currentTarget.value)}>{programs.map((p) => <option value={p}>{p}</option>)}</select></label>
        <label>Tier <input value={tier} onInput={(e) => setTier(e.currentTarget.value)} aria-invalid={Boolean(fields["tier_id"])} /></label>
        <label>Until <input type="date" value={until} onInput={(e) => setUntil(e.currentTarget.value)} /></label>
        <label>Reason <input value={reason} required onInput={(e) => setReason(e.currentTarget.value)} /></label>
        <button type="submit">Set floor</button>
      </div>
      {Object.entries(fields).filter(([, d]) => d).map(([f, d]) => <p class="error" role="alert">{f === "form" ? d : `${f}: ${d}`}</p>)}
      {done && <p role="status">{done}</p>}
    </form>
  );
}
