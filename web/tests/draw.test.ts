// The in-browser draw against the games' known-answer vectors, with WebCrypto
// (globalThis.crypto in Node 20, as in the browser).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { arcs, drawSegment, landingRotation, segmentAt, sha256Hex, hexToBytes, uniformBelow, verifySpin, wordStream } from "../shared/draw.js";

const vectors = JSON.parse(readFileSync(new URL("../../tests/games/vectors.json", import.meta.url), "utf8"));

test("every known-answer draw is reproduced", async () => {
  assert.ok(vectors.draws.length >= 5);
  for (const v of vectors.draws) {
    const draw = await drawSegment(v.server_seed, v.client_seed, v.nonce, v.weights);
    assert.deepEqual(draw, { drawValue: v.draw_value, segmentIndex: v.segment_index }, JSON.stringify(v));
  }
});

test("uniform draws reject words above the limit, across rounds", async () => {
  for (const v of vectors.uniform) {
    const value = await uniformBelow(await wordStream(v.server_seed, v.client_seed, v.nonce), v.n);
    assert.equal(value, v.value, JSON.stringify(v));
  }
});

test("the docs' worked example: lucky, nonce 0, weights 1,2,3,4 is segment 3", async () => {
  const seed = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, "0")).join("");
  assert.deepEqual(await drawSegment(seed, "lucky", 0, [1, 2, 3, 4]), { drawValue: 6, segmentIndex: 3 });
});

test("verification checks the commitment and the draw", async () => {
  const v = vectors.draws[0];
  const commitment = await sha256Hex(hexToBytes(v.server_seed));
  const good = await verifySpin({ serverSeed: v.server_seed, serverSeedSha256: commitment, clientSeed: v.client_seed, nonce: BigInt(v.nonce), drawValue: BigInt(v.draw_value), drawnSegmentIndex: v.segment_index, weights: v.weights });
  assert.equal(good.verified, true);
  const wrongSeed = await verifySpin({ serverSeed: v.server_seed, serverSeedSha256: "00".repeat(32), clientSeed: v.client_seed, nonce: v.nonce, drawValue: v.draw_value, drawnSegmentIndex: v.segment_index, weights: v.weights });
  assert.equal(wrongSeed.commitmentMatches, false);
  assert.equal(wrongSeed.verified, false);
  const wrongSegment = await verifySpin({ serverSeed: v.server_seed, serverSeedSha256: commitment, clientSeed: v.client_seed, nonce: v.nonce, drawValue: v.draw_value, drawnSegmentIndex: (v.segment_index + 1) % v.weights.length, weights: v.weights });
  assert.equal(wrongSegment.segmentMatches, false);
  assert.equal(wrongSegment.verified, false);
});

test("the wheel's arcs are sized by exact weight and zero weights get none", () => {
  assert.deepEqual(arcs([1, 1, 2]), [[0, 0.25], [0.25, 0.5], [0.5, 1]]);
  const [, zero] = arcs([1, 0, 1]);
  assert.equal(zero![0], zero![1]);
});

test("the animation stops on the server's segment for every segment and start angle", () => {
  const weights = [40n, 30n, 20n, 10n, 0n, 5n];
  for (let index = 0; index < weights.length; index += 1) {
    if (weights[index] === 0n) continue;
    for (const from of [0, 17, 359.5, 1234, -90]) {
      for (const within of [0.05, 0.5, 0.95]) {
        const rotation = landingRotation(weights, index, from, 5, within);
        assert.ok(rotation > from + 360, "at least one whole turn");
        assert.equal(segmentAt(weights, rotation), index, `segment ${index} from ${from} at ${within}`);
      }
    }
  }
});
