// What the browser flows share: tokens from the gateway's development sign-in,
// manager calls made with the same generated stubs the apps use, fresh ids.
import type { Page } from "@playwright/test";
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
  await page.getByRole("button", { name: "Sign in" }).click();
}

export async function signInManager(page: Page, name: string): Promise<void> {
  await page.goto("/console/");
  await page.getByLabel("Your name").fill(name);
  await page.getByLabel(/Campaign manager/).check();
  await page.getByRole("button", { name: "Sign in" }).click();
}
