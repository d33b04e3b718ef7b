/*
 * The replay's state at a moment: which events have happened by time t, a
 * playhead that plays, pauses and changes speed, and one record per run
 * brought to t.
 *
 * No DOM here, so node --test covers it (tests/js/replay-state.test.mjs).
 * Moving forward only appends the events since the last position; moving
 * back rebuilds the record from the first event, which is what "state at t"
 * means for records that only ever grow. Times are ms on the run's own clock;
 * the runs of a compare share one axis, each from its own start.
 */
import { formatDuration, formatNumber, plural } from "./format.js";
import { DONE, FAILED, FINAL_STATUSES } from "./run-record.js";

/** @typedef {import("./run-record.js").RunRecord} RunRecord */
/** @typedef {{t?: number, kind?: string} & Record<string, unknown>} RunEvent */

/** The speeds a reader may choose, slowest first. */
export const SPEEDS = [0.25, 0.5, 1, 2, 4];

/** The status a replay record has while the playhead is before its end. */
export const REPLAYING = "replaying";

/**
 * The events in time order (stable for equal times), with anything that is not an event left out.
 * @param {unknown} events
 * @returns {RunEvent[]}
 */
export function sortedEvents(events) {
  if (!Array.isArray(events)) return [];
  return events
    .filter((event) => event && typeof event === "object")
    .map((event, index) => ({ event, index, t: Number.isFinite(event.t) ? event.t : 0 }))
    .sort((a, b) => a.t - b.t || a.index - b.index)
    .map(({ event }) => event);
}

/**
 * How many of the sorted times are at or before t (binary search).
 * @param {number[]} times  ascending
 * @param {number} t
 */
