/*
 * How a metric series is cut before it is drawn: never a line across a gap.
 *
 * A demo samples a metric when it can, and sometimes it cannot: a probe is
 * not answered while the server is busy, a loop cannot time its heartbeat
 * while it is frozen. A line from the last sample before such a silence to
 * the first one after it would draw values nobody measured, so a series is
 * split wherever two samples are further apart than a few times its usual
 * (median) spacing, and each run of samples is drawn on its own. No DOM
 * here, so node --test can check it.
 */

/** A silence longer than this many median sampling intervals splits a series. */
export const GAP_FACTOR = 3;

/**
 * The median time between consecutive samples of a flat [t0, v0, t1, v1, ...] series, or null under two samples.
 * @param {number[]} points
 * @returns {number | null}
 */
export function medianInterval(points) {
  const intervals = [];
  for (let offset = 2; offset < points.length; offset += 2) intervals.push(points[offset] - points[offset - 2]);
  if (!intervals.length) return null;
  intervals.sort((a, b) => a - b);
  const middle = Math.floor(intervals.length / 2);
  return intervals.length % 2 ? intervals[middle] : (intervals[middle - 1] + intervals[middle]) / 2;
}

/**
 * A flat series cut into runs of samples with no gap longer than `factor` × its median interval.
 * Samples at one instant (an interval of 0) never split; a series whose median interval is 0
 * splits at any interval above 0 only if it is longer than `minGapMs`.
 * @param {number[]} points [t0, v0, t1, v1, ...] in time order
 * @param {{factor?: number, minGapMs?: number}} [options]
 * @returns {number[][]} each segment flat like the input
 */
export function splitAtGaps(points, { factor = GAP_FACTOR, minGapMs = 1 } = {}) {
  if (points.length <= 2) return points.length ? [points.slice()] : [];
  const median = medianInterval(points) ?? 0;
  const limit = Math.max(median * factor, minGapMs);
  const segments = [];
  let start = 0;
  for (let offset = 2; offset < points.length; offset += 2) {
    if (points[offset] - points[offset - 2] > limit) {
      segments.push(points.slice(start, offset));
      start = offset;
    }
  }
  segments.push(points.slice(start));
  return segments;
}
