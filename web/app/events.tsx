// Bonus events, live and upcoming, with countdowns in the member's zone and a
// notice when one starts or changes. Players see campaigns' public face only
// (ListPublicCampaigns: no budget, no targeting); the campaigns stream is the
// managers', so the app follows changes by asking again every few seconds
// and at every window boundary it knows of.
import { useEffect, useRef, useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { PublicState, type PublicCampaign } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { rewardText } from "../shared/campaigntext.js";
import { countdown, dateTime, durationWords } from "../shared/format.js";
import { announce, Loading, Problem, useNow } from "../shared/ui.js";
import { campaigns } from "./clients.js";
import { useMember } from "./session.js";

export const REFRESH_MS = 5000;

const STATE: Record<PublicState, string> = {
  [PublicState.UNSPECIFIED]: "",
  [PublicState.UPCOMING]: "upcoming",
  [PublicState.LIVE]: "live",
  [PublicState.PAUSED]: "paused",
  [PublicState.ENDED]: "ended",
};

export interface Window {
  startMs: number;
  endMs: number;
}

export function windowsOf(c: PublicCampaign): Window[] {
  return c.windows.map((w) => ({ startMs: w.startTime ? timestampMs(w.startTime) : 0, endMs: w.endTime ? timestampMs(w.endTime) : 0 }));
}

// The member's public campaigns, refreshed; announces starts, pauses and ends.
export function usePublicCampaigns(memberId: string) {
  const [list, setList] = useState<PublicCampaign[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const previous = useRef<Map<string, PublicState> | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer = 0;
    const load = async () => {
      try {
        const all: PublicCampaign[] = [];
        let pageToken = "";
        do {
          const page = await campaigns.listPublicCampaigns({ memberId, pageSize: 100, pageToken });
          all.push(...page.campaigns);
          pageToken = page.nextPageToken;
        } while (pageToken);
        if (stopped) return;
        const states = new Map(all.map((c) => [c.campaignId, c.state]));
        if (previous.current) {
          for (const c of all) {
            const before = previous.current.get(c.campaignId);
            if (before === c.state) continue;
            const text =
              c.state === PublicState.LIVE ? `${c.displayName} has started: ${rewardText(c.kind, c.reward)}.` :
              c.state === PublicState.PAUSED ? `${c.displayName} is paused for now.` :
              c.state === PublicState.ENDED ? `${c.displayName} has ended.` :
              before === undefined ? `New: ${c.displayName}.` : null;
            if (text) {
              setNotice(text);
              announce(text);
            }
          }
        }
        previous.current = states;
        setList(all);
        setError(null);
        // Ask again at the next boundary we know of, or in a few seconds.
        const now = Date.now();
        const next = Math.min(...all.flatMap(windowsOf).flatMap((w) => [w.startMs, w.endMs]).filter((t) => t > now), now + REFRESH_MS);
        timer = window.setTimeout(load, Math.max(250, next - now + 250));
      } catch (e) {
        if (stopped) return;
        setError(e);
        timer = window.setTimeout(load, REFRESH_MS * 2);
      }
    };
    load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [memberId]);
  return { list, error, notice, dismiss: () => setNotice(null) };
}

export function EventsScreen() {
  const { memberId, zone } = useMember();
  const { list, error, notice, dismiss } = usePublicCampaigns(memberId);
  const now = useNow(1000);
  if (error && !list) return <Problem error={error} />;
  if (!list) return <Loading label="Loading bonus events" />;
  const events = list.filter((c) => c.state !== PublicState.ENDED && c.windows.length > 0);
  const live = events.filter((c) => c.state === PublicState.LIVE);
  const other = events.filter((c) => c.state !== PublicState.LIVE);
  const item = (c: PublicCampaign) => {
    const windows = windowsOf(c);
    const current = windows.find((w) => w.startMs <= now && now < w.endMs);
    const next = windows.find((w) => w.startMs > now);
    return (
      <li key={c.campaignId} class="card" data-testid="event" data-campaign={c.campaignId} data-state={STATE[c.state]}>
        <p class="row">
          <strong>{c.displayName}</strong> <span class={`badge ${STATE[c.state]}`}>{STATE[c.state]}</span>
        </p>
        <p>{rewardText(c.kind, c.reward)}{c.description && ` · ${c.description}`}</p>
        {c.state === PublicState.LIVE && current && (
          <p>
            Ends in <span class="countdown" role="timer" aria-label={`ends in ${durationWords(current.endMs - now)}`}>{countdown(current.endMs - now)}</span>, {dateTime(current.endMs, zone)}.
          </p>
        )}
        {c.state !== PublicState.LIVE && next && (
          <p>
            Starts in <span class="countdown" role="timer" aria-label={`starts in ${durationWords(next.startMs - now)}`}>{countdown(next.startMs - now)}</span>, {dateTime(next.startMs, zone)} until {dateTime(next.endMs, zone)}.
          </p>
        )}
        {c.state === PublicState.PAUSED && <p>Paused for now.</p>}
      </li>
    );
  };
  return (
    <section class="events" aria-labelledby="events-heading">
      <h3 id="events-heading">Bonus events</h3>
      {notice && (
        <p class="notice" role="status" data-testid="event-notice">
          {notice} <button type="button" class="link" onClick={dismiss}>Dismiss</button>
        </p>
      )}
      <p class="hint">Times in {zone}.</p>
      <h4>Live now</h4>
      {live.length ? <ul>{live.map(item)}</ul> : <p>No bonus event right now.</p>}
      <h4>Coming up</h4>
      {other.length ? <ul>{other.map(item)}</ul> : <p>Nothing scheduled yet.</p>}
    </section>
  );
}
