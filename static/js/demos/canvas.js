/*
 * Crisp canvases at any device pixel ratio, and the time scale they share.
 *
 * The timeline and the metric charts draw against the same TimeScale (same
 * left gutter, same ms per pixel), so a point on a chart sits exactly under
 * the moment it happened on the timeline above, and two compared runs share
 * one axis.
 */
import { formatTick, niceStep } from "./format.js";

/**
 * The 2D context of a canvas; every browser this site supports has one, so its absence is a bug.
 * @param {HTMLCanvasElement} canvas
 * @returns {CanvasRenderingContext2D}
 */
export function context2d(canvas) {
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("this browser gives no 2D canvas context");
  return ctx;
}

/**
 * Size `canvas` to cssWidth × cssHeight CSS pixels, backed by device pixels;
 * returns its 2D context with CSS-pixel coordinates, or null when hidden.
 */
export function prepareCanvas(canvas, cssWidth, cssHeight) {
  if (cssWidth <= 0 || cssHeight <= 0) return null;
  const scale = window.devicePixelRatio || 1;
  const width = Math.round(cssWidth * scale);
  const height = Math.round(cssHeight * scale);
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  canvas.style.height = `${cssHeight}px`; // CSSOM, which the CSP allows
  const ctx = context2d(canvas);
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  return ctx;
}

/** The domain end for runs that reached `latestMs`: rounded up to a round number, at most ~10% further. */
export function domainEnd(latestMs) {
  const span = Math.max(latestMs, 50);
  const step = niceStep(span, 10);
  return Math.ceil(span / step - 1e-9) * step;
}

/** Maps ms on the runs' clock to x pixels inside [left, left + width]. */
export class TimeScale {
  constructor({ domainMs, left, width }) {
    this.domainMs = domainMs;
    this.left = left;
    this.width = Math.max(1, width);
  }

  x(ms) {
    return this.left + (ms / this.domainMs) * this.width;
  }

  ticks(minSpacingPx = 56) {
    const count = Math.max(2, Math.floor(this.width / minSpacingPx));
    const step = niceStep(this.domainMs, count);
    const ticks = [];
    for (let ms = 0; ms <= this.domainMs + step * 1e-6; ms += step) ticks.push({ ms, label: formatTick(ms, step) });
    return ticks;
  }
}

/** Text that fits in maxWidth, shortened with an ellipsis. */
export function fitText(ctx, text, maxWidth) {
  if (ctx.measureText(text).width <= maxWidth) return text;
  let low = 0;
  let high = text.length;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (ctx.measureText(`${text.slice(0, middle)}…`).width <= maxWidth) low = middle;
    else high = middle - 1;
  }
  return low > 0 ? `${text.slice(0, low)}…` : "";
}