export function countUpTo(times, t) {
  let low = 0;
  let high = times.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (times[middle] <= t) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The time of the next event after t (direction 1) or of the event before the last one at or before t
 * (direction -1, so stepping back undoes one event), across every run; t itself when there is none.
 * Stepping back before the first event goes to 0.
 * @param {number[][]} timesOfRuns  each ascending
 * @param {number} t
 * @param {1 | -1} direction
 */
export function stepTime(timesOfRuns, t, direction) {
  if (direction > 0) {
    let next = Infinity;
    for (const times of timesOfRuns) {
      const index = countUpTo(times, t);
      if (index < times.length) next = Math.min(next, times[index]);
    }
    return next === Infinity ? t : next;
  }
  // The latest event at or before t is the one to undo: go to the latest time strictly before it.
  let latest = -Infinity;
  for (const times of timesOfRuns) {
    const index = countUpTo(times, t);
    if (index > 0) latest = Math.max(latest, times[index - 1]);
  }
  if (latest === -Infinity) return 0;
  let before = -Infinity;
  for (const times of timesOfRuns) {
    const index = countUpTo(times, latest) - 1;
    let position = index;
    while (position >= 0 && times[position] >= latest) position -= 1;
    if (position >= 0) before = Math.max(before, times[position]);
  }
  return before === -Infinity ? 0 : before;
}

/**
 * Where the replay is: a position in ms over [0, duration], playing or paused, at a speed.
 * Time comes in as an argument (`now`, ms from any monotonic clock), so it is testable without timers.
 */
export class Playhead {
  /** @param {number} duration */
  constructor(duration) {
    this.duration = Math.max(0, Number.isFinite(duration) ? duration : 0);
    this.position = 0;
    this.speed = 1;
    this.playing = false;
    this.anchorNow = 0; // when the position was last fixed, while playing
    this.anchorPosition = 0;
  }

  /** The position at `now`; a playing playhead that reaches the end stops there. */
  positionAt(now) {
    if (this.playing) {
      this.position = Math.min(this.duration, this.anchorPosition + (now - this.anchorNow) * this.speed);
      if (this.position >= this.duration) this.playing = false;
    }
    return this.position;
  }

  /** Play from where it is; from the start if it is at the end. */
  play(now) {
    if (this.position >= this.duration) this.position = 0;
    this.playing = this.duration > 0;
    this.anchor(now);
  }

  pause(now) {
    this.positionAt(now);
    this.playing = false;
  }

  /** Go to t (clamped); playing carries on from there. */
  seek(t, now) {
    this.position = Math.min(this.duration, Math.max(0, Number.isFinite(t) ? t : 0));
    this.anchor(now);
  }

  /** A speed from SPEEDS; the position so far is kept. */
  setSpeed(speed, now) {
    if (!SPEEDS.includes(speed)) return;
    this.positionAt(now);
    this.speed = speed;
    this.anchor(now);
  }

  anchor(now) {
    this.anchorNow = now;
    this.anchorPosition = this.position;
  }
}

/**
 * One recorded run brought to a time: feeds its sorted events into a record, forward by appending,
 * back by rebuilding, and gives the record its recorded ending once t reaches the run's end.
 */
export class ReplayTrack {
  /**
   * @param {{record: RunRecord, events: unknown, status: string, summary: Record<string, unknown> | null,
   *   eventsDropped?: number}} recording  `record` must be accepted (runId, params) and hold no events yet
   */
  constructor({ record, events, status, summary, eventsDropped = 0 }) {
    this.record = record;
    this.events = sortedEvents(events);
    this.times = this.events.map((event) => (Number.isFinite(event.t) ? Number(event.t) : 0));
    this.finalStatus = FINAL_STATUSES.has(status) && status !== "rejected" && status !== "lost" ? status : "unfinished";
    this.summary = summary && typeof summary === "object" ? summary : null;
    this.eventsDropped = eventsDropped;
    this.applied = 0;
    this.position = 0;
    this.finished = false;
    record.clock = () => this.position;
    record.eventsDropped = eventsDropped;
    record.status = REPLAYING;
    // The end of the run on its own clock: its last event, or later when the recording says it stopped later.
    const stopped = this.finalStatus !== "succeeded" && this.summary && Number.isFinite(this.summary.elapsed_ms);
    this.end = Math.max(this.times.length ? this.times[this.times.length - 1] : 0, stopped ? Number(this.summary?.elapsed_ms) : 0);
  }

  /** How many events have happened by the current position. */
  get shown() {
    return this.applied;
  }

  /**
   * Bring the record to t. Returns "same" (nothing changed), "forward" (events appended or the run ended)
   * or "rewound" (the record was rebuilt: views that append must start over).
   * @param {number} t
   */
  seek(t) {
    const target = countUpTo(this.times, t);
    const ends = t >= this.end;
    let result = "same";
    if (target < this.applied || (this.finished && !ends)) {
      this.record.rewind();
      this.record.status = REPLAYING;
      this.applied = 0;
      this.finished = false;
      result = "rewound";
    }
    this.position = Math.min(t, this.end);
    if (target > this.applied) {
      this.record.addEvents(this.events.slice(this.applied, target));
      this.applied = target;
      if (result === "same") result = "forward";
    }
    if (ends && !this.finished) {
      this.record.finish(this.finalStatus, this.summary);
      this.finished = true;
      if (result === "same") result = "forward";
    }
    return result;
  }
}

/**
 * Lanes of a record by where they are at its current time: ended well, failed, still open, and all.
 * @param {RunRecord} record
 */
export function laneTally(record) {
  let done = 0;
  let failed = 0;
  let open = 0;
  for (let lane = 0; lane < record.laneCount; lane += 1) {
    const changes = record.laneChanges[lane];
    if (!changes || changes.length === 0) continue;
    const code = changes[changes.length - 1];
    if (code === DONE) done += 1;
    else if (code === FAILED) failed += 1;
    else open += 1;
  }
  return { done, failed, open, total: record.laneCount };
}

/**
 * The scrubber's aria-valuetext and readout: "1.2 s of 3.4 s".
 * @param {number} t
 * @param {number} duration
 */
export function positionText(t, duration) {
  return `${formatDuration(Math.max(0, t))} of ${formatDuration(Math.max(0, duration))}`;
}

/**
 * What the runs look like at the playhead, in words: "Run A: 3 of 8 requests done, 5 still going; 40 of 120 events."
 * @param {ReplayTrack[]} tracks
 * @param {string} noun  what one lane is
 */
export function stateSentence(tracks, noun) {
  return tracks
    .map((track) => {
      const record = track.record;
      const { done, failed, open, total } = laneTally(record);
      const parts = [];
      if (total > 0) {
        parts.push(`${formatNumber(done)} of ${formatNumber(total)} ${plural(noun, total)} done`);
        if (failed) parts.push(`${formatNumber(failed)} failed`);
        if (open) parts.push(`${formatNumber(open)} still going`);
      }
      parts.push(`${formatNumber(track.shown)} of ${formatNumber(track.events.length)} events`);
      if (track.finished) parts.push(`ended (${record.status.replace("_", " ")})`);
      return `${record.tag ? `Run ${record.tag}: ` : ""}${parts.join(", ")}.`;
    })
    .join(" ");
}
