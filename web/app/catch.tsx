// Catch the falling items: the session's objects arrive from WatchCatchObjects
// just before they spawn and fall at the game's real speed on a canvas; the
// basket follows arrow keys, a mouse or a finger within the game's speed; at
// the end the catches and the basket's trace go to SubmitCatch and the
// server's verdicts and award are shown, then the weekly leaderboard.
import { useEffect, useRef, useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { CatchVerdictCode, TraceFinding, type CatchGame, type CatchResult, type GetLeaderboardResponse } from "../gen/loyalty/games/v1/games_service_pb.js";
import { Play, type Rules } from "../shared/catchplay.js";
import { refusal } from "../shared/errors.js";
import { points } from "../shared/format.js";
import { announce, Loading, Problem } from "../shared/ui.js";
import { games } from "./clients.js";
import { useMember } from "./session.js";

export const DEFAULT_GAME = "coins";
const COLORS = ["#f59e0b", "#5b3df5", "#10b981", "#ef4444", "#3b82f6"];

const VERDICTS: Record<CatchVerdictCode, string> = {
  [CatchVerdictCode.UNSPECIFIED]: "?",
  [CatchVerdictCode.ACCEPTED]: "caught",
  [CatchVerdictCode.UNKNOWN_OBJECT]: "unknown object",
  [CatchVerdictCode.DUPLICATE_OBJECT]: "counted already",
  [CatchVerdictCode.OUTSIDE_WINDOW]: "too early or too late",
  [CatchVerdictCode.OUTSIDE_BASKET]: "missed the basket",
  [CatchVerdictCode.BASKET_TOO_FAST]: "basket too fast",
  [CatchVerdictCode.TRACE_MISMATCH]: "basket was elsewhere",
  [CatchVerdictCode.REACTION_TOO_FAST]: "reaction too fast",
};

const FINDINGS: Record<TraceFinding, string> = {
  [TraceFinding.UNSPECIFIED]: "?",
  [TraceFinding.TRACE_MISSING]: "the basket's movement was not recorded",
  [TraceFinding.TRACE_TOO_FAST]: "the basket moved faster than it can",
  [TraceFinding.INHUMAN_ACCELERATION]: "the basket moved too jerkily",
};

function gameFromRoute(): string {
  const [, id] = location.hash.replace(/^#\/?/, "").split("/");
  return id ? decodeURIComponent(id) : DEFAULT_GAME;
}

type Phase = "ready" | "playing" | "scoring" | "done";

export function CatchScreen() {
  const { memberId } = useMember();
  const [gameId] = useState(gameFromRoute);
  const [game, setGame] = useState<CatchGame | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [phase, setPhase] = useState<Phase>("ready");
  const [live, setLive] = useState({ score: 0, caught: 0, left: 0 });
  const [result, setResult] = useState<CatchResult | null>(null);
  const [board, setBoard] = useState<GetLeaderboardResponse | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const stop = useRef<() => void>(() => undefined);

  const loadBoard = () => games.getLeaderboard({ gameId, memberId, pageSize: 10 }).then(setBoard, () => undefined);
  useEffect(() => {
    games.getCatchGame({ gameId }).then((answer) => setGame(answer.game ?? null), setError);
    loadBoard();
    return () => stop.current();
  }, [gameId]);

  async function start() {
    if (!game?.config) return;
    setError(null);
    setResult(null);
    const config = game.config;
    try {
      const { session } = await games.startCatch({ gameId, memberId, requestId: crypto.randomUUID() });
      if (!session) return;
      const rules: Rules = {
        durationMillis: config.durationMillis,
        fieldWidth: config.fieldWidth,
        basketWidth: config.basketWidth,
        basketTopSpeed: config.basketTopSpeed,
        catchWindowMillis: config.catchWindowMillis,
        basketMaxAcceleration: config.basketMaxAcceleration,
      };
      const play = new Play(rules);
      // Session time: from the session's start, corrected by the earliest reveal
      // (a reveal cannot arrive before the server sent it).
      let origin = session.startTime ? timestampMs(session.startTime) : Date.now();
      const now = () => Date.now() - origin;
      const abort = new AbortController();
      (async () => {
        try {
          for await (const message of games.watchCatchObjects({ sessionId: session.sessionId, memberId }, { signal: abort.signal })) {
            const o = message.object;
            if (!o) continue;
            const arrived = Date.now();
            if (arrived - o.revealMillis < origin) origin = arrived - o.revealMillis;
            play.reveal({ objectId: o.objectId, type: o.type, spawnMillis: o.spawnMillis, fallMillis: o.fallMillis, x: o.x, width: o.width, points: Number(o.points) });
          }
        } catch {
          // The stream ends when the session does; a broken one only costs objects.
        }
      })();
      setPhase("playing");
      const keys = new Set<string>();
      const element = canvas.current!;
      element.focus();
      const onKey = (event: KeyboardEvent) => {
        if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
        event.preventDefault();
        if (event.type === "keydown") keys.add(event.key);
        else {
          keys.delete(event.key);
          if (keys.size === 0) play.coast();
        }
      };
      const toField = (clientX: number) => {
        const box = element.getBoundingClientRect();
        return ((clientX - box.left) / box.width) * (config.fieldWidth - 1);
      };
      let pointing = false;
      const onPointer = (event: PointerEvent) => {
        if (event.type === "pointerdown") {
          pointing = true;
          element.setPointerCapture(event.pointerId);
        }
        if (event.type === "pointerup" || event.type === "pointercancel") pointing = false;
        if (pointing || event.pointerType === "mouse") play.target = toField(event.clientX);
      };
      element.addEventListener("keydown", onKey);
      element.addEventListener("keyup", onKey);
      for (const type of ["pointerdown", "pointermove", "pointerup", "pointercancel"]) element.addEventListener(type, onPointer as EventListener);
      let frame = 0;
      let finished = false;
      const cleanup = () => {
        cancelAnimationFrame(frame);
        abort.abort();
        element.removeEventListener("keydown", onKey);
        element.removeEventListener("keyup", onKey);
        for (const type of ["pointerdown", "pointermove", "pointerup", "pointercancel"]) element.removeEventListener(type, onPointer as EventListener);
      };
      stop.current = cleanup;
      const tick = () => {
        const t = now();
        if (keys.has("ArrowLeft")) play.target = 0;
        else if (keys.has("ArrowRight")) play.target = config.fieldWidth - 1;
        const found = play.advance(t);
        if (found.length) setLive({ score: play.claimedScore(), caught: play.caught.size, left: Math.max(0, Math.ceil((config.durationMillis - t) / 1000)) });
        draw(element, play, t, config.basketWidth);
        if (t >= config.durationMillis) {
          if (!finished) {
            finished = true;
            cleanup();
            submit(session.sessionId, play);
          }
          return;
        }
        frame = requestAnimationFrame(tick);
      };
      frame = requestAnimationFrame(tick);
    } catch (e) {
      setError(e);
      setPhase("ready");
    }
  }

  async function submit(sessionId: string, play: Play) {
    setPhase("scoring");
    const { catches, trace, claimedScore } = play.submission();
    for (let attempt = 0; attempt < 20; attempt += 1) {
      try {
        const answer = await games.submitCatch({ sessionId, memberId, catches, trace, claimedScore: BigInt(claimedScore) });
        setResult(answer.result ?? null);
        setPhase("done");
        announce(`The server scored ${answer.result?.score ?? 0}: ${answer.result?.awardedPoints ?? 0} points awarded.`);
        loadBoard();
        return;
      } catch (e) {
        // The server's clock decides when play is over: wait for it.
        if (refusal(e).reason === "SUBMITTED_TOO_SOON") {
          await new Promise((resolve) => setTimeout(resolve, 250));
          continue;
        }
        setError(e);
        setPhase("ready");
        return;
      }
    }
  }

  if (error && !game) return <Problem error={error} />;
  if (!game?.config) return <Loading label="Loading the game" />;
  const config = game.config;
  return (
    <section aria-labelledby="catch-heading">
      <h3 id="catch-heading">{config.displayName || game.id}</h3>
      <p id="catch-help">
        {Math.round(config.durationMillis / 1000)} seconds. Move the basket with the left and right arrow keys, the mouse or your finger.{" "}
        {config.objectTypes.map((t) => `${t.name} ${Number(t.points) >= 0 ? "+" : ""}${t.points}`).join(", ")}.
      </p>
      <canvas ref={canvas} class="catch-field" width={360} height={480} tabIndex={0} role="application" aria-label="Catch field: use the left and right arrow keys" aria-describedby="catch-help" data-testid="catch-field" />
      <p class="row" aria-live="off">
        <span>Caught: {live.caught}</span> <span>Score so far: {live.score}</span>
      </p>
      <p class="row">
        <button type="button" class="primary" onClick={start} disabled={phase === "playing" || phase === "scoring"}>
          {phase === "done" ? "Play again" : phase === "playing" ? "Playing…" : phase === "scoring" ? "Scoring…" : "Play"}
        </button>
      </p>
      {error && <Problem error={error} />}
      <div aria-live="polite">
        {result && (
          <div class="card" data-testid="catch-result" data-score={String(result.score)} data-awarded={String(result.awardedPoints)}>
            <p>
              The server scored <strong>{String(result.score)}</strong> and awarded <strong>{points(result.awardedPoints)} points</strong>
              {result.dailyPointsLeft > 0n && ` (${points(result.dailyPointsLeft)} more can be earned today)`}.
            </p>
            {result.findings.length > 0 && <p class="error">Not counted: {result.findings.map((f) => FINDINGS[f]).join("; ")}.</p>}
            <details>
              <summary>{result.verdicts.length} catches judged</summary>
              <ul class="verdicts">
                {result.verdicts.map((v) => (
                  <li key={v.objectId}>Object {v.objectId}: {VERDICTS[v.code]}{v.points ? ` (${v.points > 0n ? "+" : ""}${v.points})` : ""}</li>
                ))}
              </ul>
            </details>
          </div>
        )}
      </div>
      {board && (
        <table class="leaderboard">
          <caption>This week's best scores</caption>
          <thead><tr><th scope="col">Rank</th><th scope="col">Member</th><th scope="col" class="number">Best</th></tr></thead>
          <tbody>
            {board.entries.map((e) => (
              <tr key={e.memberId} aria-current={e.memberId === memberId ? "true" : undefined}>
                <td>{e.rank}</td><td>{e.memberId === memberId ? `${e.memberId} (you)` : e.memberId}</td><td class="number">{String(e.bestScore)}</td>
              </tr>
            ))}
          </tbody>
          {board.memberEntry && (
            <tfoot><tr><td colSpan={3} data-testid="my-rank">Your rank: {board.memberEntry.rank} with {String(board.memberEntry.bestScore)}</td></tr></tfoot>
          )}
        </table>
      )}
    </section>
  );
}

function draw(canvas: HTMLCanvasElement, play: Play, t: number, basketWidth: number) {
  const context = canvas.getContext("2d");
  if (!context) return;
  const { width, height } = canvas;
  const scale = width / play.rules.fieldWidth;
  const basketY = height - 40;
  context.clearRect(0, 0, width, height);
  context.fillStyle = "rgba(91, 61, 245, 0.06)";
  context.fillRect(0, 0, width, height);
  let typeIndex = new Map<string, number>();
  for (const object of play.objects.values()) {
    const fall = Play.fall(object, t);
    if (fall < 0 || fall > 1.15 || play.caught.has(object.objectId)) continue;
    if (!typeIndex.has(object.type)) typeIndex.set(object.type, typeIndex.size);
    context.fillStyle = object.points < 0 ? "#b3261e" : COLORS[typeIndex.get(object.type)! % COLORS.length]!;
    const radius = Math.max(6, (object.width * scale) / 2);
    context.beginPath();
    context.arc((object.x + 0.5) * scale, fall * basketY, radius, 0, 2 * Math.PI);
    context.fill();
  }
  context.fillStyle = "#1d1b2c";
  const left = (play.x + 0.5 - basketWidth / 2) * scale;
  context.fillRect(left, basketY, basketWidth * scale, 12);
  context.fillStyle = "#5b3df5";
  context.font = "bold 16px system-ui";
  context.fillText(`${Math.max(0, Math.ceil((play.rules.durationMillis - t) / 1000))} s`, 10, 22);
  typeIndex = new Map();
}
