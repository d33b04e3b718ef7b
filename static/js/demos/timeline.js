/*
 * The Gantt-style timeline: one lane per task/worker, coloured by state.
 *
 * Everything is drawn on one <canvas> so 10,000 lanes cost no DOM nodes. Up
 * to a few hundred lanes each gets its own row (labelled when rows are tall
 * enough); beyond that lanes are aggregated, several to a pixel row, with
 * the colour mixed by how many lanes were in each state and the strength
 * showing how many of them were active. In compare mode the runs are drawn
 * as stacked groups over one shared time axis.
 */
import { context2d, fitText, prepareCanvas } from "./canvas.js";
import { countOf, formatDuration } from "./format.js";
import { BAR_STATES, FAILED, LANE_STATES } from "./run-record.js";
import { stateFill } from "./theme.js";

const ROW_PITCH_MAX = 22;
const LANE_AREA_MAX = 330; // CSS px of lanes per run (single mode)
const LANE_AREA_MAX_COMPARE = 300;
const AGGREGATE_AREA = 200; // CSS px rows when lanes are aggregated
const LABEL_MIN_PITCH = 12; // every lane labelled
const LABEL_SPACING = 14; // thinner rows: label every k-th lane, k × pitch ≥ this
const GROUP_HEADER = 22;
const GROUP_GAP = 12;
const AXIS_HEIGHT = 28;
const PLACEHOLDER_HEIGHT = 64;
export const RIGHT_PAD = 18;
const LABEL_FONT_PX = 12;

/** How one run's group sits on the canvas. */
function groupShape(record, compare) {
  const lanes = record ? record.laneCount : 0;
  if (lanes === 0) return { lanes, pitch: 0, bar: 0, rows: 0, areaHeight: PLACEHOLDER_HEIGHT, aggregated: false };
  const areaMax = compare ? LANE_AREA_MAX_COMPARE : LANE_AREA_MAX;
  if (lanes > areaMax) {
    const rows = Math.min(AGGREGATE_AREA, areaMax);
    return { lanes, pitch: rows / lanes, bar: 1, rows, areaHeight: rows, aggregated: true };
  }
  const pitch = Math.max(1, Math.min(ROW_PITCH_MAX, Math.floor(areaMax / lanes)));
  const bar = pitch >= 8 ? pitch - 3 : pitch;
  return { lanes, pitch, bar, rows: lanes, areaHeight: lanes * pitch, aggregated: false };
}

/** The lanes that get a label: all, every k-th (thin rows), or the first and last (dense). */
function labelledLanes({ lanes, pitch, aggregated }) {
  if (!lanes) return [];
  if (!aggregated && pitch >= LABEL_MIN_PITCH) return Array.from({ length: lanes }, (_, lane) => lane);
  if (!aggregated && pitch * 2 >= LABEL_SPACING) {
    const every = Math.ceil(LABEL_SPACING / pitch);
    return Array.from({ length: Math.ceil(lanes / every) }, (_, index) => index * every);
  }
  return lanes > 1 ? [0, lanes - 1] : [0];
}

export class Timeline {
  constructor({ noun }) {
    this.noun = noun;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "demo-timeline-canvas";
    this.aggregateCache = new WeakMap(); // record -> {key, image}
  }

  /** Positions of every group for the given records at `width` CSS px. */
  layout({ records, compare, width, palette }) {
    const ctx = context2d(this.canvas);
    ctx.font = `${LABEL_FONT_PX}px ${palette.font}`;
    let widest = ctx.measureText("0 s").width;
    const groups = [];
    let top = 4;
    const shown = records.length ? records : [null];
    for (const record of shown) {
      const shape = groupShape(record, compare);
      const headerTop = top;
      if (compare) top += GROUP_HEADER;
      groups.push({ record, ...shape, headerTop, areaTop: top });
      top += shape.areaHeight + GROUP_GAP;
      if (!record) continue;
      for (const lane of labelledLanes(shape)) {
        widest = Math.max(widest, ctx.measureText(record.laneLabel(lane, this.noun)).width);
      }
    }
    const gutter = Math.round(Math.max(52, Math.min(widest + 14, 220, width * 0.34)));
    const axisTop = top - GROUP_GAP + 6;
    const empty = records.length === 0;
    return { groups, gutter, axisTop, height: empty ? axisTop : axisTop + AXIS_HEIGHT, width, compare, empty };
  }

