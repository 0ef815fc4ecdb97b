// The manager's flow of issue 12: a double-points weekend created in the
// console (checked as it is typed, the service's own refusal shown at its
// field), seen on the calendar in two zones across the spring DST weekend,
// paused; the member's app shows the change.
import { expect, test } from "@playwright/test";
import { fresh, SHOTS, signInManager, signInMember } from "./support.js";

test("a manager schedules a double-points weekend, sees it across DST in two zones, pauses it; the member sees it paused", async ({ browser }) => {
  const memberContext = await browser.newContext({ viewport: { width: 412, height: 900 } });
  const member = await memberContext.newPage();
  await signInMember(member, fresh("fan"));
  await expect(member.getByTestId("balance")).toBeVisible();

  const managerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await managerContext.newPage();
  await signInManager(page, fresh("ana"));
  const id = fresh("double-weekend");
  await page.goto("/console/#/campaigns/new");
  await page.getByLabel("Campaign id").fill(id);
  await page.getByLabel("Name members see").fill("Double points weekend");
  // Checked as it is typed: 100% is not a multiplier.
  await page.getByLabel("Multiplier (percent of base points)").fill("100");
  await expect(page.getByText("above 100 (200 is double points)")).toBeVisible();
  await page.getByLabel("Multiplier (percent of base points)").fill("200");
  await expect(page.getByText("above 100 (200 is double points)")).toHaveCount(0);
  await page.getByLabel("Time zone", { exact: true }).fill("Europe/Paris");
  await page.getByLabel(/First start/).fill("2027-03-27T00:00");
  await page.getByLabel("Each window lasts (hours)").fill("48");
  // The form does not parse UNTIL; the service refuses it, and says so at the field.
  const rrule = page.getByLabel("Repeats (RFC 5545 RRULE)");
  await rrule.fill("FREQ=WEEKLY;BYDAY=SA;UNTIL=someday");
  await page.getByRole("button", { name: "Save draft" }).click();
  await expect(rrule).toHaveAttribute("aria-invalid", "true");
  const described = await rrule.getAttribute("aria-describedby");
  await expect(page.locator(`[id="${described!.split(" ").pop()}"]`)).not.toBeEmpty();
  await page.screenshot({ path: `${SHOTS}console-form-refused.png`, fullPage: true });
  await rrule.fill("FREQ=WEEKLY;BYDAY=SA");
  await page.getByRole("button", { name: "Save draft" }).click();
  await expect(page.getByTestId("campaign-state")).toHaveText("draft");
  // The RRULE preview: local times and UTC, 47 real hours over the spring change.
  const schedule = page.getByTestId("schedule");
  await expect(schedule).toContainText("2027-03-27T00:00:00+01:00");
  await expect(schedule).toContainText("2027-03-29T00:00:00+02:00");
  await expect(schedule).toContainText("2027-03-26T23:00:00Z – 2027-03-28T22:00:00Z");
  await page.getByRole("button", { name: /Schedule/ }).click();
  await expect(page.getByTestId("campaign-state")).toHaveText("scheduled");
  await page.screenshot({ path: `${SHOTS}console-campaign.png`, fullPage: true });

  // The calendar, week of the change, in Paris and in New York.
  await page.getByRole("link", { name: "Calendar" }).click();
  await page.getByRole("button", { name: "Week" }).click();
  await page.getByLabel("Go to").fill("2027-03-24");
  const zone = page.getByLabel("Time zone", { exact: true });
  await zone.fill("Europe/Paris");
  await page.getByRole("button", { name: "Show" }).click();
  await expect(page.getByTestId("calendar-zone")).toContainText("Europe/Paris");
  const chip = (day: string) => page.locator(`[data-testid="occurrence"][data-campaign="${id}"][data-day="${day}"]`);
  await expect(chip("2027-03-27")).toHaveAttribute("data-label", "00:00–24:00");
  await expect(chip("2027-03-28")).toHaveAttribute("data-label", "00:00–24:00");
  await expect(page.locator('[data-date="2027-03-28"]')).toHaveAttribute("data-hours", "23");
  await expect(chip("2027-03-26")).toHaveCount(0);
  await page.screenshot({ path: `${SHOTS}calendar-paris.png`, fullPage: true });
  await zone.fill("America/New_York");
  await page.getByRole("button", { name: "Show" }).click();
  await expect(page.getByTestId("calendar-zone")).toContainText("America/New_York");
  await expect(chip("2027-03-26")).toHaveAttribute("data-label", "19:00–24:00");
  await expect(chip("2027-03-27")).toHaveAttribute("data-label", "00:00–24:00");
  await expect(chip("2027-03-28")).toHaveAttribute("data-label", "00:00–18:00");
  await page.screenshot({ path: `${SHOTS}calendar-new-york.png`, fullPage: true });
  await page.getByRole("button", { name: "Month" }).click();
  await expect(chip("2027-03-28")).toBeVisible();
  await page.screenshot({ path: `${SHOTS}calendar-month.png`, fullPage: true });

  // The member sees it coming, then paused.
  await member.getByRole("link", { name: "Events" }).click();
  const event = member.locator(`[data-testid="event"][data-campaign="${id}"]`);
  await expect(event).toHaveAttribute("data-state", "upcoming");
  await expect(event).toContainText("Starts in");
  await chip("2027-03-28").click();
  await expect(page.getByTestId("campaign-state")).toHaveText("scheduled");
  await page.getByRole("button", { name: "Pause" }).click();
  await expect(page.getByTestId("campaign-state")).toHaveText("paused");
  await expect(event).toHaveAttribute("data-state", "paused");
  await expect(member.getByTestId("event-notice")).toContainText("paused");
  await member.screenshot({ path: `${SHOTS}event-paused.png`, fullPage: true });
  await memberContext.close();
  await managerContext.close();
});
