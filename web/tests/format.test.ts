import assert from "node:assert/strict";
import { test } from "node:test";
import { countdown, dateTime, daysFromNow, durationWords, isoLocal, percentOf, points, signedPoints } from "../shared/format.js";
import { fieldError, snakeCasePath } from "../shared/errors.js";
import { sessionFromToken } from "../shared/auth.js";

test("points read with separators and signs", () => {
  assert.equal(points(1234567n), "1,234,567");
  assert.equal(signedPoints(35n), "+35");
  assert.equal(signedPoints(-10n), "−10");
  assert.equal(signedPoints(0n), "0");
});

test("countdowns and durations", () => {
  assert.equal(countdown(65_000), "01:05");
  assert.equal(countdown(3_725_000), "01:02:05");
  assert.equal(countdown(2 * 86_400_000 + 3_600_000), "2 d 01:00:00");
  assert.equal(countdown(-5), "00:00");
  assert.equal(durationWords(47 * 3_600_000), "1 day 23 hours");
  assert.equal(durationWords(5 * 60_000), "5 minutes");
  assert.equal(daysFromNow(Date.parse("2026-01-10T00:00:00Z"), Date.parse("2026-01-01T00:00:00Z")), "in 9 days");
});

test("instants read on the zone's wall clock with its offset", () => {
  const end = Date.parse("2026-03-29T16:00:00Z");
  assert.equal(isoLocal(end, "Europe/Paris"), "2026-03-29T18:00:00+02:00");
  assert.equal(isoLocal(Date.parse("2026-03-27T17:00:00Z"), "Europe/Paris"), "2026-03-27T18:00:00+01:00");
  assert.equal(dateTime(end, "Asia/Kathmandu"), "Sun 29 Mar 2026, 21:45");
});

test("odds are exact percentages of integer weights", () => {
  assert.equal(percentOf(1n, 3n), "33.3333%");
  assert.equal(percentOf(2n, 3n), "66.6667%");
  assert.equal(percentOf(1n, 8n), "12.5%");
  assert.equal(percentOf(0n, 8n), "0%");
  assert.equal(percentOf(1n, 1_000_000_000n, 7), "0.0000001%");
});

test("field violations are found at a field and below it, in either case", () => {
  assert.equal(snakeCasePath("spec.schedule.timeZone"), "spec.schedule.time_zone");
  const fields = { "spec.schedule.time_zone": "unknown zone", "spec.reward.multiplier_percent": "must be above 100" };
  assert.equal(fieldError(fields, "spec.schedule.time_zone"), "unknown zone");
  assert.equal(fieldError(fields, "spec.reward"), "must be above 100");
  assert.equal(fieldError(fields, "spec.budget_points"), undefined);
});

test("a token's claims are read for display", () => {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const token = `${part({ alg: "HS256" })}.${part({ sub: "m-1", exp: 2000000000, roles: ["player"] })}.sig`;
  assert.deepEqual(sessionFromToken(token), { token, subject: "m-1", roles: ["player"], expires: 2000000000 });
  assert.equal(sessionFromToken("nope"), null);
});

import { projectedExhaustion } from "../shared/charts.js";
import { emptyForm, rruleProblem, toSpec, validate } from "../shared/campaignform.js";

test("a budget's exhaustion is projected from the last week's burn", () => {
  const now = Date.parse("2026-03-10T00:00:00Z");
  const days = Array.from({ length: 10 }, (_, i) => ({ date: `2026-03-0${i}`, points: i < 3 ? 1000 : 100 }));
  assert.equal(projectedExhaustion(days, 700, now), now + 7 * 86_400_000);
  assert.equal(projectedExhaustion([], 700, now), null);
  assert.equal(projectedExhaustion(days, 0, now), null);
});

test("the campaign form checks fields as the service names them", () => {
  const form = { ...emptyForm("Europe/Paris"), campaignId: "double weekend", displayName: "", multiplierPercent: "100", timeZone: "Mars/Olympus", rrule: "FREQ=HOURLY", start: "2026-03-28T00:00" };
  const errors = validate(form, true);
  assert.ok(errors["campaign_id"]);
  assert.ok(errors["spec.display_name"]);
  assert.ok(errors["spec.reward.multiplier_percent"]);
  assert.ok(errors["spec.schedule.time_zone"]);
  assert.match(errors["spec.schedule.rrule"]!, /FREQ/);
  const good = { ...emptyForm("Europe/Paris"), campaignId: "double-weekend", displayName: "Double points", start: "2026-03-28T00:00" };
  assert.deepEqual(validate(good, true), {});
  assert.equal(rruleProblem("FREQ=WEEKLY;BYDAY=SA,SU"), undefined);
  assert.match(rruleProblem("FREQ=WEEKLY;BYDAY=XX")!, /BYDAY/);
  const spec = toSpec(good, () => 0) as any;
  assert.deepEqual(spec.schedule.start, { year: 2026, month: 3, day: 28, hours: 0, minutes: 0, seconds: 0 });
  assert.equal(spec.schedule.duration.seconds, 172800n);
  assert.equal(spec.reward.multiplierPercent, 200);
  assert.equal(spec.budgetPoints, 100000n);
});