  /**
   * Draw everything; `titles[i]` heads group i in compare mode.
   * @param {{layout: ReturnType<Timeline["layout"]>, scale: import("./canvas.js").TimeScale, palette: Record<string, any>,
   *   titles?: string[], placeholder?: string}} frame
   */
  draw({ layout, scale, palette, titles = [], placeholder = "" }) {
    const ctx = prepareCanvas(this.canvas, layout.width, layout.height);
    if (!ctx) return;
    ctx.font = `${LABEL_FONT_PX}px ${palette.font}`;
    if (layout.empty) {
      this.drawPlaceholder(ctx, layout.groups[0], layout, palette, placeholder, true);
      return;
    }
    const ticks = scale.ticks();
    this.drawGrid(ctx, layout, scale, palette, ticks);
    layout.groups.forEach((group, index) => {
      if (layout.compare) this.drawHeader(ctx, group, titles[index] ?? "", palette, layout.width);
      if (!group.record || group.lanes === 0) {
        this.drawPlaceholder(ctx, group, layout, palette, group.record ? waitingText(group.record) : placeholder);
        return;
      }
      const now = group.record.now();
      if (group.aggregated) this.drawAggregated(ctx, group, scale, palette, now);
      else this.drawLanes(ctx, group, scale, palette, now);
      this.drawLaneLabels(ctx, group, layout, palette);
      this.drawNowLine(ctx, group, scale, palette, now);
    });
    this.drawAxis(ctx, layout, scale, palette, ticks);
  }

  /**
   * The lane under the point (x, y) in CSS px of a drawn layout, or null: the
   * canvas's tooltip names it in full, however much its label was shortened.
   * @param {ReturnType<Timeline["layout"]>} layout
   * @param {number} x
   * @param {number} y
   */
  laneAt(layout, x, y) {
    for (const group of layout.groups) {
      if (!group.record || !group.lanes || y < group.areaTop || y >= group.areaTop + group.areaHeight) continue;
      const lane = Math.min(group.lanes - 1, Math.floor((y - group.areaTop) / group.pitch));
      return { record: group.record, lane, inGutter: x < layout.gutter };
    }
    return null;
  }

  drawGrid(ctx, layout, scale, palette, ticks) {
    ctx.strokeStyle = palette.grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    const firstTop = layout.groups[0].areaTop;
    for (const tick of ticks) {
      const x = Math.round(scale.x(tick.ms)) + 0.5;
      ctx.moveTo(x, firstTop);
      ctx.lineTo(x, layout.axisTop);
    }
    ctx.stroke();
  }

  drawHeader(ctx, group, title, palette, width) {
    const y = group.headerTop + GROUP_HEADER / 2;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    ctx.fillStyle = palette.fg;
    ctx.font = `600 13px ${palette.font}`;
    const record = group.record;
    const tag = record?.tag ?? "";
    ctx.fillStyle = palette.series[tag === "B" ? 1 : 0];
    ctx.fillText(tag, 0, y);
    ctx.fillStyle = palette.fg;
    const tagWidth = tag ? ctx.measureText(tag).width + 8 : 0;
    let right = "";
    if (record && record.status !== "idle" && record.status !== "starting") {
      right = record.isLive ? `${formatDuration(record.now())}…` : formatDuration(record.now());
      if (record.laneCount) right = `${countOf(record.laneCount, this.noun)} · ${right}`;
    }
    ctx.font = `${LABEL_FONT_PX}px ${palette.font}`;
    const rightWidth = right ? ctx.measureText(right).width : 0;
    ctx.fillStyle = palette.muted;
    ctx.textAlign = "right";
    if (right) ctx.fillText(right, width - 2, y);
    ctx.textAlign = "left";
    ctx.fillStyle = palette.fg;
    ctx.fillText(fitText(ctx, title, width - tagWidth - rightWidth - 16), tagWidth, y);
  }

  drawPlaceholder(ctx, group, layout, palette, text, framed = false) {
    if (framed) {
      ctx.strokeStyle = palette.grid;
      ctx.setLineDash([4, 4]);
      ctx.strokeRect(0.5, group.areaTop + 0.5, layout.width - 1, group.areaHeight - 1);
      ctx.setLineDash([]);
    }
    ctx.fillStyle = palette.muted;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.font = `${LABEL_FONT_PX + 1}px ${palette.font}`;
    const middle = framed ? layout.width / 2 : layout.gutter + (layout.width - layout.gutter - RIGHT_PAD) / 2;
    ctx.fillText(fitText(ctx, text, layout.width - 16), middle, group.areaTop + group.areaHeight / 2);
    ctx.font = `${LABEL_FONT_PX}px ${palette.font}`;
  }

