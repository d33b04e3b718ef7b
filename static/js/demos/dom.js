/*
 * A tiny element builder for the demo widget.
 *
 * The site's Content-Security-Policy forbids inline styles, so nothing here
 * accepts a `style` attribute: layout comes from classes in widget.css, and
 * the few computed sizes are set through the CSSOM (`el.style.width = ...`).
 */

/**
 * What may be appended: nodes, text, nested lists; null, undefined and false are skipped.
 * @typedef {Node | string | number | boolean | null | undefined | any[]} Child
 */

/**
 * el("button", {className: "x", type: "button", onclick: fn}, "Run")
 * Attributes: `className`, `dataset` (object), `on<event>` (listeners),
 * booleans (set when true), everything else via setAttribute.
 * @template {string} K
 * @param {K} tag
 * @param {Record<string, any>} [attributes]
 * @param {...Child} children
 * @returns {K extends keyof HTMLElementTagNameMap ? HTMLElementTagNameMap[K] : HTMLElement}
 */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "style") throw new Error("inline styles break the site's CSP; use a class");
    if (name === "className") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return /** @type {any} */ (element);
}

/**
 * @param {Node & ParentNode} parent
 * @param {Child[]} children
 */
function append(parent, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replace all children of `parent`.
 * @param {Node & ParentNode} parent
 * @param {...Child} children
 */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

let nextId = 0;

/**
 * A page-unique id with a readable prefix.
 * @param {string} prefix
 * @returns {string}
 */
export function uniqueId(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * The heading level for a widget's title: one below the nearest prose heading before it (h2 section, h3 widget).
 * Headings inside another widget (its title, its summary's) do not count: every widget sits under the prose.
 * @param {Element} section
 * @param {number} [deepest]
 * @returns {number}
 */
export function headingLevelFor(section, deepest = 6) {
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5")].filter(
    (heading) => heading.compareDocumentPosition(section) & Node.DOCUMENT_POSITION_FOLLOWING
      && !heading.closest("section.demo, section.demo-steps, section.demo-replay"),
  );
  const nearest = headings[headings.length - 1];
  return nearest ? Math.min(deepest, Number(nearest.tagName[1]) + 1) : 2;
}
