/*
 * Everything below the Run button: the view of one run, or two compared.
 *
 * Used by the live widget and by the replay page alike. It owns the one
 * requestAnimationFrame loop of a widget: data arriving only marks the view
 * dirty (invalidate), and each frame redraws the timeline, charts, strips
 * (with their per-lane progress bars), log, counters and summaries at most
 * once, continuing frame by frame only while a run is live (its open lanes
 * grow with the clock).
 */
import { NEAR_VIEWPORT } from "./build-queue.js";
import { context2d, domainEnd, TimeScale } from "./canvas.js";
import { MetricCharts } from "./charts.js";
import { el, replaceChildren } from "./dom.js";
import { countOf, formatNumber, plural } from "./format.js";
import { ResultsTables } from "./results-table.js";
import { legendStates, STATE_MEANINGS } from "./legend.js";
import { OutputPanel } from "./output-panel.js";
import { LANE_STATES } from "./run-record.js";

/** @typedef {import("./run-record.js").RunRecord} RunRecord */
import { SummaryPanel } from "./summary.js";
import { CounterBoard, LogPanel, RunStrip } from "./text-panels.js";
import { onThemeChange, pagePalette, PATTERN_MIN_ROW, stateFill } from "./theme.js";
import { describeTimeline, RIGHT_PAD, Timeline } from "./timeline.js";

const TABLE_REFRESH_MS = 300;

export class RunView {
  /**
   * @param {{noun: string, showRunLinks?: boolean, placeholder?: string,
   *   summaryFormat?: import("./summary.js").SummaryFormat, panelLevel?: number}} options
   *   panelLevel: the heading level of its panels' titles (log, output, tables), one below the widget's title
   */
  constructor({ noun, showRunLinks = true, placeholder = "", summaryFormat = {}, panelLevel = 4 }) {
    this.noun = noun;
    this.showRunLinks = showRunLinks;
    this.placeholder = placeholder;
    /** @type {RunRecord[]} */
    this.records = [];
    /** @type {string[]} */
    this.titles = [];
    this.strips = [];
    this.tableVisible = false;
    this.frameRequested = false;
    this.lastTableBuild = 0;
    this.onFrame = null; // the owner's per-frame hook (elapsed clock, status)
    this.fixedDomainMs = null; // a replay knows its length: keep the axis still while it plays

    this.stripList = el("div", { className: "demo-strips" });
    this.timeline = new Timeline({ noun });
    this.canvasNote = el("p", { className: "demo-canvas-note", hidden: true });
    this.timeline.canvas.setAttribute("role", "img");
    // Named from the start (axe: an image without a name); the name becomes the run's description once it runs.
    this.timeline.canvas.setAttribute("aria-label", `Timeline, one lane per ${noun}: empty until the demo runs.`);
    // Labels shortened to fit the gutter are told in full on hover (the Table view lists them too).
    this.timeline.canvas.addEventListener("mousemove", (event) => this.showLaneTitle(event));
    // A click on a lane chooses it for the owner's code panel (its "Mark the line of" list does the same by keyboard).
    /** @type {((record: RunRecord, lane: number) => void) | null} */
    this.onLaneSelect = null;
    this.timeline.canvas.addEventListener("click", (event) => {
      const hit = this.drawn && this.timeline.laneAt(this.drawn.layout, event.offsetX, event.offsetY);
      if (hit) this.onLaneSelect?.(hit.record, hit.lane);
    });
    this.drawn = null; // {layout, scale} of the last frame, for hit tests
    this.legend = el("ul", { className: "demo-legend", "aria-label": "Legend" });
    this.charts = new MetricCharts();
    this.visual = el(
      "div",
      { className: "demo-visual" },
      el("div", { className: "demo-timeline" }, this.timeline.canvas, this.legend, this.canvasNote),
      this.charts.element,
    );
    this.tables = new ResultsTables({ noun, summaryFormat, panelLevel });
    this.summaries = new SummaryPanel({ format: summaryFormat });
    this.counters = new CounterBoard();
    this.log = new LogPanel(panelLevel);
    this.output = new OutputPanel(panelLevel);
    this.element = el(
      "div",
      { className: "demo-run-view" },
      this.stripList,
      this.visual,
      this.output.element,
      this.tables.element,
      this.summaries.element,
      this.counters.element,
      this.log.element,
    );
    this.legendKey = "";
    this.ariaKey = "";
    this.palette = null;
    // The canvases' width comes from the observer, measured after the browser's own layout: reading
    // clientWidth in a frame would force a layout of the whole page per widget (Lighthouse's blocking time).
    this.width = 0;
    this.resizeObserver = new ResizeObserver((entries) => {
      for (const entry of entries) this.width = Math.round(entry.contentRect.width); // .demo-visual has no padding
      this.invalidate();
    });
    this.resizeObserver.observe(this.visual);
    // An empty timeline far from the viewport is not drawn until the reader comes near it: a lesson loads
    // with up to eight of them. Its accessible name is set above, so nothing is lost meanwhile.
    this.nearViewport = typeof IntersectionObserver !== "function";
    if (!this.nearViewport) {
      this.visibilityObserver = new IntersectionObserver((entries) => {
        for (const entry of entries) this.nearViewport = entry.isIntersecting;
        if (this.nearViewport) this.invalidate();
      }, { rootMargin: NEAR_VIEWPORT });
      this.visibilityObserver.observe(this.visual);
    }
    onThemeChange(() => {
      this.palette = null;
      this.legendKey = "";
      this.invalidate();
    });
    this.setRecords([], []);
  }

