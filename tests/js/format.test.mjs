// How numbers, durations and names read on the page.
import assert from "node:assert/strict";
import { test } from "node:test";

import { countOf, formatClock, formatDuration, formatNumber, formatTick, formatValue, humanizeKey, metricTitle, niceStep, plural } from "../../static/js/demos/format.js";
import { readLimits } from "../../static/js/demos/api.js";

test("numbers get a precision that suits their size", () => {
  assert.equal(formatNumber(3012), "3,012");
  assert.equal(formatNumber(41.666), "41.67");
  assert.equal(formatNumber(123.45), "123.5");
  assert.equal(formatNumber(0.012345), "0.0123");
  assert.equal(formatNumber(0), "0");
  assert.equal(formatNumber(Number.NaN), "NaN");
});

test("whole numbers are grouped exactly as Intl groups them, without building a formatter", () => {
  const intl = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  for (const value of [0, 7, 999, 1000, -1000, 12_345, -1_234_567, 1234.5, -1234.5, 2 ** 53 - 1, 1e21, -1e22]) {
    assert.equal(formatNumber(value), intl.format(value), `for ${value}`);
  }
  assert.equal(formatNumber(-0), "0"); // Intl would say "-0"
});

test("durations use the unit a reader expects", () => {
  assert.equal(formatDuration(3.25), "3.3 ms");
  assert.equal(formatDuration(320), "320 ms");
  assert.equal(formatDuration(3012), "3.01 s");
  assert.equal(formatDuration(12_340), "12.3 s");
  assert.equal(formatDuration(65_000), "1 min 5 s");
  assert.equal(formatDuration(undefined), "—");
  assert.equal(formatClock(-5), "0 s");
  assert.equal(formatClock(12_400), "12.4 s");
});

test("axis ticks and steps", () => {
  assert.equal(formatTick(0, 100), "0");
  assert.equal(formatTick(2000, 1000), "2 s");
  assert.equal(formatTick(1500, 500), "1.5 s");
  assert.equal(formatTick(250, 50), "250 ms");
  assert.equal(niceStep(1000, 5), 200);
  assert.equal(niceStep(7, 5), 2);
  assert.equal(niceStep(0), 1);
});

test("keys, values and nouns", () => {
  assert.equal(humanizeKey("total_ms"), "total ms");
  assert.equal(humanizeKey("longestWait"), "longest wait");
  assert.equal(formatValue(true), "yes");
  assert.equal(formatValue(null), "—");
  assert.equal(formatValue([1, 2500]), "1, 2,500");
  assert.equal(formatValue({ a: 1 }), '{"a":1}');
  assert.equal(plural("process", 2), "processes");
  assert.equal(plural("query", 2), "queries");
  assert.equal(plural("request", 1), "request");
  assert.equal(countOf(10_000, "request"), "10,000 requests");
  assert.equal(metricTitle("heartbeat_lag_ms", "ms"), "heartbeat lag (ms)");
  assert.equal(metricTitle("in_flight", ""), "in flight");
});

test("the run cap is read from /api/demos/ and a missing one is an error", () => {
  assert.deepEqual(readLimits({ demos: [], limits: { runs_per_socket: 3 } }), { runs_per_socket: 3 });
  assert.throws(() => readLimits({ demos: [] }), /runs_per_socket/);
  assert.throws(() => readLimits({ limits: { runs_per_socket: 0 } }), /runs_per_socket/);
});