  drawLanes(ctx, group, scale, palette, now) {
    const { record, pitch, bar } = group;
    const drawScale = window.devicePixelRatio || 1;
    const fills = {};
    for (const state of [...BAR_STATES, "failed"]) {
      fills[state] = stateFill(ctx, palette, state, { rowHeight: bar, scale: drawScale });
    }
    const showStateLabels = bar >= 14 && record.stateLabels.size > 0;
    for (let lane = 0; lane < group.lanes; lane += 1) {
      const y = group.areaTop + lane * pitch + (pitch - bar) / 2;
      record.forEachSegment(lane, now, (start, end, code, changeIndex) => {
        const x0 = scale.x(start);
        if (code === FAILED) {
          ctx.fillStyle = fills.failed;
          ctx.fillRect(x0 - 1, y - 1, 3, bar + 2);
          return;
        }
        const width = Math.max(1, scale.x(end) - x0);
        const state = LANE_STATES[code];
        ctx.fillStyle = fills[state];
        ctx.fillRect(x0, y, width, bar);
        if (showStateLabels) {
          const label = record.stateLabel(lane, changeIndex);
          // The whole label, or a shortened one only where there is room for a few letters.
          const text = label && (ctx.measureText(label).width <= width - 6 || width >= 44) ? fitText(ctx, label, width - 6) : "";
          if (text) {
            ctx.textBaseline = "middle";
            ctx.textAlign = "left";
            if (state === "running") {
              ctx.fillStyle = palette.surface;
            } else {
              // Textured fills: a halo in the background colour keeps the text readable.
              ctx.strokeStyle = palette.surface;
              ctx.lineWidth = 3;
              ctx.lineJoin = "round";
              ctx.strokeText(text, x0 + 3, y + bar / 2);
              ctx.fillStyle = palette.fg;
            }
            ctx.fillText(text, x0 + 3, y + bar / 2);
          }
        }
      });
    }
  }

  /** Many lanes per pixel row: count states per (row, x) and mix their colours. */
  drawAggregated(ctx, group, scale, palette, now) {
    const { record, rows, lanes } = group;
    const width = Math.max(1, Math.round(scale.width));
    const nowPx = Math.floor((now / scale.domainMs) * width);
    const key = `${record.version}|${width}|${rows}|${scale.domainMs}|${nowPx}|${palette.solid.waiting}`;
    let cached = this.aggregateCache.get(record);
    if (!cached) {
      cached = { key: null, image: document.createElement("canvas") };
      this.aggregateCache.set(record, cached);
    }
    if (cached.key !== key) {
      aggregateImage(record, { rows, lanes, width, now, domainMs: scale.domainMs, palette, canvas: cached.image });
      cached.key = key;
    }
    ctx.save();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cached.image, scale.left, group.areaTop, scale.width, group.areaHeight);
    ctx.restore();
  }

  drawLaneLabels(ctx, group, layout, palette) {
    const { record, pitch, lanes } = group;
    const right = layout.gutter - 8;
    ctx.fillStyle = palette.muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.font = `${LABEL_FONT_PX}px ${palette.font}`;
    const room = layout.gutter - 10;
    if (!group.aggregated && pitch * 2 >= LABEL_SPACING) {
      for (const lane of labelledLanes(group)) {
        const y = group.areaTop + lane * pitch + pitch / 2;
        ctx.fillText(fitText(ctx, record.laneLabel(lane, this.noun), room), right, y);
      }
      return;
    }
    // Dense lanes: name the first and the last, and bracket the block between them.
    ctx.textBaseline = "top";
    ctx.fillText(fitText(ctx, record.laneLabel(0, this.noun), room), right, group.areaTop);
    if (group.areaHeight >= 30) {
      ctx.textBaseline = "bottom";
      ctx.fillText(fitText(ctx, record.laneLabel(lanes - 1, this.noun), room), right, group.areaTop + group.areaHeight);
    }
    ctx.strokeStyle = palette.grid;
    ctx.beginPath();
    ctx.moveTo(layout.gutter - 4.5, group.areaTop);
    ctx.lineTo(layout.gutter - 4.5, group.areaTop + group.areaHeight);
    ctx.stroke();
  }

  drawNowLine(ctx, group, scale, palette, now) {
    if (!group.record.isLive && !group.record.isReplaying) return;
    const x = Math.round(scale.x(now)) + 0.5;
    ctx.strokeStyle = palette.nowLine;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(x, group.areaTop - 2);
    ctx.lineTo(x, group.areaTop + group.areaHeight + 2);
    ctx.stroke();
    ctx.setLineDash([]);
  }

  drawAxis(ctx, layout, scale, palette, ticks) {
    const y = layout.axisTop + 0.5;
    ctx.strokeStyle = palette.muted;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(scale.left, y);
    ctx.lineTo(scale.left + scale.width, y);
    for (const tick of ticks) {
      const x = Math.round(scale.x(tick.ms)) + 0.5;
      ctx.moveTo(x, y);
      ctx.lineTo(x, y + 4);
    }
    ctx.stroke();
    ctx.fillStyle = palette.muted;
    ctx.textBaseline = "top";
    ctx.font = `${LABEL_FONT_PX}px ${palette.font}`;
    ticks.forEach((tick, index) => {
      const isLast = index === ticks.length - 1;
      ctx.textAlign = isLast && scale.x(tick.ms) + 20 > layout.width ? "right" : "center";
      ctx.fillText(tick.label, ctx.textAlign === "right" ? layout.width - 1 : scale.x(tick.ms), y + 7);
    });
  }
}

