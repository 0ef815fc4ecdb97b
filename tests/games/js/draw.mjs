// An independent implementation of hmac-sha256-v1, written from docs/games.md
// alone: Node 20 and node:crypto, nothing else. Reads known-answer inputs as
// JSON from the file named on the command line and prints what it computes.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

function wordStream(serverSeedHex, clientSeed, nonce) {
  const key = Buffer.from(serverSeedHex, "hex");
  let round = 0;
  let buffer = Buffer.alloc(0);
  return () => {
    if (buffer.length < 4) {
      const block = createHmac("sha256", key)
        .update(`${clientSeed}:${nonce}:${round}`, "utf8")
        .digest();
      buffer = Buffer.concat([buffer, block]);
      round += 1;
    }
    const word = buffer.readUInt32BE(0);
    buffer = buffer.subarray(4);
    return word;
  };
}

function uniformBelow(nextWord, n) {
  const limit = Math.floor(2 ** 32 / n) * n;
  for (;;) {
    const x = nextWord();
    if (x < limit) return x % n;
  }
}

function drawSegment(serverSeedHex, clientSeed, nonce, weights) {
  const total = weights.reduce((sum, w) => sum + w, 0);
  const r = uniformBelow(wordStream(serverSeedHex, clientSeed, nonce), total);
  let cumulative = 0;
  for (let i = 0; i < weights.length; i += 1) {
    cumulative += weights[i];
    if (cumulative > r) return { draw_value: r, segment_index: i };
  }
  throw new Error("r not below the total weight");
}

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const output = {
  draws: input.draws.map((v) => drawSegment(v.server_seed, v.client_seed, v.nonce, v.weights)),
  uniform: input.uniform.map((v) => ({
    value: uniformBelow(wordStream(v.server_seed, v.client_seed, v.nonce), v.n),
  })),
};
process.stdout.write(JSON.stringify(output));
