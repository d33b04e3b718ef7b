// The demo picker's block text and where it lands in the author's Markdown.
import { test } from "node:test";
import assert from "node:assert/strict";

import { demoBlockText, insertBlock } from "../../static/js/authoring/demo-block.js";

const params = [
  { name: "mode", type: "choice", default: "concurrent", choices: ["sequential", "concurrent"] },
  { name: "requests", type: "int", default: 10, min: 1, max: 100 },
  { name: "verbose", type: "bool", default: false },
];

test("only the values that differ from the defaults are written", () => {
  assert.equal(demoBlockText("one-cook", params, { mode: "concurrent", requests: 10, verbose: false }), "```demo one-cook\n```");
  assert.equal(
    demoBlockText("one-cook", params, { mode: "sequential", requests: 25, verbose: true }),
    "```demo one-cook\nmode: sequential\nrequests: 25\nverbose: true\n```",
  );
});

test("a block lands on lines of its own, with blank lines around it", () => {
  assert.deepEqual(insertBlock("", 0, "B"), { text: "B\n", cursor: 2 });
  assert.equal(insertBlock("Intro", 5, "B").text, "Intro\n\nB\n");
  assert.equal(insertBlock("Intro\n\nMore", 7, "B").text, "Intro\n\nB\n\nMore");
  assert.equal(insertBlock("Intro\nMore", 6, "B").text, "Intro\n\nB\n\nMore");
});
