// hmac-sha256-v1, the games' draw (docs/games.md), recomputed in the browser
// with WebCrypto so a member can check a spin without trusting the server.
//
// 1. The byte stream is HMAC-SHA256(key = server seed bytes, message = UTF-8
//    of "{client_seed}:{nonce}:{round}") for round = 0, 1, 2, ... concatenated.
// 2. A uniform integer below n takes the next 4 bytes as a big-endian unsigned
//    x; x >= floor(2^32 / n) * n is rejected and the next 4 bytes are taken;
//    otherwise the result is x mod n.
// 3. r = a uniform integer below the total weight T.
// 4. The segment is the first index i with w[0] + ... + w[i] > r.

export const ALGORITHM = "hmac-sha256-v1";

export function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error("not hex");
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export function bytesToHex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return bytesToHex(await crypto.subtle.digest("SHA-256", bytes));
}

// The stream of 4-byte words for one seed pair and nonce.
export async function wordStream(serverSeedHex: string, clientSeed: string, nonce: bigint | number) {
  const key = await crypto.subtle.importKey("raw", hexToBytes(serverSeedHex), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const encoder = new TextEncoder();
  let round = 0;
  let block = new DataView(new ArrayBuffer(0));
  let offset = 0;
  return async (): Promise<number> => {
    if (offset + 4 > block.byteLength) {
      const message = encoder.encode(`${clientSeed}:${nonce}:${round}`);
      block = new DataView(await crypto.subtle.sign("HMAC", key, message));
      offset = 0;
      round += 1;
    }
    const word = block.getUint32(offset, false);
    offset += 4;
    return word;
  };
}

export async function uniformBelow(next: () => Promise<number>, n: number): Promise<number> {
  if (!Number.isSafeInteger(n) || n <= 0 || n > 2 ** 32) throw new Error("n must be in 1..2^32");
  const limit = Math.floor(2 ** 32 / n) * n;
  for (;;) {
    const x = await next();
    if (x < limit) return x % n;
  }
}

export interface Draw {
  drawValue: number;
  segmentIndex: number;
}

export async function drawSegment(
  serverSeedHex: string,
  clientSeed: string,
  nonce: bigint | number,
  weights: readonly (bigint | number)[],
): Promise<Draw> {
  const w = weights.map(Number);
  const total = w.reduce((sum, x) => sum + x, 0);
  const r = await uniformBelow(await wordStream(serverSeedHex, clientSeed, nonce), total);
  let cumulative = 0;
  for (let i = 0; i < w.length; i += 1) {
    cumulative += w[i]!;
    if (cumulative > r) return { drawValue: r, segmentIndex: i };
  }
  throw new Error("the draw is not below the total weight");
}

export interface Verification {
  commitmentMatches: boolean;
  recomputedCommitment: string;
  draw: Draw;
  drawMatches: boolean;
  segmentMatches: boolean;
  verified: boolean;
}

// Checks a revealed spin: the seed hashes to the commitment shown before play,
// and the draw from it gives the recorded value and segment.
export async function verifySpin(proof: {
  serverSeed: string;
  serverSeedSha256: string;
  clientSeed: string;
  nonce: bigint | number;
  drawValue: bigint | number;
  drawnSegmentIndex: number;
  weights: readonly (bigint | number)[];
}): Promise<Verification> {
  const recomputedCommitment = await sha256Hex(hexToBytes(proof.serverSeed));
  const draw = await drawSegment(proof.serverSeed, proof.clientSeed, proof.nonce, proof.weights);
  const commitmentMatches = recomputedCommitment === proof.serverSeedSha256.toLowerCase();
  const drawMatches = draw.drawValue === Number(proof.drawValue);
  const segmentMatches = draw.segmentIndex === proof.drawnSegmentIndex;
  return { commitmentMatches, recomputedCommitment, draw, drawMatches, segmentMatches, verified: commitmentMatches && drawMatches && segmentMatches };
}

// Where a segment sits on a wheel drawn from its weights: [start, end) as
// fractions of a turn, clockwise from the top. Zero-weight segments get no arc.
export function arcs(weights: readonly (bigint | number)[]): [number, number][] {
  const w = weights.map(Number);
  const total = w.reduce((s, x) => s + x, 0);
  let at = 0;
  return w.map((x) => {
    const start = at;
    at += total ? x / total : 0;
    return [start, at];
  });
}

// The wheel's final rotation (degrees, clockwise) so the pointer at the top
// stops inside segment `index`, at `within` (0..1) of its arc, after `turns`
// whole turns from `fromDegrees`.
export function landingRotation(
  weights: readonly (bigint | number)[],
  index: number,
  fromDegrees: number,
  turns = 5,
  within = 0.5,
): number {
  const [start, end] = arcs(weights)[index]!;
  const target = (start + (end - start) * within) * 360; // where the segment's point is
  const stop = (360 - target) % 360; // rotate so that point reaches the top
  const base = fromDegrees - (((fromDegrees % 360) + 360) % 360);
  let rotation = base + turns * 360 + stop;
  if (rotation <= fromDegrees + 360) rotation += 360;
  return rotation;
}

// The segment under the top pointer at a rotation (what the animation shows).
export function segmentAt(weights: readonly (bigint | number)[], rotationDegrees: number): number {
  const point = (((360 - (rotationDegrees % 360)) % 360) + 360) % 360 / 360;
  const all = arcs(weights);
  const found = all.findIndex(([s, e]) => point >= s && point < e);
  return found === -1 ? all.length - 1 : found;
}
