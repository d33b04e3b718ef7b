/*
 * The text parts of a run: the log (`log` events), the big counters
 * (`counter` events) and the progress/status strip of each run (with its
 * per-lane bars when the run reports them, see lane-progress.js).
 *
 * They are DOM, not canvas, because they are text a reader may copy or a
 * screen reader may read. Each panel appends or patches only what changed
 * since the last frame, so a chatty run does not rebuild the page 60 times a
 * second, and the log keeps at most MAX_LOG_LINES lines in the DOM.
 */
import { runPageUrl } from "./api.js";
import { el, replaceChildren } from "./dom.js";
import { formatDuration, formatNumber, humanizeKey } from "./format.js";
import { LaneProgressList } from "./lane-progress.js";

/** @typedef {import("./run-record.js").RunRecord} RunRecord */

const MAX_LOG_LINES = 500;

export class LogPanel {
  /** @param {number} [panelLevel] its title's heading level: one below the widget's title */
  constructor(panelLevel = 4) {
    this.lines = el("div", { className: "demo-log-lines" });
    this.note = el("p", { className: "demo-log-note", hidden: true });
    // A focusable region (so keyboard users can scroll it), not role=log: SQL lines should not be read aloud as they stream.
    this.scroller = el("div", { className: "demo-log", tabindex: "0", role: "region", "aria-label": "Run log" }, this.lines);
    this.element = el("div", { className: "demo-log-wrap", hidden: true }, el(`h${panelLevel}`, { className: "demo-panel-title" }, "Log"), this.scroller, this.note);
    /** @type {RunRecord[]} */
    this.records = [];
    /** @type {number[]} */
    this.cursors = [];
    this.lineCount = 0;
    this.reset([]);
  }

  reset(records) {
    this.records = records;
    this.cursors = records.map(() => 0);
    this.lineCount = 0;
    this.lines.replaceChildren();
    this.note.hidden = true;
    this.element.hidden = true;
  }

