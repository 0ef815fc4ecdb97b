// Wheels: edit segments with the odds they disclose previewed as exact
// percentages, stock the prize pools, and the chi-square fairness report of
// the draws against the published odds.
import { useEffect, useState } from "preact/hooks";
import type { GetWheelStatsResponse, Wheel } from "../gen/loyalty/games/v1/games_service_pb.js";
import { refusal } from "../shared/errors.js";
import { percentOf, points } from "../shared/format.js";
import { browserZone } from "../shared/time.js";
import { announce, Field, Loading, Problem } from "../shared/ui.js";
import { WheelFace } from "../shared/wheelsvg.js";
import { games } from "./api.js";

interface Row {
  label: string;
  weight: string;
  prize: "none" | "points" | "item";
  amount: string;
  unit: string;
  color: string;
}

const toRows = (wheel: Wheel): Row[] =>
  (wheel.config?.segments ?? []).map((s) => ({
    label: s.label,
    weight: String(s.weight),
    prize: s.prize?.kind.case === "points" ? "points" : s.prize?.kind.case === "item" ? "item" : "none",
    amount: s.prize?.kind.case === "points" ? String(s.prize.kind.value) : s.prize?.kind.case === "item" ? String(s.prize.kind.value.quantity) : "",
    unit: s.prize?.kind.case === "item" ? s.prize.kind.value.unit : "",
    color: s.color,
  }));

const NEW_ROWS: Row[] = [
  { label: "Try again", weight: "50", prize: "none", amount: "", unit: "", color: "" },
  { label: "20 points", weight: "35", prize: "points", amount: "20", unit: "", color: "" },
  { label: "100 points", weight: "15", prize: "points", amount: "100", unit: "", color: "" },
];

function segments(rows: Row[]) {
  return rows.map((r) => ({
    label: r.label,
    weight: /^\d+$/.test(r.weight) ? BigInt(r.weight) : 0n,
    color: r.color,
    prize: r.prize === "points" ? { kind: { case: "points" as const, value: BigInt(r.amount || "0") } } : r.prize === "item" ? { kind: { case: "item" as const, value: { unit: r.unit, quantity: BigInt(r.amount || "0") } } } : undefined,
  }));
}

export function WheelsScreen() {
  const [wheels, setWheels] = useState<Wheel[] | null>(null);
  const [selected, setSelected] = useState<string>("");
  const [error, setError] = useState<unknown>(null);
  const reload = () => games.listWheels({ pageSize: 500 }).then((a) => setWheels(a.wheels), setError);
  useEffect(() => {
    reload();
  }, []);
  if (error && !wheels) return <Problem error={error} />;
  if (!wheels) return <Loading label="Loading wheels" />;
  const wheel = wheels.find((w) => w.id === selected) ?? null;
  return (
    <section aria-labelledby="wheels-heading">
      <h2 id="wheels-heading">Wheels</h2>
      <p class="row">
        <label for="wheel-pick">Wheel</label>
        <select id="wheel-pick" value={selected} onChange={(e) => setSelected(e.currentTarget.value)} style={{ maxWidth: "20rem" }}>
          <option value="">A new wheel…</option>
          {wheels.map((w) => <option value={w.id}>{w.config?.displayName || w.id}</option>)}
        </select>
      </p>
      <Editor key={selected || "new"} wheel={wheel} onSaved={(id) => reload().then(() => setSelected(id))} />
      {wheel && <Stock wheel={wheel} onDone={reload} />}
      {wheel && <Fairness wheel={wheel} />}
    </section>
  );
}