  /** Show these runs (new run, compare, replay restart). */
  setRecords(records, titles) {
    this.records = records;
    this.titles = titles;
    this.strips = records.map((record, index) => new RunStrip(record, { title: titles[index], showLink: this.showRunLinks, noun: this.noun }));
    replaceChildren(this.stripList, this.strips.map((strip) => strip.element));
    this.stripList.hidden = records.length === 0;
    this.stripList.classList.toggle("is-compare", records.length > 1);
    this.charts.reset();
    this.summaries.reset(records, titles);
    this.counters.reset(records);
    this.log.reset(records);
    this.output.reset(records);
    this.tables.builtKey = "";
    this.ariaKey = "";
    this.invalidate();
  }

  /**
   * The records were rebuilt in place (a replay moved back): panels that only append start over; the
   * strips, whose text is patched from the record each frame, stay.
   */
  rewound() {
    this.charts.reset();
    this.counters.reset(this.records);
    this.log.reset(this.records);
    this.tables.builtKey = "";
    this.ariaKey = "";
    this.invalidate();
  }

  setTableVisible(visible) {
    this.tableVisible = visible;
    this.tables.element.hidden = !visible;
    this.visual.hidden = visible;
    this.element.classList.toggle("is-table", visible);
    this.invalidate();
  }

