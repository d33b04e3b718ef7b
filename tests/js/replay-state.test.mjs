// The replay's state at a time: events up to t, stepping one event, the playhead, and a record rebuilt going back.
import assert from "node:assert/strict";
import { test } from "node:test";

import { countUpTo, laneTally, Playhead, ReplayTrack, sortedEvents, stateSentence, stepTime } from "../../static/js/demos/replay-state.js";
import { RunRecord } from "../../static/js/demos/run-record.js";

/** Three lanes that end at 100, 200 and 300 ms; a log line at 150. */
const EVENTS = [
  { kind: "lanes", count: 3, t: 0 },
  ...[0, 1, 2].map((lane) => ({ kind: "state", lane, state: "waiting", t: 1 + lane })),
  ...[0, 1, 2].map((lane) => ({ kind: "state", lane, state: "done", t: 100 * (lane + 1) })),
  { kind: "log", text: "half way", t: 150 },
];

function track(events = EVENTS, status = "succeeded", summary = { text: "Three waits." }) {
  const record = new RunRecord({ tag: "" });
  record.accepted("run-1", {});
  return new ReplayTrack({ record, events: [...events].reverse(), status, summary });
}

test("events are put in time order, equal times keeping their recorded order", () => {
  const sorted = sortedEvents([{ t: 5, n: 1 }, { t: 1, n: 2 }, { t: 5, n: 3 }, null, "junk", { n: 4 }]);
  assert.deepEqual(sorted.map((event) => event.n), [4, 2, 1, 3]);
});

test("countUpTo counts the events at or before t", () => {
  const times = [0, 1, 1, 5, 9];
  assert.deepEqual([-1, 0, 1, 4.9, 5, 100].map((t) => countUpTo(times, t)), [0, 1, 3, 3, 4, 5]);
});

test("at the middle of the run, fewer lanes are done than at its end; the summary waits for the end", () => {
  const replay = track();
  replay.seek(150);
  assert.deepEqual(laneTally(replay.record), { done: 1, failed: 0, open: 2, total: 3 });
  assert.equal(replay.record.logs.length, 1);
  assert.equal(replay.record.summary, null);
  assert.equal(replay.record.status, "replaying");
  assert.equal(replay.record.now(), 150, "open lanes are drawn up to the playhead");
  replay.seek(300);
  assert.deepEqual(laneTally(replay.record), { done: 3, failed: 0, open: 0, total: 3 });
  assert.equal(replay.record.status, "succeeded");
  assert.equal(replay.record.summary?.text, "Three waits.");
});

test("moving back rebuilds the record to what it was at that time, and says so", () => {
  const replay = track();
  assert.equal(replay.seek(300), "forward");
  const version = replay.record.version;
  assert.equal(replay.seek(120), "rewound");
  assert.ok(replay.record.version > version, "views keyed on the version redraw");
  assert.deepEqual(laneTally(replay.record), { done: 1, failed: 0, open: 2, total: 3 });
  assert.equal(replay.record.logs.length, 0);
  assert.equal(replay.record.summary, null);
  assert.equal(replay.record.runId, "run-1");
  assert.equal(replay.seek(130), "same", "no event between 120 and 130");
  assert.equal(replay.seek(200), "forward");
  assert.equal(laneTally(replay.record).done, 2);
});

test("a stopped run ends when its summary says, after its last event", () => {
  const replay = track(EVENTS.slice(0, 5), "cancelled", { text: "Stopped.", elapsed_ms: 250 });
  assert.equal(replay.end, 250);
  replay.seek(240);
  assert.equal(replay.record.status, "replaying");
  replay.seek(250);
  assert.equal(replay.record.status, "cancelled");
});

test("stepping moves one event forward and undoes one event back, across both runs of a compare", () => {
  const a = [0, 10, 30];
  const b = [5, 30, 40];
  assert.equal(stepTime([a, b], 0, 1), 5);
  assert.equal(stepTime([a, b], 5, 1), 10);
  assert.equal(stepTime([a, b], 12, 1), 30);
  assert.equal(stepTime([a, b], 40, 1), 40, "nothing after the last event");
  assert.equal(stepTime([a, b], 30, -1), 10, "undo the events at 30");
  assert.equal(stepTime([a, b], 12, -1), 5, "undo the event at 10");
  assert.equal(stepTime([a, b], 0, -1), 0);
});

test("the playhead plays at its speed, keeps its place when the speed changes, and stops at the end", () => {
  const playhead = new Playhead(1000);
  playhead.play(0);
  assert.equal(playhead.positionAt(100), 100);
  playhead.setSpeed(4, 100);
  assert.equal(playhead.positionAt(150), 300);
  playhead.setSpeed(0.25, 150);
  assert.equal(playhead.positionAt(550), 400);
  playhead.pause(550);
  assert.equal(playhead.positionAt(10_000), 400, "paused: time passing does not move it");
  playhead.setSpeed(3, 600);
  assert.equal(playhead.speed, 0.25, "only the listed speeds");
  playhead.seek(900, 600);
  playhead.setSpeed(2, 600);
  playhead.play(600);
  assert.equal(playhead.positionAt(700), 1000);
  assert.equal(playhead.playing, false, "it stops at the end");
  playhead.play(800);
  assert.equal(playhead.position, 0, "playing from the end starts again");
  playhead.seek(-5, 800);
  assert.equal(playhead.position, 0);
  playhead.seek(5000, 800);
  assert.equal(playhead.position, 1000);
});

test("the state sentence counts lanes done and events shown per run", () => {
  const replay = track();
  replay.record.tag = "A";
  replay.seek(150);
  assert.equal(stateSentence([replay], "request"), "Run A: 1 of 3 requests done, 2 still going, 6 of 8 events.");
});
