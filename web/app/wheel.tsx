// Spin the wheel: the wheel drawn from the published odds, a spin that stops
// exactly on the segment the server drew, the prize, and "verify this spin":
// after the member rotates their seed pair the browser recomputes the draw
// (WebCrypto, hmac-sha256-v1) and checks the commitment, beside the server's
// own VerifySpin.
import { useEffect, useRef, useState } from "preact/hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { SpinOutcome, type Prize, type RevealedSeed, type SeedPair, type Spin, type Wheel } from "../gen/loyalty/games/v1/games_service_pb.js";
import { landingRotation, segmentAt, verifySpin, type Verification } from "../shared/draw.js";
import { refusal } from "../shared/errors.js";
import { clock, percentOf, points } from "../shared/format.js";
import { announce, Field, Loading, Problem } from "../shared/ui.js";
import { WheelFace } from "../shared/wheelsvg.js";
import { games } from "./clients.js";
import { useMember } from "./session.js";

const SPIN_MS = 4200;

export function prizeText(prize: Prize | undefined): string {
  if (!prize || prize.kind.case === undefined) return "nothing this time";
  if (prize.kind.case === "points") return `${points(prize.kind.value)} points`;
  const item = prize.kind.value;
  return `${item.quantity} × ${item.unit.replace(/^prize:/, "").replace(/-/g, " ")}`;
}

