// A run's output as the panel shows it: chunks joined into lines per stream, capped, and kept by the record.
import assert from "node:assert/strict";
import { test } from "node:test";

import { OutputLines } from "../../static/js/demos/output-panel.js";
import { RunRecord } from "../../static/js/demos/run-record.js";

test("a line split across chunks of one stream stays one line; the other stream starts its own", () => {
  const lines = new OutputLines();
  lines.push("stdout", "hel");
  lines.push("stdout", "lo\nwor");
  lines.push("stderr", "Traceback\n");
  lines.push("stdout", "ld\n\n");
  assert.deepEqual(lines.lines.map((line) => [line.stream, line.text]), [
    ["stdout", "hello"],
    ["stdout", "wor"],
    ["stderr", "Traceback"],
    ["stdout", "ld"],
    ["stdout", ""],
  ]);
});

test("past its cap the panel keeps the latest lines and counts the rest", () => {
  const lines = new OutputLines(3);
  for (let n = 0; n < 10; n += 1) lines.push("stdout", `line ${n}\n`);
  assert.deepEqual(lines.lines.map((line) => line.text), ["line 7", "line 8", "line 9"]);
  assert.equal(lines.dropped, 7);
  assert.equal(lines.total, 10);
});

test("the record keeps output and notes from the events, and lanes announced mid-run", () => {
  const record = new RunRecord();
  record.accepted("run-1", {});
  record.addEvents([
    { kind: "output", stream: "stdout", text: "hi\n", t: 1 },
    { kind: "output", stream: "stderr", text: "oops\n", t: 2 },
    { kind: "note", text: "Past 64 lanes the rest were not drawn.", t: 3 },
    { kind: "lane", lane: 2, label: "worker", type: "thread", t: 4 },
  ]);
  assert.deepEqual(record.output.map((chunk) => chunk.stream), ["stdout", "stderr"]);
  assert.equal(record.notes[0].text, "Past 64 lanes the rest were not drawn.");
  assert.equal(record.laneCount, 3);
  assert.equal(record.laneLabel(2, "lane"), "worker");
  assert.equal(record.laneTypes[2], "thread");
  record.addEvents([{ kind: "output", stream: "stdout", text: "x".repeat(600 * 1024), t: 5 }]);
  assert.equal(record.outputChars, 512 * 1024);
  assert.ok(record.outputCharsDropped > 0);
});
