/*
 * The "Table" view: the same results as the canvases, as HTML tables.
 *
 * This is the accessible alternative to the timeline and charts: per-lane
 * start, end and duration (first MAX_LANE_ROWS lanes), time spent in each
 * state, the summary, metric statistics, counters and any event kinds the
 * widget does not draw. It is rebuilt only while visible, a few times a
 * second at most.
 */
import { el, replaceChildren } from "./dom.js";
import { countOf, formatDuration, formatNumber, humanizeKey, metricTitle } from "./format.js";
import { LANE_STATES } from "./run-record.js";
import { summaryTable } from "./summary.js";

const MAX_LANE_ROWS = 200;
const MAX_OTHER_EVENT_ROWS = 100;

function headerRow(...names) {
  return el("thead", {}, el("tr", {}, names.map((name) => el("th", { scope: "col" }, name))));
}

function numberCell(text) {
  return el("td", { className: "demo-number" }, text);
}

/** "done", "failed: rejected: service over its limit", "waiting (still)". */
function outcomeText(record, lane, span) {
  if (!span) return "no events";
  const changes = record.laneChanges[lane];
  const label = record.stateLabel(lane, changes.length / 2 - 1);
  const outcome = label ? `${span.outcome}: ${label}` : span.outcome;
  return span.ended ? outcome : `${outcome} (still)`;
}

function lanesTable(record, noun) {
  const shown = Math.min(record.laneCount, MAX_LANE_ROWS);
  if (!shown) return null;
  const now = record.now();
  const rows = [];
  for (let lane = 0; lane < shown; lane += 1) {
    const span = record.laneSpan(lane);
    const perState = new Map();
    record.forEachSegment(lane, now, (start, end, code) => {
      const state = LANE_STATES[code];
      if (state !== "failed") perState.set(state, (perState.get(state) ?? 0) + (end - start));
    });
    const stateText = [...perState].map(([state, ms]) => `${state} ${formatDuration(ms)}`).join(", ");
    const end = span?.end ?? null;
    rows.push(
      el(
        "tr",
        {},
        el("th", { scope: "row" }, record.laneLabel(lane, noun)),
        numberCell(span ? formatDuration(span.start) : "—"),
        numberCell(end !== null ? formatDuration(end) : "—"),
        numberCell(span && end !== null ? formatDuration(end - span.start) : span ? `${formatDuration(now - span.start)} so far` : "—"),
        el("td", {}, stateText || "—"),
        el("td", {}, outcomeText(record, lane, span)),
      ),
    );
  }
  const more = record.laneCount > shown ? ` (first ${formatNumber(shown)} of ${formatNumber(record.laneCount)})` : "";
  return el(
    "table",
    { className: "demo-data-table" },
    el("caption", {}, `Each ${noun}${more}`),
    headerRow(noun[0].toUpperCase() + noun.slice(1), "Started", "Ended", "Duration", "Time in each state", "Outcome"),
    el("tbody", {}, rows),
  );
}

function metricsTable(record) {
  if (!record.metrics.size) return null;
  const rows = [...record.metrics].map(([name, series]) => {
    let lowest = Infinity;
    let highest = -Infinity;
    for (let index = 1; index < series.points.length; index += 2) {
      lowest = Math.min(lowest, series.points[index]);
      highest = Math.max(highest, series.points[index]);
    }
    const unit = series.unit ? ` ${series.unit}` : "";
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, metricTitle(name, series.unit)),
      numberCell(formatNumber(series.points.length / 2)),
      numberCell(`${formatNumber(lowest)}${unit}`),
      numberCell(`${formatNumber(highest)}${unit}`),
      numberCell(`${formatNumber(series.points[series.points.length - 1])}${unit}`),
    );
  });
  return el("table", { className: "demo-data-table" }, el("caption", {}, "Metrics"), headerRow("Metric", "Samples", "Lowest", "Highest", "Last"), el("tbody", {}, rows));
}

function countersTable(record) {
  if (!record.counters.size) return null;
  const rows = [...record.counters].map(([name, { value }]) => el("tr", {}, el("th", { scope: "row" }, humanizeKey(name)), numberCell(formatNumber(value))));
  return el("table", { className: "demo-data-table" }, el("caption", {}, "Counters (latest values)"), el("tbody", {}, rows));
}

function otherEventsTable(record) {
  if (!record.otherEvents.length) return null;
  const shown = record.otherEvents.slice(0, MAX_OTHER_EVENT_ROWS);
  const rows = shown.map((event) => {
    const { t, kind, ...fields } = event;
    return el("tr", {}, numberCell(formatDuration(t)), el("td", {}, String(kind)), el("td", { className: "demo-code-cell" }, JSON.stringify(fields)));
  });
  const total = record.otherEvents.length + record.otherEventsDropped;
  const more = total > shown.length ? ` (first ${formatNumber(shown.length)} of ${formatNumber(total)})` : "";
  return el("table", { className: "demo-data-table" }, el("caption", {}, `Other events${more}`), headerRow("Time", "Kind", "Details"), el("tbody", {}, rows));
}

/** A long or wide table in a box that scrolls, focusable so keyboard users can scroll it too. */
function scrollable(table, label) {
  if (!table) return null;
  return el("div", { className: "demo-table-scroll", tabindex: "0", role: "region", "aria-label": label }, table);
}

export class ResultsTables {
  /** @param {{noun: string, summaryFormat?: Record<string, any>, panelLevel?: number}} options panelLevel: one below the widget's title */
  constructor({ noun, summaryFormat = {}, panelLevel = 4 }) {
    this.panelLevel = panelLevel;
    this.summaryFormat = summaryFormat; // the demo's names and units for its summary keys
    this.noun = noun;
    this.element = el("div", { className: "demo-tables", hidden: true });
    this.builtKey = "";
  }

  /** Rebuild for `records` unless nothing changed since the last build. */
  update(records, titles) {
    const key = records.map((record) => `${record.runId}:${record.version}:${record.status}`).join("|");
    if (key === this.builtKey) return;
    this.builtKey = key;
    if (!records.length) {
      replaceChildren(this.element, el("p", { className: "demo-muted" }, "No results yet: press Run."));
      return;
    }
    replaceChildren(
      this.element,
      records.map((record, index) => {
        const title = record.tag ? `Run ${record.tag}${titles[index] ? ` · ${titles[index]}` : ""}` : "Results";
        const facts = [];
        if (record.laneCount) facts.push(countOf(record.laneCount, this.noun));
        if (record.status !== "idle") facts.push(`${record.status.replace("_", " ")} after ${formatDuration(record.now())}`);
        return el(
          "section",
          { className: "demo-table-group", "aria-label": title },
          el(`h${this.panelLevel}`, { className: "demo-panel-title" }, title),
          facts.length ? el("p", { className: "demo-muted" }, facts.join(" · ")) : null,
          summaryTable(record.summary, "Summary", this.summaryFormat),
          scrollable(lanesTable(record, this.noun), `Each ${this.noun}${record.tag ? `, run ${record.tag}` : ""}`),
          metricsTable(record),
          countersTable(record),
          scrollable(otherEventsTable(record), `Other events${record.tag ? `, run ${record.tag}` : ""}`),
        );
      }),
    );
  }
}

