/*
 * The rule that says whether a reader's prediction was close, on its own so
 * node can test it. The same rule runs on the server (lessons/predictions.py:
 * measured_value, is_close), which recomputes it from the stored runs; the
 * page uses this copy to show the comparison the moment a run finishes.
 *
 * A prediction block (the dict stored on the lesson) says what is measured:
 *   measure "value":  the run's summary[key] (a number, or a choice key:
 *                     true/false and numbers as their text);
 *   measure "faster": the side (A or B) whose summary[key] is smaller, or
 *                     "same" (when offered) if they are within 10%;
 *   measure "ratio":  larger / smaller of the two sides' summary[key].
 */

/** Within this share of the larger value, "faster" calls the sides the same. */
export const SAME_WITHIN = 0.1;

/**
 * @typedef {{absolute?: number, relative?: number}} Tolerance
 * @typedef {{key: string, label: string}} Choice
 * @typedef {{id: string, answer: "number" | "choice", key: string, measure: "value" | "faster" | "ratio",
 *   unit: string, tolerance: Tolerance | null, range: number[] | null, choices: Choice[] | null,
 *   compare: boolean, question: string, explain: string, demo: string, demo_section?: string}} PredictionBlock
 */

/** @param {unknown} value */
function asNumber(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** @param {unknown} value */
function asChoiceKey(value) {
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return null;
}

/**
 * What the run(s) measured for this prediction: a number, a choice key, or null when it cannot be said
 * (a missing key, a zero denominator, the wrong number of runs).
 * @param {PredictionBlock} block
 * @param {Array<Record<string, unknown> | null | undefined>} summaries one per run; side A first
 * @returns {number | string | null}
 */
export function measuredValue(block, summaries) {
  if (block.measure === "value") {
    if (summaries.length !== 1 || !summaries[0]) return null;
    const found = summaries[0][block.key];
    return block.answer === "number" ? asNumber(found) : asChoiceKey(found);
  }
  if (summaries.length !== 2 || !summaries[0] || !summaries[1]) return null;
  const sideA = asNumber(summaries[0][block.key]);
  const sideB = asNumber(summaries[1][block.key]);
  if (sideA === null || sideB === null) return null;
  if (block.measure === "ratio") {
    const smaller = Math.min(sideA, sideB);
    return smaller > 0 ? Math.max(sideA, sideB) / smaller : null;
  }
  const offersSame = (block.choices ?? []).some((choice) => choice.key === "same");
  if (offersSame && Math.abs(sideA - sideB) <= SAME_WITHIN * Math.max(Math.abs(sideA), Math.abs(sideB))) return "same";
  return sideA < sideB ? "A" : sideB < sideA ? "B" : "same";
}

/**
 * The largest distance from the measured value that still counts as close.
 * @param {Tolerance | null} tolerance
 * @param {number} measured
 */
export function allowedDistance(tolerance, measured) {
  if (!tolerance) return 0;
  return (tolerance.absolute ?? 0) + (tolerance.relative ?? 0) * Math.abs(measured);
}

/**
 * Whether the guess was close: true or false, or null when the reader skipped or nothing was measured.
 * @param {PredictionBlock} block
 * @param {number | string | null} answer
 * @param {number | string | null} measured
 * @returns {boolean | null}
 */
export function isClose(block, answer, measured) {
  if (answer === null || answer === undefined || measured === null) return null;
  if (block.answer === "choice") return String(answer) === measured;
  const guess = asNumber(answer);
  if (guess === null || typeof measured !== "number") return null;
  return Math.abs(guess - measured) <= allowedDistance(block.tolerance, measured);
}

/**
 * A number the reader typed, or null: accepts "1,200", "1 200", "0.5", "2.5x".
 * @param {string} text
 * @returns {number | null}
 */
export function parseGuess(text) {
  const cleaned = text.trim().replace(/[\s,_]/g, "").replace(/[x×]$/i, "");
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(cleaned)) return null;
  const number = Number(cleaned);
  return Number.isFinite(number) ? number : null;
}

/**
 * Why a typed guess is refused, in words, or "" when it is fine.
 * @param {PredictionBlock | {range?: number[] | null, unit?: string}} block
 * @param {string} text
 */
export function guessProblem(block, text) {
  if (!text.trim()) return "Type a number first, or choose Skip.";
  const guess = parseGuess(text);
  if (guess === null) return `“${text.trim()}” is not a number.`;
  const range = block.range;
  if (range && (guess < range[0] || guess > range[1])) {
    return `Give a number from ${range[0]} to ${range[1]}${block.unit && block.unit !== "x" ? ` ${block.unit}` : ""}.`;
  }
  return "";
}

/**
 * "25%" or "50 ms": the tolerance in words.
 * @param {Tolerance | null} tolerance
 * @param {string} unit
 */
export function toleranceText(tolerance, unit) {
  if (!tolerance) return "";
  if (tolerance.relative !== undefined) return `${Math.round(tolerance.relative * 1000) / 10}%`;
  return `${tolerance.absolute}${unit && unit !== "x" ? ` ${unit}` : ""}`;
}

/**
 * Whether a numeric check question was answered right: within its tolerance of the right number (exact without one).
 * @param {{number: number | null, tolerance: Tolerance | null}} quiz
 * @param {number | null} guess
 */
export function quizNumberRight(quiz, guess) {
  if (guess === null || typeof quiz.number !== "number") return false;
  const allowed = quiz.tolerance ? allowedDistance(quiz.tolerance, quiz.number) : 1e-9 * Math.max(1, Math.abs(quiz.number));
  return Math.abs(guess - quiz.number) <= allowed;
}
