/*
 * What a widget does when the site turns a run away as busy, without the DOM
 * (node --test covers it: tests/js/busy-retry.test.mjs).
 *
 * A `busy` error that carries `retry_after_s` means the site-wide places are
 * full and one frees up about then: the widget counts down and asks again on
 * its own, a few times at most. One without it (this socket's own cap) gets
 * no automatic retry. While it waits, the widget may offer the newest
 * recorded run of the same settings (GET /api/demos/SLUG/recording/).
 */

/** Automatic retries after one press of Run; past these the reader presses Run again. */
export const MAX_AUTO_RETRIES = 3;

/** At most this much is added to the server's wait, so readers turned away together do not all come back at once. */
export const MAX_SPREAD_MS = 1000;

/**
 * How long to wait before asking again, or null when the refusal says nothing about when (no automatic retry).
 * @param {{code?: string, retry_after_s?: unknown}} message  the `error` message
 * @param {() => number} [random]
 * @returns {number | null}
 */
export function retryDelayMs(message, random = Math.random) {
  const seconds = message?.retry_after_s;
  if (message?.code !== "busy" || typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0) return null;
  const waitMs = seconds * 1000;
  return Math.round(waitMs + random() * Math.min(MAX_SPREAD_MS, waitMs / 10));
}

/**
 * The visible countdown: "Trying again in 7 s" (whole seconds, never 0 while it still waits).
 * @param {number} remainingMs
 */
export function countdownText(remainingMs) {
  return `Trying again in ${Math.max(1, Math.ceil(remainingMs / 1000))} s`;
}

/**
 * The server's sentence without its own "try again in about N s": the countdown beside it says when.
 * @param {string | undefined} text
 */
export function busySentence(text) {
  const sentence = (text || "The demo server is busy.").trim();
  return sentence.replace(/[;,]?\s*try again in about [\d.]+ s\.?$/i, ".").replace(/\.\.$/, ".");
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * When a recording was made, in the reader's local time: "12:04" today, "30 Nov, 12:04" another day.
 * @param {string} iso  the run's created_at
 * @param {Date} [now]
 * @returns {string}
 */
export function recordingTime(iso, now = new Date()) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "earlier";
  const clock = `${String(when.getHours()).padStart(2, "0")}:${String(when.getMinutes()).padStart(2, "0")}`;
  const sameDay = when.getFullYear() === now.getFullYear() && when.getMonth() === now.getMonth() && when.getDate() === now.getDate();
  if (sameDay) return clock;
  const year = when.getFullYear() === now.getFullYear() ? "" : ` ${when.getFullYear()}`;
  return `${when.getDate()} ${MONTHS[when.getMonth()]}${year}, ${clock}`;
}

/**
 * The label a recording carries wherever it is shown.
 * @param {string} time  from recordingTime
 */
export function recordingLabel(time) {
  return `Recording from ${time}, not a live run`;
}

/**
 * Where to ask for a recording of these settings: one run, or the A and B of a compare.
 * @param {string} slug
 * @param {Record<string, unknown>[]} columns
 */
export function recordingUrl(slug, columns) {
  const query = new URLSearchParams({ params: JSON.stringify(columns[0] ?? {}) });
  if (columns.length > 1) query.set("compare", JSON.stringify(columns[1]));
  return `/api/demos/${encodeURIComponent(slug)}/recording/?${query}`;
}

/**
 * What the widget does after the runs of one Run press were turned away.
 * @param {{delayMs: number | null, retriesSoFar: number}} state
 * @returns {{kind: "retry", delayMs: number} | {kind: "manual", reason: "no-hint" | "gave-up"}}
 */
export function nextStep({ delayMs, retriesSoFar }) {
  if (delayMs === null) return { kind: "manual", reason: "no-hint" };
  if (retriesSoFar >= MAX_AUTO_RETRIES) return { kind: "manual", reason: "gave-up" };
  return { kind: "retry", delayMs };
}
