// What the widget draws must not claim more than the run measured: its legend, its charts, its units, its summary.
import assert from "node:assert/strict";
import { test } from "node:test";

import { displayUnit, formatQuantity, metricTitle } from "../../static/js/demos/format.js";
import { legendStates, STATE_MEANINGS } from "../../static/js/demos/legend.js";
import { RunRecord } from "../../static/js/demos/run-record.js";
import { medianInterval, splitAtGaps } from "../../static/js/demos/series.js";
import { fieldLabel, firstSentence, formatEntry, MAX_HEADLINE, splitSummary } from "../../static/js/demos/summary.js";

function recordWith(states) {
  const record = new RunRecord();
  record.addEvents(states.map((state, index) => ({ kind: "state", lane: 0, state, t: index * 10 })));
  return record;
}

test("the legend lists exactly the states the runs entered, in a fixed order", () => {
  const locked = recordWith(["running", "waiting", "running", "lock-wait", "running", "done"]);
  assert.deepEqual(legendStates([locked]), ["running", "waiting", "lock-wait"]);
  assert.deepEqual(legendStates([recordWith(["blocked", "done"])]), ["blocked"]);
  assert.deepEqual(legendStates([]), []);
  const other = recordWith(["queued", "blocked", "failed"]);
  assert.deepEqual(legendStates([locked, other]), ["running", "waiting", "queued", "blocked", "lock-wait", "failed"]);
});

test("lock-wait is a state of its own, with words that say it is not I/O", () => {
  const record = recordWith(["lock-wait", "done"]);
  assert.equal(record.laneState(0), "done");
  assert.ok(record.statesSeen.has("lock-wait"));
  assert.match(STATE_MEANINGS["lock-wait"], /lock/);
  assert.match(STATE_MEANINGS.blocked, /no CPU/);
  assert.match(STATE_MEANINGS.waiting, /await/);
  const meanings = Object.values(STATE_MEANINGS);
  assert.equal(new Set(meanings).size, meanings.length);
});

test("a series splits where the samples stop for more than three median intervals", () => {
  // Samples every 20 ms, then nothing from 100 ms to 600 ms (a frozen loop), then every 20 ms again.
  const points = [0, 1, 20, 1, 40, 2, 60, 1, 80, 1, 600, 500, 620, 3, 640, 2];
  assert.equal(medianInterval(points), 20);
  const segments = splitAtGaps(points);
  assert.deepEqual(segments, [[0, 1, 20, 1, 40, 2, 60, 1, 80, 1], [600, 500, 620, 3, 640, 2]]);
  assert.equal(segments.flat().length, points.length);
});

test("a series sampled evenly stays one stretch, and a lone sample stays a point", () => {
  assert.equal(splitAtGaps([0, 5, 20, 6, 40, 7, 61, 8, 79, 9]).length, 1);
  assert.deepEqual(splitAtGaps([15000, 15000]), [[15000, 15000]]);
  assert.deepEqual(splitAtGaps([]), []);
  // Probes answered in bursts, long apart: each burst its own stretch, no line between them.
  const bursts = [1000, 900, 1000.2, 880, 1000.4, 860, 2000, 900, 2000.1, 870];
  assert.equal(splitAtGaps(bursts).length, 2);
});

test("bytes are shown in KiB or MiB, long times in seconds, other units as given", () => {
  assert.equal(formatQuantity(1900, "B"), "1.86 KiB");
  assert.equal(formatQuantity(5 * 1024 * 1024, "B"), "5 MiB");
  assert.equal(formatQuantity(0.5, "MiB"), "512 KiB");
  assert.equal(formatQuantity(700, "B"), "700 B");
  assert.equal(formatQuantity(320, "ms"), "320 ms");
  assert.equal(formatQuantity(15_000, "ms"), "15 s");
  assert.equal(formatQuantity(12, "requests"), "12 requests");
  assert.equal(formatQuantity(7, ""), "7");
  assert.deepEqual(displayUnit(15_000, "ms"), { unit: "s", factor: 1 / 1000 });
  assert.deepEqual(displayUnit(800, "KiB"), { unit: "KiB", factor: 1 });
  assert.equal(metricTitle("server_rss_mib", "MiB", "KiB"), "server rss (KiB)");
});

test("a summary leads with one sentence and at most three declared numbers; the rest is details", () => {
  const summary = {
    text: "8 clients performed 800 increments but the counter reads 612: 188 were lost. Each read 1.5 ms before writing.",
    expected: 800, final: 612, lost: 188, elapsed_ms: 2300, connections: 8, mode: "read-modify-write",
  };
  const format = {
    fields: { lost: { label: "Increments lost", unit: "" }, elapsed_ms: { label: "Time taken", unit: "ms" } },
    headline: ["lost", "final", "expected", "elapsed_ms"],
  };
  const parts = splitSummary(summary, format);
  assert.equal(parts.lead, "8 clients performed 800 increments but the counter reads 612: 188 were lost.");
  assert.equal(parts.more, "Each read 1.5 ms before writing.");
  assert.equal(parts.headline.length, MAX_HEADLINE);
  assert.deepEqual(parts.headline.map((entry) => entry.label), ["Increments lost", "Final", "Expected"]);
  assert.deepEqual(parts.details.map((entry) => [entry.label, entry.text]), [["Time taken", "2.3 s"], ["Connections", "8"], ["Mode", "read-modify-write"]]);
});

test("keys without a label read as words, and undeclared headlines stay out of the lead", () => {
  assert.equal(fieldLabel("max_queue_wait_ms"), "Max queue wait ms");
  const parts = splitSummary({ text: "Done.", total_ms: 5 }, {});
  assert.deepEqual(parts.headline, []);
  assert.deepEqual(parts.details.map((entry) => entry.key), ["total_ms"]);
  assert.deepEqual(splitSummary({ text: "x", lost: 1 }, { headline: ["missing", "lost"] }).headline.map((entry) => entry.key), ["lost"]);
  assert.deepEqual(firstSentence("A speedup of 1.93× on 2 cores."), ["A speedup of 1.93× on 2 cores.", ""]);
  assert.equal(formatEntry({ plain: 12, to_thread: 13 }, "ms"), "plain 12 ms, to thread 13 ms");
  assert.equal(formatEntry([1.5, 2], "ms"), "1.5 ms, 2 ms");
  assert.equal(formatEntry([], ""), "none"); // parallelism's rounds set aside, when there were none
});
