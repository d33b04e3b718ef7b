// The text of a demo block an author inserts from the picker: pure, so node --test checks it.

/**
 * @typedef {{name: string, type: string, default: unknown, min?: number, max?: number, choices?: string[],
 *   label?: string, help?: string}} ParamDescription
 */

/**
 * A fenced `demo` block for `slug` whose lines are the values that differ from the declared defaults.
 * An author reads only what they chose; the defaults apply to every other parameter.
 * @param {string} slug
 * @param {ParamDescription[]} params
 * @param {Record<string, unknown>} values
 * @returns {string}
 */
export function demoBlockText(slug, params, values) {
  const lines = ["```demo " + slug];
  for (const param of params) {
    if (!(param.name in values)) continue;
    const value = values[param.name];
    if (value === param.default) continue;
    lines.push(`${param.name}: ${String(value)}`);
  }
  lines.push("```");
  return lines.join("\n");
}

/**
 * Insert `block` into `text` at `position`, on lines of its own (a blank line before and after).
 * @param {string} text
 * @param {number} position
 * @param {string} block
 * @returns {{text: string, cursor: number}}
 */
export function insertBlock(text, position, block) {
  const before = text.slice(0, position);
  const after = text.slice(position);
  const lead = before === "" ? "" : before.endsWith("\n\n") ? "" : before.endsWith("\n") ? "\n" : "\n\n";
  const trail = after === "" ? "\n" : after.startsWith("\n\n") ? "" : after.startsWith("\n") ? "\n" : "\n\n";
  const inserted = lead + block + trail;
  return { text: before + inserted + after, cursor: before.length + inserted.length };
}
