// The campaign calendar: every campaign's occurrences in a month or a week,
// laid out on the wall clock of the zone the manager picks (by default the
// campaigns' own), with 23- and 25-hour days where the clocks change. An
// occurrence links to its campaign.
import { useEffect, useState } from "preact/hooks";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { CampaignState, ZoneMode, type Campaign } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { hourMarks, monthView, viewRange, weekView, type Day, type Occurrence } from "../shared/calendar.js";
import { monthName } from "../shared/format.js";
import { addDays, browserZone, isZone, localAt, parseDateKey, type LocalDate } from "../shared/time.js";
import { Field, Loading, Problem } from "../shared/ui.js";
import { campaigns } from "./api.js";
import { allCampaigns, STATES } from "./campaigns.js";

const MAX_PER_CAMPAIGN = 100;

async function occurrencesIn(list: Campaign[], range: [number, number], zone: string): Promise<Occurrence[]> {
  const shown = list.filter((c) => c.state !== CampaignState.ENDED && c.spec?.schedule?.start?.year);
  const answers = await Promise.all(
    shown.map((c) =>
      campaigns
        .getSchedule({ campaignId: c.campaignId, count: MAX_PER_CAMPAIGN, afterTime: timestampFromMs(range[0]), timeZone: c.spec?.schedule?.zoneMode === ZoneMode.MEMBER ? zone : "" })
        .then((a) => a.occurrences.map((o) => ({ campaignId: c.campaignId, title: c.spec?.displayName || c.campaignId, startMs: o.startTime ? timestampMs(o.startTime) : 0, endMs: o.endTime ? timestampMs(o.endTime) : 0, state: STATES[c.state] })))
        .catch(() => [] as Occurrence[]),
    ),
  );
  return answers.flat().filter((o) => o.startMs < range[1] && o.endMs > range[0]);
}

