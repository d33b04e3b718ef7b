/*
 * Parameter inputs generated from a demo's declaration (GET /api/demos/SLUG/).
 *
 * int → number input (min/max/step=1), choice → select, bool → checkbox,
 * text → text input, or the code editor (code-panel.js) when multi-line,
 * each with a visible label and its help text (aria-describedby). Single
 * mode lays the fields out in a grid; compare mode shows one row per
 * parameter with an A and a B input, so the two settings read side by side.
 * The server validates again; these checks only save a round trip.
 */
import { CodeEditor, lineCount } from "./code-panel.js";
import { el, uniqueId } from "./dom.js";
import { formatNumber } from "./format.js";

/**
 * One parameter's input element.
 * @param {Record<string, any>} param  the declaration's entry for it
 * @param {unknown} value
 * @param {{id: string, describedBy?: string, label?: string}} attributes  `label` names it when no <label> does (compare mode)
 * @returns {HTMLInputElement | HTMLSelectElement | null}
 */
function inputFor(param, value, { id, describedBy, label }) {
  const common = { id, name: param.name, "aria-describedby": describedBy, "aria-label": label };
  if (param.type === "int") {
    return el("input", {
      ...common,
      type: "number",
      inputmode: "numeric",
      min: param.min,
      max: param.max,
      step: 1,
      required: true,
      value: value ?? param.default,
      className: "demo-input",
    });
  }
  if (param.type === "choice") {
    const select = el(
      "select",
      { ...common, className: "demo-input" },
      param.choices.map((choice) => el("option", { value: choice }, choice)),
    );
    select.value = value ?? param.default;
    return select;
  }
  if (param.type === "bool") {
    const checkbox = el("input", { ...common, type: "checkbox", className: "demo-checkbox" });
    checkbox.checked = Boolean(value ?? param.default);
    return checkbox;
  }
  if (param.type === "text" && !param.multiline) {
    const input = el("input", { ...common, type: "text", className: "demo-input", minlength: param.min_length || undefined, maxlength: param.max_length, required: param.min_length > 0, spellcheck: "false" });
    input.value = String(value ?? param.default);
    return input;
  }
  return null; // a parameter type this widget does not know: the server default applies
}

function readInput(param, input) {
  if (param.type === "int") return Number.parseInt(input.value, 10);
  if (param.type === "bool") return input.checked;
  return input.value;
}

/** A multi-line text parameter (a program): its editor, with the textarea as the input. */
function isProgram(param) {
  return param.type === "text" && Boolean(param.multiline);
}

function hint(param) {
  if (param.type !== "int") return param.help || "";
  const range = `${formatNumber(param.min)}–${formatNumber(param.max)}`;
  return param.help ? `${param.help} (${range})` : `From ${range}.`;
}

/** B's starting values when a reader switches to compare: A with the first choice flipped. */
export function contrastingValues(params, values) {
  const next = { ...values };
  const choice = params.find((param) => param.type === "choice" && param.choices.length > 1);
  if (choice) {
    const current = choice.choices.indexOf(values[choice.name]);
    next[choice.name] = choice.choices[(current + 1) % choice.choices.length];
  } else {
    const flag = params.find((param) => param.type === "bool");
    if (flag) next[flag.name] = !values[flag.name];
  }
  return next;
}

/** Values for every declared parameter: `given` where valid, defaults otherwise. */
export function completeValues(params, given = {}) {
  return Object.fromEntries(params.map((param) => [param.name, given[param.name] ?? param.default]));
}

export class ParamControls {
  constructor({ params, noun = "lane" }) {
    this.params = params.filter((param) => ["int", "choice", "bool", "text"].includes(param.type));
    this.element = el("div", { className: "demo-controls" });
    this.inputs = []; // per column: Map name -> input
    /** @type {CodeEditor[][]} per column: the editors of its programs */
    this.editors = [];
    this.noun = noun;
  }

  /**
   * An editor for a program parameter; its textarea is the column's input.
   * @param {Record<string, any>} param
   * @param {unknown} value
   * @param {number} column
   * @param {{id: string, describedBy?: string, label?: string}} attributes
   */
  editorFor(param, value, column, { id, describedBy, label }) {
    const editor = new CodeEditor({ id, name: param.name, value: String(value ?? param.default), label, describedBy, minLength: param.min_length, maxLength: param.max_length, noun: this.noun });
    this.editors[column].push(editor);
    this.inputs[column].set(param.name, editor.textarea);
    return editor;
  }

  /**
   * Mark, in each program editor, the line its column's run is at (called each frame).
   * @param {import("./run-record.js").RunRecord[]} records
   */
  follow(records) {
    this.editors.forEach((editors, column) => {
      for (const editor of editors) editor.follow(records[column] ?? null);
    });
  }

  /**
   * Make each program editor of `column` mark the line of `lane` (a click on the lane's row).
   * @param {number} column
   * @param {number} lane
   */
  chooseLane(column, lane) {
    for (const editor of this.editors[column] ?? []) editor.choose(lane);
  }

  /** Build the inputs for one column of values (single) or two (compare). */
  render(columns) {
    this.inputs = columns.map(() => new Map());
    this.editors = columns.map(() => []);
    this.element.replaceChildren(columns.length > 1 ? this.compareGrid(columns) : this.singleGrid(columns[0]));
    this.element.classList.toggle("is-compare", columns.length > 1);
  }

