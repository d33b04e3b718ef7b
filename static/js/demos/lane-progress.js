/*
 * Per-lane progress bars, under a run's overall bar in its strip.
 *
 * Only for runs whose `progress` events also name a lane (lane, lane_done,
 * lane_total), such as a demo whose jobs run on workers: one compact row per lane with
 * its name (and the process its `running` state named), a progressbar and its
 * state in words, so colour is never the only cue. At most MAX_SHOWN_LANES
 * rows, then a "+N more" line. RunView's frame loop calls update(), which
 * does nothing unless the record changed, and patches only what changed.
 */
import { el } from "./dom.js";
import { formatNumber, plural } from "./format.js";

export const MAX_SHOWN_LANES = 50;

/** A lane's state in words: its state's own name, "not started" before its first state event. */
function stateWords(state) {
  return state === "idle" ? "not started" : state;
}

/** How far one lane got, its state and the process it ran on. A finished lane is full whatever it last reported. */
export function laneProgress(record, lane) {
  const state = record.laneState(lane) ?? "idle";
  const done = record.laneDone[lane];
  const total = record.laneTotal[lane];
  const reported = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const fraction = state === "done" ? 1 : reported;
  const worker = record.latestStateLabel(lane, "running");
  const failure = state === "failed" ? record.latestStateLabel(lane, "failed") : undefined;
  return { state, fraction, done, total, worker, failure };
}

class LaneRow {
  constructor(lane) {
    this.lane = lane;
    this.title = el("span", { className: "demo-lane-title" });
    this.worker = el("span", { className: "demo-lane-worker" });
    this.name = el("span", { className: "demo-lane-name" }, this.title, this.worker);
    this.fill = el("div", { className: "demo-lane-fill" });
    this.bar = el("div", { className: "demo-lane-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" }, this.fill);
    this.state = el("span", { className: "demo-lane-state" });
    this.element = el("li", { className: "demo-lane" }, this.name, this.bar, this.state);
    this.shown = {};
  }

  set(key, value, apply) {
    if (this.shown[key] === value) return;
    this.shown[key] = value;
    apply(value);
  }

  update(record, noun) {
    const { state, fraction, done, total, worker, failure } = laneProgress(record, this.lane);
    const title = record.laneLabel(this.lane, noun);
    const name = worker ? `${title} · ${worker}` : title;
    const percent = Math.round(fraction * 100);
    const words = stateWords(state);
    const stateText = state === "failed" ? (failure && failure !== "failed" ? `failed: ${failure}` : "failed") : state === "running" ? `${words} · ${percent}%` : words;
    this.set("name", name, () => {
      this.title.textContent = title;
      this.worker.textContent = worker ? ` · ${worker}` : "";
      this.name.title = name; // the full name when a long process name is cut short
      this.bar.setAttribute("aria-label", name);
    });
    this.set("state", state, (value) => (this.element.dataset.state = value));
    this.set("stateText", stateText, (text) => (this.state.textContent = text));
    this.set("percent", fraction, (value) => {
      this.fill.style.width = `${(value * 100).toFixed(2)}%`; // CSSOM: allowed by the CSP
      this.bar.setAttribute("aria-valuenow", String(percent));
    });
    const steps = total > 0 ? `, ${formatNumber(Math.min(done, total))} of ${formatNumber(total)}` : "";
    this.set("valuetext", `${stateText}${steps}`, (text) => this.bar.setAttribute("aria-valuetext", text));
  }
}

export class LaneProgressList {
  constructor(record, { noun }) {
    this.record = record;
    this.noun = noun;
    const label = `Progress of each ${noun}${record.tag ? ` in run ${record.tag}` : ""}`;
    this.list = el("ol", { className: "demo-lane-list", "aria-label": label });
    this.more = el("p", { className: "demo-lane-more", hidden: true });
    this.element = el("div", { className: "demo-lanes", hidden: true }, this.list, this.more);
    this.rows = [];
    this.version = -1;
    this.moreText = "";
  }

  update() {
    const record = this.record;
    if (record.version === this.version) return;
    this.version = record.version;
    if (!record.hasLaneProgress) return;
    this.element.hidden = false;
    const shown = Math.min(record.laneCount, MAX_SHOWN_LANES);
    while (this.rows.length < shown) {
      const row = new LaneRow(this.rows.length);
      this.rows.push(row);
      this.list.append(row.element);
    }
    for (const row of this.rows) row.update(record, this.noun);
    this.updateMore(shown);
  }

  /** "+N more jobs: 3 running, 40 done" for the lanes past the cap. */
  updateMore(shown) {
    const record = this.record;
    const hidden = record.laneCount - shown;
    let text = "";
    if (hidden > 0) {
      const counts = new Map();
      for (let lane = shown; lane < record.laneCount; lane += 1) {
        const state = stateWords(record.laneState(lane) ?? "idle");
        counts.set(state, (counts.get(state) ?? 0) + 1);
      }
      const parts = [...counts].map(([state, count]) => `${formatNumber(count)} ${state}`);
      text = `+${formatNumber(hidden)} more ${plural(this.noun, hidden)}: ${parts.join(", ")}`;
    }
    if (text === this.moreText) return;
    this.moreText = text;
    this.more.textContent = text;
    this.more.hidden = !text;
  }
}
