/*
 * The replay page (/runs/RUN_ID/): a recorded run, or both sides of a
 * compare, drawn like a live run and played back under the reader's control.
 *
 * The parts, top to bottom: the settings of each run; the transport (play or
 * pause, one event back or forward, speed, and a scrubber over the run's
 * time with its readout); the sentence saying where the runs are at that
 * time; the same RunView a live run uses; the code that ran.
 *
 * Where the runs are at time t is replay-state.js's business (pure, tested
 * with node): each ReplayTrack brings its RunRecord to t. This file only
 * wires controls to a Playhead and redraws: a frame loop while playing, one
 * redraw per scrub or step while paused. The page opens paused at the end,
 * the whole recording in view, as the page without JavaScript shows it.
 *
 * Other panels can follow the playhead: `addPanel(element)` places one under
 * the view, and `onPosition(listener)` calls listener(t, tracks) after each move.
 */
import { fetchDemo, fetchRun } from "./api.js";
import { formatParam } from "./controls.js";
import { programViews } from "./code-panel.js";
import { outcomePhrase, sourceCodeBlock } from "./demo-widget.js";
import { el, uniqueId } from "./dom.js";
import { formatNumber, niceStep } from "./format.js";
import { setIcon, svgIcon } from "./icons.js";
import { Playhead, positionText, ReplayTrack, SPEEDS, stateSentence, stepTime } from "./replay-state.js";
import { RunRecord } from "./run-record.js";
import { RunView } from "./run-view.js";
import { summaryFormatOf } from "./summary.js";

/** About this many scrubber positions over a run, so an arrow key moves a visible amount. */
const SCRUB_POSITIONS = 200;

/**
 * @typedef {{run: string, demo?: string, params?: Record<string, unknown>, status: string,
 *   summary?: Record<string, unknown> | null, events?: unknown[], events_dropped?: number,
 *   compare?: {side: string, partner: string | null} | null}} Recording
 * @typedef {(t: number, tracks: ReplayTrack[]) => void} PositionListener
 */

/** What differs between the runs of a compare, as each run's title ("Requests: 10 · Mode: sequential"). */
function differences(params, runs) {
  if (runs.length < 2) return runs.map(() => "");
  const valuesOf = (run) => run.params ?? {};
  const differing = params.filter((param) => runs.some((run) => valuesOf(run)[param.name] !== valuesOf(runs[0])[param.name]));
  return runs.map((run) => differing.map((param) => `${param.label || param.name}: ${formatParam(param, valuesOf(run)[param.name])}`).join(" · "));
}

