// Builds the player app and the managers' console into web/dist/<app>/:
// index.html (no-cache), assets/<name>-<hash>.js|css (immutable), each with a
// .gz beside it that the gateway serves to browsers that accept gzip.
// Usage: node web/build.mjs [--check-budget]
// Each app's first screen is its entry chunk and what it imports statically;
// screens behind a tab are split off with import() and load when opened.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const WEB = dirname(fileURLToPath(import.meta.url));
const DIST = join(WEB, "dist");
const APPS = {
  app: { title: "Loyalty Arcade", entry: "app/main.tsx" },
  console: { title: "Loyalty Arcade: campaign console", entry: "console/main.tsx" },
};

function page(title, script, styles, preloads) {
  // No inline script or style: the gateway's Content-Security-Policy forbids both.
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${title}</title>
${styles.map((href) => `<link rel="stylesheet" href="${href}">`).join("\n")}
${preloads.map((href) => `<link rel="modulepreload" href="${href}">`).join("\n")}
<script type="module" src="${script}"></script>
</head>
<body>
<noscript>This app needs JavaScript.</noscript>
<div id="root"></div>
</body>
</html>
`;
}

async function buildApp(name, { title, entry }) {
  const out = join(DIST, name);
  rmSync(out, { recursive: true, force: true });
  const result = await build({
    entryPoints: { main: join(WEB, entry) },
    outdir: join(out, "assets"),
    entryNames: "[name]-[hash]",
    chunkNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    jsx: "automatic",
    jsxImportSource: "preact",
    metafile: true,
    legalComments: "linked",
    logLevel: "warning",
    absWorkingDir: WEB,
  });
  const outputs = result.metafile.outputs;
  // The app's own entry; screens loaded by import() are entry points too.
  const entryFile = Object.keys(outputs).find(
    (file) => outputs[file].entryPoint === entry && file.endsWith(".js"),
  );
  if (!entryFile) throw new Error(`no output for ${entry}`);
  const css = Object.keys(outputs).filter((file) => file.endsWith(".css"));
  const url = (file) => "./" + relative(out, join(WEB, file)).split("\\").join("/");
  // The first screen: the entry and every chunk it imports statically, all
  // announced in index.html (modulepreload) so they load at once, not in turn.
  const first = new Set();
  const visit = (file) => {
    if (first.has(file)) return;
    first.add(file);
    for (const imported of outputs[file].imports) {
      if (imported.kind === "import-statement") visit(imported.path);
    }
  };
  visit(entryFile);
  const preloads = [...first].filter((file) => file !== entryFile).map(url);
  writeFileSync(join(out, "index.html"), page(title, url(entryFile), css.map(url), preloads));
  let firstGzip = 0;
  for (const file of Object.keys(outputs)) {
    if (!/\.(js|css|html)$/.test(file)) continue;
    const gz = gzipSync(readFileSync(join(WEB, file)), { level: 9 });
    writeFileSync(join(WEB, file) + ".gz", gz);
    if (first.has(file)) firstGzip += gz.length;
  }
  const html = join(out, "index.html");
  writeFileSync(html + ".gz", gzipSync(readFileSync(html), { level: 9 }));
  return { name, firstScreenJsGzipBytes: firstGzip, chunks: first.size };
}

mkdirSync(DIST, { recursive: true });
const report = [];
for (const [name, app] of Object.entries(APPS)) report.push(await buildApp(name, app));
writeFileSync(join(DIST, "build.json"), JSON.stringify(report, null, 2) + "\n");
for (const { name, firstScreenJsGzipBytes, chunks } of report) {
  console.log(`web/dist/${name}: first screen ${(firstScreenJsGzipBytes / 1024).toFixed(1)} KiB gzipped in ${chunks} file(s)`);
}
