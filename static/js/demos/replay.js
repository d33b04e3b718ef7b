/*
 * The replay page (/runs/RUN_ID/): a recorded run, drawn like a live one.
 *
 * The recording (GET /api/runs/RUN_ID/) is drawn complete at once; the
 * Replay button plays its events back on their own timestamps through the
 * same RunRecord and RunView as a live run, sped up for long runs so a
 * replay never takes more than MAX_REPLAY_MS.
 */
import { fetchDemo, fetchRun } from "./api.js";
import { formatParam } from "./controls.js";
import { programViews } from "./code-panel.js";
import { icon, outcomePhrase, sourceCodeBlock } from "./demo-widget.js";
import { el, uniqueId } from "./dom.js";
import { formatClock, formatNumber } from "./format.js";
import { FINAL_STATUSES, RunRecord } from "./run-record.js";
import { RunView } from "./run-view.js";
import { summaryFormatOf } from "./summary.js";

const MAX_REPLAY_MS = 10_000;

/** The recorded status as a RunRecord status ("running" in the record means it never finished). */
function finalStatus(status) {
  return FINAL_STATUSES.has(status) && status !== "rejected" && status !== "lost" ? status : "unfinished";
}

export class ReplayWidget {
  constructor(section, { run, demo, headingLevel = 2 }) {
    this.section = section;
    this.run = run;
    this.demo = demo;
    this.noun = demo.lanes || "lane";
    this.events = (Array.isArray(run.events) ? run.events : []).slice().sort((a, b) => (a.t ?? 0) - (b.t ?? 0));
    this.view = new RunView({ noun: this.noun, showRunLinks: false, summaryFormat: summaryFormatOf(demo) });
    this.view.onFrame = () => this.tick();
    this.player = null;
    /** @type {RunRecord | null} the complete recording, once built */
    this.record = null;
    // The widget's parts are made here, in the constructor, so each field always holds its element.
    const titleId = uniqueId("replay-title");
    this.replayLabel = el("span", {}, "Replay");
    this.replayIcon = icon("▶");
    this.replayButton = el("button", { type: "button", className: "demo-button demo-run", onclick: () => (this.player ? this.showComplete() : this.play()) }, this.replayIcon, this.replayLabel);
    this.status = el("span", { className: "demo-status", role: "status" });
    this.elapsed = el("span", { className: "demo-elapsed", "aria-hidden": "true" });
    this.tableButton = el("button", { type: "button", className: "demo-toggle demo-table-toggle", "aria-pressed": "false", onclick: () => this.toggleTable() }, "Table");
    const params = (this.demo.params ?? []).filter((param) => param.name in (this.run.params ?? {}));
    const known = new Set(params.map((param) => param.name));
    const extra = Object.keys(this.run.params ?? {}).filter((name) => !known.has(name));
    const settings = el(
      "dl",
      { className: "demo-params" },
      params.map((param) => el("div", {}, el("dt", {}, param.label || param.name), el("dd", {}, formatParam(param, this.run.params[param.name])))),
      extra.map((name) => el("div", {}, el("dt", {}, name), el("dd", {}, String(this.run.params[name])))),
    );
    const code = el("details", { className: "demo-code", hidden: !this.demo.source_html }, el("summary", {}, "Code that ran"));
    if (this.demo.source_html) {
      code.append(el("p", { className: "demo-code-path" }, el("code", {}, this.demo.source_path ?? "")), sourceCodeBlock(this.demo.source_html));
    }
    // A reader's program, when the run had one (a multi-line text parameter): shown with the line its lanes are at.
    this.programs = programViews(this.demo.params ?? [], this.run.params ?? {}, this.noun);
    this.view.onLaneSelect = (_record, lane) => this.programs.forEach((program) => program.choose(lane));
    this.section.classList.add("demo-widget");
    this.section.setAttribute("aria-labelledby", titleId);
    // The page's <h1> already names the demo; the widget adds the idea it proves and the settings.
    this.section.replaceChildren(
      el(
        "header",
        { className: "demo-header" },
        el(
          "div",
          { className: "demo-heading" },
          el(`h${headingLevel}`, { className: "demo-eyebrow", id: titleId }, "Replay and settings"),
          this.demo.concept ? el("p", { className: "demo-concept" }, this.demo.concept) : null,
        ),
      ),
      settings,
      ...this.programs.map((program) => program.element),
      el("div", { className: "demo-actions" }, this.replayButton, el("span", { className: "demo-status-wrap" }, this.status, this.elapsed), this.tableButton),
      this.view.element,
      code,
    );
    this.showComplete();
  }

