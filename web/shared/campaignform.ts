// The console's campaign form: its fields as text (what the inputs hold),
// the checks made as the manager types, and the CampaignSpec they become.
// Field names are the service's own paths, so its BadRequest violations land
// on the same inputs as these checks.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { CampaignKind, CampaignSpecSchema, LimitPeriod, StackingMode, ZoneMode, type Campaign } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { isZone } from "./time.js";

export interface FormValues {
  campaignId: string;
  displayName: string;
  description: string;
  kind: CampaignKind;
  points: string;
  multiplierPercent: string;
  probabilityPercent: string;
  pointsPerUnit: string;
  activityTypes: string;
  minSpend: string;
  currency: string;
  tiers: string;
  segments: string;
  start: string; // datetime-local, wall clock in time_zone; empty: always on
  durationHours: string;
  rrule: string;
  timeZone: string;
  zoneMode: ZoneMode;
  endTime: string; // datetime-local in time_zone
  budget: string;
  dailyCap: string;
  maxMembers: string;
  group: string;
  stacking: StackingMode;
  priority: string;
}

export const PATHS: Record<keyof FormValues, string> = {
  campaignId: "campaign_id",
  displayName: "spec.display_name",
  description: "spec.description",
  kind: "spec.kind",
  points: "spec.reward.points",
  multiplierPercent: "spec.reward.multiplier_percent",
  probabilityPercent: "spec.reward.probability_ppm",
  pointsPerUnit: "spec.reward.points_per_unit",
  activityTypes: "spec.conditions.activity_types",
  minSpend: "spec.conditions.min_spend_minor",
  currency: "spec.conditions.currency",
  tiers: "spec.conditions.tiers",
  segments: "spec.conditions.segments",
  start: "spec.schedule.start",
  durationHours: "spec.schedule.duration",
  rrule: "spec.schedule.rrule",
  timeZone: "spec.schedule.time_zone",
  zoneMode: "spec.schedule.zone_mode",
  endTime: "spec.schedule.end_time",
  budget: "spec.budget_points",
  dailyCap: "spec.limits.member_limits",
  maxMembers: "spec.limits.max_members",
  group: "spec.stacking.group",
  stacking: "spec.stacking.mode",
  priority: "spec.stacking.priority",
};

