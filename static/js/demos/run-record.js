/*
 * Everything the widget knows about one run, built from protocol events.
 *
 * A RunRecord is plain data with no DOM: the live socket and the replay
 * player both feed it events, and every view (timeline, charts, log,
 * counters, tables) reads it. `version` goes up on each change so views can
 * skip redrawing when nothing happened. Lane storage is flat number arrays,
 * so 10,000 lanes cost 10,000 small arrays, not 10,000 objects per state.
 */
import { formatNumber } from "./format.js";

/**
 * Lane states in drawing order; the index is the compact code stored per change.
 * running: on the CPU; blocked: in a system call (sleep, socket, database), no CPU;
 * waiting: suspended at an await; lock-wait: waiting for a lock; queued: ready, not started.
 */
export const LANE_STATES = ["running", "waiting", "queued", "blocked", "lock-wait", "done", "failed"];
export const STATE_CODE = Object.fromEntries(LANE_STATES.map((state, code) => [state, code]));
export const DONE = STATE_CODE.done;
export const FAILED = STATE_CODE.failed;

/** States drawn as bars (done ends a lane; failed is drawn as a marker). */
export const BAR_STATES = ["running", "waiting", "queued", "blocked", "lock-wait"];

const MAX_LANES = 100_000; // guards memory against a runaway lane number
const MAX_KEPT_OTHER_EVENTS = 1000;
const MAX_OUTPUT_CHARS = 512 * 1024; // what a page keeps of a run's output; the rest is counted
const MAX_NOTES = 100;

/** Run statuses that mean the run is over ("unfinished": a recording of a run that never ended). */
export const FINAL_STATUSES = new Set(["succeeded", "failed", "cancelled", "timed_out", "rejected", "lost", "unfinished"]);

export class RunRecord {
  constructor({ tag = "", params = {} } = {}) {
    this.tag = tag; // "A" / "B" in compare mode, "" otherwise
    this.params = params;
    this.status = "idle";
    this.runId = null;
    this.summary = null;
    this.error = null; // {code, message} when the server refused or the socket dropped
    this.laneCount = 0;
    this.laneLabels = []; // sparse: explicit labels from the events
    this.laneChanges = []; // per lane: [t0, code0, t1, code1, ...]
    this.stateLabels = new Map(); // "lane:index" -> label, only when events carry one
    this.statesSeen = new Set();
    this.progress = null; // {done, total}
    this.laneDone = []; // sparse: per lane, its own progress from `progress` events that name a lane
    this.laneTotal = [];
    this.hasLaneProgress = false;
    this.metrics = new Map(); // name -> {unit, points: [t0, v0, t1, v1, ...]}
    this.logs = []; // [{t, text}]
    this.counters = new Map(); // name -> {value, t}
    this.laneTypes = []; // sparse: "task" / "thread" from `lane` events
    this.laneLines = []; // sparse: per lane, the source line of its latest state that named one (null: none)
    this.latestLine = null; // {lane, line}: the most recent state event that named a line
    this.output = []; // [{t, stream, text}] from `output` events
    this.outputChars = 0;
    this.outputCharsDropped = 0;
    this.notes = []; // [{t, text}] from `note` events: what the server says about the run itself
    this.otherEvents = [];
    this.otherEventsDropped = 0;
    this.lastT = 0;
    this.endT = null;
    this.expectedSeq = 0;
    this.missedBatches = 0;
    this.eventsDropped = 0; // reported by the recording (replay)
    this.startedAt = null; // performance.now() when accepted
    this.clock = () => (this.startedAt === null ? 0 : performance.now() - this.startedAt);
    this.version = 0;
  }

  /**
   * Forget every event and the ending, keeping the run's identity, clock and status (a replay moving back
   * rebuilds its record this way). `version` still goes up, so views keyed on it redraw.
   */
  rewind() {
    const kept = { runId: this.runId, status: this.status, clock: this.clock, startedAt: this.startedAt, eventsDropped: this.eventsDropped, version: this.version + 1 };
    Object.assign(this, new RunRecord({ tag: this.tag, params: this.params }), kept);
  }

  /** A replay's record before the playhead reaches the run's end: drawn up to its clock, not live. */
  get isReplaying() {
    return this.status === "replaying";
  }

  get isLive() {
    return this.status === "running" || this.status === "starting";
  }

  get isFinal() {
    return FINAL_STATUSES.has(this.status);
  }

  /** The current time on the run's clock (ms since it started). */
  now() {
    if (this.endT !== null) return this.endT;
    if (this.status === "running" || this.status === "replaying") return Math.max(this.lastT, this.clock());
    return this.lastT;
  }

