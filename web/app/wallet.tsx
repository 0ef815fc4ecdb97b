// The wallet: balance, what can be spent, points expiring soon (with their
// dates, so a member sees what they would lose), the history and live
// updates from WatchWallet without reloading.
import { useEffect, useRef, useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { EntryReason, type Wallet, type WalletEntry } from "../gen/loyalty/gateway/v1/gateway_service_pb.js";
import { date, daysFromNow, dateTime, points, signedPoints } from "../shared/format.js";
import { announce, Loading, Problem } from "../shared/ui.js";
import { wallet as walletClient } from "./api.js";
import { useMember } from "./session.js";

const EXPIRING_WINDOW_SECONDS = 90n * 86400n;
const HISTORY_PAGE = 1000; // the gateway's largest page: one call for most members
const SHOWN_PER_PAGE = 20;
const RETRY_MS = [500, 1000, 2000, 5000, 10000];

const REASONS: Record<EntryReason, string> = {
  [EntryReason.UNSPECIFIED]: "Change",
  [EntryReason.EARN]: "Earned",
  [EntryReason.REDEEM]: "Redeemed",
  [EntryReason.BONUS]: "Bonus",
  [EntryReason.GAME_PRIZE]: "Game prize",
  [EntryReason.GAME_COST]: "Game cost",
  [EntryReason.EXPIRY]: "Expired",
  [EntryReason.REVERSAL]: "Reversed",
  [EntryReason.CLAWBACK]: "Taken back after a refund",
  [EntryReason.ADJUSTMENT]: "Adjustment",
};

export function reasonText(entry: WalletEntry): string {
  const campaign = entry.metadata["campaign_id"];
  const base = REASONS[entry.reason] ?? "Change";
  return campaign ? `${base}: ${campaign}` : base;
}

async function readHistory(memberId: string): Promise<WalletEntry[]> {
  const entries: WalletEntry[] = [];
  let pageToken = "";
  do {
    const page = await walletClient.listWalletEntries({ memberId, pageSize: HISTORY_PAGE, pageToken });
    entries.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return entries;
}

// The first screen's first call leaves as soon as the module runs, before the
// first render; the screen picks the answer up.
let early: { memberId: string; answer: Promise<Wallet | null> } | null = null;
export function prefetchWallet(memberId: string): void {
  early = { memberId, answer: getWallet(memberId).catch(() => null) };
}
function getWallet(memberId: string): Promise<Wallet | null> {
  return walletClient
    .getWallet({ memberId, expiringWithin: { seconds: EXPIRING_WINDOW_SECONDS, nanos: 0 } })
    .then((answer) => answer.wallet ?? null);
}

export function WalletScreen() {
  const { memberId, zone } = useMember();
  const [wallet, setWallet] = useState<Wallet | null>(null);
  const [entries, setEntries] = useState<WalletEntry[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [shown, setShown] = useState(SHOWN_PER_PAGE);
  const [live, setLive] = useState<"connecting" | "live" | "retrying">("connecting");
  const [flash, setFlash] = useState<string | null>(null);
  const lastSequence = useRef(0n);

  const refreshWallet = () => getWallet(memberId).then(setWallet);

  useEffect(() => {
    const abort = new AbortController();
    let stopped = false;
    const first = early?.memberId === memberId ? early.answer : null;
    early = null;
    (first ?? getWallet(memberId)).then((w) => (w ? setWallet(w) : refreshWallet()), setError).catch(setError);
    (async () => {
      try {
        const history = await readHistory(memberId);
        if (stopped) return;
        setEntries(history.slice().reverse());
        lastSequence.current = history.length ? history[history.length - 1]!.sequence : 0n;
      } catch (e) {
        if (!stopped) setError(e);
        return;
      }
      // Follow new changes, resuming after the last one seen when the stream breaks.
      for (let attempt = 0; !stopped; attempt += 1) {
        try {
          const stream = walletClient.watchWallet({ memberId, afterSequence: lastSequence.current }, { signal: abort.signal });
          setLive("live");
          for await (const message of stream) {
            const entry = message.entry;
            if (!entry || entry.sequence <= lastSequence.current) continue;
            lastSequence.current = entry.sequence;
            attempt = 0;
            setEntries((list) => [entry, ...(list ?? [])]);
            setFlash(entry.transferId);
            announce(`${signedPoints(entry.change)} points, ${reasonText(entry)}. Balance ${points(entry.balanceAfter)}.`);
            refreshWallet().catch(() => undefined);
          }
        } catch {
          if (stopped) return;
        }
        setLive("retrying");
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]));
      }
    })();
    return () => {
      stopped = true;
      abort.abort();
    };
  }, [memberId]);

  if (error && !wallet) return <Problem error={error} onRetry={() => location.reload()} />;
  if (!wallet) return <Loading label="Loading your wallet" />;
  const now = Date.now();
  return (
    <section aria-label="Your points" class="wallet">
      <div class="balance-card">
        <p class="balance" data-testid="balance" aria-label={`Balance: ${points(wallet.balance)} points`}>
          <span class="figure">{points(wallet.balance)}</span> <span class="unit">points</span>
        </p>
        <dl class="figures">
          <div>
            <dt>Available now</dt>
            <dd data-testid="available">{points(wallet.available)}</dd>
          </div>
          <div>
            <dt>Earned in all</dt>
            <dd>{points(wallet.lifetimeEarned)}</dd>
          </div>
        </dl>
        <p class="live-state" aria-hidden="true">
          {live === "live" ? "● live" : live === "retrying" ? "reconnecting…" : ""}
        </p>
      </div>
      <section aria-labelledby="expiring-heading" class="expiring">
        <h3 id="expiring-heading">Expiring soon</h3>
        {wallet.expiringSoon.length === 0 ? (
          <p>Nothing expires in the next 90 days.</p>
        ) : (
          <ul>
            {wallet.expiringSoon.map((item) => {
              const at = item.expireTime ? timestampMs(item.expireTime) : now;
              return (
                <li key={String(at)}>
                  <strong>{points(item.amount)} points</strong> expire {daysFromNow(at, now)}, on <time dateTime={new Date(at).toISOString()}>{date(at, zone)}</time>. Use them before then.
                </li>
              );
            })}
          </ul>
        )}
      </section>
      <section aria-labelledby="history-heading" class="history">
        <h3 id="history-heading">History</h3>
        {entries === null ? (
          <Loading label="Loading your history" />
        ) : entries.length === 0 ? (
          <p>No points yet. Share, review or play to earn your first.</p>
        ) : (
          <>
            <table>
              <caption class="visually-hidden">Your wallet history, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">What</th>
                  <th scope="col" class="number">Change</th>
                  <th scope="col" class="number">Balance</th>
                </tr>
              </thead>
              <tbody data-testid="history">
                {entries.slice(0, shown).map((entry) => (
                  <tr key={entry.transferId} class={flash === entry.transferId ? "fresh" : ""}>
                    <td>{entry.createTime ? dateTime(timestampMs(entry.createTime), zone) : ""}</td>
                    <td>{reasonText(entry)}</td>
                    <td class={entry.change < 0n ? "number minus" : "number plus"}>{signedPoints(entry.change)}</td>
                    <td class="number">{points(entry.balanceAfter)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p class="pager">
              Showing {Math.min(shown, entries.length)} of {entries.length}.{" "}
              {shown < entries.length && (
                <button type="button" onClick={() => setShown(shown + SHOWN_PER_PAGE)}>
                  Show older
                </button>
              )}
            </p>
          </>
        )}
      </section>
    </section>
  );
}