export function emptyForm(zone: string): FormValues {
  return {
    campaignId: "", displayName: "", description: "", kind: CampaignKind.MULTIPLIER, points: "", multiplierPercent: "200",
    probabilityPercent: "", pointsPerUnit: "", activityTypes: "purchase", minSpend: "", currency: "", tiers: "", segments: "",
    start: "", durationHours: "48", rrule: "FREQ=WEEKLY;BYDAY=SA", timeZone: zone, zoneMode: ZoneMode.CAMPAIGN, endTime: "",
    budget: "100000", dailyCap: "", maxMembers: "", group: "", stacking: StackingMode.UNSPECIFIED, priority: "",
  };
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const WHOLE = /^\d+$/;
const RRULE_PARTS = new Set(["FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYHOUR", "BYMINUTE", "BYSETPOS", "BYYEARDAY", "BYWEEKNO", "WKST"]);

export function rruleProblem(rrule: string): string | undefined {
  if (!rrule.trim()) return undefined;
  const parts = rrule.replace(/^RRULE:/i, "").split(";");
  const seen = new Map<string, string>();
  for (const part of parts) {
    const [key, value] = part.split("=");
    if (!key || value === undefined || !value) return `"${part}" is not NAME=VALUE`;
    if (!RRULE_PARTS.has(key.toUpperCase())) return `${key} is not an RRULE part`;
    seen.set(key.toUpperCase(), value.toUpperCase());
  }
  const freq = seen.get("FREQ");
  if (!freq) return "FREQ is required";
  if (!["YEARLY", "MONTHLY", "WEEKLY", "DAILY"].includes(freq)) return "FREQ must be YEARLY, MONTHLY, WEEKLY or DAILY";
  if (seen.has("COUNT") && seen.has("UNTIL")) return "COUNT and UNTIL cannot both be given";
  const byday = seen.get("BYDAY");
  if (byday && !byday.split(",").every((d) => /^[+-]?\d{0,2}(MO|TU|WE|TH|FR|SA|SU)$/.test(d))) return "BYDAY takes MO, TU, WE, TH, FR, SA, SU";
  return undefined;
}

// What the form can tell before asking the service, by field path.
export function validate(v: FormValues, creating: boolean): Record<string, string> {
  const errors: Record<string, string> = {};
  const need = (key: keyof FormValues, ok: boolean, message: string) => {
    if (!ok && !errors[PATHS[key]]) errors[PATHS[key]] = message;
  };
  if (creating) need("campaignId", ID.test(v.campaignId), "1 to 64 letters, digits and . _ -");
  need("displayName", v.displayName.trim().length > 0, "a name members will read");
  need("displayName", v.displayName.length <= 200, "at most 200 characters");
  const whole = (key: keyof FormValues, value: string, optional = true) =>
    need(key, (optional && value === "") || WHOLE.test(value), "a whole number");
  if (v.kind === CampaignKind.MULTIPLIER) {
    whole("multiplierPercent", v.multiplierPercent, false);
    need("multiplierPercent", Number(v.multiplierPercent) > 100, "above 100 (200 is double points)");
  }
  if ([CampaignKind.FIXED_BONUS, CampaignKind.SURPRISE_BONUS, CampaignKind.BIRTHDAY_BONUS].includes(v.kind)) {
    whole("points", v.points, false);
    need("points", Number(v.points) > 0, "at least 1 point");
  }
  if (v.kind === CampaignKind.SURPRISE_BONUS) {
    need("probabilityPercent", /^\d+(\.\d{1,4})?$/.test(v.probabilityPercent) && Number(v.probabilityPercent) > 0 && Number(v.probabilityPercent) <= 100, "a percentage above 0 and at most 100, up to 4 decimals");
  }
  if (v.kind === CampaignKind.BASE_RULE) {
    whole("pointsPerUnit", v.pointsPerUnit);
    whole("points", v.points);
    need("points", v.points !== "" || v.pointsPerUnit !== "", "points per unit or points per activity");
  }
  whole("minSpend", v.minSpend);
  need("currency", v.currency === "" || /^[A-Z]{3}$/.test(v.currency), "three capital letters, like EUR");
  need("timeZone", isZone(v.timeZone), "an IANA time zone, like Europe/Paris");
  if (v.start) {
    whole("durationHours", v.durationHours, false);
    need("durationHours", Number(v.durationHours) > 0, "at least 1 hour");
  }
  need("rrule", !v.rrule.trim() || v.start !== "", "a repeating schedule needs a first start");
  const rrule = rruleProblem(v.rrule);
  if (rrule) errors[PATHS.rrule] ??= rrule;
  need("endTime", !v.endTime || !v.start || v.endTime > v.start, "after the first start");
  if (v.kind !== CampaignKind.BASE_RULE) {
    whole("budget", v.budget, false);
    need("budget", Number(v.budget) >= 1 && Number(v.budget) <= 1e12, "1 to 1,000,000,000,000 points");
  }
  whole("dailyCap", v.dailyCap);
  whole("maxMembers", v.maxMembers);
  need("priority", v.priority === "" || /^-?\d+$/.test(v.priority), "a whole number");
  return errors;
}

const list = (text: string) => text.split(",").map((s) => s.trim()).filter(Boolean);

function localDateTime(value: string) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value);
  if (!m) return undefined;
  return { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]), hours: Number(m[4]), minutes: Number(m[5]), seconds: 0 };
}

