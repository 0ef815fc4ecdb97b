// The member's flows of issue 12: earn for a share, spin (the wheel stops on
// the server's segment and the browser's verification agrees with VerifySpin),
// a round of catch with scripted input scored by the server, and a live bonus
// event appearing while the app is open.
import { expect, test } from "@playwright/test";
import { clients, devToken, fresh, setUpProgram, SHOTS, signInMember } from "./support.js";

const tag = fresh("pw");
let program: Awaited<ReturnType<typeof setUpProgram>>;

test.beforeAll(async () => {
  program = await setUpProgram(tag);
});

test("a member earns points for a share and sees the breakdown and the balance move", async ({ page }) => {
  const member = fresh("sharer");
  await signInMember(page, member);
  await expect(page.getByTestId("balance")).toContainText("0");
  await page.getByRole("link", { name: "Earn" }).click();
  await page.getByTestId("report-social_share").click();
  const breakdown = page.getByTestId("breakdown").first();
  await expect(breakdown).toHaveAttribute("data-total", "10");
  await expect(breakdown).toContainText(program.shareRule);
  await page.screenshot({ path: `${SHOTS}earn.png`, fullPage: true });
  await page.getByRole("link", { name: "Wallet" }).click();
  await expect(page.getByTestId("balance")).toContainText("10");
  await expect(page.getByTestId("history")).toContainText("+10");
  // Live: points arriving from elsewhere (another tab, the shop) show without a reload.
  const own = clients(await devToken(member, "player"));
  await own.campaigns.trackActivity({ activity: { activityId: fresh("share"), memberId: member, type: "social_share", occurTime: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 } } });
  await expect(page.getByTestId("balance")).toContainText("20");
  await page.screenshot({ path: `${SHOTS}wallet.png`, fullPage: true });
});

test("a member spins; the wheel stops on the server's segment and the spin verifies in the browser", async ({ page }) => {
  const member = fresh("spinner");
  await signInMember(page, member);
  await page.getByRole("link", { name: "Wheel" }).click();
  if (await page.getByLabel("Wheel", { exact: true }).count()) await page.getByLabel("Wheel", { exact: true }).selectOption(program.wheelId);
  await expect(page.getByRole("table", { name: /Published odds/ })).toContainText("40%");
  for (let spin = 0; spin < 2; spin += 1) {
    await page.getByRole("button", { name: "Spin", exact: true }).click();
    const result = page.getByTestId("spin-result");
    await expect(result).toBeVisible({ timeout: 20_000 });
    const landed = await result.getAttribute("data-landed");
    expect(await result.getAttribute("data-stopped")).toBe(landed);
    await expect(page.getByRole("button", { name: "Spin", exact: true })).toBeEnabled();
  }
  await page.screenshot({ path: `${SHOTS}wheel.png`, fullPage: true });
  await page.getByRole("button", { name: /Rotate seed pair/ }).click();
  const verifyButtons = page.getByRole("button", { name: /Verify spin/ });
  await expect(verifyButtons.first()).toBeEnabled();
  for (const button of await verifyButtons.all()) await button.click();
  const verifications = page.getByTestId("verification");
  await expect(verifications).toHaveCount(2);
  for (const v of await verifications.all()) {
    await expect(v).toHaveAttribute("data-browser", "true");
    await expect(v).toHaveAttribute("data-server", "true");
  }
  await verifications.first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${SHOTS}wheel-verified.png`, fullPage: true });
});

test("a member plays a round of catch with the keyboard and sees the server's score", async ({ page }) => {
  const member = fresh("catcher");
  await signInMember(page, member);
  await expect(page.getByTestId("balance")).toBeVisible();
  await page.goto(`/app/#/catch/${program.gameId}`);
  await page.getByRole("button", { name: "Play" }).click();
  const field = page.getByTestId("catch-field");
  await expect(field).toBeFocused();
  // Scripted input: a little left, a little right, as a person would.
  await page.waitForTimeout(600);
  await page.keyboard.down("ArrowLeft");
  await page.waitForTimeout(300);
  await page.keyboard.up("ArrowLeft");
  await page.waitForTimeout(700);
  await page.keyboard.down("ArrowRight");
  await page.waitForTimeout(400);
  await page.keyboard.up("ArrowRight");
  const result = page.getByTestId("catch-result");
  await expect(result).toBeVisible({ timeout: 30_000 });
  const score = Number(await result.getAttribute("data-score"));
  await result.locator("summary").click();
  expect(score, await result.innerText()).toBeGreaterThan(0);
  await expect(result).toContainText(`The server scored ${score}`);
  await expect(page.getByTestId("my-rank")).toContainText(`with ${score}`);
  await page.screenshot({ path: `${SHOTS}catch.png`, fullPage: true });
  await page.getByRole("link", { name: "Wallet" }).click();
  await expect(page.getByTestId("balance")).toContainText(String(score));
});

test("a live bonus event appears in the member's app while it is open", async ({ page }) => {
  const member = fresh("watcher");
  await signInMember(page, member);
  await page.getByRole("link", { name: "Events" }).click();
  await expect(page.getByRole("heading", { name: "Bonus events" })).toBeVisible();
  const campaignId = `${tag}-flash`;
  const now = new Date();
  // Starts now on the Paris wall clock, for two hours.
  const paris = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", hourCycle: "h23" }).formatToParts(now);
  const part = (type: string) => Number(paris.find((p) => p.type === type)!.value);
  await program.manager.campaigns.createCampaign({
    campaignId,
    spec: {
      displayName: "Flash bonus",
      kind: 3 /* FIXED_BONUS */,
      budgetPoints: 1000n,
      reward: { points: 25n },
      conditions: { activityTypes: ["social_share"] },
      schedule: { start: { year: part("year"), month: part("month"), day: part("day"), hours: part("hour"), minutes: part("minute") }, duration: { seconds: 7200n, nanos: 0 }, timeZone: "Europe/Paris" },
    },
  });
  await program.manager.campaigns.scheduleCampaign({ campaignId });
  const event = page.locator(`[data-testid="event"][data-campaign="${campaignId}"]`);
  await expect(event).toHaveAttribute("data-state", "live");
  await expect(page.getByTestId("event-notice")).toContainText("Flash bonus");
  await expect(event).toContainText("Ends in");
  await page.screenshot({ path: `${SHOTS}event-live.png`, fullPage: true });
});
