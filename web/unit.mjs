// The apps' logic tests: each web/tests/*.test.ts is bundled by esbuild for
// Node and run by node's own test runner. Usage: node web/unit.mjs
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const WEB = dirname(fileURLToPath(import.meta.url));
const OUT = join(WEB, "..", "var", "web-unit");
rmSync(OUT, { recursive: true, force: true });
const tests = readdirSync(join(WEB, "tests")).filter((f) => f.endsWith(".test.ts") || f.endsWith(".test.tsx"));
await build({
  entryPoints: tests.map((f) => join(WEB, "tests", f)),
  outdir: OUT,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  jsx: "automatic",
  jsxImportSource: "preact",
  sourcemap: "inline",
  logLevel: "warning",
});
const files = readdirSync(OUT).filter((f) => f.endsWith(".mjs")).map((f) => join(OUT, f));
// Zones are part of what is tested: pin none, so the browser's rules are the ones exercised.
const run = spawnSync(process.execPath, ["--test", "--test-reporter=spec", ...files], { stdio: "inherit" });
process.exit(run.status ?? 1);
