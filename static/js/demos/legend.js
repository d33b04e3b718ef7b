/*
 * What each lane state means, and which of them a legend lists.
 *
 * The vocabulary separates the ways a lane can be not running, because the
 * lessons turn on the difference: a thread blocked in a system call holds
 * its thread but no CPU; a task suspended at an await holds neither; a lane
 * waiting for a lock is stuck behind another lane, not behind I/O. The
 * legend lists only the states the shown runs used, so it never explains a
 * colour the reader cannot see. No DOM here, so node --test can check it.
 */
import { BAR_STATES } from "./run-record.js";

/** The legend's words for each drawn state. */
export const STATE_MEANINGS = {
  running: "running (on the CPU)",
  blocked: "blocked in a system call (sleep, socket, database; no CPU)",
  waiting: "waiting at an await (suspended; others run)",
  "lock-wait": "waiting for a lock",
  queued: "queued (ready, not started yet)",
  failed: "failed",
};

/** Every state the legend can show, in its order: the bars first, then the failure marker. */
export const LEGEND_ORDER = [...BAR_STATES, "failed"];

/**
 * The states the legend lists for these runs: those their lanes entered, in legend order.
 * @param {{statesSeen: Set<string>}[]} records
 * @returns {string[]}
 */
export function legendStates(records) {
  const seen = new Set();
  for (const record of records) for (const state of record.statesSeen) seen.add(state);
  return LEGEND_ORDER.filter((state) => seen.has(state));
}
