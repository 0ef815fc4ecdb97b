// How numbers, instants and durations read in both apps.
import { localAt, offsetMinutes } from "./time.js";

const integer = new Intl.NumberFormat("en-US");

export function points(value: bigint | number): string {
  return integer.format(value);
}

export function signedPoints(value: bigint | number): string {
  const v = typeof value === "bigint" ? value : BigInt(Math.trunc(value));
  return v > 0n ? `+${integer.format(v)}` : v < 0n ? `−${integer.format(-v)}` : "0";
}

export function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

// "+02:00", "-05:00", "+05:45".
export function offsetText(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const m = Math.abs(minutes);
  return `${sign}${pad2(Math.floor(m / 60))}:${pad2(m % 60)}`;
}

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function monthName(month: number): string {
  return MONTHS[month - 1]!;
}

// "Sat 28 Mar 2026, 18:00" on the wall clock of `zone`.
export function dateTime(instantMs: number, zone: string): string {
  const t = localAt(instantMs, zone);
  const weekday = WEEKDAYS[new Date(Date.UTC(t.year, t.month - 1, t.day)).getUTCDay()];
  return `${weekday} ${t.day} ${MONTHS[t.month - 1]} ${t.year}, ${pad2(t.hour)}:${pad2(t.minute)}`;
}

export function date(instantMs: number, zone: string): string {
  const t = localAt(instantMs, zone);
  return `${t.day} ${MONTHS[t.month - 1]} ${t.year}`;
}

export function clock(instantMs: number, zone: string): string {
  const t = localAt(instantMs, zone);
  return `${pad2(t.hour)}:${pad2(t.minute)}`;
}

// ISO 8601 with the zone's offset: "2026-03-29T18:00:00+02:00".
export function isoLocal(instantMs: number, zone: string): string {
  const t = localAt(instantMs, zone);
  return `${t.year}-${pad2(t.month)}-${pad2(t.day)}T${pad2(t.hour)}:${pad2(t.minute)}:${pad2(t.second)}${offsetText(offsetMinutes(instantMs, zone))}`;
}

export function isoUtc(instantMs: number): string {
  return new Date(instantMs).toISOString().replace(".000Z", "Z");
}

// "2 d 03:04:05", "03:04:05", "04:05": a countdown to the second.
export function countdown(milliseconds: number): string {
  const total = Math.max(0, Math.floor(milliseconds / 1000));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const hms = hours || days ? `${pad2(hours)}:${pad2(minutes)}:${pad2(seconds)}` : `${pad2(minutes)}:${pad2(seconds)}`;
  return days ? `${days} d ${hms}` : hms;
}

// Words for screen readers and headings: "2 days 3 hours", "5 minutes".
export function durationWords(milliseconds: number): string {
  const minutes = Math.max(0, Math.round(milliseconds / 60000));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const mins = minutes % 60;
  const words: string[] = [];
  const unit = (n: number, name: string) => `${n} ${name}${n === 1 ? "" : "s"}`;
  if (days) words.push(unit(days, "day"));
  if (hours) words.push(unit(hours, "hour"));
  if (mins && !days) words.push(unit(mins, "minute"));
  return words.length ? words.join(" ") : "less than a minute";
}

// "in 3 days", "tomorrow", "today" for expiry dates.
export function daysFromNow(instantMs: number, nowMs: number): string {
  const days = Math.floor((instantMs - nowMs) / 86_400_000);
  if (days <= 0) return "today";
  if (days === 1) return "tomorrow";
  return `in ${days} days`;
}

// Exact percentages of integer weights: 1/3 -> "33.333…%" is shown as
// "33.3333%", rounded to `digits` decimals, without floating point error.
export function percentOf(weight: bigint, total: bigint, digits = 4): string {
  if (total <= 0n) return "0%";
  const scale = 10n ** BigInt(digits);
  const scaled = (weight * 100n * scale * 2n + total) / (total * 2n); // round half up
  const whole = scaled / scale;
  const fraction = (scaled % scale).toString().padStart(digits, "0").replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}%` : `${whole}%`;
}
