import assert from "node:assert/strict";
import { test } from "node:test";
import { Play, positionAt, type Rules, type Sample } from "../shared/catchplay.js";

// The server's trace checks (docs/games.md, "Is a person playing?"), written
// again here from the docs: gaps, speed with one unit of slack, acceleration
// over steps of at least 50 ms.
function findings(rules: Rules, trace: Sample[]): string[] {
  const found: string[] = [];
  if (trace.length < 2 || trace[0]!.millis > 250 || trace.some((s, i) => i > 0 && s.millis - trace[i - 1]!.millis > 250)) found.push("TRACE_MISSING");
  if (trace.some((s, i) => i > 0 && (Math.abs(s.x - trace[i - 1]!.x) - 1) * 1000 > rules.basketTopSpeed * (s.millis - trace[i - 1]!.millis))) found.push("TRACE_TOO_FAST");
  const steps = [trace[0]!];
  for (const s of trace.slice(1)) if (s.millis - steps[steps.length - 1]!.millis >= 50) steps.push(s);
  const speeds = steps.slice(1).map((b, i) => [((b.x - steps[i]!.x) * 1000) / (b.millis - steps[i]!.millis), (b.millis + steps[i]!.millis) / 2] as const);
  const limit = rules.basketMaxAcceleration || rules.basketTopSpeed * 10;
  if (speeds.some(([v2, t2], i) => i > 0 && Math.abs(v2 - speeds[i - 1]![0]) * 1000 > limit * (t2 - speeds[i - 1]![1]))) found.push("INHUMAN_ACCELERATION");
  return found;
}

const rules: Rules = { durationMillis: 4000, fieldWidth: 100, basketWidth: 10, basketTopSpeed: 50, catchWindowMillis: 200, basketMaxAcceleration: 0 };

function drive(r: Rules, moves: [number, number | "coast"][]): Play {
  const play = new Play(r);
  for (const [at, target] of moves) {
    play.advance(at);
    if (target === "coast") play.coast();
    else play.target = target;
  }
  play.advance(r.durationMillis);
  return play;
}

test("the basket starts at the centre; its trace passes the server's checks however it is driven", () => {
  const small: Rules = { ...rules, fieldWidth: 20, basketWidth: 20, basketTopSpeed: 20 };
  const slow: Rules = { ...rules, basketTopSpeed: 5 };
  for (const r of [rules, small, slow]) {
    assert.equal(new Play(r).x, Math.floor(r.fieldWidth / 2));
    const patterns: [number, number | "coast"][][] = [
      [[300, 0], [900, "coast"], [1500, r.fieldWidth - 1], [2000, "coast"]],
      [[100, r.fieldWidth - 1], [150, "coast"], [200, 0], [260, "coast"], [3000, 3.7]],
      [[0, 0]],
      [],
    ];
    for (const moves of patterns) {
      const { trace } = drive(r, moves).submission();
      assert.deepEqual(findings(r, trace), [], `${findings(r, trace)} ${JSON.stringify(r)} ${JSON.stringify(moves)}`);
      assert.equal(trace[trace.length - 1]!.millis, r.durationMillis);
      assert.ok(trace.every((s) => Number.isInteger(s.x) && Number.isInteger(s.millis)));
    }
  }
});

test("an object over the basket within the window is caught once, where the trace has the basket", () => {
  const play = new Play(rules);
  play.reveal({ objectId: 1, type: "coin", spawnMillis: 100, fallMillis: 800, x: 52, width: 0, points: 5 });
  play.reveal({ objectId: 2, type: "coin", spawnMillis: 200, fallMillis: 800, x: 90, width: 0, points: 5 });
  const found = play.advance(1200);
  assert.deepEqual(found.map((c) => c.objectId), [1]);
  assert.deepEqual(play.advance(2000), []);
  const { catches, trace, claimedScore } = play.submission();
  assert.equal(claimedScore, 5);
  const [record] = catches;
  assert.ok(record!.catchMillis >= 700 && record!.catchMillis <= 900);
  assert.ok(Math.abs(positionAt(trace, record!.catchMillis) - record!.basketX) <= 1);
});

test("a moving basket's catches are placed where the server's reading of the trace has it", () => {
  const play = new Play(rules);
  for (let i = 0; i < 12; i += 1) play.reveal({ objectId: i, type: "coin", spawnMillis: i * 250, fallMillis: 600, x: (i * 37) % 100, width: 4, points: 5 });
  play.target = 0;
  play.advance(1200);
  play.target = 99;
  play.advance(4000);
  const { catches, trace } = play.submission();
  for (const c of catches) {
    const object = play.objects.get(c.objectId)!;
    assert.ok(Math.abs(positionAt(trace, c.catchMillis) - c.basketX) <= 0.5);
    assert.ok(Math.abs(c.basketX - object.x) * 2 <= rules.basketWidth + object.width);
    assert.ok(c.catchMillis <= object.spawnMillis + object.fallMillis && c.catchMillis >= object.spawnMillis + object.fallMillis - rules.catchWindowMillis);
  }
});

test("a wide object is caught when the spans overlap", () => {
  const play = new Play(rules);
  play.reveal({ objectId: 3, type: "star", spawnMillis: 0, fallMillis: 500, x: 60, width: 10, points: 20 });
  assert.equal(play.advance(600).length, 1); // |50 - 60| * 2 = 20 <= 10 + 10
});