// The rotation a CSS transform matrix shows, in degrees (0..360).
function rotationOf(element: Element): number {
  const transform = getComputedStyle(element).transform;
  const match = /matrix\(([^,]+),\s*([^,]+)/.exec(transform);
  if (!match) return 0;
  const degrees = (Math.atan2(Number(match[2]), Number(match[1])) * 180) / Math.PI;
  return (degrees + 360) % 360;
}

interface Played {
  spin: Spin;
  weights: bigint[]; // the odds version's draw weights, what a verifier needs
  verification?: Verification;
  server?: { verified: boolean; segment: number };
}

export function WheelScreen() {
  const { memberId, zone } = useMember();
  const [wheels, setWheels] = useState<Wheel[] | null>(null);
  const [wheelId, setWheelId] = useState("");
  const [wheel, setWheel] = useState<Wheel | null>(null);
  const [seed, setSeed] = useState<SeedPair | null>(null);
  const [revealed, setRevealed] = useState<RevealedSeed[]>([]);
  const [played, setPlayed] = useState<Played[]>([]);
  const [rotation, setRotation] = useState(0);
  const [spinning, setSpinning] = useState(false);
  const [result, setResult] = useState<{ spin: Spin; stopped: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [clientSeed, setClientSeed] = useState("");
  const [seedError, setSeedError] = useState<string | undefined>();
  const rotor = useRef<SVGGElement>(null);

  const loadWheel = (id: string) =>
    games.getWheel({ wheelId: id, memberId }).then((answer) => setWheel(answer.wheel ?? null));

  useEffect(() => {
    games.listWheels({}).then((answer) => {
      setWheels(answer.wheels);
      if (answer.wheels[0]) setWheelId(answer.wheels[0].id);
    }, setError);
    games.getSeedPair({ memberId }).then((answer) => setSeed(answer.seedPair ?? null), setError);
  }, [memberId]);
  useEffect(() => {
    if (wheelId) loadWheel(wheelId).catch(setError);
  }, [wheelId]);

  async function spin() {
    if (!wheel) return;
    setError(null);
    setResult(null);
    setSpinning(true);
    try {
      const answer = await games.spin({ wheelId: wheel.id, memberId, requestId: crypto.randomUUID() });
      const drawn = answer.spin!;
      // The draw weights of the odds version the spin used (the wheel may have moved on).
      const version = drawn.proof!.oddsVersion === wheel.oddsVersion ? wheel : (await games.getWheel({ wheelId: wheel.id, oddsVersion: drawn.proof!.oddsVersion })).wheel!;
      const effective = wheel.odds.map((o) => o.weight);
      const target = landingRotation(effective, drawn.landedSegmentIndex, rotation, 5, 0.2 + Math.random() * 0.6);
      setRotation(target);
      setPlayed((list) => [{ spin: drawn, weights: version.odds.map((o) => o.drawWeight) }, ...list]);
      await new Promise((resolve) => setTimeout(resolve, matchMedia("(prefers-reduced-motion: reduce)").matches ? 50 : SPIN_MS + 100));
      const stopped = rotor.current ? segmentAt(effective, rotationOf(rotor.current)) : drawn.landedSegmentIndex;
      setResult({ spin: drawn, stopped });
      announce(`The wheel stopped on ${wheel.odds[stopped]?.label}. You won ${prizeText(drawn.prize)}.`);
      games.getSeedPair({ memberId }).then((a) => setSeed(a.seedPair ?? null));
      loadWheel(wheel.id).catch(() => undefined);
    } catch (e) {
      setError(e);
    } finally {
      setSpinning(false);
    }
  }

  async function setSeedValue(event: Event) {
    event.preventDefault();
    setSeedError(undefined);
    try {
      const answer = await games.setClientSeed({ memberId, clientSeed });
      setSeed(answer.seedPair ?? null);
      announce("Client seed set.");
    } catch (e) {
      const r = refusal(e);
      setSeedError(r.fields["client_seed"] ?? r.message);
    }
  }

  async function rotate() {
    setError(null);
    try {
      const answer = await games.rotateSeed({ memberId });
      setSeed(answer.seedPair ?? null);
      if (answer.revealed) setRevealed((list) => [answer.revealed!, ...list]);
      announce("Seed pair rotated: the old server seed is revealed, your spins with it can be verified.");
    } catch (e) {
      setError(e);
    }
  }

  async function verify(index: number) {
    const item = played[index]!;
    const proof = item.spin.proof!;
    const seedFor = revealed.find((r) => r.serverSeedSha256 === proof.serverSeedSha256);
    if (!seedFor) return;
    const [verification, server] = await Promise.all([
      verifySpin({ serverSeed: seedFor.serverSeed, serverSeedSha256: proof.serverSeedSha256, clientSeed: proof.clientSeed, nonce: proof.nonce, drawValue: proof.drawValue, drawnSegmentIndex: proof.drawnSegmentIndex, weights: item.weights }),
      games.verifySpin({ spinId: item.spin.spinId }),
    ]);
    setPlayed((list) => list.map((p, i) => (i === index ? { ...p, verification, server: { verified: server.verified, segment: server.recomputedSegmentIndex } } : p)));
    announce(verification.verified ? "Verified in your browser: the spin was fair." : "This spin did not verify.");
  }

  if (error && !wheel && !wheels) return <Problem error={error} />;
  if (wheels === null) return <Loading label="Loading the wheels" />;
  if (wheels.length === 0) return <p>No wheel yet: a manager creates one in the console.</p>;
  if (!wheel) return <Loading label="Loading the wheel" />;
  const allowance = wheel.allowance;
  const total = wheel.odds.reduce((sum, o) => sum + o.weight, 0n);
  const problem = error ? refusal(error) : null;
  return (
    <section aria-labelledby="wheel-heading">
      <h3 id="wheel-heading">{wheel.config?.displayName || wheel.id}</h3>
      {wheels.length > 1 && (
        <Field label="Wheel">
          {(attrs) => (
            <select {...attrs} value={wheelId} onChange={(e) => setWheelId(e.currentTarget.value)}>
              {wheels.map((w) => <option value={w.id}>{w.config?.displayName || w.id}</option>)}
            </select>
          )}
        </Field>
      )}
      <p>
        {wheel.config?.costPoints ? `${points(wheel.config.costPoints)} points a spin` : "Free to spin"}
        {allowance && !allowance.unlimited && `, ${allowance.spinsLeftToday} left today`}
        {allowance?.resetTime && !allowance.unlimited && ` (more at ${clock(timestampMs(allowance.resetTime), zone)})`}.
      </p>
      <div class="wheel-stage">
        <div class="wheel-pointer" aria-hidden="true" />
        <svg viewBox="0 0 200 200" role="img" aria-label={`Prize wheel with ${wheel.odds.length} segments; the odds are listed below.`}>
          <g ref={rotor} class="wheel-rotor" data-testid="rotor" style={{ transform: `rotate(${rotation}deg)`, transition: spinning ? `transform ${SPIN_MS}ms cubic-bezier(0.12, 0.7, 0.1, 1)` : "none" }}>
            <WheelFace odds={wheel.odds} segments={wheel.config?.segments ?? []} />
          </g>
        </svg>
      </div>
      <p class="row">
        <button type="button" class="primary" onClick={spin} disabled={spinning} aria-describedby="spin-result">
          {spinning ? "Spinning…" : "Spin"}
        </button>
      </p>
      <div id="spin-result" aria-live="polite">
        {result && (
          <p class="card" data-testid="spin-result" data-landed={result.spin.landedSegmentIndex} data-stopped={result.stopped}>
            Stopped on <strong>{wheel.odds[result.stopped]?.label}</strong>:{" "}
            {result.spin.outcome === SpinOutcome.WON ? `you won ${prizeText(result.spin.prize)}!` : result.spin.outcome === SpinOutcome.FALLBACK ? `the drawn prize was not available, so ${prizeText(result.spin.prize)}.` : "nothing this time."}
            {result.spin.pointsBalanceAfter !== undefined && ` Balance: ${points(result.spin.pointsBalanceAfter)}.`}
          </p>
        )}
      </div>
      {problem && (problem.reason === "INSUFFICIENT_POINTS" ? <p role="alert" class="problem">Not enough points for a spin yet.</p> : problem.reason === "SPIN_LIMIT_REACHED" ? <p role="alert" class="problem">No spins left today.</p> : <Problem error={error} />)}
      <table class="odds">
        <caption>Published odds (odds version {String(wheel.oddsVersion)})</caption>
        <thead>
          <tr><th scope="col">Segment</th><th scope="col">Prize</th><th scope="col" class="number">Chance</th></tr>
        </thead>
        <tbody>
          {wheel.odds.map((o) => (
            <tr key={o.index} class={o.soldOut ? "sold-out" : ""}>
              <td>{o.label}{o.soldOut && " (sold out)"}{o.fallback && " (fallback)"}</td>
              <td>{prizeText(o.prize)}</td>
              <td class="number" title={`${o.weight} in ${total}`}>{percentOf(o.weight, total, 2)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <section class="card" aria-labelledby="fair-heading">
        <h3 id="fair-heading">Provably fair</h3>
        {seed && (
          <dl class="seed">
            <dt>Server seed commitment (SHA-256)</dt>
            <dd class="mono" data-testid="commitment">{seed.serverSeedSha256}</dd>
            <dt>Client seed</dt>
            <dd class="mono">{seed.clientSeed}</dd>
            <dt>Next nonce</dt>
            <dd>{String(seed.nonce)}</dd>
          </dl>
        )}
        <form onSubmit={setSeedValue} class="row">
          <Field label="Your client seed" hint="1 to 64 printable characters, no colon." error={seedError}>
            {(attrs) => <input {...attrs} value={clientSeed} maxLength={64} onInput={(e) => setClientSeed(e.currentTarget.value)} />}
          </Field>
          <button type="submit">Set client seed</button>
        </form>
        <p>
          <button type="button" onClick={rotate} disabled={spinning}>
            Rotate seed pair (reveals the server seed)
          </button>
        </p>
        {played.length > 0 && (
          <ul class="verify-list">
            {played.map((p, i) => {
              const proof = p.spin.proof!;
              const canVerify = revealed.some((r) => r.serverSeedSha256 === proof.serverSeedSha256);
              return (
                <li key={p.spin.spinId} data-testid="played">
                  Spin {String(proof.nonce)}: {wheel.odds[p.spin.landedSegmentIndex]?.label} (drawn {proof.drawnSegmentIndex}, r = {String(proof.drawValue)} of {String(proof.totalWeight)}){" "}
                  <button type="button" disabled={!canVerify} onClick={() => verify(i)} aria-label={`Verify spin ${proof.nonce}`}>
                    Verify this spin
                  </button>
                  {!canVerify && <small> (rotate the seed pair first)</small>}
                  {p.verification && (
                    <div data-testid="verification" data-browser={String(p.verification.verified)} data-server={String(p.server?.verified)}>
                      <p>SHA-256 of the revealed seed: <span class="mono">{p.verification.recomputedCommitment}</span> {p.verification.commitmentMatches ? <span class="ok">matches the commitment</span> : <strong class="error">does not match</strong>}</p>
                      <p>Your browser drew r = {p.verification.draw.drawValue}, segment {p.verification.draw.segmentIndex}: {p.verification.verified ? <span class="ok">the same as the server</span> : <strong class="error">not what the server recorded</strong>}.</p>
                      <p>The server's VerifySpin says: {p.server?.verified ? <span class="ok">verified</span> : <strong class="error">not verified</strong>}.</p>
                    </div>
                  )}
                </li>
              );
            })}
          </ul>
        )}
      </section>
    </section>
  );
}