// endTime is a wall-clock time in the campaign's zone; the contract takes an instant.
export function toSpec(v: FormValues, instantOfLocal: (local: string, zone: string) => number): MessageInitShape<typeof CampaignSpecSchema> {
  const spec: Record<string, unknown> = {
    displayName: v.displayName.trim(),
    description: v.description.trim(),
    kind: v.kind,
    reward: {
      points: v.points ? BigInt(v.points) : 0n,
      multiplierPercent: v.kind === CampaignKind.MULTIPLIER ? Number(v.multiplierPercent) : 0,
      probabilityPpm: v.kind === CampaignKind.SURPRISE_BONUS ? Math.round(Number(v.probabilityPercent) * 10_000) : 0,
      pointsPerUnit: v.pointsPerUnit ? BigInt(v.pointsPerUnit) : 0n,
    },
    conditions: {
      activityTypes: list(v.activityTypes),
      minSpendMinor: v.minSpend ? BigInt(v.minSpend) : 0n,
      currency: v.currency,
      tiers: list(v.tiers),
      segments: list(v.segments),
    },
    schedule: {
      start: v.start ? localDateTime(v.start) : undefined,
      duration: v.start ? { seconds: BigInt(Math.round(Number(v.durationHours) * 3600)), nanos: 0 } : undefined,
      rrule: v.rrule.trim(),
      timeZone: v.timeZone,
      zoneMode: v.zoneMode,
      endTime: v.endTime ? { seconds: BigInt(Math.floor(instantOfLocal(v.endTime, v.timeZone) / 1000)), nanos: 0 } : undefined,
    },
    budgetPoints: v.kind === CampaignKind.BASE_RULE || !v.budget ? 0n : BigInt(v.budget),
    limits: {
      memberLimits: v.dailyCap ? [{ period: LimitPeriod.DAY, maxPoints: BigInt(v.dailyCap) }] : [],
      maxMembers: v.maxMembers ? BigInt(v.maxMembers) : 0n,
    },
    stacking: { group: v.group.trim(), mode: v.stacking, priority: v.priority ? Number(v.priority) : 0 },
  };
  return spec as MessageInitShape<typeof CampaignSpecSchema>;
}

const pad = (n: number) => String(n).padStart(2, "0");

export function fromCampaign(c: Campaign, localOfInstant: (ms: number, zone: string) => string): FormValues {
  const s = c.spec!;
  const start = s.schedule?.start;
  const zone = s.schedule?.timeZone || "UTC";
  const day = s.limits?.memberLimits.find((l) => l.period === LimitPeriod.DAY);
  return {
    campaignId: c.campaignId,
    displayName: s.displayName,
    description: s.description,
    kind: s.kind,
    points: s.reward?.points ? String(s.reward.points) : "",
    multiplierPercent: s.reward?.multiplierPercent ? String(s.reward.multiplierPercent) : "",
    probabilityPercent: s.reward?.probabilityPpm ? String(s.reward.probabilityPpm / 10_000) : "",
    pointsPerUnit: s.reward?.pointsPerUnit ? String(s.reward.pointsPerUnit) : "",
    activityTypes: s.conditions?.activityTypes.join(", ") ?? "",
    minSpend: s.conditions?.minSpendMinor ? String(s.conditions.minSpendMinor) : "",
    currency: s.conditions?.currency ?? "",
    tiers: s.conditions?.tiers.join(", ") ?? "",
    segments: s.conditions?.segments.join(", ") ?? "",
    start: start && start.year ? `${start.year}-${pad(start.month)}-${pad(start.day)}T${pad(start.hours)}:${pad(start.minutes)}` : "",
    durationHours: s.schedule?.duration ? String(Number(s.schedule.duration.seconds) / 3600) : "",
    rrule: s.schedule?.rrule ?? "",
    timeZone: zone,
    zoneMode: s.schedule?.zoneMode ?? ZoneMode.CAMPAIGN,
    endTime: s.schedule?.endTime ? localOfInstant(Number(s.schedule.endTime.seconds) * 1000, zone) : "",
    budget: s.budgetPoints ? String(s.budgetPoints) : "",
    dailyCap: day ? String(day.maxPoints) : "",
    maxMembers: s.limits?.maxMembers ? String(s.limits.maxMembers) : "",
    group: s.stacking?.group ?? "",
    stacking: s.stacking?.mode ?? StackingMode.UNSPECIFIED,
    priority: s.stacking?.priority ? String(s.stacking.priority) : "",
  };
}
