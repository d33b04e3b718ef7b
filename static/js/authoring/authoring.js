// The lesson form's live preview and demo picker (templates/admin/lessons/lesson/change_form.html).
// The server renders the preview exactly as saving would; this module only asks, debounced, and shows.
import { demoBlockText, insertBlock } from "./demo-block.js";

const PREVIEW_DELAY_MS = 400;

/** @param {HTMLElement} root */
function startPreview(root) {
  const body = /** @type {HTMLTextAreaElement | null} */ (document.getElementById("id_body"));
  const found = root.querySelector(".authoring-preview-status");
  const errorsBox = /** @type {HTMLElement | null} */ (root.querySelector(".authoring-preview-errors"));
  const errorList = errorsBox?.querySelector("ul");
  const output = root.querySelector(".authoring-preview-body");
  const csrf = /** @type {HTMLInputElement | null} */ (document.querySelector("input[name=csrfmiddlewaretoken]"));
  const url = root.dataset.previewUrl;
  if (!body || !found || !errorsBox || !errorList || !output || !csrf || !url) return null;
  const status = found;
  /** @type {number | undefined} */
  let timer;
  let asked = 0;

  async function render() {
    const ticket = ++asked;
    status.textContent = "Rendering the preview...";
    const form = new FormData();
    form.set("body", /** @type {HTMLTextAreaElement} */ (body).value);
    form.set("csrfmiddlewaretoken", /** @type {HTMLInputElement} */ (csrf).value);
    let reply;
    try {
      const response = await fetch(/** @type {string} */ (url), { method: "POST", body: form, credentials: "same-origin" });
      reply = await response.json();
    } catch {
      if (ticket === asked) status.textContent = "The preview could not be rendered (the server did not answer); your text is safe in the form.";
      return;
    }
    if (ticket !== asked) return; // a newer edit is already on its way
    /** @type {{line: number | null, message: string}[]} */
    const errors = reply.errors || [];
    /** @type {HTMLUListElement} */ (errorList).replaceChildren(...errors.map((error) => {
      const item = document.createElement("li");
      item.textContent = error.line ? `line ${error.line}: ${error.message}` : error.message;
      return item;
    }));
    /** @type {HTMLElement} */ (errorsBox).hidden = errors.length === 0;
    if (errors.length === 0) {
      // The HTML was sanitised by the server (nh3), exactly as it is for readers.
      /** @type {Element} */ (output).innerHTML = reply.html;
      status.textContent = "Preview up to date: this is the page readers will get (demos run on the real page).";
    } else {
      status.textContent = `${errors.length} problem${errors.length === 1 ? "" : "s"} to fix before this can be saved.`;
    }
  }

  const schedule = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(render, PREVIEW_DELAY_MS);
  };
  body.addEventListener("input", schedule);
  render();
  return schedule;
}

/**
 * @param {HTMLElement} root
 * @param {() => void} onInserted
 */
async function startPicker(root, onInserted) {
  const body = /** @type {HTMLTextAreaElement | null} */ (document.getElementById("id_body"));
  const url = root.dataset.demosUrl;
  if (!body || !url) return;
  let demos;
  try {
    demos = (await (await fetch(url, { credentials: "same-origin" })).json()).demos;
  } catch {
    return; // no picker; the help text still names /api/demos/
  }
  const picker = document.createElement("fieldset");
  picker.className = "demo-picker";
  const legend = document.createElement("legend");
  legend.textContent = "Insert a demo block";
  const chooserLabel = document.createElement("label");
  chooserLabel.htmlFor = "demo-picker-demo";
  chooserLabel.textContent = "Demo";
  const chooser = document.createElement("select");
  chooser.id = "demo-picker-demo";
  chooser.append(new Option("Choose a demo...", ""));
  for (const demo of demos) chooser.append(new Option(`${demo.title} (${demo.slug})`, demo.slug));
  const fields = document.createElement("div");
  fields.className = "demo-picker-fields";
  const insert = document.createElement("button");
  insert.type = "button";
  insert.className = "button";
  insert.textContent = "Insert at the cursor";
  insert.disabled = true;
  picker.append(legend, chooserLabel, chooser, fields, insert);
  body.closest(".form-row")?.before(picker);

  chooser.addEventListener("change", () => {
    const demo = demos.find((/** @type {{slug: string}} */ candidate) => candidate.slug === chooser.value);
    fields.replaceChildren();
    insert.disabled = !demo;
    if (!demo) return;
    for (const param of demo.params) fields.append(paramField(param));
  });
  insert.addEventListener("click", () => {
    const demo = demos.find((/** @type {{slug: string}} */ candidate) => candidate.slug === chooser.value);
    if (!demo) return;
    /** @type {Record<string, unknown>} */
    const values = {};
    for (const param of demo.params) {
      const input = /** @type {HTMLInputElement | HTMLSelectElement | null} */ (fields.querySelector(`[name="picker-${param.name}"]`));
      if (!input) continue;
      if (param.type === "bool") values[param.name] = /** @type {HTMLInputElement} */ (input).checked;
      else if (param.type === "int") values[param.name] = Number(input.value);
      else values[param.name] = input.value;
    }
    const placed = insertBlock(body.value, body.selectionStart ?? body.value.length, demoBlockText(demo.slug, demo.params, values));
    body.value = placed.text;
    body.focus();
    body.setSelectionRange(placed.cursor, placed.cursor);
    onInserted();
  });
}

/** @param {import("./demo-block.js").ParamDescription} param */
function paramField(param) {
  const row = document.createElement("div");
  row.className = "demo-picker-param";
  const id = `demo-picker-${param.name}`;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = param.label || param.name;
  /** @type {HTMLInputElement | HTMLSelectElement} */
  let input;
  if (param.type === "choice") {
    const select = document.createElement("select");
    for (const choice of param.choices || []) select.append(new Option(choice, choice, false, choice === param.default));
    input = select;
  } else if (param.type === "bool") {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = Boolean(param.default);
    input = box;
  } else if (param.type === "int") {
    const number = document.createElement("input");
    number.type = "number";
    if (param.min !== undefined) number.min = String(param.min);
    if (param.max !== undefined) number.max = String(param.max);
    number.value = String(param.default);
    input = number;
  } else {
    const text = document.createElement("input");
    text.type = "text";
    text.value = String(param.default ?? "");
    input = text;
  }
  input.id = id;
  input.name = `picker-${param.name}`;
  row.append(label, input);
  if (param.help) {
    const help = document.createElement("span");
    help.className = "demo-picker-help";
    help.textContent = param.help;
    row.append(help);
  }
  return row;
}

const root = /** @type {HTMLElement | null} */ (document.querySelector(".authoring"));
if (root) {
  const refresh = startPreview(root);
  startPicker(root, refresh || (() => {}));
}
