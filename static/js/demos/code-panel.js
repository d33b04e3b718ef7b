/*
 * A program a reader edits and runs, and the line each of its lanes is at.
 *
 * CodeEditor is the control for a multi-line text parameter: a <textarea>
 * with a line-number gutter and a band marking one line. By default Tab
 * leaves the field as everywhere else on the page; a reader who wants Tab to
 * indent turns on "Tab indents" (then Esc, Tab still leaves). CodeView is the
 * read-only form, for the replay page. Both follow a run: the line of the
 * lane chosen in "Follow", or of the most recent event that named a line,
 * is marked and said in words beside the code.
 *
 * The pure helpers at the top (no DOM) have node tests.
 */
import { el, uniqueId } from "./dom.js";

/** @typedef {import("./run-record.js").RunRecord} RunRecord */

export const INDENT = "    ";
const FOLLOW_LATEST = "latest";
const MIN_ROWS = 8;
const MAX_ROWS = 30;

/** How many lines `text` has (an empty text is one empty line). */
export function lineCount(text) {
  let count = 1;
  for (let index = text.indexOf("\n"); index !== -1; index = text.indexOf("\n", index + 1)) count += 1;
  return count;
}

/** "1\n2\n…\nN": the gutter's text. */
export function gutterText(count) {
  return Array.from({ length: Math.max(1, count) }, (_, index) => String(index + 1)).join("\n");
}

/**
 * Tab in an editor that indents: spaces at the caret, or every selected line indented
 * (`outdent`: Shift+Tab, up to one INDENT removed from each selected line).
 * @param {string} value
 * @param {number} start  selectionStart
 * @param {number} end  selectionEnd
 * @param {boolean} [outdent]
 * @returns {{value: string, start: number, end: number}}
 */
export function indentText(value, start, end, outdent = false) {
  const multiLine = value.slice(start, end).includes("\n");
  if (!outdent && !multiLine) {
    return { value: value.slice(0, start) + INDENT + value.slice(end), start: start + INDENT.length, end: start + INDENT.length };
  }
  const lineStart = value.lastIndexOf("\n", start - 1) + 1;
  // A selection that ends just after a newline does not take in the line below it.
  const lastLineEnd = end > start && value[end - 1] === "\n" ? end - 1 : end;
  const block = value.slice(lineStart, lastLineEnd);
  const lines = block.split("\n");
  let firstShift = 0;
  const changed = lines.map((line, index) => {
    if (!outdent) {
      if (index === 0) firstShift = INDENT.length;
      return INDENT + line;
    }
    const removable = line.length - line.replace(/^ {1,4}/, "").length;
    if (index === 0) firstShift = -Math.min(removable, start - lineStart);
    return line.slice(removable);
  });
  const replaced = changed.join("\n");
  const next = value.slice(0, lineStart) + replaced + value.slice(lastLineEnd);
  const delta = replaced.length - block.length;
  return { value: next, start: Math.max(lineStart, start + firstShift), end: Math.max(lineStart, end + delta) };
}

/**
 * The line to mark for a run: the chosen lane's (if it has said one), else the most recent event's.
 * @param {RunRecord | null | undefined} record
 * @param {number | null} lane  the lane chosen in "Follow", or null for the most recent event
 * @returns {{lane: number, line: number} | null}
 */
export function followedLine(record, lane) {
  if (!record) return null;
  if (lane !== null) {
    const line = record.laneLines?.[lane];
    return Number.isInteger(line) ? { lane, line } : null;
  }
  return record.latestLine ?? null;
}

/**
 * "Line 5: Task-2: worker(), waiting (await asyncio.sleep)": what the mark means, in words.
 * @param {RunRecord} record
 * @param {{lane: number, line: number}} at
 * @param {string} noun
 */
export function describeFollowed(record, at, noun) {
  const state = record.laneState(at.lane);
  const changes = record.laneChanges[at.lane];
  const label = changes ? record.stateLabel(at.lane, changes.length / 2 - 1) : undefined;
  const doing = state ? `, ${state}${label ? ` (${label})` : ""}` : "";
  return `Line ${at.line}: ${record.laneLabel(at.lane, noun)}${doing}`;
}

/** The "Follow" <select>: the most recent event, or one lane; its options track the run's lanes. */
class LaneChooser {
  constructor({ noun }) {
    this.noun = noun;
    const id = uniqueId("demo-follow");
    this.select = el("select", { id, className: "demo-input demo-follow-select", onchange: () => this.onChange?.() }, el("option", { value: FOLLOW_LATEST }, "the most recent event"));
    this.element = el("div", { className: "demo-follow" }, el("label", { for: id, className: "demo-label" }, "Mark the line of"), this.select);
    this.optionsKey = "";
    /** @type {(() => void) | null} */
    this.onChange = null;
  }