function waitingText(record) {
  if (record.status === "starting") return "Starting…";
  if (record.status === "running") return "Waiting for the first events…";
  if (record.status === "rejected") return "Not started.";
  if (record.isFinal) return "No lanes were reported.";
  return "";
}

let scratch = null; // reused between frames: aggregation runs up to once per frame

/** An offscreen canvas of width × rows pixels summarising every lane. */
function aggregateImage(record, { rows, lanes, width, now, domainMs, palette, canvas }) {
  const channels = BAR_STATES.length + 1; // + failed markers
  const stride = width + 1;
  const size = channels * rows * stride;
  if (!scratch || scratch.length < size) scratch = new Float32Array(size);
  const counts = scratch;
  counts.fill(0, 0, size);
  const lanesInRow = new Uint32Array(rows);
  const toX = (ms) => Math.min(width, Math.max(0, Math.floor((ms / domainMs) * width)));
  for (let lane = 0; lane < lanes; lane += 1) {
    const row = Math.min(rows - 1, Math.floor((lane * rows) / lanes));
    lanesInRow[row] += 1;
    record.forEachSegment(lane, now, (start, end, code) => {
      const channel = code === FAILED ? BAR_STATES.length : code;
      const x0 = toX(start);
      const x1 = code === FAILED ? Math.min(width, x0 + 2) : Math.max(Math.min(width, x0 + 1), toX(end));
      const base = (channel * rows + row) * stride;
      counts[base + x0] += 1;
      counts[base + x1] -= 1;
    });
  }
  const image = new ImageData(width, rows);
  const pixels = image.data;
  const colours = [...BAR_STATES, "failed"].map((state) => palette.solidRgb[state]);
  const running = new Float32Array(channels);
  for (let row = 0; row < rows; row += 1) {
    running.fill(0);
    const inRow = Math.max(1, lanesInRow[row]);
    for (let x = 0; x < width; x += 1) {
      let total = 0;
      let weightSum = 0;
      let red = 0;
      let green = 0;
      let blue = 0;
      for (let channel = 0; channel < channels; channel += 1) {
        running[channel] += counts[(channel * rows + row) * stride + x];
        const count = running[channel];
        if (count > 0.5) {
          total += count;
          const colour = colours[channel];
          const weight = channel === BAR_STATES.length ? count * 4 : count; // failures stand out
          weightSum += weight;
          red += colour[0] * weight;
          green += colour[1] * weight;
          blue += colour[2] * weight;
        }
      }
      if (total === 0) continue;
      const offset = (row * width + x) * 4;
      pixels[offset] = red / weightSum;
      pixels[offset + 1] = green / weightSum;
      pixels[offset + 2] = blue / weightSum;
      pixels[offset + 3] = 255 * Math.min(1, 0.3 + (0.7 * total) / inRow);
    }
  }
  canvas.width = width;
  canvas.height = rows;
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

/** The canvas's accessible name: what it shows, in words. */
export function describeTimeline(records, noun) {
  const parts = records
    .filter((record) => record.laneCount > 0)
    .map((record) => {
      const prefix = record.tag ? `Run ${record.tag}: ` : "";
      const timing = record.isLive ? `running for ${formatDuration(record.now())}` : `over ${formatDuration(record.now())}`;
      return `${prefix}${countOf(record.laneCount, noun)} ${timing}`;
    });
  if (!parts.length) return "Timeline: no run yet.";
  return `Timeline, one lane per ${noun}. ${parts.join("; ")}. The Table view lists the same figures.`;
}

