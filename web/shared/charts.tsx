// Charts drawn as SVG by hand: a few bars and lines need no library, and an
// SVG is text a screen reader can be given (each chart has a table twin).
import { points } from "./format.js";

export interface Bar {
  label: string;
  value: number;
}

export function BarChart({ title, bars, unit }: { title: string; bars: Bar[]; unit: string }) {
  const width = 560;
  const height = 180;
  const pad = 28;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const slot = (width - pad * 2) / Math.max(1, bars.length);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${title}: ${bars.map((b) => `${b.label} ${points(b.value)} ${unit}`).join(", ") || "no data"}`}>
        <line x1={pad} y1={height - pad} x2={width - pad} y2={height - pad} stroke="currentColor" stroke-opacity="0.4" />
        <text x={pad - 4} y={pad} font-size="10" text-anchor="end" fill="currentColor">{points(max)}</text>
        {bars.map((b, i) => {
          const h = ((height - pad * 2) * b.value) / max;
          const x = pad + i * slot + slot * 0.15;
          return (
            <g key={b.label}>
              <rect x={x} y={height - pad - h} width={slot * 0.7} height={h} fill="var(--accent)" rx="2" />
              {(bars.length <= 14 || i % Math.ceil(bars.length / 14) === 0) && (
                <text x={x + slot * 0.35} y={height - pad + 12} font-size="9" text-anchor="middle" fill="currentColor">{b.label.slice(5)}</text>
              )}
            </g>
          );
        })}
      </svg>
    </figure>
  );
}

// Budget burned and left, with the day the budget runs out at the recent pace.
export function BudgetBar({ used, left, exhaustion }: { used: number; left: number; exhaustion: string | null }) {
  const total = Math.max(1, used + left);
  const share = used / total;
  return (
    <figure class="chart">
      <figcaption>
        Budget: {points(used)} burned, {points(left)} left{exhaustion ? `; at the last 7 days' pace it runs out around ${exhaustion}` : ""}.
      </figcaption>
      <svg viewBox="0 0 560 28" role="img" aria-label={`${Math.round(share * 100)}% of the budget burned`}>
        <rect x="0" y="4" width="560" height="20" rx="4" fill="currentColor" fill-opacity="0.12" />
        <rect x="0" y="4" width={560 * share} height="20" rx="4" fill="var(--accent)" />
      </svg>
    </figure>
  );
}

// Days from now until `left` is spent at the average daily burn of the last `window` days.
export function projectedExhaustion(days: { date: string; points: number }[], left: number, nowMs: number, window = 7): number | null {
  const recent = days.slice(-window);
  const burn = recent.reduce((s, d) => s + d.points, 0) / Math.max(1, recent.length);
  if (burn <= 0 || left <= 0) return null;
  return nowMs + (left / burn) * 86_400_000;
}
