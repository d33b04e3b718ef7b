/*
 * What a run printed (`output` events: stream "stdout" or "stderr", text)
 * and what the server said about the run itself (`note` events).
 *
 * Each line carries its stream in words ("out", "err", "note") in a column
 * of its own, so the two streams are told apart without colour; stderr is
 * also drawn in the failure colour. Chunks are joined into lines in the
 * order the site received them; a line split across chunks of one stream
 * stays one line. At most MAX_SHOWN_LINES lines (the latest) are in the DOM,
 * each cut at MAX_LINE_CHARS, and the panel says how many it left out.
 *
 * OutputLines (no DOM) has node tests.
 */
import { el } from "./dom.js";
import { formatNumber } from "./format.js";

/** @typedef {import("./run-record.js").RunRecord} RunRecord */

export const MAX_SHOWN_LINES = 400;
export const MAX_LINE_CHARS = 2000;
export const STREAM_WORDS = { stdout: "out", stderr: "err", note: "note" };

/** Chunks of text, joined into lines per stream, the latest `maxLines` kept. */
export class OutputLines {
  constructor(maxLines = MAX_SHOWN_LINES) {
    this.maxLines = maxLines;
    /** @type {{stream: string, tag: string, text: string}[]} */
    this.lines = [];
    this.open = false; // the last line has had no newline yet
    this.dropped = 0; // lines left out at the top
    this.version = 0;
  }

  get total() {
    return this.dropped + this.lines.length;
  }

  /**
   * @param {string} stream  "stdout", "stderr" or "note"
   * @param {string} text
   * @param {string} [tag]  the run's tag in compare mode ("A", "B")
   */
  push(stream, text, tag = "") {
    if (!text) return;
    const parts = text.split("\n");
    parts.forEach((part, index) => {
      const last = this.lines[this.lines.length - 1];
      if (index === 0 && this.open && last && last.stream === stream && last.tag === tag) {
        last.text += part;
      } else if (index < parts.length - 1 || part) {
        this.lines.push({ stream, tag, text: part });
      }
    });
    this.open = !text.endsWith("\n");
    if (stream === "note") this.open = false;
    const excess = this.lines.length - this.maxLines;
    if (excess > 0) {
      this.lines.splice(0, excess);
      this.dropped += excess;
    }
    this.version += 1;
  }
}

export class OutputPanel {
  /** @param {number} [panelLevel] its title's heading level: one below the widget's title */
  constructor(panelLevel = 4) {
    this.lines = el("div", { className: "demo-output-lines" });
    this.note = el("p", { className: "demo-log-note", hidden: true });
    this.scroller = el("div", { className: "demo-output", tabindex: "0", role: "region", "aria-label": "Program output" }, this.lines);
    this.element = el(
      "div",
      { className: "demo-output-wrap", hidden: true },
      el(`h${panelLevel}`, { className: "demo-panel-title" }, "Output"),
      el("p", { className: "demo-help" }, "“out” marks standard output, “err” standard error, “note” what the server said about the run; in the order the site received them."),
      this.scroller,
      this.note,
    );
    /** @type {RunRecord[]} */
    this.records = [];
    this.cursors = [];
    this.buffer = new OutputLines();
    // An empty buffer is what the panel shows already: drawing it again would read the scroller's
    // scrollHeight (a forced layout of the whole page) in every widget's first frame.
    this.shownVersion = this.buffer.version;
  }

  /** @param {RunRecord[]} records */
  reset(records) {
    this.records = records;
    this.cursors = records.map(() => ({ output: 0, notes: 0 }));
    this.buffer = new OutputLines();
    this.shownVersion = this.buffer.version;
    this.lines.replaceChildren();
    this.element.hidden = true;
  }

  update() {
    this.records.forEach((record, index) => {
      const cursor = this.cursors[index];
      const output = record.output ?? [];
      const notes = record.notes ?? [];
      // Output and notes, merged in the order of their times.
      while (cursor.output < output.length || cursor.notes < notes.length) {
        const chunk = output[cursor.output];
        const note = notes[cursor.notes];
        if (chunk && (!note || chunk.t <= note.t)) {
          this.buffer.push(chunk.stream, chunk.text, record.tag);
          cursor.output += 1;
        } else {
          this.buffer.push("note", `${note.text}\n`, record.tag);
          cursor.notes += 1;
        }
      }
    });
    if (this.buffer.version === this.shownVersion) return;
    this.shownVersion = this.buffer.version;
    const atBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 24;
    this.lines.replaceChildren(
      ...this.buffer.lines.map((line) =>
        el(
          "div",
          { className: "demo-output-line", dataset: { stream: line.stream } },
          el("span", { className: "demo-output-stream" }, `${line.tag ? `${line.tag} ` : ""}${STREAM_WORDS[line.stream] ?? line.stream}`),
          el("span", { className: "demo-output-text" }, line.text.length > MAX_LINE_CHARS ? `${line.text.slice(0, MAX_LINE_CHARS)}… (${formatNumber(line.text.length - MAX_LINE_CHARS)} more characters)` : line.text),
        ),
      ),
    );
    const cut = this.records.reduce((sum, record) => sum + (record.outputCharsDropped ?? 0), 0);
    const parts = [];
    if (this.buffer.dropped) parts.push(`Showing the last ${formatNumber(this.buffer.lines.length)} of ${formatNumber(this.buffer.total)} lines.`);
    if (cut) parts.push(`${formatNumber(cut)} further characters of output were not kept by this page.`);
    this.note.textContent = parts.join(" ");
    this.note.hidden = parts.length === 0;
    this.element.hidden = this.buffer.lines.length === 0;
    if (atBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
