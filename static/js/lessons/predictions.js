/*
 * A lesson's prediction blocks, live: the reader guesses (a number in the
 * block's unit, or one of its choices) or skips, then presses Run; when the
 * run has finished (both sides, for a compare) the guess is shown beside the
 * measured value, with whether it was close and the author's explanation.
 *
 * The server HTML (lessons/predictions.py) carries the block as
 * data-prediction; the demo widget it follows moves it above its Run button
 * and announces its runs on `document`:
 *   coursesite:demo-started  {demo, block, compare}
 *   coursesite:demo-finished {demo, block, runs, status, compare, summaries, params, summaryFields}
 * This module answers with coursesite:prediction {block, answer, skipped, close, runs} and stores the
 * prediction through POST /api/predictions/ (a failure says "not saved" and hides nothing).
 */
import { el, replaceChildren } from "../demos/dom.js";
import { formatNumber } from "../demos/format.js";
import { guessProblem, isClose, measuredValue, parseGuess, toleranceText } from "./closeness.js";
import { postPrediction } from "./reader.js";

/** @typedef {import("./closeness.js").PredictionBlock} PredictionBlock */

/**
 * A number with the block's unit: "212 ms", "9.5×".
 * @param {unknown} value
 * @param {string} unit
 */
export function withUnit(value, unit) {
  if (typeof value !== "number") return String(value);
  if (unit === "x" || unit === "×") return `${formatNumber(value)}×`;
  return unit ? `${formatNumber(value)} ${unit}` : formatNumber(value);
}

/**
 * The words for a choice key ("A" -> "Run A finishes first"), or the raw value.
 * @param {PredictionBlock} block
 * @param {unknown} key
 */
function choiceLabel(block, key) {
  const choice = (block.choices ?? []).find((candidate) => candidate.key === key);
  return choice ? choice.label : String(key);
}

/**
 * True when every preset the lesson gave is what the run used.
 * @param {Record<string, unknown>[]} presets
 * @param {Array<Record<string, unknown> | null>} used
 */
function samePresets(presets, used) {
  if (!presets.length) return true;
  return presets.every((preset, index) => {
    const params = used[index];
    return !params || Object.entries(preset).every(([name, value]) => params[name] === value);
  });
}

export class PredictionPanel {
  /** @param {HTMLElement} element a div.prediction[data-prediction] */
  constructor(element) {
    this.element = element;
    /** @type {PredictionBlock} */
    this.block = JSON.parse(element.dataset.prediction ?? "{}");
    /** @type {number | string | null} */
    this.answer = null;
    this.state = "open"; // open -> locked (answered or skipped) -> running -> done
    const questionNode = element.querySelector(".prediction-question");
    const questionId = `${this.block.id}-question`;
    questionNode?.setAttribute("id", questionId);
    element.querySelector(".prediction-fallback")?.remove();
    // The explanation the server rendered (with the author's inline Markdown), shown once the run is in.
    const details = element.querySelector(".prediction-explain");
    this.explainHtml = details?.querySelector("p")?.innerHTML ?? "";
    details?.remove();

    /** @type {HTMLElement} */
    this.status = el("p", { className: "prediction-status", role: "status", "aria-live": "polite" });
    /** @type {HTMLElement} */
    this.result = el("div", { className: "prediction-result", hidden: true });
    /** @type {HTMLElement} */
    this.chosen = el("p", { className: "prediction-chosen", hidden: true });
    /** @type {HTMLButtonElement} */
    this.changeButton = el("button", { type: "button", className: "prediction-button", hidden: true, onclick: () => this.reopen() }, "Change my guess");
    /** @type {HTMLElement | null} */
    this.problem = el("p", { className: "prediction-problem", id: `${this.block.id}-problem`, hidden: true });
    // Not a named <form>: that would make each a landmark; the group around it carries the question as its name.
    this.form = this.block.answer === "choice" ? this.choiceForm() : this.numberForm();
    element.classList.add("is-live");
    element.setAttribute("role", "group");
    element.setAttribute("aria-labelledby", questionId);
    element.append(this.form, this.chosen, this.changeButton, this.result, this.status);
    this.hint();
    document.addEventListener("coursesite:demo-started", (event) => this.started(/** @type {CustomEvent} */ (event).detail));
    document.addEventListener("coursesite:demo-finished", (event) => this.finished(/** @type {CustomEvent} */ (event).detail));
  }

  numberForm() {
    const block = this.block;
    const inputId = `${block.id}-guess`;
    const unitText = block.unit === "x" ? "× (larger ÷ smaller)" : block.unit;
    /** @type {HTMLInputElement} */
    this.input = el("input", {
      type: "number", id: inputId, className: "prediction-input", step: "any", inputmode: "decimal",
      min: block.range?.[0], max: block.range?.[1], "aria-describedby": unitText ? `${block.id}-unit ${block.id}-problem` : `${block.id}-problem`,
    });
    return el(
      "form",
      { className: "prediction-form", novalidate: true, onsubmit: (event) => this.lock(event) },
      el("label", { for: inputId, className: "prediction-label" }, "Your guess"),
      el("span", { className: "prediction-field" }, this.input, unitText ? el("span", { className: "prediction-unit", id: `${block.id}-unit` }, unitText) : null),
      this.buttons(),
      this.problem,
    );
  }

