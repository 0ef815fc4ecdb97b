// Catch-to-earn as the server scores it (docs/games.md, "the playing field"):
// positions 0..field_width-1, the basket centred at the start, objects caught
// when the spans overlap within the catch window before landing. The basket
// is moved within the game's top speed and acceleration, so every trace the
// app sends is one a person could make. Pure: the canvas only draws this.

export interface Rules {
  durationMillis: number;
  fieldWidth: number;
  basketWidth: number;
  basketTopSpeed: number; // units per second
  catchWindowMillis: number;
  basketMaxAcceleration: number; // units per second per second (0: 10 x top speed)
}

export interface FallingObject {
  objectId: number;
  type: string;
  spawnMillis: number;
  fallMillis: number;
  x: number;
  width: number;
  points: number;
}

export interface CatchRecord {
  objectId: number;
  catchMillis: number;
  basketX: number;
}

export interface Sample {
  millis: number;
  x: number;
}

// The server judges acceleration between samples at least 50 ms apart with
// positions in whole units and no slack (docs/games.md). So the app records a
// sample exactly when the basket crosses a whole position (no rounding error),
// stops the basket on whole positions, and at rest samples every 200 ms; and it
// moves the basket at under half the allowed acceleration, which leaves room
// for the error of estimating speeds over unequal steps.
const SPEED_MARGIN = 0.9;
const ACCELERATION_MARGIN = 0.45;
export const SAMPLE_EVERY_MS = 200;
const STEP_MS = 5;
const LONGEST_GAP_MS = 240;

// The basket's position at `millis` on a trace, linear between samples, as the server reads it.
export function positionAt(trace: readonly Sample[], millis: number): number {
  if (millis <= trace[0]!.millis) return trace[0]!.x;
  for (let i = 1; i < trace.length; i += 1) {
    const a = trace[i - 1]!;
    const b = trace[i]!;
    if (a.millis <= millis && millis <= b.millis) {
      return b.millis === a.millis ? b.x : a.x + ((millis - a.millis) / (b.millis - a.millis)) * (b.x - a.x);
    }
  }
  return trace[trace.length - 1]!.x;
}

export class Play {
  readonly rules: Rules;
  x: number;
  velocity = 0;
  // Where the player wants the basket: a pointer's x, or an edge for a held key.
  target: number | null = null;
  objects = new Map<number, FallingObject>();
  // What the player sees caught (by the basket's exact position).
  caught = new Map<number, CatchRecord>();
  trace: Sample[] = [];
  private lastMillis = 0;

  constructor(rules: Rules) {
    this.rules = rules;
    this.x = Math.floor(rules.fieldWidth / 2);
    this.trace.push({ millis: 0, x: this.x });
  }

  get topSpeed(): number {
    return this.rules.basketTopSpeed * SPEED_MARGIN;
  }

  get acceleration(): number {
    const limit = this.rules.basketMaxAcceleration || this.rules.basketTopSpeed * 10;
    return limit * ACCELERATION_MARGIN;
  }

  reveal(object: FallingObject): void {
    this.objects.set(object.objectId, object);
  }

  // A key released: stop where the basket can, on a whole position.
  coast(): void {
    const stopping = (this.velocity * Math.abs(this.velocity)) / (2 * this.acceleration);
    const at = this.x + stopping;
    this.target = Math.max(0, Math.min(this.rules.fieldWidth - 1, this.velocity >= 0 ? Math.ceil(at) : Math.floor(at)));
  }

  // Advances play to `millis` (session time) in small steps.
  advance(millis: number): CatchRecord[] {
    const end = Math.min(millis, this.rules.durationMillis);
    const found: CatchRecord[] = [];
    while (this.lastMillis < end) {
      const step = Math.min(STEP_MS, end - this.lastMillis);
      const before = this.x;
      this.move(step / 1000);
      const now = this.lastMillis + step;
      this.record(before, this.lastMillis, now);
      this.lastMillis = now;
      found.push(...this.detect());
    }
    return found;
  }