  /** @returns {number | null} */
  get lane() {
    return this.select.value === FOLLOW_LATEST ? null : Number(this.select.value);
  }

  /** Choose a lane (a click on its row in the timeline); null: the most recent event. */
  choose(lane) {
    this.select.value = lane === null ? FOLLOW_LATEST : String(lane);
    if (this.select.value === "") this.select.value = FOLLOW_LATEST;
    this.onChange?.();
  }

  /** @param {RunRecord | null | undefined} record */
  update(record) {
    const count = record ? record.laneCount : 0;
    const key = record ? `${count}|${record.laneLabels.length}|${record.runId}` : "";
    if (key === this.optionsKey) return;
    this.optionsKey = key;
    const chosen = this.select.value;
    const options = [el("option", { value: FOLLOW_LATEST }, "the most recent event")];
    for (let lane = 0; record && lane < count; lane += 1) options.push(el("option", { value: String(lane) }, record.laneLabel(lane, this.noun)));
    this.select.replaceChildren(...options);
    this.select.value = options.some((option) => option.value === chosen) ? chosen : FOLLOW_LATEST;
  }
}

/** What both the editor and the read-only view share: the chooser, the words, the line to mark. */
class Follower {
  /** @param {{noun: string, onLine: (line: number | null) => void}} options */
  constructor({ noun, onLine }) {
    this.noun = noun;
    this.onLine = onLine;
    this.chooser = new LaneChooser({ noun });
    this.words = el("p", { className: "demo-help demo-follow-words" });
    /** @type {number | null} */
    this.marked = null;
    this.wordsText = "";
    /** @type {RunRecord | null} */
    this.record = null;
    this.chooser.onChange = () => this.follow(this.record);
  }

  /**
   * Mark the followed line of `record` (called every frame while the widget draws, and on a new choice).
   * @param {RunRecord | null} record
   */
  follow(record) {
    this.record = record;
    this.chooser.update(record);
    const at = followedLine(record, this.chooser.lane);
    const lane = this.chooser.lane;
    let words = "";
    if (record && at) words = describeFollowed(record, at, this.noun);
    else if (record && lane !== null) {
      const state = record.laneState(lane);
      words = `${record.laneLabel(lane, this.noun)} is at no line of the program now${state ? ` (${state})` : ""}.`;
    } else if (record && record.laneCount) words = "No event has named a line yet.";
    if (words !== this.wordsText) {
      this.wordsText = words;
      this.words.textContent = words;
    }
    const line = at ? at.line : null;
    if (line !== this.marked) {
      this.marked = line;
      this.onLine(line);
    }
  }
}

export class CodeEditor {
  /**
   * @param {{id: string, name: string, value: string, label?: string, describedBy?: string,
   *   minLength?: number, maxLength?: number, noun?: string}} options
   */
  constructor({ id, name, value, label, describedBy, minLength = 0, maxLength = 20_000, noun = "lane" }) {
    const keysId = `${id}-keys`;
    this.tabIndents = false;
    this.released = false; // Esc was pressed: the next Tab leaves the editor even when Tab indents
    this.textarea = el("textarea", {
      id,
      name,
      className: "demo-code-input",
      spellcheck: "false",
      autocapitalize: "off",
      autocomplete: "off",
      wrap: "off",
      rows: 16,
      minlength: minLength || undefined,
      maxlength: maxLength,
      required: minLength > 0,
      "aria-label": label,
      "aria-describedby": [describedBy, keysId].filter(Boolean).join(" "),
      onkeydown: (event) => this.keydown(event),
      oninput: () => this.refresh(),
      onscroll: () => this.placeBand(),
    });
    this.textarea.value = value;
    this.gutter = el("pre", { className: "demo-code-gutter", "aria-hidden": "true" });
    this.band = el("div", { className: "demo-code-band", "aria-hidden": "true", hidden: true });
    this.tabToggle = el("input", { type: "checkbox", className: "demo-checkbox", onchange: () => (this.tabIndents = this.tabToggle.checked) });
    this.keys = el("p", { className: "demo-help", id: keysId }, "Tab moves to the next field. With “Tab indents” on, Tab indents and Shift+Tab outdents; press Esc, then Tab, to leave the editor.");
    this.follower = new Follower({ noun, onLine: (line) => this.mark(line) });
    this.element = el(
      "div",
      { className: "demo-code-editor" },
      el("div", { className: "demo-code-frame" }, el("div", { className: "demo-code-gutter-wrap" }, this.gutter), el("div", { className: "demo-code-area" }, this.band, this.textarea)),
      el("div", { className: "demo-code-options" }, el("label", { className: "demo-check-label" }, this.tabToggle, "Tab indents"), this.follower.chooser.element),
      this.keys,
      this.follower.words,
    );
    /** @type {number | null} */
    this.markedLine = null;
    this.lines = 0;
    this.refresh();
  }