export class ReplayWidget {
  /**
   * @param {HTMLElement} section
   * @param {{runs: Recording[], demo: any, headingLevel?: number}} options  runs: one, or the A and B of a compare
   */
  constructor(section, { runs, demo, headingLevel = 2 }) {
    this.section = section;
    this.runs = runs;
    this.demo = demo;
    this.noun = demo.lanes || "lane";
    const compare = runs.length > 1;
    this.titles = differences(demo.params ?? [], runs);
    this.tracks = runs.map((run) => {
      const record = new RunRecord({ tag: compare ? run.compare?.side ?? "" : "", params: run.params ?? {} });
      record.accepted(run.run, run.params);
      return new ReplayTrack({ record, events: run.events, status: run.status, summary: run.summary ?? null, eventsDropped: run.events_dropped ?? 0 });
    });
    this.records = this.tracks.map((track) => track.record);
    this.duration = Math.max(0, ...this.tracks.map((track) => track.end));
    this.playhead = new Playhead(this.duration);
    /** @type {PositionListener[]} */
    this.listeners = [];
    this.frameRequested = false;
    this.view = new RunView({ noun: this.noun, showRunLinks: false, summaryFormat: summaryFormatOf(demo), panelLevel: Math.min(6, headingLevel + 1) });
    this.view.fixedDomainMs = this.duration;
    this.view.setRecords(this.records, this.titles);

    const ids = { title: uniqueId("replay-title"), scrub: uniqueId("replay-scrub"), speed: uniqueId("replay-speed") };
    this.playIcon = svgIcon("play");
    this.playLabel = el("span", {}, "Play");
    this.playButton = el("button", { type: "button", className: "demo-button demo-run replay-play", onclick: () => this.togglePlay() }, this.playIcon, this.playLabel);
    this.backButton = el("button", { type: "button", className: "demo-button replay-step", "aria-label": "Back one event", title: "Back one event", onclick: () => this.step(-1) }, svgIcon("step-back"), el("span", {}, "Back"));
    this.nextButton = el("button", { type: "button", className: "demo-button replay-step", "aria-label": "Next event", title: "Next event", onclick: () => this.step(1) }, el("span", {}, "Next"), svgIcon("step-forward"));
    this.speedSelect = el(
      "select",
      { id: ids.speed, className: "replay-speed", onchange: () => this.playhead.setSpeed(Number(this.speedSelect.value), performance.now()) },
      SPEEDS.map((speed) => el("option", { value: String(speed), selected: speed === 1 }, `${speed}×`)),
    );
    const step = Math.max(1, niceStep(this.duration, SCRUB_POSITIONS));
    this.scrubber = el("input", {
      type: "range", id: ids.scrub, className: "replay-scrubber", min: "0", max: String(Math.ceil(this.duration / step) * step), step: String(step),
      value: String(Math.ceil(this.duration / step) * step),
      oninput: () => this.seek(Number(this.scrubber.value)),
      onkeydown: (event) => this.scrubKey(event),
    });
    // Not an <output>: that is a live region, and a readout ticking every frame must not be read aloud.
    this.readout = el("span", { className: "replay-readout" });
    this.stateText = el("p", { className: "replay-state" });
    this.status = el("p", { className: "demo-status replay-status", role: "status" });
    this.tableButton = el("button", { type: "button", className: "demo-toggle demo-table-toggle", "aria-pressed": "false", onclick: () => this.toggleTable() }, "Table");
    this.panels = el("div", { className: "replay-panels" });

    const code = el("details", { className: "demo-code", hidden: !demo.source_html }, el("summary", {}, "Code that ran"));
    if (demo.source_html) code.append(el("p", { className: "demo-code-path" }, el("code", {}, demo.source_path ?? "")), sourceCodeBlock(demo.source_html));
    this.section.classList.add("demo-widget", "replay-widget");
    this.section.classList.toggle("is-compare", compare);
    this.section.setAttribute("aria-labelledby", ids.title);
    // A reader's program, when the run had one (a multi-line text parameter): shown with the line its lanes are at.
    this.programs = programViews(demo.params ?? [], runs[0]?.params ?? {}, this.noun, Math.min(6, headingLevel + 1));
    this.view.onLaneSelect = (_record, lane) => this.programs.forEach((program) => program.choose(lane));
    // The page's <h1> already names the demo; the widget adds the idea it proves and the settings.
    this.section.replaceChildren(
      el(
        "header",
        { className: "demo-header" },
        el(
          "div",
          { className: "demo-heading" },
          el(`h${headingLevel}`, { className: "demo-eyebrow", id: ids.title }, compare ? "Replay of both runs, and their settings" : "Replay and settings"),
          demo.concept ? el("p", { className: "demo-concept" }, demo.concept) : null,
        ),
      ),
      ...this.runs.map((run, index) => this.settingsOf(run, this.tracks[index].record.tag)),
      ...this.programs.map((program) => program.element),
      el(
        "div",
        { className: "replay-transport", role: "group", "aria-label": "Replay controls" },
        el("div", { className: "replay-buttons" }, this.backButton, this.playButton, this.nextButton,
          el("label", { className: "replay-speed-label", for: ids.speed }, "Speed"), this.speedSelect, this.tableButton),
        el("div", { className: "replay-scrub-row" }, el("label", { for: ids.scrub }, "Time"), this.scrubber, this.readout),
      ),
      this.status,
      this.stateText,
      this.view.element,
      this.panels,
      code,
    );
    this.moveTo(this.duration);
    this.setStatus(`Recorded ${compare ? "runs" : "run"}, shown to the end. ${this.outcome()}. Press Play to watch it again.`);
  }

  /** One run's settings as a description list (headed by its tag in a compare). */
  settingsOf(run, tag) {
    const values = run.params ?? {};
    const params = (this.demo.params ?? []).filter((param) => param.name in values);
    const known = new Set(params.map((param) => param.name));
    const extra = Object.keys(values).filter((name) => !known.has(name));
    return el(
      "dl",
      { className: "demo-params" },
      tag ? el("div", { className: "replay-run-tag" }, el("dt", {}, "Run"), el("dd", {}, el("span", { className: "demo-run-tag" }, tag))) : null,
      params.map((param) => el("div", {}, el("dt", {}, param.label || param.name), el("dd", {}, formatParam(param, values[param.name])))),
      extra.map((name) => el("div", {}, el("dt", {}, name), el("dd", {}, String(values[name])))),
    );
  }

  /** A panel that follows the playhead, placed under the timeline. */
  addPanel(element) {
    this.panels.append(element);
  }

