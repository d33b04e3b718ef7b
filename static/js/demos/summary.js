/*
 * The measured result of a run: one sentence, a few numbers, and details.
 *
 * A summary leads with the first sentence of `summary.text` (the claim the
 * run proves) and at most three headline numbers the demo chose (its
 * `headline`, from GET /api/demos/); everything else, the rest of the text
 * included, sits behind a "Details" disclosure. Every key is shown under the
 * name the demo gave it (`summary_fields`: label and unit), or a humanised
 * key when it gave none. The card sits in an aria-live region so screen
 * readers hear the sentence when the run ends.
 */
import { el, replaceChildren } from "./dom.js";
import { formatQuantity, humanizeKey } from "./format.js";

/** At most this many numbers lead a summary. */
export const MAX_HEADLINE = 3;

/**
 * @typedef {{label?: string, unit?: string}} SummaryField
 * @typedef {{fields?: Record<string, SummaryField>, headline?: string[]}} SummaryFormat
 * @typedef {{key: string, label: string, text: string, numeric: boolean}} SummaryEntry
 */

/**
 * The summary format a demo's description declares (`summary_fields`, `headline` in GET /api/demos/).
 * @param {{summary_fields?: Record<string, SummaryField>, headline?: string[]} | null | undefined} demo
 * @returns {SummaryFormat}
 */
export function summaryFormatOf(demo) {
  return { fields: demo?.summary_fields ?? {}, headline: Array.isArray(demo?.headline) ? demo.headline : [] };
}

/**
 * What a reader calls a summary key: the demo's label, else the key in words ("total_ms" → "Total ms").
 * @param {string} key
 * @param {SummaryFormat} [format]
 * @returns {string}
 */
export function fieldLabel(key, format = {}) {
  const label = format.fields?.[key]?.label;
  if (label) return label;
  const words = humanizeKey(key);
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * A summary value in words: a number with its unit, a list item by item, a plain object as "name value" pairs.
 * @param {unknown} value
 * @param {string} unit
 * @returns {string}
 */
export function formatEntry(value, unit) {
  if (Array.isArray(value) && value.length === 0) return "none"; // an empty cell would read as a missing value
  if (Array.isArray(value) && value.every((item) => item === null || typeof item !== "object")) {
    return value.map((item) => formatQuantity(item, unit)).join(", ");
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const pairs = Object.entries(value);
    if (pairs.every(([, item]) => item === null || typeof item !== "object")) {
      return pairs.map(([name, item]) => `${humanizeKey(name)} ${formatQuantity(item, unit)}`).join(", ");
    }
  }
  return formatQuantity(value, unit);
}

/**
 * A text cut after its first sentence: [first, rest]. A full stop inside a number ("1.5") does not end one.
 * @param {string} text
 * @returns {[string, string]}
 */
export function firstSentence(text) {
  const match = /^(.+?[.!?])\s+(?=[A-Z0-9"(“])/su.exec(text);
  return match ? [match[1], text.slice(match[0].length)] : [text, ""];
}

/**
 * A summary split for display: the lead sentence, the headline entries (at most MAX_HEADLINE, in the
 * order the demo declared, only keys the summary has), the rest of the text, and every other entry.
 * @param {Record<string, unknown> | null | undefined} summary
 * @param {SummaryFormat} [format]
 * @returns {{lead: string, more: string, headline: SummaryEntry[], details: SummaryEntry[]}}
 */
export function splitSummary(summary, format = {}) {
  const values = summary ?? {};
  const text = typeof values.text === "string" ? values.text : "";
  const [lead, more] = firstSentence(text);
  const entry = (key) => {
    const value = values[key];
    return { key, label: fieldLabel(key, format), text: formatEntry(value, format.fields?.[key]?.unit ?? ""), numeric: typeof value === "number" };
  };
  const chosen = (format.headline ?? []).filter((key) => key in values && key !== "text" && (values[key] === null || typeof values[key] !== "object"));
  const headlineKeys = [...new Set(chosen)].slice(0, MAX_HEADLINE);
  const details = Object.keys(values).filter((key) => key !== "text" && !headlineKeys.includes(key));
  return { lead, more, headline: headlineKeys.map(entry), details: details.map(entry) };
}

/**
 * A two-column table of summary entries; by default every entry except `text`.
 * @param {Record<string, unknown> | null | undefined} summary
 * @param {string} [caption]
 * @param {SummaryFormat} [format]
 * @param {SummaryEntry[]} [entries]
 */
export function summaryTable(summary, caption, format = {}, entries = splitSummary(summary, { fields: format.fields }).details) {
  if (!entries.length) return null;
  return el(
    "table",
    { className: "demo-summary-table" },
    caption ? el("caption", {}, caption) : null,
    el(
      "tbody",
      {},
      entries.map((entry) => el("tr", {}, el("th", { scope: "row" }, entry.label), el("td", { className: entry.numeric ? "demo-number" : "" }, entry.text))),
    ),
  );
}

/** The headline numbers as a description list: label above, value below. */
function headlineList(entries) {
  if (!entries.length) return null;
  return el(
    "dl",
    { className: "demo-headline" },
    entries.map((entry) => el("div", { className: "demo-headline-item", "data-key": entry.key }, el("dt", {}, entry.label), el("dd", {}, entry.text))),
  );
}

export class SummaryPanel {
  /** @param {{format?: SummaryFormat}} [options] */
  constructor({ format = {} } = {}) {
    this.format = format;
    // aria-live on a container that exists from the start, so insertions are announced.
    this.element = el("div", { className: "demo-summaries", "aria-live": "polite" });
    this.reset([], []);
  }

  reset(records, titles) {
    this.records = records;
    this.titles = titles;
    this.shownKeys = records.map(() => "");
    this.cards = records.map(() => el("div", { className: "demo-summary", hidden: true }));
    replaceChildren(this.element, this.cards);
    this.element.classList.toggle("is-compare", records.length > 1);
  }

  update() {
    this.records.forEach((record, index) => {
      const key = record.summary ? `${record.status}|${JSON.stringify(record.summary)}` : "";
      if (key === this.shownKeys[index]) return;
      this.shownKeys[index] = key;
      const card = this.cards[index];
      card.hidden = !record.summary;
      if (!record.summary) {
        card.replaceChildren();
        return;
      }
      card.dataset.status = record.status;
      const parts = splitSummary(record.summary, this.format);
      const heading = record.tag ? el("p", { className: "demo-summary-heading" }, el("span", { className: "demo-run-tag" }, record.tag), this.titles[index] ?? "") : null;
      const text = parts.lead ? el("p", { className: "demo-summary-text" }, parts.lead) : null;
      const table = summaryTable(record.summary, "", this.format, parts.details);
      const details = parts.more || table
        ? el("details", { className: "demo-summary-details" }, el("summary", {}, "Details"), parts.more ? el("p", { className: "demo-summary-more" }, parts.more) : null, table)
        : null;
      replaceChildren(card, heading, text, headlineList(parts.headline), details);
    });
  }
}
