/*
 * The measured result of a run, in words and numbers.
 *
 * `summary.text` is the claim a run proves ("…took 3012 ms: 1.00 × the sum
 * of its waits"); it goes in an aria-live region so screen readers hear it
 * when the run ends. Every other summary key is shown in a small table,
 * with keys humanised (`total_ms` → "total ms") and numbers formatted.
 */
import { el, replaceChildren } from "./dom.js";
import { formatValue, humanizeKey } from "./format.js";

/** A two-column table of every summary entry except `text`. */
export function summaryTable(summary, caption) {
  const entries = Object.entries(summary ?? {}).filter(([key]) => key !== "text");
  if (!entries.length) return null;
  return el(
    "table",
    { className: "demo-summary-table" },
    caption ? el("caption", {}, caption) : null,
    el(
      "tbody",
      {},
      entries.map(([key, value]) =>
        el("tr", {}, el("th", { scope: "row" }, humanizeKey(key)), el("td", { className: typeof value === "number" ? "demo-number" : "" }, formatValue(value))),
      ),
    ),
  );
}

export class SummaryPanel {
  constructor() {
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
      const heading = record.tag ? el("p", { className: "demo-summary-heading" }, el("span", { className: "demo-run-tag" }, record.tag), this.titles[index] ?? "") : null;
      const text = record.summary.text ? el("p", { className: "demo-summary-text" }, String(record.summary.text)) : null;
      replaceChildren(card, heading, text, summaryTable(record.summary));
    });
  }
}