  choiceForm() {
    const block = this.block;
    /** @type {HTMLInputElement[]} */
    this.radios = [];
    const options = (block.choices ?? []).map((choice, index) => {
      const id = `${block.id}-choice-${index}`;
      const radio = el("input", { type: "radio", id, name: `${block.id}-choice`, value: choice.key });
      this.radios?.push(radio);
      return el("div", { className: "prediction-option" }, radio, el("label", { for: id }, choice.label));
    });
    return el(
      "form",
      { className: "prediction-form", novalidate: true, onsubmit: (event) => this.lock(event) },
      el("fieldset", { className: "prediction-choices" }, el("legend", { className: "prediction-label" }, "Your guess"), options),
      this.buttons(),
      this.problem,
    );
  }

  buttons() {
    return el(
      "div",
      { className: "prediction-actions" },
      el("button", { type: "submit", className: "prediction-button prediction-lock" }, "Lock in my guess"),
      el("button", { type: "button", className: "prediction-button prediction-skip", onclick: () => this.skip() }, "Skip"),
    );
  }

  hint() {
    const which = this.block.compare ? "Run both" : "Run";
    this.say(`Guess before you press ${which}; the demo's own measurement is set beside your guess.`);
  }

  /** @param {string} text */
  say(text) {
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  /** @param {string} text */
  showProblem(text) {
    if (!this.problem) return;
    this.problem.textContent = text;
    this.problem.hidden = !text;
    this.input?.setAttribute("aria-invalid", text ? "true" : "false");
  }

  /** The answer in the form: {answer} when it is valid, {problem} when not, {answer: null} when empty. */
  readForm() {
    if (this.block.answer === "choice") {
      const picked = (this.radios ?? []).find((radio) => radio.checked);
      return picked ? { answer: picked.value, problem: "" } : { answer: null, problem: "" };
    }
    const text = this.input?.value ?? "";
    const badInput = this.input?.validity.badInput;
    if (!text.trim() && !badInput) return { answer: null, problem: "" };
    const problem = badInput ? "That is not a number." : guessProblem(this.block, text);
    return problem ? { answer: null, problem } : { answer: parseGuess(text), problem: "" };
  }

  /** @param {Event} event */
  lock(event) {
    event.preventDefault();
    const { answer, problem } = this.readForm();
    if (problem || answer === null) {
      this.showProblem(problem || (this.block.answer === "choice" ? "Pick one of the choices first, or choose Skip." : "Type a number first, or choose Skip."));
      (this.input ?? this.radios?.[0])?.focus();
      return;
    }
    this.settle(answer);
  }

  skip() {
    this.settle(null);
  }

  /**
   * @param {number | string | null} answer
   * @param {boolean} [moveFocus] hand focus to Run (the next thing to press); not when a run has just started
   */
  settle(answer, moveFocus = true) {
    this.answer = answer;
    this.state = "locked";
    this.showProblem("");
    this.form.hidden = true;
    this.chosen.hidden = false;
    this.changeButton.hidden = false;
    this.chosen.textContent = answer === null ? "You skipped the guess." : `Your guess: ${this.answerText(answer)}.`;
    const which = this.block.compare ? "Run both" : "Run";
    this.say(answer === null ? `Skipped. Press ${which} to see the measurement.` : `Guess locked in. Press ${which} to check it.`);
    if (!moveFocus) return;
    const run = this.element.closest("section.demo")?.querySelector("button.demo-run");
    if (run instanceof HTMLButtonElement && !run.disabled) run.focus();
    else this.changeButton.focus();
  }

  reopen() {
    if (this.state === "running") return;
    this.state = "open";
    this.form.hidden = false;
    this.chosen.hidden = true;
    this.changeButton.hidden = true;
    this.result.hidden = true;
    this.element.classList.remove("is-close", "is-far", "is-done");
    this.hint();
    (this.input ?? this.radios?.find((radio) => radio.checked) ?? this.radios?.[0])?.focus();
  }

  /** @param {number | string} answer */
  answerText(answer) {
    return this.block.answer === "choice" ? `“${choiceLabel(this.block, answer)}”` : withUnit(answer, this.block.unit);
  }

  /** @param {{block?: string}} detail */
  mine(detail) {
    return Boolean(detail && detail.block && detail.block === this.block.demo_section);
  }

  /** @param {{block?: string, compare?: boolean}} detail */
  started(detail) {
    if (!this.mine(detail)) return;
    if (Boolean(detail.compare) !== Boolean(this.block.compare)) {
      this.say(this.block.compare
        ? "This question is about two runs side by side: choose Compare A/B, then Run both, to check it."
        : "This question is about a single run: choose One run, then Run, to check it.");
      return;
    }
    if (this.state === "open") {
      const { answer, problem } = this.readForm();
      this.settle(problem ? null : answer, false);
    } else if (this.state === "done") {
      return; // already compared; "Guess again" starts a new guess for the next run
    }
    this.state = "running";
    this.changeButton.hidden = true;
    this.say("Running… your guess is compared when the run is done.");
  }

  /**
   * @param {{block?: string, compare?: boolean, runs?: string[], status?: string, summaries?: any[],
   *   params?: any[], summaryFields?: Record<string, {label: string, unit: string}>}} detail
   */
  finished(detail) {
    if (!this.mine(detail) || this.state !== "running") return;
    if (detail.status !== "succeeded") {
      this.state = "locked";
      this.changeButton.hidden = false;
      this.say(`The run ended without a result (${String(detail.status).replace("_", " ")}), so there is nothing to compare yet. Run it again.`);
      return;
    }
    const summaries = detail.summaries ?? [];
    const measured = measuredValue(this.block, summaries);
    const close = isClose(this.block, this.answer, measured);
    this.state = "done";
    this.show(measured, close, detail);
    const runs = detail.runs ?? [];
    document.dispatchEvent(new CustomEvent("coursesite:prediction", {
      detail: { block: this.block.id, answer: this.answer, skipped: this.answer === null, close, runs },
    }));
    this.save(runs);
  }

  /**
   * @param {number | string | null} measured
   * @param {boolean | null} close
   * @param {{summaries?: any[], params?: any[], summaryFields?: Record<string, {label: string, unit: string}>}} detail
   */
  show(measured, close, detail) {
    const block = this.block;
    const rows = [["Your guess", this.answer === null ? "skipped" : this.answerText(this.answer)]];
    const keyUnit = detail.summaryFields?.[block.key]?.unit ?? (block.measure === "ratio" ? "" : block.unit);
    if (block.compare) {
      (detail.summaries ?? []).forEach((summary, index) => {
        rows.push([`Measured, run ${index ? "B" : "A"}`, withUnit(summary?.[block.key], keyUnit)]);
      });
    }
    const measuredText = measured === null ? "not measurable from this run"
      : block.answer === "choice" ? `“${choiceLabel(block, measured)}”` : withUnit(measured, block.unit);
    rows.push([block.compare ? (block.measure === "ratio" ? "Measured ratio" : "Measured outcome") : "Measured", measuredText]);
    let verdict;
    if (close === null) verdict = this.answer === null ? "You skipped the guess; above is what the run measured." : "This run's summary does not say, so it cannot be compared.";
    else if (block.answer === "choice") verdict = close ? "Right: that is what the run measured." : "Not this time: the run measured something else.";
    else verdict = close ? `Close: within ${toleranceText(block.tolerance, block.unit)} of the measurement.`
      : `Not close: more than ${toleranceText(block.tolerance, block.unit)} away from the measurement.`;
    const presets = JSON.parse(this.element.closest("section.demo")?.getAttribute("data-configs") ?? "[]");
    const changed = !samePresets(Array.isArray(presets) ? presets : [], detail.params ?? []);
    const explain = el("p", { className: "prediction-explanation" });
    explain.innerHTML = this.explainHtml; // the server's sanitised rendering of the author's sentence
    /** @type {HTMLElement} */
    this.saveStatus = el("p", { className: "prediction-saved" }, "Saving your guess…");
    replaceChildren(this.result,
      el("dl", { className: "prediction-values" }, rows.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value)))),
      el("p", { className: `prediction-verdict ${close === true ? "is-close" : close === false ? "is-far" : ""}` },
        close === null ? null : el("span", { className: "prediction-mark", "aria-hidden": "true" }, close ? "✓ " : "✗ "), verdict),
      changed ? el("p", { className: "prediction-note" }, "You changed the demo's settings; the question was asked about the lesson's settings.") : null,
      explain,
      this.saveStatus,
      el("button", { type: "button", className: "prediction-button", onclick: () => this.reopen() }, "Guess again"),
    );
    this.result.hidden = false;
    this.chosen.hidden = true;
    this.element.classList.add("is-done"); // the result is on screen; the status line stays for screen readers only
    this.element.classList.toggle("is-close", close === true);
    this.element.classList.toggle("is-far", close === false);
    this.say(`${rows.map(([term, value]) => `${term}: ${value}`).join(". ")}. ${verdict}`);
  }

  /** @param {string[]} runs */
  async save(runs) {
    const status = this.saveStatus;
    const lesson = Number(this.element.closest("[data-lesson-id]")?.getAttribute("data-lesson-id"));
    try {
      if (!Number.isInteger(lesson) || lesson <= 0) throw new Error("this page does not say which lesson it is");
      await postPrediction({ lesson, block: this.block.id, answer: this.answer, runs });
      if (status) status.textContent = "Saved (anonymously).";
    } catch (error) {
      if (status) status.textContent = `Not saved: ${error instanceof Error ? error.message : String(error)}. The comparison above stands.`;
    }
  }
}

/** Make every prediction block on the page live. */
export function bootPredictions() {
  return [...document.querySelectorAll("div.prediction[data-prediction]")].map((element) => new PredictionPanel(/** @type {HTMLElement} */ (element)));
}