  /** Call listener(t, tracks) after every move of the playhead (and now, for the current one). */
  onPosition(listener) {
    this.listeners.push(listener);
    listener(this.playhead.position, this.tracks);
  }

  outcome() {
    return this.records.map((record) => `${record.tag ? `${record.tag}: ` : ""}${outcomePhrase(record) || record.status}`).join(" · ");
  }

  /** Bring every run to t and redraw what changed. */
  moveTo(t) {
    const results = this.tracks.map((track) => track.seek(t));
    for (const program of this.programs) program.follow(this.records[0]);
    if (results.includes("rewound")) this.view.rewound();
    else this.view.invalidate();
    const text = positionText(t, this.duration);
    if (this.readout.textContent !== text) {
      this.readout.textContent = text;
      this.scrubber.setAttribute("aria-valuetext", text);
    }
    if (this.playhead.playing) this.scrubber.value = String(t);
    const state = stateSentence(this.tracks, this.noun);
    if (this.stateText.textContent !== state) this.stateText.textContent = state;
    this.backButton.disabled = t <= 0;
    this.nextButton.disabled = this.tracks.every((track) => track.shown >= track.events.length) && t >= this.duration;
    for (const listener of this.listeners) listener(t, this.tracks);
  }

  togglePlay() {
    if (this.playhead.playing) this.pause();
    else this.play();
  }

  play() {
    this.playhead.play(performance.now());
    this.showPlaying();
    this.setStatus(`Playing at ${formatNumber(this.playhead.speed)}× speed.`);
    this.requestFrame();
  }

  pause() {
    this.playhead.pause(performance.now());
    this.showPlaying();
    this.moveTo(this.playhead.position);
    this.setStatus(`Paused at ${positionText(this.playhead.position, this.duration)}.`);
  }

  showPlaying() {
    const playing = this.playhead.playing;
    setIcon(this.playIcon, playing ? "pause" : "play");
    this.playLabel.textContent = playing ? "Pause" : "Play";
  }

  requestFrame() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.frame();
    });
  }

  /** Per frame while playing: move to where the playhead is; stop at the end. */
  frame() {
    if (!this.playhead.playing) return;
    this.moveTo(this.playhead.positionAt(performance.now()));
    if (this.playhead.playing) {
      this.requestFrame();
      return;
    }
    this.scrubber.value = this.scrubber.max;
    this.showPlaying();
    this.setStatus(`Replay done. ${this.outcome()}.`);
  }

  /** The scrubber moved (pointer or keys): go there; playing carries on from there. */
  seek(t) {
    this.playhead.seek(Math.min(t, this.duration), performance.now());
    this.moveTo(this.playhead.position);
    // One unchanging sentence while scrubbing: the slider's own value text tells where it is.
    if (!this.playhead.playing) this.setStatus("Paused. Move along the time line, or step one event at a time.");
  }

  /** Page Up / Page Down move a tenth of the run (arrows, Home and End are the range's own). */
  scrubKey(event) {
    if (event.key !== "PageUp" && event.key !== "PageDown") return;
    event.preventDefault();
    const tenth = this.duration / 10;
    const t = this.playhead.position + (event.key === "PageUp" ? tenth : -tenth);
    this.seek(t);
    this.scrubber.value = String(this.playhead.position);
  }

  /** One event back or forward (across both runs of a compare); pauses first. */
  step(direction) {
    if (this.playhead.playing) {
      this.playhead.pause(performance.now());
      this.showPlaying();
    }
    const t = stepTime(this.tracks.map((track) => track.times), this.playhead.position, direction);
    this.playhead.seek(t, performance.now());
    this.scrubber.value = String(t);
    this.moveTo(this.playhead.position);
    this.setStatus(`Paused at ${positionText(this.playhead.position, this.duration)}.`);
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

/**
 * Fetch the recording (and its compare partner, when the page names one) and the demo's description
 * (if the demo still exists), and build the replay.
 * @param {HTMLElement} section
 */
export async function bootReplay(section) {
  const urls = /** @type {string[]} */ ([section.dataset.runUrl, section.dataset.partnerUrl].filter((url) => typeof url === "string" && url));
  const fetched = /** @type {Recording[]} */ (await Promise.all(urls.map((url) => fetchRun(url))));
  // A compare plays A then B, whichever side the permalink was.
  const runs = fetched.length > 1 ? fetched.sort((a, b) => String(a.compare?.side).localeCompare(String(b.compare?.side))) : fetched;
  const slug = runs[0].demo || section.dataset.demo || "";
  const demo = await fetchDemo(slug).catch(() => ({ slug, title: slug, lanes: "lane", params: [] }));
  return new ReplayWidget(section, { runs, demo });
}