  private move(seconds: number): void {
    let wanted = 0;
    if (this.target !== null) {
      const goal = Math.round(Math.max(0, Math.min(this.rules.fieldWidth - 1, this.target)));
      const distance = goal - this.x;
      // The speed from which the basket can still stop at the goal.
      const stopping = Math.sqrt(2 * this.acceleration * Math.abs(distance));
      wanted = Math.sign(distance) * Math.min(this.topSpeed, stopping);
      if (Math.abs(distance) < 0.02 && Math.abs(this.velocity) < this.acceleration * seconds * 2) {
        this.x = goal;
        this.velocity = 0;
        return;
      }
    }
    const change = Math.max(-this.acceleration * seconds, Math.min(this.acceleration * seconds, wanted - this.velocity));
    this.velocity += change;
    this.x = Math.max(0, Math.min(this.rules.fieldWidth - 1, this.x + this.velocity * seconds));
  }

  // A sample at every whole position crossed (exact), else every SAMPLE_EVERY_MS.
  private record(before: number, from: number, to: number): void {
    const after = this.x;
    const low = Math.min(before, after);
    const high = Math.max(before, after);
    for (let k = Math.ceil(low); k <= Math.floor(high); k += 1) {
      if (k === before) continue;
      const share = after === before ? 1 : (k - before) / (after - before);
      const millis = Math.round(from + share * (to - from));
      this.push({ millis, x: k });
    }
    // At rest on a whole position a sample is exact; moving, wait for the next
    // crossing as long as the server's 250 ms allow.
    const since = to - this.trace[this.trace.length - 1]!.millis;
    const resting = this.velocity === 0 && Number.isInteger(after);
    if ((resting && since >= SAMPLE_EVERY_MS) || since >= LONGEST_GAP_MS) this.push({ millis: to, x: Math.round(after) });
  }

  private push(sample: Sample): void {
    const last = this.trace[this.trace.length - 1]!;
    if (sample.millis <= last.millis) {
      if (sample.millis === last.millis) last.x = sample.x;
      return;
    }
    this.trace.push(sample);
  }

  private detect(): CatchRecord[] {
    const found: CatchRecord[] = [];
    for (const object of this.objects.values()) {
      if (this.caught.has(object.objectId)) continue;
      const landing = object.spawnMillis + object.fallMillis;
      if (this.lastMillis < landing - this.rules.catchWindowMillis || this.lastMillis > landing) continue;
      if (Math.abs(this.x - object.x) * 2 <= this.rules.basketWidth + object.width) {
        const record = { objectId: object.objectId, catchMillis: this.lastMillis, basketX: Math.round(this.x) };
        this.caught.set(object.objectId, record);
        found.push(record);
      }
    }
    return found;
  }

  // Where an object is drawn: 0 at the top at its spawn, 1 at the basket's height at landing.
  static fall(object: FallingObject, millis: number): number {
    return (millis - object.spawnMillis) / object.fallMillis;
  }

  claimedScore(): number {
    let score = 0;
    for (const record of this.caught.values()) score += this.objects.get(record.objectId)?.points ?? 0;
    return Math.max(0, score);
  }

  // What goes to SubmitCatch: each object seen caught, at a moment of its
  // window where the trace (as the server interpolates it) has the basket
  // over it, with that position; the trace to the end of play.
  submission(): { catches: CatchRecord[]; trace: Sample[]; claimedScore: number } {
    const trace = [...this.trace];
    if (trace[trace.length - 1]!.millis < this.rules.durationMillis) trace.push({ millis: this.rules.durationMillis, x: Math.round(this.x) });
    const catches: CatchRecord[] = [];
    let score = 0;
    for (const seen of this.caught.values()) {
      const object = this.objects.get(seen.objectId)!;
      const landing = object.spawnMillis + object.fallMillis;
      const first = Math.max(0, landing - this.rules.catchWindowMillis);
      let chosen: CatchRecord | null = null;
      for (const t of [seen.catchMillis, ...Array.from({ length: Math.floor((landing - first) / 5) + 1 }, (_, i) => landing - i * 5)]) {
        if (t < first || t > landing || t > this.rules.durationMillis) continue;
        const basketX = Math.round(positionAt(trace, t));
        if (Math.abs(basketX - object.x) * 2 <= this.rules.basketWidth + object.width) {
          chosen = { objectId: object.objectId, catchMillis: t, basketX };
          break;
        }
      }
      if (chosen) {
        catches.push(chosen);
        score += object.points;
      }
    }
    catches.sort((a, b) => a.catchMillis - b.catchMillis || a.objectId - b.objectId);
    return { catches, trace, claimedScore: Math.max(0, score) };
  }
}