  /** Before `run` is sent. */
  starting(params) {
    this.params = params;
    this.status = "starting";
    this.version += 1;
  }

  /** The server accepted the run. */
  accepted(runId, params) {
    this.runId = runId;
    if (params) this.params = params;
    this.status = "running";
    this.startedAt = performance.now();
    this.version += 1;
  }

  /** One `events` message; returns true when batches were missed before it. */
  addBatch(seq, events) {
    let gap = false;
    if (Number.isInteger(seq)) {
      if (seq < this.expectedSeq) return false; // a duplicate: already applied
      if (seq > this.expectedSeq) {
        this.missedBatches += seq - this.expectedSeq;
        gap = true;
      }
      this.expectedSeq = seq + 1;
    }
    this.addEvents(events);
    return gap;
  }

  addEvents(events) {
    if (!Array.isArray(events)) return;
    for (const event of events) this.addEvent(event);
    this.version += 1;
  }

  addEvent(event) {
    if (!event || typeof event !== "object") return;
    const t = Number.isFinite(event.t) ? event.t : this.lastT;
    if (t > this.lastT) this.lastT = t;
    switch (event.kind) {
      case "state":
        this.addState(t, event);
        break;
      case "lanes":
        this.setLanes(event.count, event.labels);
        break;
      case "lane":
        this.addLane(event);
        break;
      case "output":
        this.addOutput(t, event);
        break;
      case "note":
        if (this.notes.length < MAX_NOTES) this.notes.push({ t, text: String(event.text ?? "") });
        break;
      case "progress":
        if (Number.isFinite(event.done) && Number.isFinite(event.total)) {
          this.progress = { done: event.done, total: event.total };
        }
        this.addLaneProgress(event);
        break;
      case "metric":
        this.addMetric(t, event);
        break;
      case "log":
        this.logs.push({ t, text: String(event.text ?? "") });
        break;
      case "counter":
        if (typeof event.name === "string" && Number.isFinite(event.value)) {
          this.counters.set(event.name, { value: event.value, t });
        }
        break;
      default:
        if (this.otherEvents.length < MAX_KEPT_OTHER_EVENTS) this.otherEvents.push(event);
        else this.otherEventsDropped += 1;
    }
  }

  setLanes(count, labels) {
    if (Number.isInteger(count) && count >= 0) this.growLanes(Math.min(count, MAX_LANES));
    if (Array.isArray(labels)) {
      labels.slice(0, MAX_LANES).forEach((label, lane) => {
        if (label !== null && label !== undefined) this.laneLabels[lane] = String(label);
      });
    }
  }

  /** One lane announced mid-run: {lane, label, type}. */
  addLane(event) {
    const lane = event.lane;
    if (!Number.isInteger(lane) || lane < 0 || lane >= MAX_LANES) return;
    this.growLanes(lane + 1);
    if (event.label !== undefined && event.label !== null) this.laneLabels[lane] = String(event.label);
    if (typeof event.type === "string") this.laneTypes[lane] = event.type;
  }

  /** Text a run printed: {stream: "stdout" | "stderr", text}; kept up to MAX_OUTPUT_CHARS. */
  addOutput(t, event) {
    const text = typeof event.text === "string" ? event.text : "";
    const stream = event.stream === "stderr" ? "stderr" : "stdout";
    const room = MAX_OUTPUT_CHARS - this.outputChars;
    if (room <= 0) {
      this.outputCharsDropped += text.length;
      return;
    }
    const kept = text.length > room ? text.slice(0, room) : text;
    this.outputCharsDropped += text.length - kept.length;
    this.outputChars += kept.length;
    this.output.push({ t, stream, text: kept });
  }

  growLanes(count) {
    while (this.laneChanges.length < count) this.laneChanges.push([]);
    if (count > this.laneCount) this.laneCount = count;
  }

  /** A `progress` event may also say how far one lane got: lane, lane_done, lane_total. */
  addLaneProgress(event) {
    const lane = event.lane;
    if (!Number.isInteger(lane) || lane < 0 || lane >= MAX_LANES) return;
    if (!Number.isFinite(event.lane_done) || !Number.isFinite(event.lane_total) || event.lane_total <= 0) return;
    this.growLanes(lane + 1);
    this.laneDone[lane] = event.lane_done;
    this.laneTotal[lane] = event.lane_total;
    this.hasLaneProgress = true;
  }

