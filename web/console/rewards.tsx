// Rewards for managers: the catalog's rewards, stock, and code import from a
// CSV or a pasted list, sent in chunks under the gateway's body limit with
// each line the service refused shown with its number and why.
import { useEffect, useState } from "preact/hooks";
import type { ImportCodesResponse, Reward } from "../gen/loyalty/rewards/v1/rewards_service_pb.js";
import { bytesToHex } from "../shared/draw.js";
import { refusal } from "../shared/errors.js";
import { points } from "../shared/format.js";
import { announce, Field, Loading, Problem } from "../shared/ui.js";
import { rewards } from "./api.js";

const CHUNK_LINES = 2000;

export function RewardsScreen() {
  const [list, setList] = useState<Reward[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    rewards.listRewards({ pageSize: 500 }).then((a) => setList(a.rewards), setError);
  }, []);
  if (error) return <Problem error={error} />;
  if (!list) return <Loading label="Loading rewards" />;
  return (
    <section aria-labelledby="rewards-heading">
      <h2 id="rewards-heading">Rewards</h2>
      {list.length === 0 && <p>No rewards yet (loyalty-admin rewards apply creates them from YAML).</p>}
      {list.map((r) => <RewardCard key={r.rewardId} reward={r} />)}
    </section>
  );
}

function RewardCard({ reward }: { reward: Reward }) {
  const [quantity, setQuantity] = useState("");
  const [stockNote, setStockNote] = useState<string | null>(null);
  const [stockError, setStockError] = useState<string | undefined>();
  const [text, setText] = useState("");
  const [result, setResult] = useState<ImportCodesResponse | null>(null);
  const [importing, setImporting] = useState(false);
  const [problem, setProblem] = useState<unknown>(null);

  async function stock(event: Event) {
    event.preventDefault();
    try {
      const answer = await rewards.stockReward({ rewardId: reward.rewardId, quantity: BigInt(quantity || "0"), requestId: crypto.randomUUID() });
      setStockNote(`${points(answer.stockLeft)} in stock.`);
      setStockError(undefined);
    } catch (e) {
      const r = refusal(e);
      setStockError(r.fields["quantity"] ?? r.message);
    }
  }

  async function importCodes(event: Event) {
    event.preventDefault();
    setImporting(true);
    setProblem(null);
    const lines = text.split(/\r?\n/);
    // The file's SHA-256 is the import id, so sending it again adds nothing twice.
    const importId = bytesToHex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))).slice(0, 40);
    let last: ImportCodesResponse | null = null;
    let added = 0n;
    const problems: ImportCodesResponse["problems"] = [];
    try {
      for (let start = 0; start < lines.length; start += CHUNK_LINES) {
        last = await rewards.importCodes({ rewardId: reward.rewardId, importId, firstLine: BigInt(start + 1), lines: lines.slice(start, start + CHUNK_LINES) });
        added += last.added;
        problems.push(...last.problems);
      }
      if (last) setResult({ ...last, added, problems });
      announce(`${added} codes added.`);
    } catch (e) {
      setProblem(e);
    } finally {
      setImporting(false);
    }
  }

  const spec = reward.spec;
  return (
    <article class="card" aria-labelledby={`reward-${reward.rewardId}`}>
      <h3 id={`reward-${reward.rewardId}`}>{spec?.title || reward.rewardId} <small class="mono">{reward.rewardId} v{String(reward.version)}</small></h3>
      <p>{points(spec?.price ?? 0n)} {spec?.priceUnit || "points"}{reward.archived && " · archived"}</p>
      <form class="row" onSubmit={stock}>
        <Field label="Add stock" error={stockError}>{(a) => <input {...a} value={quantity} inputMode="numeric" onInput={(e) => setQuantity(e.currentTarget.value)} />}</Field>
        <button type="submit">Stock</button>
        {stockNote && <span role="status">{stockNote}</span>}
      </form>
      <form onSubmit={importCodes}>
        <Field label="Import codes (one per line, or a CSV file)">{(a) => <textarea {...a} rows={4} value={text} onInput={(e) => setText(e.currentTarget.value)} />}</Field>
        <p class="row">
          <input type="file" accept=".csv,.txt,text/csv,text/plain" aria-label="Codes file" onChange={async (e) => { const file = e.currentTarget.files?.[0]; if (file) setText(await file.text()); }} />
          <button type="submit" disabled={importing || !text.trim()}>{importing ? "Importing…" : "Import"}</button>
        </p>
      </form>
      {problem && <Problem error={problem} />}
      {result && (
        <div role="status">
          <p>{String(result.added)} added, {String(result.codesFree)} free codes now{result.replayed && " (this file was imported before)"}.</p>
          {result.problems.length > 0 && <ul>{result.problems.map((p) => <li key={String(p.line)}>Line {String(p.line)}: {p.reason.toLowerCase().replace(/_/g, " ")}{p.detail && ` (${p.detail})`}</li>)}</ul>}
        </div>
      )}
    </article>
  );
}
