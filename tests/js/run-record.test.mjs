// A run's record built from protocol messages: lanes, sequence gaps, duplicates and how a run ends.
import assert from "node:assert/strict";
import { test } from "node:test";

import { RunRecord } from "../../static/js/demos/run-record.js";

function runningRecord() {
  const record = new RunRecord({ tag: "A" });
  record.starting({ n: 2 });
  record.accepted("run-1", { n: 2 });
  return record;
}

test("batches in order apply; a duplicate batch is ignored; a gap is counted", () => {
  const record = runningRecord();
  assert.equal(record.addBatch(0, [{ kind: "state", lane: 0, state: "running", t: 1 }]), false);
  const changes = record.laneChanges[0].length;
  assert.equal(record.addBatch(0, [{ kind: "state", lane: 0, state: "done", t: 2 }]), false);
  assert.equal(record.laneChanges[0].length, changes, "the duplicate added nothing");
  assert.equal(record.addBatch(3, [{ kind: "log", t: 5, text: "late" }]), true);
  assert.equal(record.missedBatches, 2);
  assert.equal(record.expectedSeq, 4);
});

test("state events out of order still give time-ordered bars", () => {
  const record = runningRecord();
  record.addEvents([
    { kind: "state", lane: 1, state: "waiting", t: 10 },
    { kind: "state", lane: 1, state: "running", t: 0 },
    { kind: "state", lane: 1, state: "done", t: 20 },
  ]);
  const bars = [];
  record.forEachSegment(1, 30, (start, end, code) => bars.push([start, end, code]));
  assert.deepEqual(bars, [[0, 10, 0], [10, 20, 1]]);
  assert.equal(record.laneCount, 2);
  assert.equal(record.laneState(1), "done");
  assert.deepEqual(record.laneSpan(1), { start: 0, end: 20, outcome: "done", ended: true });
});

test("bad events are skipped rather than trusted", () => {
  const record = runningRecord();
  record.addEvents([null, 7, { kind: "state", lane: -1, state: "running" }, { kind: "state", lane: 0, state: "dancing" }, { kind: "metric", name: "x" }]);
  assert.equal(record.laneCount, 0);
  assert.equal(record.metrics.size, 0);
  record.addEvents("not a list");
  assert.equal(record.laneCount, 0);
});

test("metrics stay in time order; counters keep the latest value", () => {
  const record = runningRecord();
  record.addEvents([
    { kind: "metric", name: "lag", value: 3, t: 20, unit: "ms" },
    { kind: "metric", name: "lag", value: 1, t: 10 },
    { kind: "counter", name: "lost", value: 1, t: 5 },
    { kind: "counter", name: "lost", value: 4, t: 6 },
  ]);
  assert.deepEqual(record.metrics.get("lag"), { unit: "ms", points: [10, 1, 20, 3] });
  assert.equal(record.counters.get("lost").value, 4);
});

test("a stopped run ends at the server's elapsed time; a lost run is final and says why", () => {
  const stopped = runningRecord();
  stopped.addEvents([{ kind: "log", t: 100, text: "x" }]);
  stopped.finish("cancelled", { text: "Stopped", elapsed_ms: 250 });
  assert.equal(stopped.now(), 250);
  assert.ok(stopped.isFinal && !stopped.isLive);

  const lost = runningRecord();
  lost.lose();
  assert.equal(lost.status, "lost");
  assert.equal(lost.error.code, "disconnected");
  const version = lost.version;
  lost.lose();
  assert.equal(lost.version, version, "losing twice changes nothing");

  const rejected = new RunRecord();
  rejected.starting({});
  rejected.reject({ code: "busy", message: "later" });
  assert.equal(rejected.status, "rejected");
  assert.ok(rejected.isFinal);
});

test("lane labels come from the events, else from the noun", () => {
  const record = runningRecord();
  record.addEvents([{ kind: "lanes", count: 3, labels: ["first", null] }]);
  assert.equal(record.laneLabel(0, "client"), "first");
  assert.equal(record.laneLabel(2, "client"), "client 3");
});