  update() {
    const fragment = document.createDocumentFragment();
    let added = 0;
    this.records.forEach((record, index) => {
      const logs = record.logs;
      for (let position = this.cursors[index]; position < logs.length; position += 1) {
        const entry = logs[position];
        fragment.append(
          el(
            "div",
            { className: "demo-log-line" },
            el("span", { className: "demo-log-time" }, formatDuration(entry.t)),
            record.tag ? el("span", { className: "demo-log-tag", dataset: { tag: record.tag } }, record.tag) : null,
            el("span", { className: "demo-log-text" }, entry.text),
          ),
        );
        added += 1;
      }
      this.cursors[index] = logs.length;
    });
    if (!added) return;
    const atBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 24;
    this.lines.append(fragment);
    this.lineCount += added;
    while (this.lines.childElementCount > MAX_LOG_LINES) this.lines.firstElementChild?.remove();
    if (this.lineCount > MAX_LOG_LINES) {
      this.note.hidden = false;
      this.note.textContent = `Showing the last ${formatNumber(MAX_LOG_LINES)} of ${formatNumber(this.lineCount)} lines.`;
    }
    this.element.hidden = false;
    if (atBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

export class CounterBoard {
  constructor() {
    this.element = el("div", { className: "demo-counters", hidden: true });
    /** @type {RunRecord[]} */
    this.records = [];
    /** @type {Map<string, HTMLSpanElement>} "index|name" -> value element */
    this.tiles = new Map();
    /** @type {HTMLDivElement[]} */
    this.groups = [];
    this.reset([]);
  }

  reset(records) {
    this.records = records;
    this.tiles = new Map(); // "index|name" -> value element
    this.groups = records.map((record) => el("div", { className: "demo-counter-group", hidden: true }, record.tag ? el("span", { className: "demo-run-tag" }, record.tag) : null));
    replaceChildren(this.element, this.groups);
    this.element.hidden = true;
  }

  update() {
    this.records.forEach((record, index) => {
      for (const [name, { value }] of record.counters) {
        const key = `${index}|${name}`;
        let valueElement = this.tiles.get(key);
        if (!valueElement) {
          valueElement = el("span", { className: "demo-counter-value" });
          this.groups[index].append(el("div", { className: "demo-counter" }, valueElement, el("span", { className: "demo-counter-name" }, humanizeKey(name))));
          this.groups[index].hidden = false;
          this.element.hidden = false;
          this.tiles.set(key, valueElement);
        }
        const text = formatNumber(value);
        if (valueElement.textContent !== text) valueElement.textContent = text;
      }
    });
  }
}

const STATUS_WORDS = {
  idle: "",
  starting: "starting…",
  running: "running",
  succeeded: "finished",
  failed: "failed",
  cancelled: "cancelled",
  timed_out: "timed out",
  rejected: "not started",
  lost: "connection lost",
  unfinished: "unfinished recording",
};

/** One run's line above the timeline: tag, settings, progress bar, status, permalink, warnings, per-lane bars. */
export class RunStrip {
  constructor(record, { title, showLink, noun = "lane" }) {
    this.record = record;
    this.showLink = showLink;
    const label = record.tag ? `Progress of run ${record.tag}` : "Progress";
    this.fill = el("div", { className: "demo-progress-fill" });
    this.bar = el("div", { className: "demo-progress", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" }, this.fill);
    this.count = el("span", { className: "demo-progress-count" });
    this.state = el("span", { className: "demo-run-state" });
    this.link = el("a", { className: "demo-run-link", hidden: true }, "Recorded run");
    this.warning = el("p", { className: "demo-warning", hidden: true });
    this.lanes = new LaneProgressList(record, { noun });
    // Compare: a heading row (tag, settings, permalink) over the bar. Single: one row.
    const heading = record.tag
      ? el("div", { className: "demo-run-heading" }, el("span", { className: "demo-run-tag" }, record.tag), title ? el("span", { className: "demo-run-title" }, title) : null, this.link)
      : null;
    this.element = el(
      "div",
      { className: "demo-run-strip" },
      heading,
      el("div", { className: "demo-progress-row" }, this.bar, this.count, this.state, heading ? null : this.link),
      this.warning,
      this.lanes.element,
    );
    this.shown = {};
  }

  set(key, value, apply) {
    if (this.shown[key] === value) return;
    this.shown[key] = value;
    apply(value);
  }

  update() {
    const record = this.record;
    // Without `progress` events the amount done is unknown: an indeterminate bar while live (no aria-valuenow).
    const { done, total } = record.progress ?? { done: 0, total: 0 };
    const known = total > 0;
    const indeterminate = !known && record.isLive;
    const fraction = known ? Math.min(1, done / total) : record.status === "succeeded" ? 1 : 0;
    this.set("fraction", fraction, (value) => {
      this.fill.style.width = `${(value * 100).toFixed(2)}%`; // CSSOM: allowed by the CSP
    });
    this.set("indeterminate", indeterminate, (value) => this.bar.classList.toggle("is-indeterminate", value));
    this.set("aria", `${done}/${total}/${indeterminate}/${record.status}`, () => {
      if (known || !indeterminate) {
        this.bar.setAttribute("aria-valuemax", String(known ? total : 1));
        this.bar.setAttribute("aria-valuenow", String(known ? done : fraction));
        this.bar.setAttribute("aria-valuetext", known ? `${formatNumber(done)} of ${formatNumber(total)} done` : fraction ? "done" : "not started");
      } else {
        for (const name of ["aria-valuenow", "aria-valuetext"]) this.bar.removeAttribute(name);
      }
    });
    this.set("count", known ? `${formatNumber(done)} / ${formatNumber(total)}` : "", (text) => {
      this.count.textContent = text;
      this.count.hidden = !text;
    });
    let stateText = STATUS_WORDS[record.status] ?? record.status;
    if (record.isFinal && record.status !== "rejected") stateText = `${stateText} · ${formatDuration(record.now())}`;
    this.set("state", stateText, (text) => {
      this.state.textContent = text;
      this.state.dataset.status = record.status;
    });
    this.set("link", this.showLink ? record.runId : null, (runId) => {
      this.link.hidden = !runId;
      if (runId) {
        this.link.href = runPageUrl(runId);
        this.link.setAttribute("aria-label", `Recorded run${record.tag ? ` ${record.tag}` : ""} (permanent link)`);
      }
    });
    const warnings = [];
    if (record.missedBatches) warnings.push(`${formatNumber(record.missedBatches)} batch${record.missedBatches === 1 ? "" : "es"} of events went missing on the way, so the timeline may have gaps.`);
    if (record.eventsDropped) warnings.push(`The recording kept only the first events: ${formatNumber(record.eventsDropped)} later events were not stored.`);
    this.set("warning", warnings.join(" "), (text) => {
      this.warning.hidden = !text;
      this.warning.textContent = text ? `⚠ ${text}` : "";
    });
    this.lanes.update();
  }
}
