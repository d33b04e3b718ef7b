/*
 * Charts for `metric` events: one chart per metric name, x = run time, y in
 * the metric's unit. Samples are drawn as steps with a dot each, and a
 * silence in the samples stays a gap (series.js), so no line claims a value
 * that was never measured.
 *
 * Charts use the timeline's TimeScale (same left gutter, same ms per pixel),
 * so they line up under it. In compare mode both runs share each chart's
 * axes, in the two series colours, with one legend above the charts.
 */
import { fitText, prepareCanvas } from "./canvas.js";
import { el, replaceChildren } from "./dom.js";
import { displayUnit, formatNumber, formatQuantity, metricTitle, niceStep } from "./format.js";
import { splitAtGaps } from "./series.js";

const CHART_HEIGHT = 150;
const PAD_TOP = 10;
const AXIS_HEIGHT = 24;
const FONT_PX = 12;
const MAX_DOTTED_SAMPLES = 200; // per series; beyond it only lone samples get a dot

/** The largest absolute value any of the records sampled for metric `name`. */
function peakOf(records, name) {
  let peak = 0;
  for (const record of records) {
    const points = record.metrics.get(name)?.points ?? [];
    for (let index = 1; index < points.length; index += 2) peak = Math.max(peak, Math.abs(points[index]));
  }
  return peak;
}

export class MetricCharts {
  constructor() {
    this.legend = el("ul", { className: "demo-series-legend", hidden: true });
    this.list = el("div", { className: "demo-charts" });
    this.element = el("div", { className: "demo-charts-wrap", hidden: true }, this.legend, this.list);
    this.charts = new Map(); // metric name -> {figure, canvas, caption, key}
    this.legendKey = "";
  }

  reset() {
    this.charts.clear();
    this.list.replaceChildren();
    this.element.hidden = true;
    this.legendKey = "";
  }

  /**
   * Draw every metric of `records` against `scale`.
   * @param {{records: import("./run-record.js").RunRecord[], titles: string[], scale: import("./canvas.js").TimeScale,
   *   width: number, palette: Record<string, any>, force?: boolean}} frame
   */
  update({ records, titles, scale, width, palette, force = false }) {
    const names = [];
    for (const record of records) for (const name of record.metrics.keys()) if (!names.includes(name)) names.push(name);
    this.element.hidden = names.length === 0;
    if (!names.length) return;
    this.updateLegend(records, titles, palette);
    for (const name of names) {
      let chart = this.charts.get(name);
      if (!chart) {
        chart = this.addChart(name);
      }
      const unit = records.map((record) => record.metrics.get(name)?.unit).find(Boolean) ?? "";
      const captionText = metricTitle(name, unit, displayUnit(peakOf(records, name), unit).unit);
      if (chart.caption.textContent !== captionText) chart.caption.textContent = captionText;
      const key = [width, scale.domainMs, palette.series.join(), ...records.map((record) => record.version)].join("|");
      if (!force && key === chart.key) continue;
      chart.key = key;
      this.drawChart(chart, name, unit, { records, scale, width, palette });
    }
  }

  addChart(name) {
    const caption = el("figcaption", { className: "demo-chart-title" }, name);
    const canvas = el("canvas", { className: "demo-chart-canvas", role: "img", "aria-label": `Chart of ${name}` });
    const figure = el("figure", { className: "demo-chart" }, caption, canvas);
    this.list.append(figure);
    const chart = { figure, canvas, caption, key: "" };
    this.charts.set(name, chart);
    return chart;
  }

  updateLegend(records, titles, palette) {
    const compare = records.length > 1;
    const key = compare ? `${palette.series.join()}|${titles.join("|")}` : "";
    this.legend.hidden = !compare;
    if (!compare || key === this.legendKey) return;
    this.legendKey = key;
    replaceChildren(
      this.legend,
      records.map((record, index) => {
        const swatch = el("span", { className: "demo-series-swatch", "aria-hidden": "true" });
        swatch.style.backgroundColor = palette.series[index]; // CSSOM: allowed by the CSP
        return el("li", {}, swatch, `${record.tag}${titles[index] ? ` · ${titles[index]}` : ""}`);
      }),
    );
  }

