// Rewards: the catalog with the points still to go for each reward and
// redeeming it, the member's codes, and the offer picked for this visit.
import { useEffect, useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { CatalogLabel, OfferState, RedemptionState, type CatalogEntry, type ListCatalogResponse, type Redemption, type VisitOffer } from "../gen/loyalty/rewards/v1/rewards_service_pb.js";

import { date, points } from "../shared/format.js";
import { announce, Loading, Problem } from "../shared/ui.js";
import { rewards } from "./clients.js";
import { useMember } from "./session.js";

const STATE: Record<RedemptionState, string> = {
  [RedemptionState.UNSPECIFIED]: "",
  [RedemptionState.PROCESSING]: "processing",
  [RedemptionState.ISSUED]: "ready",
  [RedemptionState.AWAITING_FULFILMENT]: "on its way",
  [RedemptionState.FULFILLED]: "delivered",
  [RedemptionState.CANCELLING]: "cancelling",
  [RedemptionState.CANCELLED]: "cancelled",
  [RedemptionState.REFUNDING]: "refunding",
  [RedemptionState.REFUNDED]: "refunded",
  [RedemptionState.FAILED]: "failed",
};

const LABELS: Partial<Record<CatalogLabel, string>> = {
  [CatalogLabel.EARLY_ACCESS]: "early access",
  [CatalogLabel.COMING_SOON]: "coming soon",
  [CatalogLabel.SOLD_OUT]: "sold out",
  [CatalogLabel.LIMIT_REACHED]: "limit reached",
};

// One visit id per tab: the offer shown stays the same while the tab is open.
function visitId(): string {
  const key = "loyalty-arcade.visit";
  let id = sessionStorage.getItem(key);
  if (!id) sessionStorage.setItem(key, (id = crypto.randomUUID()));
  return id;
}

export function RewardsScreen() {
  const { memberId, zone } = useMember();
  const [catalog, setCatalog] = useState<ListCatalogResponse | null>(null);
  const [mine, setMine] = useState<Redemption[] | null>(null);
  const [offer, setOffer] = useState<VisitOffer | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const load = () => {
    rewards.listCatalog({ memberId, pageSize: 100 }).then(setCatalog, setError);
    rewards.listMyRedemptions({ memberId, pageSize: 50 }).then((a) => setMine(a.redemptions), setError);
  };
  useEffect(() => {
    load();
    rewards.getMyOffer({ memberId, visitId: visitId() }).then((a) => setOffer(a.visit ?? null), () => undefined);
  }, [memberId]);

  async function redeem(entry: CatalogEntry) {
    setBusy(entry.rewardId);
    setError(null);
    try {
      const answer = await rewards.redeem({ memberId, rewardId: entry.rewardId, quantity: 1, requestId: crypto.randomUUID() });
      announce(`Redeemed ${entry.title}${answer.redemption?.code ? `: your code is ${answer.redemption.code}` : ""}.`);
      load();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  }

  async function accept() {
    try {
      const answer = await rewards.acceptOffer({ memberId, visitId: visitId() });
      setOffer(answer.visit ?? null);
      announce("Offer accepted.");
      load();
    } catch (e) {
      setError(e);
    }
  }

  if (error && !catalog) return <Problem error={error} />;
  if (!catalog) return <Loading label="Loading rewards" />;
  return (
    <section aria-labelledby="rewards-heading">
      <h3 id="rewards-heading">Rewards</h3>
      <p>You have <strong>{points(catalog.pointsAvailable)}</strong> points to spend.</p>
      {error && <Problem error={error} />}
      {offer?.offer?.spec && (
        <div class="card" data-testid="offer">
          <h4>Just for this visit: {offer.offer.spec.title}</h4>
          <p>{offer.offer.spec.description}</p>
          {offer.state === OfferState.ACCEPTED ? <p class="ok">Accepted{offer.redemption?.code ? `: ${offer.redemption.code}` : ""}.</p> : <button type="button" class="primary" onClick={accept}>Take it</button>}
        </div>
      )}
      <ul class="catalog">
        {catalog.entries.map((entry) => {
          const price = Number(entry.price);
          const have = Math.max(0, price - Number(entry.pointsToGo));
          return (
            <li key={entry.rewardId} class="card" data-testid="reward">
              <p class="row"><strong>{entry.title}</strong> {entry.labels.map((l) => LABELS[l] && <span class="badge">{LABELS[l]}</span>)}</p>
              {entry.description && <p>{entry.description}</p>}
              <p>{points(entry.price)} {entry.priceUnit === "points" || !entry.priceUnit ? "points" : entry.priceUnit}</p>
              {!entry.affordable && entry.pointsToGo > 0n && (
                <>
                  <progress max={price} value={have} aria-label={`${points(have)} of ${points(price)} points`} />
                  <p>{points(entry.pointsToGo)} points to go.</p>
                </>
              )}
              <button type="button" class="primary" disabled={!entry.affordable || busy === entry.rewardId} onClick={() => redeem(entry)}>
                {busy === entry.rewardId ? "Redeeming…" : "Redeem"}
              </button>
            </li>
          );
        })}
        {catalog.entries.length === 0 && <li>No rewards in the catalog yet.</li>}
      </ul>
      <h4>My rewards and codes</h4>
      {!mine ? <Loading /> : mine.length === 0 ? <p>Nothing redeemed yet.</p> : (
        <table>
          <thead><tr><th scope="col">When</th><th scope="col">Reward</th><th scope="col">Code</th><th scope="col">State</th></tr></thead>
          <tbody>
            {mine.map((r) => (
              <tr key={r.redemptionId}>
                <td>{r.createTime ? date(timestampMs(r.createTime), zone) : ""}</td>
                <td>{r.rewardId}</td>
                <td class="mono" data-testid="code">{r.code || "—"}</td>
                <td>{STATE[r.state]}{r.failureReason && ` (${refusalText(r.failureReason)})`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function refusalText(reason: string): string {
  return reason.toLowerCase().replace(/_/g, " ");
}

