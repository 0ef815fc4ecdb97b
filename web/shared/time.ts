// Wall-clock arithmetic in IANA zones with nothing but Intl, by the suite's
// one rule (docs/campaigns.md): a local time that does not exist (spring
// forward) means the instant the clocks jump; one that happens twice (fall
// back) means its first occurrence.

export interface LocalDate {
  year: number;
  month: number; // 1-12
  day: number;
}

export interface LocalDateTime extends LocalDate {
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
      era: "short",
    });
    formatters.set(zone, f);
  }
  return f;
}

export function isZone(zone: string): boolean {
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

// The wall clock in `zone` at an instant (milliseconds since the epoch).
export function localAt(instantMs: number, zone: string): LocalDateTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(zone).formatToParts(new Date(instantMs))) parts[p.type] = p.value;
  let year = Number(parts.year);
  if (parts.era === "BC" || parts.era === "B") year = 1 - year;
  return {
    year,
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour) % 24,
    minute: Number(parts.minute),
    second: Number(parts.second),
  };
}

function asUtcMs(t: LocalDate & Partial<LocalDateTime>): number {
  return Date.UTC(t.year, t.month - 1, t.day, t.hour ?? 0, t.minute ?? 0, t.second ?? 0);
}

// The zone's offset from UTC at an instant, in minutes (Paris in summer: +120).
export function offsetMinutes(instantMs: number, zone: string): number {
  const wall = asUtcMs(localAt(instantMs, zone));
  const whole = Math.floor(instantMs / 1000) * 1000;
  return Math.round((wall - whole) / 60000);
}

// The instant a local wall-clock time names in `zone`.
export function instantOf(local: LocalDate & Partial<LocalDateTime>, zone: string): number {
  const wall = asUtcMs(local);
  // Offsets a day either side bracket any transition near this time.
  const candidates = new Set<number>();
  for (const probe of [wall - 86_400_000, wall, wall + 86_400_000]) {
    candidates.add(wall - offsetMinutes(probe, zone) * 60000);
  }
  const matching = [...candidates].filter((t) => asUtcMs(localAt(t, zone)) === wall).sort((a, b) => a - b);
  if (matching.length) return matching[0]!; // a fold: the first occurrence
  // A gap: the instant the clocks jump. Between the candidates the wall
  // clock goes from before `wall` to after it; find the first second at or past it.
  let lo = Math.min(...candidates);
  let hi = Math.max(...candidates);
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (asUtcMs(localAt(mid, zone)) >= wall) hi = mid;
    else lo = mid;
  }
  return hi;
}

export function addDays(date: LocalDate, days: number): LocalDate {
  const t = new Date(Date.UTC(date.year, date.month - 1, date.day + days));
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

// 0 = Monday ... 6 = Sunday (ISO weeks, as the campaigns' limits count them).
export function isoWeekday(date: LocalDate): number {
  return (new Date(Date.UTC(date.year, date.month - 1, date.day)).getUTCDay() + 6) % 7;
}

export function compareDates(a: LocalDate, b: LocalDate): number {
  return a.year - b.year || a.month - b.month || a.day - b.day;
}

export function dateKey(date: LocalDate): string {
  return `${String(date.year).padStart(4, "0")}-${String(date.month).padStart(2, "0")}-${String(date.day).padStart(2, "0")}`;
}

export function parseDateKey(key: string): LocalDate {
  const [year, month, day] = key.split("-").map(Number);
  return { year: year!, month: month!, day: day! };
}

// A local day's real span [start, end): 23 hours on a spring-forward day, 25
// on a fall-back day.
export function daySpan(date: LocalDate, zone: string): [number, number] {
  return [instantOf(date, zone), instantOf(addDays(date, 1), zone)];
}

export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

// The zones a picker offers: the browser's own, the campaign's, then the rest.
export function knownZones(): string[] {
  const supported = (Intl as unknown as { supportedValuesOf?: (key: string) => string[] }).supportedValuesOf;
  return supported ? supported("timeZone") : ["UTC", "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"];
}