function commonZone(list: Campaign[]): string {
  const counts = new Map<string, number>();
  for (const c of list) {
    const z = c.spec?.schedule?.timeZone;
    if (z) counts.set(z, (counts.get(z) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? browserZone();
}

export function CalendarScreen() {
  const [list, setList] = useState<Campaign[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [zone, setZone] = useState<string | null>(null);
  const [zoneText, setZoneText] = useState("");
  const [mode, setMode] = useState<"month" | "week">("month");
  const today = localAt(Date.now(), browserZone());
  const [anchor, setAnchor] = useState<LocalDate>({ year: today.year, month: today.month, day: today.day });
  const [occurrences, setOccurrences] = useState<Occurrence[] | null>(null);

  useEffect(() => {
    allCampaigns().then((l) => {
      setList(l);
      const z = commonZone(l);
      setZone((current) => current ?? z);
      setZoneText((t) => t || z);
    }, setError);
  }, []);

  const shownZone = zone ?? browserZone();
  const weeks = mode === "month" ? monthView(anchor.year, anchor.month, shownZone, occurrences ?? []) : [weekView(anchor, shownZone, occurrences ?? [])];
  const days = weeks.flat();
  const [from, to] = viewRange(days);
  useEffect(() => {
    if (!list || !zone) return;
    setOccurrences(null);
    occurrencesIn(list, [from, to], zone).then(setOccurrences, setError);
  }, [list, zone, mode, anchor.year, anchor.month, mode === "week" ? anchor.day : 0]);

  if (error) return <Problem error={error} />;
  if (!list) return <Loading label="Loading campaigns" />;
  const zones = [...new Set([shownZone, ...list.map((c) => c.spec?.schedule?.timeZone ?? "").filter(Boolean), browserZone(), "UTC"])];
  const move = (step: number) => setAnchor(mode === "month" ? { year: anchor.month + step > 12 ? anchor.year + 1 : anchor.month + step < 1 ? anchor.year - 1 : anchor.year, month: ((anchor.month - 1 + step + 12) % 12) + 1, day: 1 } : addDays(anchor, 7 * step));
  const title = mode === "month" ? `${monthName(anchor.month)} ${anchor.year}` : `Week of ${days[0]!.key}`;
  return (
    <section aria-labelledby="calendar-heading" class="calendar">
      <h2 id="calendar-heading">Campaign calendar: {title}</h2>
      <div class="row toolbar">
        <div role="group" aria-label="View">
          <button type="button" aria-pressed={mode === "month"} onClick={() => setMode("month")}>Month</button>
          <button type="button" aria-pressed={mode === "week"} onClick={() => setMode("week")}>Week</button>
        </div>
        <button type="button" onClick={() => move(-1)} aria-label={mode === "month" ? "Previous month" : "Previous week"}>‹</button>
        <button type="button" onClick={() => setAnchor({ year: today.year, month: today.month, day: today.day })}>Today</button>
        <button type="button" onClick={() => move(1)} aria-label={mode === "month" ? "Next month" : "Next week"}>›</button>
        <label for="go-to">Go to</label>
        <input id="go-to" type="date" style={{ width: "auto" }} onChange={(e) => e.currentTarget.value && setAnchor(parseDateKey(e.currentTarget.value))} />
        <form class="row" onSubmit={(e) => { e.preventDefault(); if (isZone(zoneText)) setZone(zoneText); }}>
          <Field label="Time zone" error={zoneText && !isZone(zoneText) ? "not an IANA time zone" : undefined}>
            {(attrs) => <input {...attrs} list="calendar-zones" value={zoneText} onInput={(e) => setZoneText(e.currentTarget.value)} onChange={(e) => isZone(e.currentTarget.value) && setZone(e.currentTarget.value)} style={{ width: "14rem" }} />}
          </Field>
          <datalist id="calendar-zones">{zones.map((z) => <option value={z} />)}</datalist>
          <button type="submit">Show</button>
        </form>
      </div>
      <p class="hint" data-testid="calendar-zone">Times on the wall clock of {shownZone}.{occurrences === null && " Loading…"}</p>
      {mode === "month" ? <Month weeks={weeks} /> : <Week days={days} zone={shownZone} />}
    </section>
  );
}

function Chip({ segment, day }: { segment: Day["segments"][number]; day: Day }) {
  const o = segment.occurrence;
  return (
    <a class={`occurrence ${o.state ?? ""}`} href={`#/campaigns/${encodeURIComponent(o.campaignId)}`} data-testid="occurrence" data-campaign={o.campaignId} data-day={day.key} data-label={segment.label}>
      <span class="time">{segment.label}</span> {o.title}
    </a>
  );
}

function Month({ weeks }: { weeks: Day[][] }) {
  return (
    <table class="month">
      <thead>
        <tr>{["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map((d) => <th scope="col">{d}</th>)}</tr>
      </thead>
      <tbody>
        {weeks.map((week) => (
          <tr key={week[0]!.key}>
            {week.map((day) => (
              <td key={day.key} class={day.inMonth ? "" : "outside"} data-date={day.key}>
                <div class="day-number">{day.date.day}{day.change && <small class="dst" title={`Clocks change ${day.change.fromOffset} → ${day.change.toOffset}`}> {day.hours} h</small>}</div>
                {day.segments.map((s) => <Chip key={s.occurrence.campaignId + s.startMs} segment={s} day={day} />)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Week({ days, zone }: { days: Day[]; zone: string }) {
  return (
    <div class="week" role="table" aria-label="Week">
      <div role="rowgroup">
        <div role="row" class="week-head">
          {days.map((day) => (
            <div role="columnheader" key={day.key}>
              {["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][days.indexOf(day)]} {day.date.day}
              {day.change && <small class="dst"> clocks {day.change.shiftMinutes > 0 ? "forward" : "back"} ({day.hours} h)</small>}
            </div>
          ))}
        </div>
      </div>
      <div role="rowgroup">
        <div role="row" class="week-body">
          {days.map((day) => (
            <div role="cell" class="week-day" key={day.key} data-date={day.key} data-hours={day.hours}>
              {hourMarks(day, zone).filter((_, i) => i % 3 === 0).map((m) => (
                <span class="hour" style={{ top: `${m.top * 100}%` }} aria-hidden="true">{m.label}</span>
              ))}
              {day.segments.map((s) => (
                <div class="slot" key={s.occurrence.campaignId + s.startMs} style={{ top: `${s.top * 100}%`, height: `${Math.max(s.height * 100, 2)}%`, left: `${(s.lane / day.lanes) * 100}%`, width: `${100 / day.lanes}%` }}>
                  <Chip segment={s} day={day} />
                </div>
              ))}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}
