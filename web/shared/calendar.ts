// The console's calendar layout: which local days a month or week view shows
// in a zone, each day's real span (23 or 25 hours across DST), and where each
// campaign occurrence sits in each day it touches. Pure: tested without a DOM.
import { clock, offsetText } from "./format.js";
import {
  addDays,
  compareDates,
  dateKey,
  daySpan,
  isoWeekday,
  localAt,
  offsetMinutes,
  type LocalDate,
} from "./time.js";

export interface Occurrence {
  campaignId: string;
  title: string;
  startMs: number;
  endMs: number;
  state?: string;
}

export interface Segment {
  occurrence: Occurrence;
  startMs: number;
  endMs: number;
  // Position in the day as fractions of its real length (so a 25-hour day's
  // hours are as tall as a 23-hour day's).
  top: number;
  height: number;
  startsHere: boolean;
  endsHere: boolean;
  // Wall-clock times in the view's zone, "24:00" for a midnight end.
  label: string;
  lane: number;
}

export interface ClockChange {
  atMs: number;
  fromOffset: string;
  toOffset: string;
  // Minutes the clocks move: +60 in spring, -60 in autumn.
  shiftMinutes: number;
}

export interface Day {
  date: LocalDate;
  key: string;
  inMonth: boolean;
  startMs: number;
  endMs: number;
  hours: number;
  change: ClockChange | null;
  segments: Segment[];
  lanes: number;
}

function clockChange(startMs: number, endMs: number, zone: string): ClockChange | null {
  const before = offsetMinutes(startMs, zone);
  const after = offsetMinutes(endMs - 1000, zone);
  if (before === after) return null;
  let lo = startMs;
  let hi = endMs - 1000;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetMinutes(mid, zone) === before) lo = mid;
    else hi = mid;
  }
  return { atMs: hi, fromOffset: offsetText(before), toOffset: offsetText(after), shiftMinutes: after - before };
}

function endLabel(endMs: number, dayEndMs: number, zone: string): string {
  return endMs === dayEndMs ? "24:00" : clock(endMs, zone);
}

export function layoutDay(date: LocalDate, zone: string, occurrences: Occurrence[], inMonth = true): Day {
  const [startMs, endMs] = daySpan(date, zone);
  const length = endMs - startMs;
  const segments: Segment[] = occurrences
    .filter((o) => o.startMs < endMs && o.endMs > startMs)
    .sort((a, b) => a.startMs - b.startMs || b.endMs - a.endMs || a.campaignId.localeCompare(b.campaignId))
    .map((occurrence) => {
      const s = Math.max(occurrence.startMs, startMs);
      const e = Math.min(occurrence.endMs, endMs);
      return {
        occurrence,
        startMs: s,
        endMs: e,
        top: (s - startMs) / length,
        height: (e - s) / length,
        startsHere: occurrence.startMs >= startMs,
        endsHere: occurrence.endMs <= endMs,
        label: `${clock(s, zone)}–${endLabel(e, endMs, zone)}`,
        lane: 0,
      };
    });
  // Overlapping segments side by side: each takes the first free lane.
  const laneEnds: number[] = [];
  for (const segment of segments) {
    let lane = laneEnds.findIndex((end) => end <= segment.startMs);
    if (lane === -1) lane = laneEnds.length;
    laneEnds[lane] = segment.endMs;
    segment.lane = lane;
  }
  return {
    date,
    key: dateKey(date),
    inMonth,
    startMs,
    endMs,
    hours: length / 3_600_000,
    change: clockChange(startMs, endMs, zone),
    segments,
    lanes: Math.max(1, laneEnds.length),
  };
}

// Monday to Sunday of the week holding `anchor`.
export function weekView(anchor: LocalDate, zone: string, occurrences: Occurrence[]): Day[] {
  const monday = addDays(anchor, -isoWeekday(anchor));
  return Array.from({ length: 7 }, (_, i) => layoutDay(addDays(monday, i), zone, occurrences));
}

// Whole weeks (Monday first) covering the month.
export function monthView(year: number, month: number, zone: string, occurrences: Occurrence[]): Day[][] {
  const first = { year, month, day: 1 };
  let day = addDays(first, -isoWeekday(first));
  const weeks: Day[][] = [];
  do {
    const week: Day[] = [];
    for (let i = 0; i < 7; i += 1) {
      week.push(layoutDay(day, zone, occurrences, day.month === month));
      day = addDays(day, 1);
    }
    weeks.push(week);
  } while (day.month === month && compareDates(day, first) > 0);
  return weeks;
}

// The [start, end) instants a view covers, to ask the service for occurrences.
export function viewRange(days: Day[]): [number, number] {
  return [days[0]!.startMs, days[days.length - 1]!.endMs];
}

export interface HourMark {
  label: string;
  top: number;
}

// One mark per real hour of a day, labelled by the wall clock: a fall-back
// day shows 01:00 twice, a spring-forward day has no 02:00.
export function hourMarks(day: Day, zone: string): HourMark[] {
  const marks: HourMark[] = [];
  const length = day.endMs - day.startMs;
  for (let t = day.startMs; t < day.endMs; t += 3_600_000) {
    const local = localAt(t, zone);
    marks.push({ label: `${String(local.hour).padStart(2, "0")}:${String(local.minute).padStart(2, "0")}`, top: (t - day.startMs) / length });
  }
  return marks;
}
