// Campaigns: the list, and one campaign's page: its form (checked as the
// manager types, the service's own violations shown at their fields), the
// next occurrences in local time and UTC (GetSchedule), pause, resume,
// cancel, adding budget, a dry run with its breakdown, and the stats.
import { useEffect, useMemo, useState } from "preact/hooks";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { CampaignKind, CampaignState, StackingMode, ZoneMode, type Campaign, type CampaignStats, type Breakdown, type Occurrence } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { BreakdownView } from "../shared/breakdown.js";
import { ACTIVITY_NAMES, rewardText } from "../shared/campaigntext.js";
import { emptyForm, fromCampaign, PATHS, toSpec, validate, type FormValues } from "../shared/campaignform.js";
import { BarChart, BudgetBar, projectedExhaustion } from "../shared/charts.js";
import { fieldError, refusal } from "../shared/errors.js";
import { date, dateTime, isoUtc, points } from "../shared/format.js";
import { browserZone, instantOf, localAt } from "../shared/time.js";
import { announce, Field, Loading, Problem, useAsync } from "../shared/ui.js";
import { campaigns } from "./api.js";

export const STATES: Record<CampaignState, string> = {
  [CampaignState.UNSPECIFIED]: "",
  [CampaignState.DRAFT]: "draft",
  [CampaignState.SCHEDULED]: "scheduled",
  [CampaignState.LIVE]: "live",
  [CampaignState.PAUSED]: "paused",
  [CampaignState.ENDED]: "ended",
  [CampaignState.BUDGET_EXHAUSTED]: "budget spent",
};

const KINDS: [CampaignKind, string][] = [
  [CampaignKind.MULTIPLIER, "Multiplier (double points...)"],
  [CampaignKind.FIXED_BONUS, "Fixed bonus"],
  [CampaignKind.SURPRISE_BONUS, "Surprise bonus"],
  [CampaignKind.BIRTHDAY_BONUS, "Birthday bonus"],
  [CampaignKind.BASE_RULE, "Base earning rule"],
];

