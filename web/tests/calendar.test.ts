// The calendar's layout across DST, in zones on both sides of the date line.
import assert from "node:assert/strict";
import { test } from "node:test";
import { hourMarks, layoutDay, monthView, weekView, type Occurrence } from "../shared/calendar.js";
import { instantOf, localAt, offsetMinutes } from "../shared/time.js";

const H = 3_600_000;
const utc = (s: string) => Date.parse(s);

test("local times resolve by the suite's rule: gaps jump, folds take the first", () => {
  // Paris, 29 March 2026: 02:00 -> 03:00. 02:30 does not exist: the jump instant.
  assert.equal(instantOf({ year: 2026, month: 3, day: 29, hour: 2, minute: 30 }, "Europe/Paris"), utc("2026-03-29T01:00:00Z"));
  assert.equal(instantOf({ year: 2026, month: 3, day: 29, hour: 3 }, "Europe/Paris"), utc("2026-03-29T01:00:00Z"));
  // Paris, 25 October 2026: 02:30 happens twice; the first is at +02:00.
  assert.equal(instantOf({ year: 2026, month: 10, day: 25, hour: 2, minute: 30 }, "Europe/Paris"), utc("2026-10-25T00:30:00Z"));
  // New York, 8 March 2026: 02:00 -> 03:00.
  assert.equal(instantOf({ year: 2026, month: 3, day: 8, hour: 2, minute: 15 }, "America/New_York"), utc("2026-03-08T07:00:00Z"));
  // Auckland, 5 April 2026: 03:00 -> 02:00 (fall back, southern autumn).
  assert.equal(instantOf({ year: 2026, month: 4, day: 5, hour: 2, minute: 30 }, "Pacific/Auckland"), utc("2026-04-04T13:30:00Z"));
  assert.equal(offsetMinutes(utc("2026-07-01T00:00:00Z"), "Europe/Paris"), 120);
  assert.deepEqual(localAt(utc("2026-03-29T01:00:00Z"), "Europe/Paris"), { year: 2026, month: 3, day: 29, hour: 3, minute: 0, second: 0 });
});

test("a spring-forward day lasts 23 hours, a fall-back day 25, with the change noted", () => {
  const spring = layoutDay({ year: 2026, month: 3, day: 29 }, "Europe/Paris", []);
  assert.equal(spring.hours, 23);
  assert.equal(spring.change?.shiftMinutes, 60);
  assert.equal(spring.change?.atMs, utc("2026-03-29T01:00:00Z"));
  const autumn = layoutDay({ year: 2026, month: 10, day: 25 }, "Europe/Paris", []);
  assert.equal(autumn.hours, 25);
  assert.equal(autumn.change?.shiftMinutes, -60);
  assert.equal(layoutDay({ year: 2026, month: 3, day: 28 }, "Europe/Paris", []).change, null);
  const marks = hourMarks(autumn, "Europe/Paris").map((m) => m.label);
  assert.equal(marks.length, 25);
  assert.deepEqual(marks.slice(0, 5), ["00:00", "01:00", "02:00", "02:00", "03:00"]);
  assert.ok(!hourMarks(spring, "Europe/Paris").some((m) => m.label === "02:00"));
});

// A double-points weekend in Paris: Saturday 00:00 for 48 wall-clock hours,
// across the spring change (47 real hours), as the campaigns service lays it out.
const weekend: Occurrence = {
  campaignId: "double-weekend",
  title: "Double points",
  startMs: utc("2026-03-27T23:00:00Z"), // Sat 28 Mar 00:00 +01:00
  endMs: utc("2026-03-29T22:00:00Z"), // Mon 30 Mar 00:00 +02:00
};

test("the weekend fills Saturday and Sunday in Paris, and no other day", () => {
  const days = weekView({ year: 2026, month: 3, day: 25 }, "Europe/Paris", [weekend]);
  assert.deepEqual(days.map((d) => d.key), ["2026-03-23", "2026-03-24", "2026-03-25", "2026-03-26", "2026-03-27", "2026-03-28", "2026-03-29"]);
  const [saturday, sunday] = [days[5]!, days[6]!];
  assert.equal(saturday.segments.length, 1);
  assert.deepEqual([saturday.segments[0]!.top, saturday.segments[0]!.height], [0, 1]);
  assert.equal(saturday.segments[0]!.label, "00:00–24:00");
  assert.equal(sunday.hours, 23);
  assert.deepEqual([sunday.segments[0]!.top, sunday.segments[0]!.height, sunday.segments[0]!.endsHere], [0, 1, true]);
  assert.ok(days.slice(0, 5).every((d) => d.segments.length === 0));
  assert.equal(weekend.endMs - weekend.startMs, 47 * H);
});

test("the same weekend seen from New York starts Friday evening and ends Sunday evening", () => {
  const days = weekView({ year: 2026, month: 3, day: 25 }, "America/New_York", [weekend]);
  const friday = days[4]!;
  const sunday = days[6]!;
  assert.equal(friday.segments[0]!.label, "19:00–24:00"); // 00:00 Paris (+01:00) is 19:00 New York (-04:00)
  assert.equal(sunday.segments[0]!.label, "00:00–18:00"); // 00:00 Paris (+02:00) is 18:00 New York
  assert.ok(sunday.segments[0]!.endsHere);
  assert.equal(days[5]!.segments[0]!.height, 1);
});

test("a month view has whole Monday-first weeks and marks days outside the month", () => {
  const weeks = monthView(2026, 3, "Europe/Paris", [weekend]);
  assert.equal(weeks[0]![0]!.key, "2026-02-23");
  assert.equal(weeks[weeks.length - 1]![6]!.key, "2026-04-05");
  assert.ok(weeks.every((w) => w.length === 7));
  assert.equal(weeks[0]![0]!.inMonth, false);
  const withWeekend = weeks.flat().filter((d) => d.segments.length).map((d) => d.key);
  assert.deepEqual(withWeekend, ["2026-03-28", "2026-03-29"]);
});

test("overlapping occurrences take separate lanes", () => {
  const a: Occurrence = { campaignId: "a", title: "A", startMs: utc("2026-06-01T08:00:00Z"), endMs: utc("2026-06-01T12:00:00Z") };
  const b: Occurrence = { campaignId: "b", title: "B", startMs: utc("2026-06-01T10:00:00Z"), endMs: utc("2026-06-01T14:00:00Z") };
  const c: Occurrence = { campaignId: "c", title: "C", startMs: utc("2026-06-01T12:00:00Z"), endMs: utc("2026-06-01T13:00:00Z") };
  const day = layoutDay({ year: 2026, month: 6, day: 1 }, "UTC", [a, b, c]);
  assert.deepEqual(day.segments.map((s) => [s.occurrence.campaignId, s.lane]), [["a", 0], ["b", 1], ["c", 0]]);
  assert.equal(day.lanes, 2);
});
