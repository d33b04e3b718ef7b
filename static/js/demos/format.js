/*
 * Formatting for the demo widget: durations, numbers, summary keys and nouns.
 *
 * Every number a reader sees goes through here, so the canvas axis, the
 * status line and the tables all say "3.01 s" or "320 ms" the same way.
 */

const numberFormats = new Map();

/**
 * A whole number (rounded half away from zero) with commas: 12,345. Intl gives the same text, but the
 * first formatter a page makes costs ~40 ms of CPU (locale data), and a lesson formats every parameter's
 * range while it loads; fractions (seen only once runs report) still go through Intl.
 */
function groupThousands(value) {
  const whole = Math.sign(value) * Math.round(Math.abs(value));
  if (Math.abs(whole) > Number.MAX_SAFE_INTEGER) return numberFormat(0).format(value); // String() turns to 1e+21
  return String(whole === 0 ? 0 : whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function numberFormat(maximumFractionDigits) {
  if (!numberFormats.has(maximumFractionDigits)) {
    // -1: three significant digits, for numbers below 1 (0.0123)
    const options = maximumFractionDigits < 0 ? { maximumSignificantDigits: 3 } : { maximumFractionDigits };
    numberFormats.set(maximumFractionDigits, new Intl.NumberFormat("en", options));
  }
  return numberFormats.get(maximumFractionDigits);
}

/**
 * A plain number with a sensible precision: 3,012 / 41.7 / 0.0123.
 * @param {unknown} value
 * @returns {string}
 */
export function formatNumber(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  const size = Math.abs(value);
  if (Number.isInteger(value) || size >= 1000) return groupThousands(value);
  if (size >= 1) return numberFormat(size >= 100 ? 1 : 2).format(value);
  if (size === 0) return "0";
  return numberFormat(-1).format(value);
}

/**
 * A duration given in ms, in the unit a reader expects: "320 ms", "3.01 s", "1 min 5 s".
 * @param {unknown} ms
 * @returns {string}
 */
export function formatDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
  const size = Math.abs(ms);
  if (size < 10) return `${numberFormat(1).format(ms)} ms`;
  if (size < 1000) return `${numberFormat(0).format(ms)} ms`;
  if (size < 10_000) return `${numberFormat(2).format(ms / 1000)} s`;
  if (size < 60_000) return `${numberFormat(1).format(ms / 1000)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms - minutes * 60_000) / 1000)} s`;
}

/**
 * The short running clock: "0.0 s", "12.4 s".
 * @param {number} ms
 * @returns {string}
 */
export function formatClock(ms) {
  return `${numberFormat(1).format(Math.max(0, ms) / 1000)} s`;
}

/**
 * An axis tick label; `step` (ms) decides between ms and s.
 * @param {number} ms
 * @param {number} step
 * @returns {string}
 */
export function formatTick(ms, step) {
  if (ms === 0) return "0";
  if (step >= 1000 || (ms >= 1000 && step >= 100)) {
    const digits = step >= 1000 ? 0 : step >= 100 ? 1 : 2;
    return `${numberFormat(digits).format(ms / 1000)} s`;
  }
  return `${numberFormat(step < 1 ? 2 : 0).format(ms)} ms`;
}

/**
 * The smallest step of 1, 2 or 5 × 10^k giving at most `count` intervals over `span`.
 * @param {number} span
 * @param {number} [count]
 * @returns {number}
 */
export function niceStep(span, count = 5) {
  if (!(span > 0)) return 1;
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  const factor = [1, 2, 5, 10].find((candidate) => candidate >= scaled - 1e-9) ?? 10;
  return factor * power;
}

/**
 * `total_ms` → "total ms", `longestWait` → "longest wait".
 * @param {unknown} key
 * @returns {string}
 */
export function humanizeKey(key) {
  return String(key)
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/[_-]+/g, " ")
    .trim()
    .toLowerCase();
}

/**
 * Any summary value as text: numbers formatted, booleans as yes/no, lists joined, objects as JSON.
 * @param {unknown} value
 * @returns {string}
 */
export function formatValue(value) {
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value) && value.every((item) => item === null || typeof item !== "object")) {
    return value.map(formatValue).join(", ");
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/**
 * "request" → "requests", "process" → "processes", "query" → "queries".
 * @param {string} noun
 * @param {number} count
 * @returns {string}
 */
export function plural(noun, count) {
  if (count === 1) return noun;
  if (/(s|x|z|ch|sh)$/.test(noun)) return `${noun}es`;
  if (/[^aeiou]y$/.test(noun)) return `${noun.slice(0, -1)}ies`;
  return `${noun}s`;
}

/**
 * "10 requests", "1 request", "10,000 requests".
 * @param {number} count
 * @param {string} noun
 * @returns {string}
 */
export function countOf(count, noun) {
  return `${formatNumber(count)} ${plural(noun, count)}`;
}

/**
 * A metric's title: "heartbeat_lag_ms" with unit "ms" → "heartbeat lag (ms)"; `shownUnit` is
 * the unit its values are shown in, when that differs ("server_rss_mib" in KiB → "server rss (KiB)").
 * @param {string} name
 * @param {string | null | undefined} unit
 * @param {string | null | undefined} [shownUnit]
 * @returns {string}
 */
export function metricTitle(name, unit, shownUnit = unit) {
  const words = humanizeKey(name).split(" ");
  if (unit && words.length > 1 && words[words.length - 1] === String(unit).toLowerCase()) words.pop();
  const title = words.join(" ");
  return shownUnit ? `${title} (${shownUnit})` : title;
}

/** Sizes in bytes of the byte units a demo may report in. */
const BYTE_UNITS = { B: 1, bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/**
 * The unit to show values up to `high` (given in `unit`) in, and the factor from `unit` to it:
 * bytes become B, KiB, MiB or GiB by size; ms become s from 10 s up; other units stay.
 * @param {number} high
 * @param {string | null | undefined} unit
 * @returns {{unit: string, factor: number}}
 */
export function displayUnit(high, unit) {
  const given = String(unit ?? "");
  if (given in BYTE_UNITS) {
    const bytes = Math.abs(high) * BYTE_UNITS[given];
    const shown = bytes < 1024 ? "B" : bytes < 1024 ** 2 ? "KiB" : bytes < 1024 ** 3 ? "MiB" : "GiB";
    return { unit: shown, factor: BYTE_UNITS[given] / BYTE_UNITS[shown] };
  }
  if (given === "ms" && Math.abs(high) >= 10_000) return { unit: "s", factor: 1 / 1000 };
  return { unit: given, factor: 1 };
}

/**
 * A measured value with its unit, as a reader says it: "320 ms", "3.01 s", "1.9 KiB", "12 requests".
 * @param {unknown} value
 * @param {string | null | undefined} unit
 * @returns {string}
 */
export function formatQuantity(value, unit) {
  if (typeof value !== "number" || !Number.isFinite(value)) return formatValue(value);
  if (unit === "ms") return formatDuration(value);
  const shown = displayUnit(value, unit);
  const number = formatNumber(value * shown.factor);
  if (!shown.unit) return number;
  return shown.unit === "%" ? `${number}%` : `${number} ${shown.unit}`;
}