export async function allCampaigns(): Promise<Campaign[]> {
  const all: Campaign[] = [];
  let pageToken = "";
  do {
    const page = await campaigns.listCampaigns({ pageSize: 500, pageToken });
    all.push(...page.campaigns);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

function routeId(): string | null {
  const [, id] = location.hash.replace(/^#\/?/, "").split("/");
  return id ? decodeURIComponent(id) : null;
}

export function CampaignsScreen() {
  const [id, setId] = useState(routeId);
  useEffect(() => {
    const onChange = () => setId(routeId());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  if (id === "new") return <CampaignPage key="new" campaignId={null} />;
  if (id) return <CampaignPage key={id} campaignId={id} />;
  return <CampaignList />;
}

function CampaignList() {
  const [list, reload] = useAsync(allCampaigns, []);
  return (
    <section aria-labelledby="campaigns-heading">
      <p class="row">
        <h2 id="campaigns-heading">Campaigns</h2>
        <a class="button primary" href="#/campaigns/new">New campaign</a>
      </p>
      {list.state === "loading" && <Loading />}
      {list.state === "failed" && <Problem error={list.error} onRetry={reload} />}
      {list.state === "ready" && (
        <table>
          <thead>
            <tr><th scope="col">Campaign</th><th scope="col">Pays</th><th scope="col">State</th><th scope="col">Zone</th><th scope="col" class="number">Budget left</th></tr>
          </thead>
          <tbody>
            {list.value.map((c) => (
              <tr key={c.campaignId}>
                <td><a href={`#/campaigns/${encodeURIComponent(c.campaignId)}`}>{c.spec?.displayName || c.campaignId}</a> <small class="mono">{c.campaignId}</small></td>
                <td>{rewardText(c.spec?.kind ?? CampaignKind.UNSPECIFIED, c.spec?.reward)}</td>
                <td><span class={`badge ${STATES[c.state]}`}>{STATES[c.state]}</span></td>
                <td>{c.spec?.schedule?.timeZone}</td>
                <td class="number">{c.spec?.budgetPoints ? points(c.budgetRemaining) : "program"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const localInput = (ms: number, zone: string) => {
  const t = localAt(ms, zone);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${t.year}-${p(t.month)}-${p(t.day)}T${p(t.hour)}:${p(t.minute)}`;
};
const instantOfInput = (value: string, zone: string) => {
  const [d, t] = value.split("T");
  const [year, month, day] = d!.split("-").map(Number);
  const [hour, minute] = (t ?? "00:00").split(":").map(Number);
  return instantOf({ year: year!, month: month!, day: day!, hour: hour!, minute: minute! }, zone);
};

function CampaignPage({ campaignId }: { campaignId: string | null }) {
  const [campaign, setCampaign] = useState<Campaign | null>(null);
  const [values, setValues] = useState<FormValues>(() => emptyForm(browserZone()));
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [serverFields, setServerFields] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  const [occurrences, setOccurrences] = useState<Occurrence[] | null>(null);
  const creating = campaignId === null;

  const load = async (id: string) => {
    const answer = await campaigns.getCampaign({ campaignId: id });
    setCampaign(answer.campaign ?? null);
    if (answer.campaign) setValues(fromCampaign(answer.campaign, localInput));
    const schedule = await campaigns.getSchedule({ campaignId: id, count: 10 });
    setOccurrences(schedule.occurrences);
  };
  useEffect(() => {
    if (campaignId) load(campaignId).catch(setProblem);
  }, [campaignId]);

  const local = useMemo(() => validate(values, creating), [values, creating]);
  // A field's error: the form's own check once touched, else what the service said.
  const errorAt = (key: keyof FormValues) => (touched.has(key) ? local[PATHS[key]] : undefined) ?? fieldError(serverFields, PATHS[key]);
  const set = (key: keyof FormValues) => (event: Event) => {
    const target = event.currentTarget as HTMLInputElement;
    const value = key === "kind" || key === "zoneMode" || key === "stacking" ? Number(target.value) : target.value;
    setValues((v) => ({ ...v, [key]: value }));
    setTouched((t) => new Set(t).add(key));
    setServerFields((f) => {
      const rest = { ...f };
      delete rest[PATHS[key]];
      return rest;
    });
  };

  async function save(event: Event) {
    event.preventDefault();
    setTouched(new Set(Object.keys(values)));
    if (Object.keys(local).length) {
      announce(`${Object.keys(local).length} fields need attention.`);
      return;
    }
    setSaving(true);
    setProblem(null);
    setServerFields({});
    try {
      const spec = toSpec(values, instantOfInput);
      if (creating) {
        await campaigns.createCampaign({ campaignId: values.campaignId, spec });
        location.hash = `#/campaigns/${encodeURIComponent(values.campaignId)}`;
        announce("Saved as a draft.");
      } else {
        await campaigns.updateCampaign({ campaignId: campaignId!, spec, expectedVersion: campaign?.version ?? 0n, updateMask: { paths: ["*"] } });
        await load(campaignId!);
        announce("Saved: a new version.");
      }
    } catch (e) {
      const r = refusal(e);
      setServerFields(r.fields);
      setProblem(e);
      announce(`The service refused: ${r.message}`);
    } finally {
      setSaving(false);
    }
  }

  async function act(name: "scheduleCampaign" | "pauseCampaign" | "resumeCampaign" | "cancelCampaign" | "archiveCampaign", done: string) {
    setProblem(null);
    try {
      await campaigns[name]({ campaignId: campaignId! });
      await load(campaignId!);
      announce(done);
    } catch (e) {
      setProblem(e);
    }
  }

  const kind = values.kind;
  const input = (key: keyof FormValues, label: string, props: Record<string, unknown> = {}, hint?: string) => (
    <Field label={label} error={errorAt(key)} hint={hint}>
      {(attrs) => <input {...attrs} name={key} value={values[key] as string} onInput={set(key)} {...props} />}
    </Field>
  );
  const zone = values.timeZone;
  return (
    <section aria-labelledby="campaign-heading">
      <p><a href="#/campaigns">All campaigns</a></p>
      <h2 id="campaign-heading">
        {creating ? "New campaign" : campaign?.spec?.displayName ?? campaignId}{" "}
        {campaign && <span class={`badge ${STATES[campaign.state]}`} data-testid="campaign-state">{STATES[campaign.state]}</span>}
      </h2>
      {campaign && (
        <p class="row" role="group" aria-label="Actions">
          {campaign.state === CampaignState.DRAFT && <button type="button" class="primary" onClick={() => act("scheduleCampaign", "Scheduled and funded.")}>Schedule (funds the budget)</button>}
          {[CampaignState.LIVE, CampaignState.SCHEDULED].includes(campaign.state) && <button type="button" onClick={() => act("pauseCampaign", "Paused.")}>Pause</button>}
          {campaign.state === CampaignState.PAUSED && <button type="button" onClick={() => act("resumeCampaign", "Resumed.")}>Resume</button>}
          {![CampaignState.ENDED].includes(campaign.state) && <button type="button" class="danger" onClick={() => confirm("Cancel this campaign for good?") && act("cancelCampaign", "Cancelled.")}>Cancel campaign</button>}
          {campaign.state === CampaignState.ENDED && <button type="button" onClick={() => act("archiveCampaign", "Archived.")}>Archive</button>}
          <span>version {String(campaign.version)}</span>
        </p>
      )}
      {problem && <Problem error={problem} />}
      <div class="campaign-grid">
        <form class="card" onSubmit={save} noValidate aria-labelledby="form-heading">
          <h3 id="form-heading">{creating ? "Define it" : "Edit (saves a new version)"}</h3>
          {creating && input("campaignId", "Campaign id", { required: true, maxLength: 64 }, "Letters, digits and . _ -; it never changes.")}
          {input("displayName", "Name members see", { required: true })}
          {input("description", "Description")}
          <Field label="Kind" error={errorAt("kind")}>
            {(attrs) => (
              <select {...attrs} value={kind} onChange={set("kind")} disabled={!creating}>
                {KINDS.map(([k, label]) => <option value={k}>{label}</option>)}
              </select>
            )}
          </Field>
          {kind === CampaignKind.MULTIPLIER && input("multiplierPercent", "Multiplier (percent of base points)", { inputMode: "numeric" }, "200 is double points.")}
          {[CampaignKind.FIXED_BONUS, CampaignKind.SURPRISE_BONUS, CampaignKind.BIRTHDAY_BONUS, CampaignKind.BASE_RULE].includes(kind) && input("points", kind === CampaignKind.BASE_RULE ? "Points per activity" : "Bonus points", { inputMode: "numeric" })}
          {kind === CampaignKind.BASE_RULE && input("pointsPerUnit", "Points per currency unit spent", { inputMode: "numeric" })}
          {kind === CampaignKind.SURPRISE_BONUS && input("probabilityPercent", "Chance (percent)", { inputMode: "decimal" })}
          <fieldset>
            <legend>Who and what</legend>
            {input("activityTypes", "Activity types (comma-separated)", {}, `For example ${Object.keys(ACTIVITY_NAMES).join(", ")}.`)}
            {input("minSpend", "Minimum spend (minor units, 2000 = 20.00)", { inputMode: "numeric" })}
            {input("currency", "Currency", { maxLength: 3 })}
            {input("tiers", "Only tiers (comma-separated)")}
            {input("segments", "Only segments (comma-separated)")}
          </fieldset>
          <fieldset>
            <legend>When</legend>
            {input("timeZone", "Time zone", { list: "zones" }, "The campaign's wall clock: windows follow it across DST.")}
            <Field label="Whose clock" error={errorAt("zoneMode")}>
              {(attrs) => (
                <select {...attrs} value={values.zoneMode} onChange={set("zoneMode")}>
                  <option value={ZoneMode.CAMPAIGN}>The campaign's zone</option>
                  <option value={ZoneMode.MEMBER}>Each member's own zone</option>
                </select>
              )}
            </Field>
            {input("start", `First start (${zone}; empty: always on)`, { type: "datetime-local" })}
            {input("durationHours", "Each window lasts (hours)", { inputMode: "decimal" })}
            {input("rrule", "Repeats (RFC 5545 RRULE)", { spellcheck: false }, "For example FREQ=WEEKLY;BYDAY=SA. Empty: once.")}
            {input("endTime", `Ends for good (${zone})`, { type: "datetime-local" })}
          </fieldset>
          <fieldset>
            <legend>Budget and limits</legend>
            {kind !== CampaignKind.BASE_RULE && input("budget", "Budget (points)", { inputMode: "numeric" }, "Funded from the program when scheduled; it can be raised later, never lowered.")}
            {input("dailyCap", "At most this many points per member per day", { inputMode: "numeric" })}
            {input("maxMembers", "Only the first N members", { inputMode: "numeric" })}
            {input("group", "Stacking group")}
            <Field label="Stacking" error={errorAt("stacking")}>
              {(attrs) => (
                <select {...attrs} value={values.stacking} onChange={set("stacking")}>
                  <option value={StackingMode.UNSPECIFIED}>Default</option>
                  <option value={StackingMode.STACKABLE}>Adds up with others</option>
                  <option value={StackingMode.BEST_OF_GROUP}>Best of its group</option>
                  <option value={StackingMode.EXCLUSIVE}>Exclusive</option>
                </select>
              )}
            </Field>
            {input("priority", "Priority (ties)", { inputMode: "numeric" })}
          </fieldset>
          <datalist id="zones">{["Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney", "UTC"].map((z) => <option value={z} />)}</datalist>
          <button type="submit" class="primary" disabled={saving}>{saving ? "Saving…" : creating ? "Save draft" : "Save new version"}</button>
          {Object.keys(local).length > 0 && touched.size > 0 && <p class="error" role="status">{Object.keys(local).length} field(s) to fix.</p>}
        </form>
        {campaign && (
          <div>
            <SchedulePreview occurrences={occurrences} zone={zone} />
            <Fund campaign={campaign} onDone={() => load(campaign.campaignId)} />
            <DryRun campaign={campaign} />
            <Stats campaignId={campaign.campaignId} zone={zone} />
          </div>
        )}
      </div>
    </section>
  );
}

function SchedulePreview({ occurrences, zone }: { occurrences: Occurrence[] | null; zone: string }) {
  return (
    <section class="card" aria-labelledby="schedule-heading">
      <h3 id="schedule-heading">Next occurrences</h3>
      {!occurrences ? <Loading /> : occurrences.length === 0 ? <p>None to come (always on, or over).</p> : (
        <table data-testid="schedule">
          <thead><tr><th scope="col">Starts ({zone})</th><th scope="col">Ends</th><th scope="col">UTC</th></tr></thead>
          <tbody>
            {occurrences.map((o) => (
              <tr key={o.localStart}>
                <td>{o.localStart}</td>
                <td>{o.localEnd}</td>
                <td class="mono">{o.startTime && isoUtc(timestampMs(o.startTime))} – {o.endTime && isoUtc(timestampMs(o.endTime))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Fund({ campaign, onDone }: { campaign: Campaign; onDone: () => void }) {
  const [add, setAdd] = useState("");
  const [error, setError] = useState<string | undefined>();
  if (!campaign.spec?.budgetPoints) return null;
  async function fund(event: Event) {
    event.preventDefault();
    if (!/^\d+$/.test(add) || add === "0") return setError("a whole number of points above 0");
    try {
      await campaigns.updateCampaign({ campaignId: campaign.campaignId, spec: { budgetPoints: campaign.spec!.budgetPoints + BigInt(add) }, expectedVersion: campaign.version, updateMask: { paths: ["budget_points"] } });
      setAdd("");
      setError(undefined);
      announce(`Budget raised by ${add} points.`);
      onDone();
    } catch (e) {
      const r = refusal(e);
      setError(r.fields["spec.budget_points"] ?? r.message);
    }
  }
  return (
    <form class="card" onSubmit={fund}>
      <h3>Budget</h3>
      <p>{points(campaign.budgetUsed)} used, {points(campaign.budgetRemaining)} left of {points(campaign.spec.budgetPoints)}.</p>
      <Field label="Add to the budget (points)" error={error}>
        {(attrs) => <input {...attrs} value={add} inputMode="numeric" onInput={(e) => setAdd(e.currentTarget.value)} />}
      </Field>
      <button type="submit">Fund</button>
    </form>
  );
}

function DryRun({ campaign }: { campaign: Campaign }) {
  const [member, setMember] = useState("");
  const [type, setType] = useState(campaign.spec?.conditions?.activityTypes[0] ?? "purchase");
  const [amount, setAmount] = useState("2500");
  const [currency, setCurrency] = useState(campaign.spec?.conditions?.currency || "EUR");
  const [breakdown, setBreakdown] = useState<Breakdown | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  async function run(event: Event) {
    event.preventDefault();
    setError(null);
    setFields({});
    try {
      const answer = await campaigns.dryRunActivity({
        activity: {
          activityId: `dry-${crypto.randomUUID().slice(0, 24)}`,
          memberId: member,
          type,
          occurTime: timestampFromMs(Date.now()),
          purchase: type === "purchase" ? { amountMinor: BigInt(amount || "0"), currency } : undefined,
        },
      });
      setBreakdown(answer.breakdown ?? null);
    } catch (e) {
      setFields(refusal(e).fields);
      setError(e);
    }
  }
  return (
    <form class="card" onSubmit={run} aria-labelledby="dry-heading">
      <h3 id="dry-heading">Dry run</h3>
      <p class="hint">What an activity would earn now; nothing is recorded.</p>
      <Field label="Member id" error={fieldError(fields, "activity.member_id")}>{(a) => <input {...a} value={member} required onInput={(e) => setMember(e.currentTarget.value)} />}</Field>
      <Field label="Activity type" error={fieldError(fields, "activity.type")}>{(a) => <input {...a} value={type} onInput={(e) => setType(e.currentTarget.value)} />}</Field>
      {type === "purchase" && (
        <div class="row">
          <Field label="Amount (minor units)" error={fieldError(fields, "activity.purchase.amount_minor")}>{(a) => <input {...a} value={amount} inputMode="numeric" onInput={(e) => setAmount(e.currentTarget.value)} />}</Field>
          <Field label="Currency" error={fieldError(fields, "activity.purchase.currency")}>{(a) => <input {...a} value={currency} maxLength={3} onInput={(e) => setCurrency(e.currentTarget.value)} />}</Field>
        </div>
      )}
      <button type="submit">Dry run</button>
      {error && !Object.keys(fields).length && <Problem error={error} />}
      {breakdown && <BreakdownView breakdown={breakdown} />}
    </form>
  );
}

function Stats({ campaignId, zone }: { campaignId: string; zone: string }) {
  const [stats, reload] = useAsync<CampaignStats | undefined>(() => campaigns.getCampaignStats({ campaignId }).then((a) => a.stats), [campaignId]);
  if (stats.state === "loading") return <Loading label="Loading stats" />;
  if (stats.state === "failed") return <Problem error={stats.error} onRetry={reload} />;
  const s = stats.value;
  if (!s) return null;
  const days = s.days.map((d) => ({ date: d.date, points: Number(d.pointsAwarded), members: Number(d.uniqueMembers) }));
  const exhaustion = projectedExhaustion(days, Number(s.budgetLeft), Date.now());
  return (
    <section class="card" aria-labelledby="stats-heading">
      <h3 id="stats-heading">Stats <button type="button" class="link" onClick={reload}>refresh</button></h3>
      <dl class="figures">
        <div><dt>Points awarded</dt><dd>{points(s.pointsAwarded)}</dd></div>
        <div><dt>Activities</dt><dd>{points(s.activities)}</dd></div>
        <div><dt>Members reached</dt><dd>{points(s.uniqueMembers)}</dd></div>
        <div><dt>Reconciled with the ledger</dt><dd>{s.reconciled ? "yes" : "not yet"}</dd></div>
      </dl>
      {s.budgetFunded > 0n && <BudgetBar used={Number(s.budgetUsed)} left={Number(s.budgetLeft)} exhaustion={exhaustion ? date(exhaustion, zone) : null} />}
      <BarChart title="Points awarded per day" unit="points" bars={days.map((d) => ({ label: d.date, value: d.points }))} />
      <BarChart title="Members reached per day" unit="members" bars={days.map((d) => ({ label: d.date, value: d.members }))} />
      <p class="hint">Days in {zone}; {dateTime(Date.now(), zone)} now.</p>
    </section>
  );
}
