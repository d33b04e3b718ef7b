// What step mode says, filled from the words the server renders into the page.
import assert from "node:assert/strict";
import { test } from "node:test";

import { fillTemplate, lostUpdates, parseStepModeText, resultText, scenarioActions, transactionStateText, verdictText } from "../../static/js/demos/stepper-text.js";

const TEXT = {
  title: "Try it",
  intro: "Two transactions.",
  value_label: "Committed value",
  scenarios: [{ id: "plain", label: "Plain", actions: ["begin", "read", "commit"] }],
  actions: { begin: "BEGIN", read: "Read x", commit: "COMMIT" },
  results: { begin: "open", read: "x = {n}", commit: "committed" },
  verdicts: {
    failed: "rolled back, {start} → {final}",
    kept: "kept, {start} → {final}",
    lost_one: "one lost, {start} → {final}",
    lost_many: "{lost} lost, {start} → {final}",
  },
};

test("templates fill known names and leave unknown ones visible", () => {
  assert.equal(fillTemplate("n = {n}, {missing}", { n: 0 }), "n = 0, {missing}");
});

test("a step's result reads from the server's template for its action", () => {
  assert.equal(resultText(TEXT, { action: "read", status: "done", result: { n: 4 } }), "x = 4");
  assert.equal(resultText(TEXT, { action: "vacuum", status: "done", result: {} }), "done");
  assert.equal(resultText(TEXT, { action: "read", status: "blocked", result: { waiting_for: ["T1"] } }), "blocked — waiting for T1's lock");
  assert.equal(resultText(TEXT, { action: "read", status: "error", result: { message: "deadlock" } }), "error: deadlock (rolled back)");
  assert.equal(
    resultText(TEXT, { action: "read", status: "error", result: { message: "deadlock detected", sqlstate: "40P01", detail: "Process 7 waits for ShareLock." } }),
    "error: deadlock detected, SQLSTATE 40P01 (rolled back) — Process 7 waits for ShareLock",
  );
});

test("the verdict counts what fell short of one per commit", () => {
  assert.equal(verdictText(TEXT, { start: 0, final: 2, committed: 2, failed: false }), "kept, 0 → 2");
  assert.equal(verdictText(TEXT, { start: 0, final: 1, committed: 2, failed: false }), "one lost, 0 → 1");
  assert.equal(verdictText(TEXT, { start: 0, final: 1, committed: 3, failed: false }), "2 lost, 0 → 1");
  assert.equal(verdictText(TEXT, { start: 0, final: 1, committed: 1, failed: true }), "rolled back, 0 → 1");
  assert.equal(lostUpdates({ start: 0, final: 1, committed: 2, failed: false }), true);
  assert.equal(lostUpdates({ start: 0, final: 1, committed: 2, failed: true }), false);
});

test("a transaction's state line names its next statement by the server's label", () => {
  const base = { started: true, blocked: null, busy: false, failed: false, next: 1, actions: ["begin", "read", "commit"] };
  assert.equal(transactionStateText(TEXT, base), "In a transaction; next: Read x.");
  assert.equal(transactionStateText(TEXT, { ...base, started: false }), "Not connected.");
  assert.equal(transactionStateText(TEXT, { ...base, blocked: "T2" }), "Blocked — waiting for T2's lock.");
  assert.equal(transactionStateText(TEXT, { ...base, next: 3 }), "Committed.");
  assert.equal(transactionStateText(TEXT, { ...base, next: 0 }), "Idle: no transaction yet.");
});

test("the page's data-step-mode is checked, not trusted", () => {
  assert.deepEqual(parseStepModeText(JSON.stringify(TEXT)), TEXT);
  assert.throws(() => parseStepModeText(undefined), /no data-step-mode/);
  assert.throws(() => parseStepModeText(JSON.stringify({ ...TEXT, scenarios: [] })), /no scenarios/);
  const { verdicts, ...noVerdicts } = TEXT;
  assert.throws(() => parseStepModeText(JSON.stringify(noVerdicts)), /no verdicts/);
});

test("a scenario may list different statements per transaction", () => {
  const scenario = { id: "crossed", label: "Crossed", actions: ["a", "b"], actions_by_tx: { T2: ["b", "a"] } };
  assert.deepEqual(scenarioActions(scenario, "T1"), ["a", "b"]);
  assert.deepEqual(scenarioActions(scenario, "T2"), ["b", "a"]);
  assert.deepEqual(scenarioActions(TEXT.scenarios[0], "T2"), ["begin", "read", "commit"]);
  assert.deepEqual(scenarioActions(undefined, "T1"), []);
});
