// What the browser flows share: tokens from the gateway's development sign-in,
// manager calls made with the same generated stubs the apps use, fresh ids.
import { expect, type Page } from "@playwright/test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { CampaignsService } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { GamesService } from "../gen/loyalty/games/v1/games_service_pb.js";
import { WalletService } from "../gen/loyalty/gateway/v1/gateway_service_pb.js";

export const BASE = process.env.WEB_BASE_URL ?? "http://127.0.0.1:8080";
export const SHOTS = new URL("../test-results/screenshots/", import.meta.url).pathname;

export function fresh(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function devToken(subject: string, role: "player" | "campaign-manager" | "admin"): Promise<string> {
  const response = await fetch(`${BASE}/dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ subject, role }) });
  if (!response.ok) throw new Error(`dev token: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { token: string }).token;
}

export function clients(token: string) {
  const transport = createConnectTransport({
    baseUrl: BASE,
    interceptors: [(next) => (request) => (request.header.set("authorization", `Bearer ${token}`), next(request))],
  });
  return {
    campaigns: createClient(CampaignsService, transport),
    games: createClient(GamesService, transport),
    wallet: createClient(WalletService, transport),
  };
}

// Signs a member in through the app's development sign-in page.
export async function signInMember(page: Page, memberId: string, zone = "Europe/Paris"): Promise<void> {
  await page.goto("/app/");
  await page.getByLabel("Member id").fill(memberId);
  await page.getByLabel("Your time zone").fill(zone);
  await signedIn(page);
}

export async function signInManager(page: Page, name: string): Promise<void> {
  await page.goto("/console/");
  await page.getByLabel("Your name").fill(name);
  await page.getByLabel(/Campaign manager/).check();
  await signedIn(page);
}

// Returns once the app shows the signed-in state: the sign-in's own redirect
// has happened, so a navigation the flow makes next is not undone by it (seen
// on a loaded machine: the console's new-campaign form replaced by the calendar).
async function signedIn(page: Page): Promise<void> {
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
}

// A program the member flows play in: a base rule for shares, a free wheel
// with a stocked points pool, and a catch game whose basket is as wide as the
// field (from the centre it takes every object, so scripted input scores).
export async function setUpProgram(tag: string) {
  const manager = clients(await devToken(`${tag}-manager`, "campaign-manager"));
  const shareRule = `${tag}-share`;
  await manager.campaigns.createCampaign({
    campaignId: shareRule,
    spec: { displayName: "10 points per share", kind: 1 /* BASE_RULE */, reward: { points: 10n }, conditions: { activityTypes: ["social_share"] }, schedule: { timeZone: "Europe/Paris" } },
  });
  await manager.campaigns.scheduleCampaign({ campaignId: shareRule });
  const wheelId = `${tag}-wheel`;
  await manager.games.createWheel({
    wheelId,
    config: {
      displayName: "Daily wheel",
      segments: [
        { label: "Try again", weight: 40n },
        { label: "20 points", weight: 30n, prize: { kind: { case: "points", value: 20n } }, color: "#0ea5e9" },
        { label: "50 points", weight: 20n, prize: { kind: { case: "points", value: 50n } } },
        { label: "100 points", weight: 10n, prize: { kind: { case: "points", value: 100n } }, shortLabel: "100" },
      ],
      fallbackSegmentIndex: 0,
      costPoints: 0n,
      spinsPerDay: 0,
      timeZone: "Europe/Paris",
    },
  });
  await manager.games.stockWheel({ wheelId, unit: "points", quantity: 100000n, requestId: `${tag}-stock` });
  const gameId = `${tag}-catch`;
  await manager.games.createCatchGame({
    gameId,
    config: {
      displayName: "Catch the coins",
      durationMillis: 4000,
      spawnIntervalMillis: 400,
      fieldWidth: 20,
      basketWidth: 20,
      basketTopSpeed: 20,
      catchWindowMillis: 300,
      objectTypes: [
        { name: "coin", points: 5n, spawnWeight: 3n, fallMillis: 1200 },
        { name: "star", points: 20n, spawnWeight: 1n, fallMillis: 1000 },
      ],
      sessionScoreCap: 500n,
      dailyPointsCap: 5000n,
      timeZone: "Europe/Paris",
      submitGraceMillis: 60000,
    },
  });
  return { manager, shareRule, wheelId, gameId };
}