  /** @param {KeyboardEvent} event */
  keydown(event) {
    if (event.key === "Escape") {
      this.released = true;
      return;
    }
    if (event.key !== "Tab" || event.ctrlKey || event.altKey || event.metaKey || !this.tabIndents || this.released) {
      if (event.key !== "Tab" && event.key !== "Shift") this.released = false;
      return;
    }
    event.preventDefault();
    const area = this.textarea;
    const next = indentText(area.value, area.selectionStart, area.selectionEnd, event.shiftKey);
    area.value = next.value;
    area.setSelectionRange(next.start, next.end);
    this.refresh();
  }

  refresh() {
    const count = lineCount(this.textarea.value);
    if (count !== this.lines) {
      this.lines = count;
      this.gutter.textContent = gutterText(count);
      // As tall as the program, within bounds; the reader can still drag it taller.
      this.textarea.rows = Math.min(MAX_ROWS, Math.max(MIN_ROWS, count));
    }
    this.placeBand();
  }

  /** @param {boolean} disabled */
  setDisabled(disabled) {
    // Read-only while a run is live (still selectable and scrollable); the value is what ran.
    this.textarea.readOnly = disabled;
  }

  /** @param {RunRecord | null} record */
  follow(record) {
    this.follower.follow(record);
  }

  /** @param {number | null} lane */
  choose(lane) {
    this.follower.chooser.choose(lane);
  }

  /** @param {number | null} line */
  mark(line) {
    this.markedLine = line;
    this.placeBand();
  }

  placeBand() {
    const area = this.textarea;
    this.gutter.scrollTop = area.scrollTop;
    if (this.markedLine === null || this.markedLine > this.lines) {
      this.band.hidden = true;
      return;
    }
    const style = getComputedStyle(area);
    const lineHeight = Number.parseFloat(style.lineHeight) || 20;
    const top = Number.parseFloat(style.paddingTop) || 0;
    this.band.hidden = false;
    this.band.style.height = `${lineHeight}px`;
    this.band.style.transform = `translateY(${top + (this.markedLine - 1) * lineHeight - area.scrollTop}px)`;
  }
}

export class CodeView {
  /** @param {{title: string, code: string, noun?: string, panelLevel?: number}} options */
  constructor({ title, code, noun = "lane", panelLevel = 4 }) {
    this.rows = code.split("\n").map((text, index) => el("li", { className: "demo-code-line", dataset: { line: String(index + 1) } }, el("code", {}, text || " ")));
    if (this.rows.length > 1 && code.endsWith("\n")) this.rows.pop();
    this.list = el("ol", { className: "demo-code-lines" }, this.rows);
    this.follower = new Follower({ noun, onLine: (line) => this.mark(line) });
    this.element = el(
      "section",
      { className: "demo-code-view", "aria-label": title },
      el(`h${panelLevel}`, { className: "demo-panel-title" }, title),
      el("div", { className: "demo-code-scroll", tabindex: "0", role: "region", "aria-label": `${title}, with line numbers` }, this.list),
      this.follower.chooser.element,
      this.follower.words,
    );
    /** @type {HTMLElement | null} */
    this.current = null;
  }

  /** @param {RunRecord | null} record */
  follow(record) {
    this.follower.follow(record);
  }

  /** @param {number | null} lane */
  choose(lane) {
    this.follower.chooser.choose(lane);
  }

  /** @param {number | null} line */
  mark(line) {
    const row = line ? this.rows[line - 1] ?? null : null;
    if (row === this.current) return;
    this.current?.classList.remove("is-current");
    this.current?.removeAttribute("aria-current");
    this.current = row;
    row?.classList.add("is-current");
    row?.setAttribute("aria-current", "true");
  }
}

/**
 * Read-only views of a recorded run's programs (its multi-line text parameters), for the replay page.
 * @param {Record<string, any>[]} params  the demo's parameter declarations
 * @param {Record<string, unknown>} values  the run's parameters
 * @param {string} [noun]
 * @param {number} [panelLevel] the views' heading level: one below the widget's title
 * @returns {CodeView[]}
 */
export function programViews(params, values, noun = "lane", panelLevel = 4) {
  return params
    .filter((param) => param.type === "text" && param.multiline && typeof values?.[param.name] === "string")
    .map((param) => new CodeView({ title: param.label || param.name, code: /** @type {string} */ (values[param.name]), noun, panelLevel }));
}
