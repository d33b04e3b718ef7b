/*
 * Check questions, live. Without JavaScript a quiz is the question, its
 * choices as a list and the answer inside <details> (lessons/quizzes.py);
 * here the list becomes a radio group (or a number input) with a Check
 * button, and checking shows the explanation of the answer chosen, saying
 * right or wrong in words as well as colour. The <details> stays, for a
 * reader who wants every explanation. Each check dispatches
 * coursesite:quiz-answered {block, correct} on `document`.
 */
import { el, replaceChildren } from "../demos/dom.js";
import { formatNumber } from "../demos/format.js";
import { parseGuess, quizNumberRight } from "./closeness.js";

/**
 * @typedef {{key: string, label: string, correct: boolean, explain: string}} QuizChoice
 * @typedef {{id: string, question: string, answer: "choice" | "number", choices: QuizChoice[] | null,
 *   number: number | null, tolerance: import("./closeness.js").Tolerance | null, unit: string, explain: string}} QuizBlock
 */

export class QuizPanel {
  /** @param {HTMLElement} element a div.quiz[data-quiz] */
  constructor(element) {
    this.element = element;
    /** @type {QuizBlock} */
    this.block = JSON.parse(element.dataset.quiz ?? "{}");
    const block = this.block;
    const question = element.querySelector(".quiz-question");
    const questionId = `${block.id}-question`;
    question?.setAttribute("id", questionId);
    /** @type {HTMLElement} */
    this.feedback = el("div", { className: "quiz-feedback", role: "status", "aria-live": "polite" });
    /** @type {HTMLElement} */
    this.problem = el("p", { className: "quiz-problem", id: `${block.id}-problem`, hidden: true });
    const inputs = block.answer === "choice" ? this.choiceInputs() : this.numberInput();
    const form = el(
      "form",
      { className: "quiz-form", novalidate: true, onsubmit: (event) => this.check(event) },
      inputs,
      el("div", { className: "quiz-actions" }, el("button", { type: "submit", className: "quiz-check" }, "Check")),
      this.problem,
    );
    element.querySelector(".quiz-choices")?.remove();
    element.querySelector(".quiz-number-hint")?.remove();
    const answer = element.querySelector(".quiz-answer");
    answer?.querySelector("summary")?.replaceChildren("Show every answer and why");
    element.classList.add("is-live");
    element.setAttribute("role", "group");
    element.setAttribute("aria-labelledby", questionId);
    if (answer) element.insertBefore(form, answer);
    else element.append(form);
    element.insertBefore(this.feedback, answer ?? null);
  }

  choiceInputs() {
    const block = this.block;
    /** @type {HTMLInputElement[]} */
    this.radios = [];
    const options = (block.choices ?? []).map((choice) => {
      const id = `${block.id}-${choice.key}-input`;
      const radio = el("input", { type: "radio", id, name: `${block.id}-answer`, value: choice.key });
      this.radios?.push(radio);
      const label = el("label", { for: id });
      // The server's rendering of the label (inline code, emphasis), already sanitised.
      label.innerHTML = this.element.querySelector(`#${CSS.escape(`${block.id}-${choice.key}`)}`)?.innerHTML ?? "";
      if (!label.textContent) label.textContent = choice.label;
      return el("div", { className: "quiz-option" }, radio, label);
    });
    return el("fieldset", { className: "quiz-options", "aria-describedby": `${block.id}-problem` },
      el("legend", { className: "quiz-legend" }, "Your answer"), options);
  }

  numberInput() {
    const block = this.block;
    const id = `${block.id}-input`;
    /** @type {HTMLInputElement} */
    this.input = el("input", { type: "number", id, className: "quiz-input", step: "any", inputmode: "decimal",
      "aria-describedby": `${block.id}-problem` });
    return el("div", { className: "quiz-number" },
      el("label", { for: id, className: "quiz-legend" }, "Your answer"),
      el("span", { className: "quiz-field" }, this.input, block.unit ? el("span", { className: "quiz-unit" }, block.unit) : null));
  }

  /** @param {string} text */
  showProblem(text) {
    this.problem.textContent = text;
    this.problem.hidden = !text;
  }

  /**
   * The server's sanitised explanation of one choice (without the label it starts with).
   * @param {string} key
   */
  explanationOf(key) {
    const item = this.element.querySelector(`#${CSS.escape(`${this.block.id}-${key}-why`)}`);
    if (!item) return null;
    const copy = /** @type {HTMLElement} */ (item.cloneNode(true));
    copy.querySelector("strong")?.remove();
    const paragraph = el("p", { className: "quiz-explanation" });
    paragraph.innerHTML = copy.innerHTML.trim();
    return paragraph;
  }

  /** @param {Event} event */
  check(event) {
    event.preventDefault();
    const block = this.block;
    let correct;
    let said;
    let explanation = null;
    if (block.answer === "choice") {
      const picked = (this.radios ?? []).find((radio) => radio.checked);
      if (!picked) {
        this.showProblem("Choose an answer first.");
        this.radios?.[0]?.focus();
        return;
      }
      const choice = (block.choices ?? []).find((candidate) => candidate.key === picked.value);
      correct = Boolean(choice?.correct);
      said = correct ? "Right." : "Not quite.";
      explanation = this.explanationOf(picked.value);
    } else {
      const guess = parseGuess(this.input?.value ?? "");
      if (guess === null) {
        this.showProblem(this.input?.value ? "That is not a number." : "Type a number first.");
        this.input?.focus();
        return;
      }
      const unit = block.unit ? ` ${block.unit}` : "";
      correct = quizNumberRight(block, guess);
      if (correct) {
        said = `Right: ${formatNumber(guess)}${unit}.`;
        explanation = el("p", { className: "quiz-explanation" });
        explanation.innerHTML = this.element.querySelector(".quiz-answer .quiz-explain")?.innerHTML ?? "";
      } else {
        const direction = typeof block.number === "number" && guess > block.number ? "too high" : "too low";
        said = `Not quite: ${formatNumber(guess)}${unit} is ${direction}. Try again, or open the answer below.`;
      }
    }
    this.showProblem("");
    this.element.classList.toggle("is-right", correct);
    this.element.classList.toggle("is-wrong", !correct);
    replaceChildren(this.feedback,
      el("p", { className: `quiz-verdict ${correct ? "is-right" : "is-wrong"}` },
        el("span", { className: "quiz-mark", "aria-hidden": "true" }, correct ? "✓ " : "✗ "), said),
      explanation,
    );
    document.dispatchEvent(new CustomEvent("coursesite:quiz-answered", { detail: { block: block.id, correct } }));
  }
}

/** Make every check question on the page live. */
export function bootQuizzes() {
  return [...document.querySelectorAll("div.quiz[data-quiz]")].map((element) => new QuizPanel(/** @type {HTMLElement} */ (element)));
}