  newRecord() {
    const record = new RunRecord({ params: this.run.params ?? {} });
    record.accepted(this.run.run, this.run.params);
    record.eventsDropped = this.run.events_dropped ?? 0;
    return record;
  }

  /** The whole recording at once. */
  showComplete() {
    this.player = null;
    const record = this.newRecord();
    record.addEvents(this.events);
    record.finish(finalStatus(this.run.status), this.run.summary);
    this.record = record;
    this.view.fixedDomainMs = null;
    this.view.setRecords([record], [""]);
    this.replayLabel.textContent = "Replay";
    this.replayIcon.textContent = "▶";
    this.setStatus(`Recorded run. ${outcomePhrase(record)}; ${formatNumber(this.events.length)} events.`);
  }

  /** Play the events back on their timestamps. */
  play() {
    const record = this.newRecord();
    const complete = this.record;
    const duration = Math.max(1, complete ? complete.now() : 0);
    const speed = duration > MAX_REPLAY_MS ? duration / MAX_REPLAY_MS : 1;
    const startedAt = performance.now();
    record.clock = () => (performance.now() - startedAt) * speed;
    this.player = { record, cursor: 0, duration, speed };
    this.view.fixedDomainMs = duration;
    this.view.setRecords([record], [""]);
    this.replayLabel.textContent = "Skip to end";
    this.replayIcon.textContent = "⏭";
    this.setStatus(speed > 1 ? `Replaying at ${formatNumber(Math.round(speed * 10) / 10)}× speed…` : "Replaying…");
  }

  /** Per frame: feed the events that are due, end the replay when all are in. */
  tick() {
    for (const program of this.programs) program.follow(this.player?.record ?? this.record);
    const player = this.player;
    if (!player) {
      this.elapsed.textContent = "";
      return;
    }
    const position = player.record.clock();
    let end = player.cursor;
    while (end < this.events.length && (this.events[end].t ?? 0) <= position) end += 1;
    if (end > player.cursor) {
      player.record.addEvents(this.events.slice(player.cursor, end));
      player.cursor = end;
    }
    this.elapsed.textContent = formatClock(Math.min(position, player.duration));
    if (player.cursor >= this.events.length && position >= player.duration) {
      player.record.finish(finalStatus(this.run.status), this.run.summary);
      this.player = null;
      this.record = player.record;
      this.replayLabel.textContent = "Replay";
      this.replayIcon.textContent = "▶";
      this.setStatus(`Replay done. ${outcomePhrase(player.record)}.`);
      this.view.invalidate();
    }
  }

  setStatus(text) {
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  toggleTable() {
    const visible = this.tableButton.getAttribute("aria-pressed") !== "true";
    this.tableButton.setAttribute("aria-pressed", String(visible));
    this.view.setTableVisible(visible);
  }
}

/** Fetch the recording (and the demo's description, if it still exists) and build the replay. */
export async function bootReplay(section) {
  const run = await fetchRun(section.dataset.runUrl);
  const slug = run.demo || section.dataset.demo;
  const demo = await fetchDemo(slug).catch(() => ({ slug, title: slug, lanes: "lane", params: [] }));
  return new ReplayWidget(section, { run, demo });
}
