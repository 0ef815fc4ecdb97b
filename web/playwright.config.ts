// Browser tests against a real suite (tests/web/test_browser.py starts it on
// free ports and passes its gateway as WEB_BASE_URL). Debian's Chromium at
// /usr/bin/chromium; nothing is downloaded. One worker: the flows share the
// suite and this is a 2-core machine.
import { defineConfig } from "@playwright/test";

const baseURL = process.env.WEB_BASE_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  testDir: "e2e",
  testMatch: process.env.WEB_ONLY ? [process.env.WEB_ONLY] : undefined,
  outputDir: "test-results/artifacts",
  timeout: 90_000,
  expect: { timeout: 15_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL,
    viewport: { width: 412, height: 900 },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"],
    },
  },
});
