// A wheel drawn from its published odds: each slice's angle is its exact
// probability (weight / total); a sold-out slice has none and is marked.
import type { Segment, SegmentOdds } from "../gen/loyalty/games/v1/games_service_pb.js";
import { arcs } from "./draw.js";

const PALETTE = ["#5b3df5", "#f59e0b", "#10b981", "#ef4444", "#3b82f6", "#ec4899", "#14b8a6", "#8b5cf6", "#f97316", "#22c55e"];

// The segment's own colour when the wheel's config gives one, else the palette's.
export function sliceColor(segment: Segment | undefined, index: number): string {
  const color = segment?.color ?? "";
  return /^#[0-9a-fA-F]{6}$/.test(color) ? color : PALETTE[index % PALETTE.length]!;
}

function point(turn: number, radius: number): [number, number] {
  const angle = turn * 2 * Math.PI - Math.PI / 2; // clockwise from the top
  return [100 + radius * Math.cos(angle), 100 + radius * Math.sin(angle)];
}

export function WheelFace({ odds, segments }: { odds: SegmentOdds[]; segments: Segment[] }) {
  const slices = arcs(odds.map((o) => o.weight));
  return (
    <g>
      <circle cx="100" cy="100" r="98" fill="#1d1b2c" />
      {odds.map((segment, i) => {
        const [start, end] = slices[i]!;
        const color = sliceColor(segments[i], i);
        if (end - start <= 0) {
          // Sold out (or weight 0): a marker where it would be, no area to land on.
          const [x, y] = point(start, 90);
          return segment.soldOut ? (
            <g key={i}>
              <line x1="100" y1="100" x2={x} y2={y} stroke="#fff" stroke-width="1" stroke-dasharray="3 3" />
              <text x={point(start, 80)[0]} y={point(start, 80)[1]} font-size="9" fill="#fff" text-anchor="middle">✕</text>
            </g>
          ) : null;
        }
        const [x1, y1] = point(start, 96);
        const [x2, y2] = point(end, 96);
        const large = end - start > 0.5 ? 1 : 0;
        const mid = (start + end) / 2;
        const [tx, ty] = point(mid, 62);
        const rotate = mid * 360;
        const path = end - start >= 0.999999 ? `M 100 4 A 96 96 0 1 1 99.99 4 Z` : `M 100 100 L ${x1} ${y1} A 96 96 0 ${large} 1 ${x2} ${y2} Z`;
        return (
          <g key={i}>
            <path d={path} fill={color} stroke="#fff" stroke-width="1" />
            {end - start > 0.035 && (
              <text x={tx} y={ty} font-size="9" font-weight="700" fill="#fff" text-anchor="middle" dominant-baseline="middle" transform={`rotate(${rotate > 90 && rotate < 270 ? rotate + 180 : rotate} ${tx} ${ty})`}>
                {segments[i]?.shortLabel || segment.label.slice(0, 14)}
              </text>
            )}
          </g>
        );
      })}
      <circle cx="100" cy="100" r="12" fill="#fff" stroke="#1d1b2c" stroke-width="3" />
    </g>
  );
}
