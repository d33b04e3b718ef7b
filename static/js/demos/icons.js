/*
 * Button icons as inline SVG, so they draw the same with any font.
 *
 * Media-control characters (⏸ ⏭ ⏮) are missing from many fonts, Debian's
 * headless Chromium included, and then show as empty boxes; a path drawn in
 * currentColor cannot go missing and follows the theme. Icons are decorative
 * (aria-hidden): the button's words are its accessible name.
 */

const SVG = "http://www.w3.org/2000/svg";

/** 16×16 paths, filled with currentColor. */
export const ICON_PATHS = {
  play: "M4 2.5v11l9.5-5.5z",
  pause: "M3.5 2.5h3.2v11H3.5zM9.3 2.5h3.2v11H9.3z",
  stop: "M3 3h10v10H3z",
  "step-back": "M3 2.5h2v11H3zM13.5 2.5v11L6 8z",
  "step-forward": "M11 2.5h2v11h-2zM2.5 2.5v11L10 8z",
};

/**
 * A decorative icon for a button.
 * @param {keyof typeof ICON_PATHS} name
 * @returns {SVGSVGElement}
 */
export function svgIcon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "demo-svg-icon");
  svg.dataset.icon = name;
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICON_PATHS[name]);
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

/**
 * Swap the icon inside a button for another.
 * @param {SVGSVGElement} svg  an icon made by svgIcon
 * @param {keyof typeof ICON_PATHS} name
 */
export function setIcon(svg, name) {
  if (svg.dataset.icon === name) return;
  svg.dataset.icon = name;
  svg.firstElementChild?.setAttribute("d", ICON_PATHS[name]);
}
