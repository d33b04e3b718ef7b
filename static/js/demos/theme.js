/*
 * Colours for canvas drawing, read from CSS so canvases follow light/dark.
 *
 * widget.css defines --demo-* custom properties (built on the site's --fg,
 * --accent, --border...). Canvas cannot use var(), so readPalette() resolves
 * them through getComputedStyle, and onThemeChange() tells views to re-read
 * and redraw when the colour scheme flips. State fills differ in pattern as
 * well as colour (waiting is hatched, queued dotted, blocked cross-hatched,
 * lock-wait striped across like the bars of a gate), so the timeline does
 * not rely on colour alone.
 */
import { context2d } from "./canvas.js";

let probe = null;

/** Any CSS colour as [r, g, b] (0–255), via the canvas colour parser. */
export function toRgb(colour) {
  probe ??= document.createElement("canvas").getContext("2d");
  probe.fillStyle = "#000";
  probe.fillStyle = colour;
  const normalised = probe.fillStyle;
  if (normalised.startsWith("#")) {
    return [1, 3, 5].map((offset) => parseInt(normalised.slice(offset, offset + 2), 16));
  }
  const numbers = normalised.match(/[\d.]+/g) ?? ["0", "0", "0"];
  return numbers.slice(0, 3).map(Number);
}

/** The resolved drawing colours for the widget `element` sits in. */
export function readPalette(element) {
  const style = getComputedStyle(element);
  const get = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const palette = {
    surface: get("--demo-surface", "#ffffff"),
    fg: get("--demo-fg", style.color || "#1d2330"),
    muted: get("--demo-muted", "#5b6475"),
    grid: get("--demo-grid", "#dcdfe6"),
    nowLine: get("--demo-now", "#2457c5"),
    states: {
      running: get("--demo-running", "#2457c5"),
      waiting: get("--demo-waiting", "#f2cf7a"),
      queued: get("--demo-queued", "#c9ced8"),
      blocked: get("--demo-blocked", "#d9480f"),
      "lock-wait": get("--demo-lock-wait", "#d7c6f2"),
      failed: get("--demo-failed", "#c2362b"),
    },
    // Flat fills for rows too thin for a texture, and for aggregated rows: stronger than the textured ones.
    solid: {
      running: get("--demo-running", "#2457c5"),
      waiting: get("--demo-waiting-solid", "#e0a22a"),
      queued: get("--demo-queued-solid", "#a9b0be"),
      blocked: get("--demo-blocked-solid", "#e8590c"),
      "lock-wait": get("--demo-lock-wait-solid", "#8a5cd6"),
      failed: get("--demo-failed", "#c2362b"),
    },
    ink: {
      waiting: get("--demo-waiting-ink", "#a86f00"),
      queued: get("--demo-queued-ink", "#6e7687"),
      blocked: get("--demo-blocked-ink", "#7a2200"),
      "lock-wait": get("--demo-lock-wait-ink", "#5b2ea6"),
    },
    series: [get("--demo-series-a", "#2457c5"), get("--demo-series-b", "#d9730d")],
    font: `${style.fontFamily || "system-ui, sans-serif"}`,
  };
  palette.solidRgb = Object.fromEntries(Object.entries(palette.solid).map(([state, colour]) => [state, toRgb(colour)]));
  palette.patterns = new WeakMap(); // per canvas context: its state fills, made by stateFill()
  return palette;
}

let pageScheme = null;
let pageColours = null;

/**
 * The palette every widget of the page draws with: they all resolve the same --demo-* properties, and the
 * first read after a change to the page costs a style pass, so it is read once per colour scheme.
 */
export function pagePalette(element) {
  const scheme = window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  if (scheme !== pageScheme || !pageColours) {
    pageColours = readPalette(element);
    pageScheme = scheme;
  }
  return pageColours;
}

/** Calls `callback` whenever the reader's colour scheme changes; returns an unsubscribe function. */
export function onThemeChange(callback) {
  const query = window.matchMedia("(prefers-color-scheme: dark)");
  query.addEventListener("change", callback);
  return () => query.removeEventListener("change", callback);
}

function makePattern(ctx, state, palette, scale) {
  const size = Math.round(6 * scale);
  const tile = document.createElement("canvas");
  tile.width = tile.height = size;
  const paint = context2d(tile);
  paint.fillStyle = palette.states[state];
  paint.fillRect(0, 0, size, size);
  paint.strokeStyle = palette.ink[state];
  paint.fillStyle = palette.ink[state];
  paint.lineWidth = Math.max(1, scale * 1.1);
  if (state === "waiting" || state === "blocked") {
    // Diagonal hatch, drawn across the tile corners so it tiles seamlessly.
    paint.beginPath();
    for (const offset of [-size, 0, size]) {
      paint.moveTo(offset, size);
      paint.lineTo(offset + size, 0);
    }
    if (state === "blocked") {
      for (const offset of [-size, 0, size]) {
        paint.moveTo(offset, 0);
        paint.lineTo(offset + size, size);
      }
    }
    paint.stroke();
  } else if (state === "lock-wait") {
    // Two horizontal bars per tile: stripes along the lane, unlike any hatch.
    paint.fillRect(0, 0, size, Math.max(1, Math.round(size / 4)));
    paint.fillRect(0, size / 2, size, Math.max(1, Math.round(size / 4)));
  } else if (state === "queued") {
    paint.beginPath();
    paint.arc(size / 2, size / 2, Math.max(0.8, scale * 0.9), 0, Math.PI * 2);
    paint.fill();
  }
  const pattern = ctx.createPattern(tile, "repeat");
  pattern.setTransform(new DOMMatrix().scale(1 / scale));
  return pattern;
}

/** Rows thinner than this (CSS px) get flat fills. */
export const PATTERN_MIN_ROW = 7;

/**
 * The fillStyle for a lane state. Rows at least PATTERN_MIN_ROW tall get a
 * texture; thinner rows get a flat, stronger colour that still reads at 1 px.
 */
export function stateFill(ctx, palette, state, { rowHeight = 20, scale = 1 } = {}) {
  if (rowHeight < PATTERN_MIN_ROW) return palette.solid[state];
  if (state === "running" || state === "failed" || !palette.ink[state]) return palette.states[state];
  const key = `${state}@${scale}`;
  let byContext = palette.patterns.get(ctx);
  if (!byContext) {
    byContext = new Map();
    palette.patterns.set(ctx, byContext);
  }
  if (!byContext.has(key)) byContext.set(key, makePattern(ctx, state, palette, scale));
  return byContext.get(key);
}
