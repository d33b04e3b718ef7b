// The code editor's pure parts: line numbers, Tab indenting when the reader opts in, and which line a run marks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { describeFollowed, followedLine, gutterText, indentText, INDENT, lineCount } from "../../static/js/demos/code-panel.js";
import { RunRecord } from "../../static/js/demos/run-record.js";

test("the gutter numbers every line, a trailing newline included", () => {
  assert.equal(lineCount(""), 1);
  assert.equal(lineCount("a\nb"), 2);
  assert.equal(lineCount("a\nb\n"), 3);
  assert.equal(gutterText(3), "1\n2\n3");
});

test("Tab at the caret inserts spaces; over several lines it indents each, Shift+Tab takes them out again", () => {
  const caret = indentText("ab", 1, 1);
  assert.deepEqual(caret, { value: `a${INDENT}b`, start: 1 + INDENT.length, end: 1 + INDENT.length });

  const code = "def f():\nreturn 1\nx = 2\n";
  const start = code.indexOf("return");
  const end = code.indexOf("x = 2") + 2;
  const indented = indentText(code, start, end);
  assert.equal(indented.value, `def f():\n${INDENT}return 1\n${INDENT}x = 2\n`);
  assert.equal(indented.value.slice(indented.start, indented.end), "return 1\n    x ");

  const outdented = indentText(indented.value, indented.start, indented.end, true);
  assert.equal(outdented.value, code);
  // a line with fewer spaces than one indent loses only those
  assert.equal(indentText("  x\n", 0, 3, true).value, "x\n");
});

test("the marked line is the chosen lane's, else the most recent event's; a lane at no line marks none", () => {
  const record = new RunRecord();
  record.accepted("run-1", {});
  record.addEvents([
    { kind: "lane", lane: 0, label: "MainThread", type: "thread", t: 0 },
    { kind: "state", lane: 0, state: "running", line: null, t: 0 },
    { kind: "lane", lane: 1, label: "Task-1: main()", type: "task", t: 1 },
    { kind: "state", lane: 1, state: "waiting", line: 7, label: "await asyncio.sleep", t: 2 },
    { kind: "state", lane: 0, state: "blocked", line: 12, label: "event loop idle (epoll.poll)", t: 3 },
  ]);
  assert.deepEqual(followedLine(record, null), { lane: 0, line: 12 });
  assert.deepEqual(followedLine(record, 1), { lane: 1, line: 7 });
  assert.equal(describeFollowed(record, { lane: 1, line: 7 }, "task"), "Line 7: Task-1: main(), waiting (await asyncio.sleep)");
  record.addEvents([{ kind: "state", lane: 1, state: "done", line: null, t: 4 }]);
  assert.equal(followedLine(record, 1), null);
  assert.equal(followedLine(null, null), null);
});