  singleGrid(values) {
    const fields = this.params.map((param) => {
      const id = uniqueId(`demo-${param.name}`);
      const helpId = `${id}-help`;
      if (isProgram(param)) {
        const editor = this.editorFor(param, values[param.name], 0, { id, describedBy: param.help ? helpId : undefined });
        return el("div", { className: "demo-field demo-field-program" }, el("label", { for: id, className: "demo-label" }, param.label), el("p", { className: "demo-help", id: helpId }, hint(param)), editor.element);
      }
      const input = inputFor(param, values[param.name], { id, describedBy: param.help || param.type === "int" ? helpId : undefined });
      this.inputs[0].set(param.name, input);
      const help = el("p", { className: "demo-help", id: helpId }, hint(param));
      if (param.type === "bool") {
        return el("div", { className: "demo-field demo-field-bool" }, el("label", { className: "demo-check-label" }, input, param.label), help);
      }
      return el("div", { className: "demo-field" }, el("label", { for: id, className: "demo-label" }, param.label), input, help);
    });
    return el("div", { className: "demo-fields" }, fields);
  }

  compareGrid(columns) {
    const tags = columns.map((_, index) => String.fromCharCode(65 + index));
    const head = el(
      "div",
      { className: "demo-compare-row demo-compare-head", "aria-hidden": "true" },
      el("span", {}),
      tags.map((tag) => el("span", { className: "demo-run-tag" }, tag)),
    );
    const rows = this.params.map((param) => {
      const labelId = uniqueId(`demo-${param.name}-label`);
      const helpId = `${labelId}-help`;
      const cells = columns.map((values, index) => {
        const id = uniqueId(`demo-${param.name}-${tags[index]}`);
        if (isProgram(param)) {
          const editor = this.editorFor(param, values[param.name], index, { id, describedBy: helpId, label: `${param.label}, run ${tags[index]}` });
          return el("div", { className: "demo-compare-cell demo-compare-program" }, el("span", { className: "demo-cell-tag", "aria-hidden": "true" }, tags[index]), editor.element);
        }
        const input = inputFor(param, values[param.name], { id, describedBy: helpId, label: `${param.label}, run ${tags[index]}` });
        this.inputs[index].set(param.name, input);
        const cellLabel = el("span", { className: "demo-cell-tag", "aria-hidden": "true" }, tags[index]);
        return el("div", { className: "demo-compare-cell" }, param.type === "bool" ? el("label", { className: "demo-check-label" }, input, cellLabel) : [cellLabel, input]);
      });
      return el(
        "div",
        { className: "demo-compare-row", role: "group", "aria-labelledby": labelId },
        el("div", { className: "demo-compare-label" }, el("span", { className: "demo-label", id: labelId }, param.label), el("p", { className: "demo-help", id: helpId }, hint(param))),
        cells,
      );
    });
    return el("div", { className: "demo-compare-grid" }, head, rows);
  }

  /**
   * The current values per column, or {invalid: input, label} for the first invalid input.
   * @returns {{invalid: HTMLInputElement | HTMLSelectElement, label: string, columns?: undefined}
   *   | {invalid?: undefined, label?: undefined, columns: Record<string, unknown>[]}}
   */
  read() {
    /** @type {Record<string, unknown>[]} */
    const columns = [];
    for (const inputs of this.inputs) {
      /** @type {Record<string, unknown>} */
      const values = {};
      for (const param of this.params) {
        const input = inputs.get(param.name);
        if (!input) continue;
        if (!input.checkValidity()) return { invalid: input, label: input.getAttribute("aria-label") || param.label };
        values[param.name] = readInput(param, input);
      }
      columns.push(values);
    }
    return { columns };
  }

  /** Current values even if invalid (to carry them across a mode switch). */
  peek() {
    return this.inputs.map((inputs) => {
      const values = {};
      for (const param of this.params) {
        const input = inputs.get(param.name);
        if (!input) continue;
        const value = readInput(param, input);
        if (!(param.type === "int" && Number.isNaN(value))) values[param.name] = value;
      }
      return values;
    });
  }

  setDisabled(disabled) {
    const programs = new Set(this.editors.flat().map((editor) => editor.textarea));
    for (const inputs of this.inputs) for (const input of inputs.values()) if (!programs.has(input)) input.disabled = disabled;
    for (const editor of this.editors.flat()) editor.setDisabled(disabled);
  }

  /** "Mode: sequential · Requests: 10" for the parameters that differ between columns. */
  describeDifferences(columns) {
    if (columns.length < 2) return columns.map(() => "");
    const differing = this.params.filter((param) => columns.some((values) => values[param.name] !== columns[0][param.name]));
    return columns.map((values) => differing.map((param) => `${param.label}: ${formatParam(param, values[param.name])}`).join(" · "));
  }
}

/** A parameter value as a reader would write it. */
export function formatParam(param, value) {
  if (param.type === "bool") return value ? "on" : "off";
  if (param.type === "int" && typeof value === "number") return formatNumber(value);
  if (isProgram(param)) return `${lineCount(String(value))} lines of code`;
  return String(value);
}