  /** Ask for a redraw on the next animation frame (coalesced). */
  invalidate() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.frame();
    });
  }

  frame() {
    const live = this.records.some((record) => record.isLive);
    if (!this.visual.hidden) this.drawCanvases();
    for (const strip of this.strips) strip.update();
    this.summaries.update();
    this.counters.update();
    this.log.update();
    this.output.update();
    if (this.tableVisible) {
      const now = performance.now();
      if (!live || now - this.lastTableBuild > TABLE_REFRESH_MS) {
        this.lastTableBuild = now;
        this.tables.update(this.records, this.titles);
      }
    }
    this.onFrame?.();
    if (live) this.invalidate();
  }

  drawCanvases() {
    const width = this.width;
    if (width <= 0 || (this.records.length === 0 && !this.nearViewport)) return;
    const palette = (this.palette ??= pagePalette(this.element));
    const compare = this.records.length > 1;
    const layout = this.timeline.layout({ records: this.records, compare, width, palette });
    const latest = this.fixedDomainMs ?? Math.max(0, ...this.records.map((record) => record.now()));
    const scale = new TimeScale({ domainMs: domainEnd(latest), left: layout.gutter, width: width - layout.gutter - RIGHT_PAD });
    this.timeline.draw({ layout, scale, palette, titles: this.titles, placeholder: this.placeholder });
    this.drawn = { layout, scale };
    this.charts.update({ records: this.records, titles: this.titles, scale, width, palette });
    this.updateLegend(palette, layout);
    this.updateCanvasText(layout);
  }

  /** The timeline's tooltip: the lane under the pointer, its state and that state's label at that moment. */
  showLaneTitle(event) {
    const canvas = this.timeline.canvas;
    const drawn = this.drawn;
    const hit = drawn && this.timeline.laneAt(drawn.layout, event.offsetX, event.offsetY);
    let title = "";
    if (drawn && hit) {
      const { record, lane } = hit;
      title = record.laneLabel(lane, this.noun);
      const ms = drawn.scale.domainMs * ((event.offsetX - drawn.scale.left) / drawn.scale.width);
      if (!hit.inGutter && ms >= 0) {
        record.forEachSegment(lane, record.now(), (start, end, code, changeIndex) => {
          if (ms < start || ms > end) return;
          const label = record.stateLabel(lane, changeIndex);
          title = `${record.laneLabel(lane, this.noun)}: ${STATE_MEANINGS[LANE_STATES[code]] ?? LANE_STATES[code]}${label ? `, ${label}` : ""}`;
        });
      }
      if (record.tag) title = `Run ${record.tag}, ${title}`;
    }
    if (canvas.title !== title) canvas.title = title;
  }

  updateLegend(palette, layout) {
    const states = legendStates(this.records);
    // Swatches look like the bars on screen: textured, or flat when every run's rows are thin.
    const tallest = Math.max(0, ...layout.groups.filter((group) => group.lanes).map((group) => (group.aggregated ? 1 : group.bar)));
    const rowHeight = tallest === 0 || tallest >= PATTERN_MIN_ROW ? 14 : 1;
    const key = `${states.join()}|${palette.states.running}|${palette.states.waiting}|${rowHeight}`;
    if (key === this.legendKey) return;
    this.legendKey = key;
    this.legend.hidden = states.length === 0;
    replaceChildren(
      this.legend,
      states.map((state) => {
        const swatch = el("canvas", { className: "demo-legend-swatch", "aria-hidden": "true", width: 28, height: 14 });
        const scale = window.devicePixelRatio || 1;
        swatch.width = 28 * scale;
        swatch.height = 14 * scale;
        const ctx = context2d(swatch);
        ctx.scale(scale, scale);
        ctx.fillStyle = stateFill(ctx, palette, state, { rowHeight, scale });
        ctx.fillRect(state === "failed" ? 12 : 0, 0, state === "failed" ? 4 : 28, 14);
        return el("li", { className: "demo-legend-item", "data-state": state }, swatch, STATE_MEANINGS[state] ?? state);
      }),
    );
  }

  updateCanvasText(layout) {
    const aggregated = layout.groups.find((group) => group.aggregated);
    const note = aggregated
      ? `${countOf(aggregated.lanes, this.noun)}: each pixel row stands for about ${formatNumber(Math.round(aggregated.lanes / aggregated.rows))} ${plural(this.noun, 2)}; the stronger the colour, the more of them were in that state.`
      : "";
    if (this.canvasNote.textContent !== note) {
      this.canvasNote.textContent = note;
      this.canvasNote.hidden = !note;
    }
    // The accessible name changes when a run starts or ends, not every frame.
    const key = this.records.map((record) => `${record.status}:${record.laneCount}`).join("|");
    if (key !== this.ariaKey) {
      this.ariaKey = key;
      this.timeline.canvas.setAttribute("aria-label", describeTimeline(this.records, this.noun));
    }
  }
}