function Editor({ wheel, onSaved }: { wheel: Wheel | null; onSaved: (id: string) => void }) {
  const [rows, setRows] = useState<Row[]>(() => (wheel ? toRows(wheel) : NEW_ROWS));
  const [id, setId] = useState(wheel?.id ?? "");
  const [name, setName] = useState(wheel?.config?.displayName ?? "");
  const [cost, setCost] = useState(String(wheel?.config?.costPoints ?? 0n));
  const [perDay, setPerDay] = useState(String(wheel?.config?.spinsPerDay ?? 3));
  const [fallback, setFallback] = useState(wheel?.config?.fallbackSegmentIndex ?? 0);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<unknown>(null);
  const total = rows.reduce((s, r) => s + (/^\d+$/.test(r.weight) ? BigInt(r.weight) : 0n), 0n);
  const update = (i: number, patch: Partial<Row>) => setRows(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const local = (i: number): string | undefined => {
    const r = rows[i]!;
    if (!r.label.trim()) return "a label";
    if (!/^\d+$/.test(r.weight)) return "weight: a whole number";
    if (r.prize !== "none" && !/^[1-9]\d*$/.test(r.amount)) return "prize: at least 1";
    if (r.prize === "item" && !/^prize:[a-z0-9-]+$/.test(r.unit)) return "unit: prize:<slug>";
    if (i === fallback && r.prize !== "none") return "the fallback must award nothing";
    return fields[`config.segments[${i}].weight`] ?? fields[`config.segments[${i}].label`] ?? fields[`config.segments[${i}].prize`] ?? Object.entries(fields).find(([f]) => f.startsWith(`config.segments[${i}]`))?.[1];
  };

  async function save(event: Event) {
    event.preventDefault();
    setFields({});
    setProblem(null);
    const config = { displayName: name, segments: segments(rows), fallbackSegmentIndex: fallback, costPoints: BigInt(cost || "0"), spinsPerDay: Number(perDay || "0"), timeZone: wheel?.config?.timeZone || browserZone() };
    try {
      if (wheel) await games.updateWheel({ wheelId: wheel.id, config, expectedOddsVersion: wheel.oddsVersion, updateMask: { paths: ["*"] } });
      else await games.createWheel({ wheelId: id, config });
      announce("Wheel saved: a new odds version is published.");
      onSaved(wheel?.id ?? id);
    } catch (e) {
      setFields(refusal(e).fields);
      setProblem(e);
    }
  }
  const preview = rows.map((r, i) => ({ index: i, label: r.label, weight: /^\d+$/.test(r.weight) ? BigInt(r.weight) : 0n }));
  return (
    <form class="card wheel-editor" onSubmit={save} aria-labelledby="editor-heading">
      <h3 id="editor-heading">{wheel ? `Edit ${wheel.id} (odds version ${wheel.oddsVersion})` : "New wheel"}</h3>
      <div class="row">
        {!wheel && <Field label="Wheel id" error={fields["wheel_id"]}>{(a) => <input {...a} value={id} required onInput={(e) => setId(e.currentTarget.value)} />}</Field>}
        <Field label="Name" error={fields["config.display_name"]}>{(a) => <input {...a} value={name} onInput={(e) => setName(e.currentTarget.value)} />}</Field>
        <Field label="Cost per spin (points)" error={fields["config.cost_points"]}>{(a) => <input {...a} value={cost} inputMode="numeric" onInput={(e) => setCost(e.currentTarget.value)} />}</Field>
        <Field label="Spins per member per day (0: no limit)" error={fields["config.spins_per_day"]}>{(a) => <input {...a} value={perDay} inputMode="numeric" onInput={(e) => setPerDay(e.currentTarget.value)} />}</Field>
      </div>
      <div class="row" style={{ alignItems: "flex-start" }}>
        <svg viewBox="0 0 200 200" width="180" height="180" role="img" aria-label="Preview of the wheel with these weights">
          <WheelFace odds={preview as never} segments={segments(rows) as never} />
        </svg>
        <table>
          <caption>Segments and the odds members will see (exact: weight / {String(total)})</caption>
          <thead><tr><th scope="col">Label</th><th scope="col">Weight</th><th scope="col">Prize</th><th scope="col">Amount / unit</th><th scope="col">Fallback</th><th scope="col" class="number">Odds</th><th scope="col"><span class="visually-hidden">Remove</span></th></tr></thead>
          <tbody>
            {rows.map((r, i) => {
              const problemAt = local(i);
              return (
                <tr key={i} class={problemAt ? "invalid" : ""}>
                  <td><input aria-label={`Segment ${i + 1} label`} value={r.label} onInput={(e) => update(i, { label: e.currentTarget.value })} aria-invalid={Boolean(problemAt)} /></td>
                  <td><input aria-label={`Segment ${i + 1} weight`} value={r.weight} inputMode="numeric" onInput={(e) => update(i, { weight: e.currentTarget.value })} /></td>
                  <td>
                    <select aria-label={`Segment ${i + 1} prize`} value={r.prize} onChange={(e) => update(i, { prize: e.currentTarget.value as Row["prize"] })}>
                      <option value="none">nothing</option><option value="points">points</option><option value="item">prize item</option>
                    </select>
                  </td>
                  <td>
                    {r.prize !== "none" && <input aria-label={`Segment ${i + 1} amount`} value={r.amount} inputMode="numeric" onInput={(e) => update(i, { amount: e.currentTarget.value })} />}
                    {r.prize === "item" && <input aria-label={`Segment ${i + 1} unit`} value={r.unit} placeholder="prize:free-coffee" onInput={(e) => update(i, { unit: e.currentTarget.value })} />}
                    {problemAt && <small class="error" role="status">{problemAt}</small>}
                  </td>
                  <td><input type="radio" name="fallback" aria-label={`Segment ${i + 1} is the fallback`} checked={fallback === i} onChange={() => setFallback(i)} /></td>
                  <td class="number" data-testid="odds-preview">{percentOf(preview[i]!.weight, total, 4)}</td>
                  <td><button type="button" aria-label={`Remove segment ${i + 1}`} disabled={rows.length <= 2} onClick={() => setRows(rows.filter((_, j) => j !== i))}>✕</button></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p class="row">
        <button type="button" disabled={rows.length >= 64} onClick={() => setRows([...rows, { label: "New", weight: "10", prize: "none", amount: "", unit: "", color: "" }])}>Add segment</button>
        <button type="submit" class="primary">{wheel ? "Publish new odds" : "Create wheel"}</button>
      </p>
      {problem && <Problem error={problem} />}
    </form>
  );
}

function Stock({ wheel, onDone }: { wheel: Wheel; onDone: () => void }) {
  const units = [...new Set(["points", ...(wheel.config?.segments ?? []).flatMap((s) => (s.prize?.kind.case === "item" ? [s.prize.kind.value.unit] : []))])];
  const [unit, setUnit] = useState(units[0]!);
  const [quantity, setQuantity] = useState("");
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | undefined>();
  async function stock(event: Event) {
    event.preventDefault();
    setError(undefined);
    try {
      const answer = await games.stockWheel({ wheelId: wheel.id, unit, quantity: BigInt(quantity || "0"), requestId: crypto.randomUUID() });
      setResult(`${answer.poolAccountId} now holds ${points(answer.stock)}.`);
      onDone();
    } catch (e) {
      const r = refusal(e);
      setError(r.fields["quantity"] ?? r.message);
    }
  }
  const soldOut = wheel.odds.filter((o) => o.soldOut);
  return (
    <form class="card" onSubmit={stock} aria-labelledby="stock-heading">
      <h3 id="stock-heading">Prize pools</h3>
      {soldOut.length > 0 && <p class="error">Sold out: {soldOut.map((o) => o.label).join(", ")}.</p>}
      <div class="row">
        <Field label="Pool">{(a) => <select {...a} value={unit} onChange={(e) => setUnit(e.currentTarget.value)}>{units.map((u) => <option value={u}>{u}</option>)}</select>}</Field>
        <Field label="Add" error={error}>{(a) => <input {...a} value={quantity} inputMode="numeric" onInput={(e) => setQuantity(e.currentTarget.value)} />}</Field>
        <button type="submit">Stock</button>
      </div>
      {result && <p role="status">{result}</p>}
    </form>
  );
}

function Fairness({ wheel }: { wheel: Wheel }) {
  const [stats, setStats] = useState<GetWheelStatsResponse | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    games.getWheelStats({ wheelId: wheel.id, oddsVersion: wheel.oddsVersion }).then(setStats, setError);
  }, [wheel.id, wheel.oddsVersion]);
  if (error) return <Problem error={error} />;
  if (!stats) return <Loading label="Loading the fairness report" />;
  const verdict = stats.totalSpins < 30n ? "too few spins to judge" : stats.pValue < 0.001 ? "the draws differ from the published odds: investigate" : "consistent with the published odds";
  return (
    <section class="card" aria-labelledby="fair-heading">
      <h3 id="fair-heading">Fairness (odds version {String(stats.oddsVersion)})</h3>
      <p data-testid="chi-square">
        {String(stats.totalSpins)} settled spins; χ² = {stats.chiSquare.toFixed(3)} with {stats.degreesOfFreedom} degrees of freedom, p = {stats.pValue.toPrecision(3)}: <strong>{verdict}</strong>.
      </p>
      <table>
        <thead><tr><th scope="col">Segment</th><th scope="col" class="number">Observed</th><th scope="col" class="number">Expected</th></tr></thead>
        <tbody>
          {stats.segments.map((s) => (
            <tr key={s.index}><td>{wheel.odds[s.index]?.label ?? s.index}</td><td class="number">{String(s.observed)}</td><td class="number">{s.expected.toFixed(1)}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
