// When a reader's prediction counts as close, and what a run measured for it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { guessProblem, isClose, measuredValue, parseGuess, quizNumberRight, toleranceText } from "../../static/js/lessons/closeness.js";

const number = (extra = {}) => ({ id: "p", answer: "number", key: "total_ms", measure: "value", unit: "ms",
  tolerance: { relative: 0.25 }, range: [0, 20000], choices: null, compare: false, question: "", explain: "", demo: "d", ...extra });
const faster = { ...number(), answer: "choice", measure: "faster", compare: true, tolerance: null, range: null,
  choices: [{ key: "A", label: "A" }, { key: "B", label: "B" }, { key: "same", label: "Same" }] };

test("a number guess within a relative tolerance of the measured value is close, outside it is not", () => {
  const block = number();
  const measured = measuredValue(block, [{ total_ms: 200 }]);
  assert.equal(measured, 200);
  assert.equal(isClose(block, 240, measured), true);
  assert.equal(isClose(block, 250, measured), true);
  assert.equal(isClose(block, 251, measured), false);
  assert.equal(isClose(block, 2000, measured), false);
});

test("an absolute tolerance is a distance in the answer's unit", () => {
  const block = number({ tolerance: { absolute: 50 } });
  assert.equal(isClose(block, 1049, 1000), true);
  assert.equal(isClose(block, 1051, 1000), false);
});

test("skipping or a summary without the key gives no verdict rather than a wrong one", () => {
  const block = number();
  assert.equal(isClose(block, null, 200), null);
  assert.equal(measuredValue(block, [{ other: 1 }]), null);
  assert.equal(isClose(block, 200, null), null);
  assert.equal(measuredValue(block, [{ total_ms: 1 }, { total_ms: 2 }]), null, "one-run question, two runs");
});

test("a choice is right when it names the summary's value; booleans read as true/false", () => {
  const block = { ...number(), answer: "choice", key: "lost_any", tolerance: null, choices: [{ key: "true", label: "Yes" }, { key: "false", label: "No" }] };
  assert.equal(measuredValue(block, [{ lost_any: true }]), "true");
  assert.equal(isClose(block, "true", "true"), true);
  assert.equal(isClose(block, "false", "true"), false);
  assert.equal(measuredValue({ ...block, key: "lost" }, [{ lost: 3 }]), "3");
});

test("faster names the side with the smaller value, or the same within 10%", () => {
  assert.equal(measuredValue(faster, [{ total_ms: 210 }, { total_ms: 2010 }]), "A");
  assert.equal(measuredValue(faster, [{ total_ms: 2010 }, { total_ms: 210 }]), "B");
  assert.equal(measuredValue(faster, [{ total_ms: 1000 }, { total_ms: 1090 }]), "same");
  const noSame = { ...faster, choices: faster.choices.slice(0, 2) };
  assert.equal(measuredValue(noSame, [{ total_ms: 1000 }, { total_ms: 1090 }]), "A");
  assert.equal(measuredValue(faster, [{ total_ms: 1 }]), null, "needs both sides");
});

test("ratio is larger over smaller, whichever side is larger, and undefined over zero", () => {
  const ratio = { ...number(), measure: "ratio", unit: "x", compare: true };
  assert.equal(measuredValue(ratio, [{ total_ms: 200 }, { total_ms: 2000 }]), 10);
  assert.equal(measuredValue(ratio, [{ total_ms: 2000 }, { total_ms: 200 }]), 10);
  assert.equal(measuredValue(ratio, [{ total_ms: 0 }, { total_ms: 200 }]), null);
  assert.equal(isClose(ratio, 8, 10), true);
  assert.equal(isClose(ratio, 5, 10), false);
});

test("typed guesses: separators and a trailing x are fine, words and out-of-range numbers are refused in words", () => {
  assert.equal(parseGuess("1,200"), 1200);
  assert.equal(parseGuess(" 2.5x "), 2.5);
  assert.equal(parseGuess("abc"), null);
  assert.equal(guessProblem(number(), ""), "Type a number first, or choose Skip.");
  assert.match(guessProblem(number(), "25000"), /from 0 to 20000 ms/);
  assert.equal(guessProblem(number(), "300"), "");
  assert.equal(toleranceText({ relative: 0.25 }, "ms"), "25%");
  assert.equal(toleranceText({ absolute: 50 }, "ms"), "50 ms");
});

test("a numeric check question takes answers within its tolerance, or exactly without one", () => {
  assert.equal(quizNumberRight({ number: 300, tolerance: { relative: 0.1 } }, 320), true);
  assert.equal(quizNumberRight({ number: 300, tolerance: { relative: 0.1 } }, 340), false);
  assert.equal(quizNumberRight({ number: 4, tolerance: null }, 4), true);
  assert.equal(quizNumberRight({ number: 4, tolerance: null }, 4.5), false);
});
