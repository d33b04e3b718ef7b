// What step mode says, filled from the words the server renders into the page.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  fillTemplate, goalStatus, laneStateText, lostUpdates, parseStepModeText, replayedText, resultText, scenarioActions, sourceLines,
  stepBackSchedule, stepWords, transactionStateText, verdictText,
} from "../../static/js/demos/stepper-text.js";

const LEVEL = { goal: "Lose one.", reachable: true, reached: "Lost: {counter} after {committed}.", missed: "Kept: {counter} after {committed}." };
const FIXED = { ...LEVEL, reachable: false, missed: "The lock makes {committed} commits give {counter}." };

const TEXT = {
  title: "Try it",
  intro: "Two transactions.",
  value_label: "Committed value",
  scenarios: [{ id: "plain", label: "Plain", actions: ["begin", "read", "commit"], level: LEVEL }],
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
  const { level, ...noLevel } = TEXT.scenarios[0];
  assert.throws(() => parseStepModeText(JSON.stringify({ ...TEXT, scenarios: [noLevel] })), /scenario plain needs a level/);
  const vague = { ...TEXT.scenarios[0], level: { ...LEVEL, reachable: "maybe" } };
  assert.throws(() => parseStepModeText(JSON.stringify({ ...TEXT, scenarios: [vague] })), /needs a level/);
});

test("a goal is not yet until the server judges it, and only a fixed level is called unreachable", () => {
  assert.deepEqual(goalStatus(LEVEL, { status: "pending" }), { label: "Not yet", text: "Choose which transaction steps next." });
  assert.deepEqual(goalStatus(FIXED, { status: "pending" }).label, "Not yet");
  assert.deepEqual(goalStatus(LEVEL, { status: "reached", evidence: { counter: 1, committed: 2 } }), { label: "Reached", text: "Lost: 1 after 2." });
  assert.deepEqual(goalStatus(LEVEL, { status: "missed", evidence: { counter: 2, committed: 2 } }),
    { label: "Not reached this time", text: "Kept: 2 after 2." });
  assert.deepEqual(goalStatus(FIXED, { status: "missed", evidence: { counter: 2, committed: 2 } }),
    { label: "Cannot be reached", text: "The lock makes 2 commits give 2." });
});

test("step back replays every statement but the last, and leaves the reader's schedule alone", () => {
  /** @type {Array<[string, string]>} */
  const schedule = [["T1", "begin"], ["T2", "begin"], ["T1", "read"]];
  const replay = stepBackSchedule(schedule);
  assert.deepEqual(replay, [["T1", "begin"], ["T2", "begin"]]);
  assert.equal(schedule.length, 3);
  replay[0][0] = "T2";
  assert.equal(schedule[0][0], "T1", "the replay is a copy");
  assert.deepEqual(stepBackSchedule([["T1", "begin"]]), []);
  assert.deepEqual(stepBackSchedule([]), []);
});

test("a replay that stopped short says where and why the server may differ", () => {
  assert.deepEqual(replayedText(TEXT, { steps: 2, of: 2 }, [["T1", "begin"], ["T1", "read"]]).alert, "");
  assert.match(replayedText(TEXT, { steps: 2, of: 2 }, []).status, /first 2 statements ran again/);
  const short = replayedText(TEXT, { steps: 1, of: 2 }, [["T1", "begin"], ["T1", "read"]]);
  assert.equal(short.status, "Stepped back, but only 1 of 2 statements ran again.");
  assert.match(short.alert, /would not run step 2 \(T1: Read x\)/);
});

test("a scenario may list different statements per transaction", () => {
  const scenario = { id: "crossed", label: "Crossed", actions: ["a", "b"], actions_by_tx: { T2: ["b", "a"] } };
  assert.deepEqual(scenarioActions(scenario, "T1"), ["a", "b"]);
  assert.deepEqual(scenarioActions(scenario, "T2"), ["b", "a"]);
  assert.deepEqual(scenarioActions(TEXT.scenarios[0], "T2"), ["begin", "read", "commit"]);
  assert.deepEqual(scenarioActions(undefined, "T1"), []);
});

const TASKS = {
  ...TEXT,
  lane_states: { queued: "queued", running: "running", waiting: "waiting at {line}", "lock-wait": "lock-wait for {holder}", done: "done: {outcome}" },
  words: { opened: "Loop ready; press {first}.", blocked_result: "lock-wait: {holder} holds it" },
  verdicts: { ...TEXT.verdicts, ended: "stock {start} → {final}" },
};

test("a task's column says its lane state from the sandbox's snapshot, running while its step is out", () => {
  assert.equal(laneStateText(TASKS, { started: false, busy: false, blocked: null }), "Not started.");
  assert.equal(laneStateText(TASKS, { started: true, busy: false, blocked: null }), "queued");
  assert.equal(laneStateText(TASKS, { started: true, busy: true, blocked: null, snapshot: { state: "queued" } }), "running");
  const waiting = { state: "lock-wait", line: 2, holder: "T1" };
  assert.equal(laneStateText(TASKS, { started: true, busy: true, blocked: "T1", snapshot: waiting }), "lock-wait for T1");
  assert.equal(laneStateText(TASKS, { started: true, busy: false, blocked: null, snapshot: { state: "done", outcome: "sold out" } }), "done: sold out");
});

test("a demo's own status words replace the transaction ones, and the rest keep the defaults", () => {
  assert.equal(stepWords(TASKS, "opened", { first: "Run" }), "Loop ready; press Run.");
  assert.equal(stepWords(TASKS, "ended"), stepWords(TEXT, "ended"));
  assert.equal(resultText(TASKS, { action: "start", status: "blocked", result: { waiting_for: ["T2"] } }), "lock-wait: T2 holds it");
  assert.equal(resultText(TEXT, { action: "read", status: "blocked", result: { waiting_for: ["T2"] } }), "blocked — waiting for T2's lock");
  assert.equal(goalStatus(LEVEL, { status: "pending" }, "Pick a task.").text, "Pick a task.");
});

test("an `ended` verdict is one neutral sentence, never flagged as a loss", () => {
  const outcome = { start: 1, final: -1, committed: 0, failed: false };
  assert.equal(verdictText(TASKS, outcome), "stock 1 → -1");
  assert.equal(lostUpdates(outcome, TASKS), false);
  assert.equal(lostUpdates(outcome, TEXT), true);
});

test("the source listing marks each unfinished task on its current line", () => {
  const lines = sourceLines(["async def f():", "    await g()"], { T1: { state: "waiting", line: 2 }, T2: { state: "done", line: 2 } });
  assert.deepEqual(lines, [{ number: 1, code: "async def f():", marks: "" }, { number: 2, code: "    await g()", marks: "◀ T1 waiting" }]);
});