  drawChart(chart, name, unit, { records, scale, width, palette }) {
    const ctx = prepareCanvas(chart.canvas, width, CHART_HEIGHT);
    if (!ctx) return;
    let low = Infinity;
    let high = -Infinity;
    for (const record of records) {
      const points = record.metrics.get(name)?.points ?? [];
      for (let index = 1; index < points.length; index += 2) {
        low = Math.min(low, points[index]);
        high = Math.max(high, points[index]);
      }
    }
    if (!Number.isFinite(low)) return;
    // The axis counts in a unit that suits the values' size (KiB or MiB, ms or s), and says which.
    const shown = displayUnit(Math.max(Math.abs(low), Math.abs(high)), unit);
    low = Math.min(0, low * shown.factor);
    high *= shown.factor;
    if (high <= low) high = low + 1;
    const step = niceStep(high - low, 4);
    const yMin = Math.floor(low / step) * step;
    const yMax = Math.ceil(high / step) * step;
    const plotTop = PAD_TOP;
    const plotBottom = CHART_HEIGHT - AXIS_HEIGHT;
    const y = (value) => plotBottom - ((value * shown.factor - yMin) / (yMax - yMin)) * (plotBottom - plotTop);
    const yOfShown = (value) => plotBottom - ((value - yMin) / (yMax - yMin)) * (plotBottom - plotTop);

    ctx.font = `${FONT_PX}px ${palette.font}`;
    ctx.lineWidth = 1;
    ctx.strokeStyle = palette.grid;
    ctx.fillStyle = palette.muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.beginPath();
    for (let value = yMin; value <= yMax + step * 1e-6; value += step) {
      const lineY = Math.round(yOfShown(value)) + 0.5;
      ctx.moveTo(scale.left, lineY);
      ctx.lineTo(scale.left + scale.width, lineY);
      ctx.fillText(fitText(ctx, formatNumber(value), scale.left - 10), scale.left - 8, lineY);
    }
    ctx.stroke();
    if (shown.unit) {
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      ctx.fillText(fitText(ctx, shown.unit, scale.width / 2), scale.left + 4, 0);
    }

    const ticks = scale.ticks();
    ctx.strokeStyle = palette.muted;
    ctx.beginPath();
    ctx.moveTo(scale.left, plotBottom + 0.5);
    ctx.lineTo(scale.left + scale.width, plotBottom + 0.5);
    ctx.stroke();
    ctx.textBaseline = "top";
    ticks.forEach((tick, index) => {
      const x = scale.x(tick.ms);
      const last = index === ticks.length - 1 && x + 20 > width;
      ctx.textAlign = last ? "right" : "center";
      ctx.fillText(tick.label, last ? width - 1 : x, plotBottom + 6);
    });

    const described = [];
    const segmentCounts = [];
    records.forEach((record, index) => {
      const points = record.metrics.get(name)?.points ?? [];
      if (!points.length) return;
      const colour = palette.series[records.length > 1 ? index : 0];
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.lineJoin = "miter";
      // Each run of samples is its own step line (a value holds until the next sample); silences stay empty.
      const segments = splitAtGaps(points);
      segmentCounts.push(segments.length);
      for (const segment of segments) {
        ctx.beginPath();
        ctx.moveTo(scale.x(segment[0]), y(segment[1]));
        for (let offset = 2; offset < segment.length; offset += 2) {
          const px = scale.x(segment[offset]);
          ctx.lineTo(px, y(segment[offset - 1]));
          ctx.lineTo(px, y(segment[offset + 1]));
        }
        ctx.stroke();
      }
      // Every sample gets a dot while dots stay apart; a lone sample is a dot whatever the count.
      const radius = points.length <= 2 * MAX_DOTTED_SAMPLES ? 2.5 : 1.5;
      for (const segment of segments) {
        if (segment.length > 2 && points.length > 2 * MAX_DOTTED_SAMPLES) continue;
        for (let offset = 0; offset < segment.length; offset += 2) {
          ctx.beginPath();
          ctx.arc(scale.x(segment[offset]), y(segment[offset + 1]), radius, 0, Math.PI * 2);
          ctx.fill();
        }
      }
      const last = points[points.length - 1];
      let peak = -Infinity;
      for (let offset = 1; offset < points.length; offset += 2) peak = Math.max(peak, points[offset]);
      const gaps = segments.length > 1 ? `, in ${segments.length} stretches with gaps between` : "";
      described.push(`${record.tag ? `run ${record.tag}: ` : ""}${points.length / 2} samples${gaps}, peak ${formatQuantity(peak, unit)}, last ${formatQuantity(last, unit)}`);
    });
    chart.canvas.dataset.segments = segmentCounts.join(",");
    chart.canvas.setAttribute("aria-label", `Step chart of ${metricTitle(name, unit, shown.unit)} over time; ${described.join("; ")}.`);
  }
}