  addState(t, event) {
    const lane = event.lane;
    const code = STATE_CODE[event.state];
    if (!Number.isInteger(lane) || lane < 0 || lane >= MAX_LANES || code === undefined) return;
    this.growLanes(lane + 1);
    if (event.lane_label !== undefined && event.lane_label !== null) this.laneLabels[lane] = String(event.lane_label);
    const changes = this.laneChanges[lane];
    let index = changes.length;
    // Events of one lane normally arrive in time order; keep the list sorted if not.
    while (index > 0 && changes[index - 2] > t) index -= 2;
    changes.splice(index, 0, t, code);
    if (event.label !== undefined && event.label !== null) this.stateLabels.set(`${lane}:${index / 2}`, String(event.label));
    this.statesSeen.add(event.state);
    if (Number.isInteger(event.line) && event.line > 0) {
      this.laneLines[lane] = event.line;
      this.latestLine = { lane, line: event.line };
    } else if (event.line === null) {
      this.laneLines[lane] = null;
    }
  }

  addMetric(t, event) {
    if (typeof event.name !== "string" || !Number.isFinite(event.value)) return;
    let series = this.metrics.get(event.name);
    if (!series) {
      series = { unit: "", points: [] };
      this.metrics.set(event.name, series);
    }
    if (typeof event.unit === "string") series.unit = event.unit;
    const points = series.points;
    let index = points.length;
    // Demos may stamp a sample with an earlier `t` (measured, then reported): keep the series in time order.
    while (index > 0 && points[index - 2] > t) index -= 2;
    if (index === points.length) points.push(t, event.value);
    else points.splice(index, 0, t, event.value);
  }

  /** The run ended with a status from the server (or the recording). */
  finish(status, summary) {
    this.status = status;
    this.summary = summary && typeof summary === "object" ? summary : null;
    // A stopped run's summary says when it stopped (the server's clock); a finished one ends with its last event.
    const stopped = status !== "succeeded" && this.summary && Number.isFinite(this.summary.elapsed_ms);
    const reported = stopped ? this.summary.elapsed_ms : 0;
    this.endT = Math.max(this.lastT, reported);
    this.version += 1;
  }

  /** The server refused to start the run. */
  reject(error) {
    this.status = "rejected";
    this.error = error;
    this.endT = this.lastT;
    this.version += 1;
  }

  /** The socket dropped while the run was in flight (the server stops it). */
  lose() {
    if (this.isFinal) return;
    this.endT = Math.max(this.lastT, this.status === "running" ? this.clock() : 0);
    this.status = "lost";
    this.error = { code: "disconnected", message: "The connection dropped, so the server stopped this run." };
    this.version += 1;
  }

  laneLabel(lane, noun) {
    return this.laneLabels[lane] ?? `${noun} ${formatNumber(lane + 1)}`;
  }

  /**
   * Calls visit(start, end, code, changeIndex) for each bar of a lane, up to
   * `now` for a state still open; a failure is visited as a zero-length bar.
   */
  forEachSegment(lane, now, visit) {
    const changes = this.laneChanges[lane];
    if (!changes) return;
    for (let index = 0; index < changes.length; index += 2) {
      const start = changes[index];
      const code = changes[index + 1];
      if (code === DONE) continue;
      if (code === FAILED) {
        visit(start, start, code, index / 2);
        continue;
      }
      const end = index + 2 < changes.length ? changes[index + 2] : Math.max(start, now);
      visit(start, end, code, index / 2);
    }
  }

  /** First and last time a lane changed state, and whether it ended (done/failed). */
  laneSpan(lane) {
    const changes = this.laneChanges[lane];
    if (!changes || changes.length === 0) return null;
    const lastCode = changes[changes.length - 1];
    const ended = lastCode === DONE || lastCode === FAILED;
    return {
      start: changes[0],
      end: ended ? changes[changes.length - 2] : null,
      outcome: ended ? LANE_STATES[lastCode] : LANE_STATES[lastCode],
      ended,
    };
  }

  stateLabel(lane, changeIndex) {
    return this.stateLabels.size ? this.stateLabels.get(`${lane}:${changeIndex}`) : undefined;
  }

  /** The state a lane is in now ("running", "done"...), or null before its first state event. */
  laneState(lane) {
    const changes = this.laneChanges[lane];
    return changes && changes.length ? LANE_STATES[changes[changes.length - 1]] : null;
  }

  /** The label of the latest change of a lane into `state` (the process a job ran on, say), if it had one. */
  latestStateLabel(lane, state) {
    const changes = this.laneChanges[lane];
    const code = STATE_CODE[state];
    if (!changes || !this.stateLabels.size) return undefined;
    for (let index = changes.length - 2; index >= 0; index -= 2) {
      if (changes[index + 1] === code) return this.stateLabel(lane, index / 2);
    }
    return undefined;
  }
}
