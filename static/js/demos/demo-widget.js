/*
 * The live demo widget that replaces a lesson's <section class="demo">.
 *
 * It turns the demo's declaration into inputs (one run, or A and B in
 * compare mode), sends `run` over the shared socket, feeds the replies into
 * RunRecords, and lets a RunView draw them. It also owns the parts around
 * the run: Run/Stop, the status line, error alerts next to Run, the
 * connection notice, the Table toggle and the "Code that ran" panel.
 */
import { BusyPanel } from "./busy-panel.js";
import { ParamControls, completeValues, contrastingValues } from "./controls.js";
import { el, uniqueId } from "./dom.js";
import { formatClock, formatDuration } from "./format.js";
import { RunRecord } from "./run-record.js";
import { RunView } from "./run-view.js";
import { summaryFormatOf } from "./summary.js";

const TAGS = ["A", "B"];

/** "Finished in 3.01 s", "Cancelled after 1.2 s"… for one finished record. */
export function outcomePhrase(record) {
  const took = formatDuration(record.now());
  switch (record.status) {
    case "succeeded":
      return `Finished in ${took}`;
    case "cancelled":
      return `Cancelled after ${took}`;
    case "failed":
      return `Failed after ${took}`;
    case "timed_out":
      return `Timed out after ${took}`;
    case "rejected":
      return "Not started";
    case "lost":
      return "Connection lost";
    case "unfinished":
      return `Unfinished recording (${took})`;
    default:
      return "";
  }
}

/** The widget's status line for all its records. */
export function statusLine(records) {
  if (!records.length) return "Ready.";
  if (records.some((record) => record.status === "running")) return "Running…";
  if (records.some((record) => record.status === "starting")) return "Starting…";
  if (records.length === 1) return `${outcomePhrase(records[0])}.`;
  return `${records.map((record) => `${record.tag}: ${outcomePhrase(record).replace(/^./, (c) => c.toLowerCase())}`).join(" · ")}.`;
}

/** A random UUID (v4) naming the two runs of one compare; crypto.randomUUID needs a secure context, this does not. */
export function compareGroupId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Where a widget sits: its lesson page and demo block number (from the block's id, `demo-N`), if known. */
export function originOf(section) {
  const match = /^demo-(\d+)$/.exec(section.id);
  return match ? { path: window.location.pathname, block: Number(match[1]) } : undefined;
}

/** A decorative glyph inside a button (hidden from screen readers: the word is the name). */
export function icon(glyph) {
  return el("span", { className: "demo-icon", "aria-hidden": "true" }, glyph);
}

/** The demo's highlighted source, for the "Code that ran" panel (live widget and replay). */
export function sourceCodeBlock(sourceHtml) {
  const code = el("code", {});
  code.innerHTML = sourceHtml; // Pygments output from our own API: class-only spans
  return el("div", { className: "highlight demo-code-block", tabindex: "0", role: "region", "aria-label": "Demo source code" }, el("pre", {}, code));
}

/**
 * Build a "code that ran" panel's highlighted source only while it is open: a module's source is
 * thousands of spans, and a lesson with eight demos would otherwise carry them all in its DOM.
 * @param {HTMLDetailsElement} panel
 * @param {string} sourceHtml
 * @param {string} sourcePath
 */
export function fillWhenOpen(panel, sourceHtml, sourcePath) {
  const summary = panel.querySelector("summary");
  panel.addEventListener("toggle", () => {
    if (panel.open) panel.append(el("p", { className: "demo-code-path" }, el("code", {}, sourcePath)), sourceCodeBlock(sourceHtml));
    else panel.replaceChildren(...(summary ? [summary] : []));
  });
}

/**
 * The lesson's prediction blocks that follow a demo section (lessons/predictions.py puts them right after it).
 * @param {Element} section
 * @returns {Element[]}
 */
export function predictionsAfter(section) {
  const found = [];
  for (let next = section.nextElementSibling; next?.matches("div.prediction"); next = next.nextElementSibling) found.push(next);
  return found;
}

/**
 * Tell the page's other scripts (predictions, progress) about a run: coursesite:demo-started / demo-finished.
 * @param {string} name
 * @param {Record<string, unknown>} detail
 */
function announce(name, detail) {
  document.dispatchEvent(new CustomEvent(`coursesite:${name}`, { detail }));
}

/** A server error as a sentence for the reader. */
function errorText(message, tag) {
  const prefix = tag ? `Run ${tag}: ` : "";
  let text = message.message || "The demo server reported an error.";
  if (Number.isFinite(message.retry_after_s) && !/try again/i.test(text)) text += ` Try again in about ${Math.ceil(message.retry_after_s)} s.`;
  return prefix + text;
}

export class DemoWidget {
  constructor(section, { demo, configs, socket, headingLevel = 3 }) {
    this.section = section;
    this.demo = demo;
    this.socket = socket;
    this.id = uniqueId("demo-widget");
    this.noun = demo.lanes || "lane";
    const params = demo.params ?? [];
    const given = (Array.isArray(configs) && configs.length ? configs : [{}]).slice(0, 2).map((config) => completeValues(params, config));
    this.values = given.length > 1 ? given : [given[0], contrastingValues(params, given[0])];
    this.compare = given.length > 1;
    this.records = [];
    this.reported = true; // coursesite:demo-finished goes out once per Run
    this.stopRequested = false;
    this.controls = new ParamControls({ params, noun: this.noun });
    this.view = new RunView({ noun: this.noun, placeholder: `Press Run: each ${this.noun} gets a lane here, coloured by what it is doing.`, summaryFormat: summaryFormatOf(demo), panelLevel: Math.min(6, headingLevel + 1) });
    this.view.onFrame = () => this.tick();
    this.view.onLaneSelect = (record, lane) => this.controls.chooseLane(this.records.indexOf(record), lane);
    // The widget's parts are made here, in the constructor, so each field always holds its element.
    const titleId = `${this.id}-title`;
    /** @type {HTMLButtonElement[]} */
    this.modeButtons = [
      el("button", { type: "button", className: "demo-toggle", "aria-pressed": "false", onclick: () => this.setCompare(false) }, "One run"),
      el("button", { type: "button", className: "demo-toggle", "aria-pressed": "false", onclick: () => this.setCompare(true) }, "Compare A/B"),
    ];
    /** @type {HTMLSpanElement} */
    this.runLabel = el("span", {}, "Run");
    /** @type {HTMLButtonElement} */
    this.runButton = el("button", { type: "submit", className: "demo-button demo-run", disabled: true }, icon("▶"), this.runLabel);
    /** @type {HTMLButtonElement} */
    this.stopButton = el("button", { type: "button", className: "demo-button demo-stop", disabled: true, onclick: () => this.stop() }, icon("■"), "Stop");
    /** @type {HTMLSpanElement} */
    this.status = el("span", { className: "demo-status", role: "status" }, "Ready.");
    /** @type {HTMLSpanElement} */
    this.elapsed = el("span", { className: "demo-elapsed", "aria-hidden": "true" });
    /** @type {HTMLButtonElement} */
    this.tableButton = el("button", { type: "button", className: "demo-toggle demo-table-toggle", "aria-pressed": "false", onclick: () => this.toggleTable() }, "Table");
    /** @type {HTMLDivElement} */
    this.alert = el("div", { className: "demo-alert", role: "alert" });
    /** @type {HTMLButtonElement} */
    this.retryButton = el("button", { type: "button", className: "demo-link-button", onclick: () => this.socket.retryNow() }, "Retry now");
    // The sentence is announced once; the ticking countdown beside it is not.
    /** @type {HTMLSpanElement} */
    this.connectionText = el("span", { role: "status" });
    /** @type {HTMLSpanElement} */
    this.countdownText = el("span", { "aria-hidden": "true" });
    /** @type {HTMLParagraphElement} */
    this.connection = el("p", { className: "demo-connection", hidden: true }, this.connectionText, " ", this.countdownText, " ", this.retryButton);
    // A run the site turned away as busy: its countdown, its own retry and a recording to watch meanwhile.
    this.busy = new BusyPanel({ slug: demo.slug, view: this.view, onRetry: () => this.start({ auto: true }) });
    /** @type {HTMLFormElement} */
    this.form = el(
      "form",
      { className: "demo-form", novalidate: true, onsubmit: (event) => this.submit(event) },
      this.controls.element,
      el(
        "div",
        { className: "demo-actions" },
        this.runButton,
        this.stopButton,
        el("span", { className: "demo-status-wrap" }, this.status, this.elapsed),
        this.tableButton,
      ),
      this.alert,
      this.busy.element,
      this.connection,
    );
    // A changed setting is another run than the one turned away: no retry of the old one.
    for (const kind of ["input", "change"]) this.controls.element.addEventListener(kind, () => {
      this.busy.cancel("Settings changed, so it will not try again on its own; press Run.");
      this.updateButtons();
    });
    /** @type {HTMLDetailsElement} */
    this.codePanel = el("details", { className: "demo-code" }, el("summary", {}, "Code that ran"));
    if (demo.source_html) fillWhenOpen(this.codePanel, demo.source_html, demo.source_path ?? "");
    else this.codePanel.hidden = true;
    const heading = el(`h${headingLevel}`, { className: "demo-title", id: titleId }, demo.title);
    // Its predictions sit above Run, so the guess comes before the run.
    const predictions = predictionsAfter(this.section);
    this.section.classList.add("demo-widget");
    this.section.setAttribute("aria-labelledby", titleId);
    this.section.replaceChildren(
      el(
        "header",
        { className: "demo-header" },
        el("div", { className: "demo-heading" }, el("p", { className: "demo-eyebrow" }, "Live demo"), heading, demo.concept ? el("p", { className: "demo-concept" }, demo.concept) : null,
          // What the demo's waits really are, so no one takes a timer for a network call.
          demo.waits ? el("p", { className: "demo-concept demo-waits" }, `Waits: ${demo.waits}`) : null,
          // The demo's idea as a short program a reader can change and run (the server gives the link).
          demo.edit_url ? el("p", { className: "demo-edit" }, el("a", { className: "demo-edit-link", href: demo.edit_url, "aria-label": `Edit and run: ${demo.title}` }, "Edit and run")) : null),
        el("div", { className: "demo-mode", role: "group", "aria-label": "Number of runs" }, this.modeButtons),
      ),
      // The DOM's own replaceChildren writes a null as the text "null": leave the slot out instead.
      ...(predictions.length ? [el("div", { className: "demo-predictions" }, predictions)] : []),
      this.form,
      this.view.element,
      this.codePanel,
    );
    this.renderControls();
    this.unsubscribe = socket.onStatus((status) => this.connectionChanged(status));
  }

  renderControls() {
    this.controls.render(this.compare ? this.values : [this.values[0]]);
    this.modeButtons[0].setAttribute("aria-pressed", String(!this.compare));
    this.modeButtons[1].setAttribute("aria-pressed", String(this.compare));
    this.runLabel.textContent = this.compare ? "Run both" : "Run";
    this.section.classList.toggle("is-compare", this.compare);
  }

  setCompare(compare) {
    if (compare === this.compare || this.isBusy) return;
    const current = this.controls.peek();
    this.values[0] = { ...this.values[0], ...current[0] };
    if (current[1]) this.values[1] = { ...this.values[1], ...current[1] };
    this.compare = compare;
    this.renderControls();
    this.clearAlert();
  }

  toggleTable() {
    const visible = this.tableButton.getAttribute("aria-pressed") !== "true";
    this.tableButton.setAttribute("aria-pressed", String(visible));
    this.view.setTableVisible(visible);
  }

  get isBusy() {
    return this.records.some((record) => record.isLive);
  }

  connectionChanged(status) {
    const previous = this.connectionState?.state;
    this.connectionState = status;
    clearInterval(this.countdown);
    clearTimeout(this.connectingNotice);
    if (status.state === "open") {
      this.connection.hidden = true;
      this.busy.socketBack();
    } else if (status.state === "connecting" && (previous === "closed" || previous === "refused")) {
      this.countdownText.textContent = "Retrying now…"; // keep the announced sentence as it is
    } else if (status.state === "connecting") {
      // Say so only if connecting takes a noticeable while (normally it takes milliseconds).
      this.connectingNotice = setTimeout(() => this.showConnection("Connecting to the demo server…", false), 1000);
    } else if (status.state === "refused") {
      this.showConnection(`The demo server closed the connection (${status.refusal}), so Run is off.`, true);
      this.countdownText.textContent = "";
    } else if (status.state === "closed" && status.retryInMs === null) {
      this.showConnection("The demo server closed the connection, so Run is off.", true);
    } else if (status.state === "closed") {
      this.showConnection(status.busy
        ? "The demo server has as many readers as it can take right now; this page connects again by itself, and Run comes back then."
        : "Not connected to the demo server, so Run is off until it reconnects.", true);
      if (status.busy) {
        const columns = /** @type {Record<string, unknown>[]} */ (this.controls.peek());
        this.busy.socketRefused(this.compare ? columns : [columns[0]], this.titles ?? []);
      }
      const tick = () => {
        const waitMs = this.socket.status().retryInMs;
        this.countdownText.textContent = waitMs === null ? "" : `Retrying in ${Math.max(1, Math.ceil(waitMs / 1000))} s.`;
      };
      tick();
      this.countdown = setInterval(tick, 1000);
    }
    this.updateButtons();
    this.updateStatus();
  }

  showConnection(text, canRetry) {
    if (this.connectionText.textContent !== text) this.connectionText.textContent = text;
    if (!canRetry) this.countdownText.textContent = "";
    this.retryButton.hidden = !canRetry;
    this.connection.hidden = false;
  }

  updateButtons() {
    const open = this.connectionState?.state === "open";
    const busy = this.isBusy;
    const focused = document.activeElement;
    const hadFocus = this.section.contains(focused);
    this.runButton.disabled = !open || busy;
    this.stopButton.disabled = !busy && !this.busy.pending; // Stop also calls off a pending retry
    this.controls.setDisabled(busy);
    for (const button of this.modeButtons) button.disabled = busy;
    // A disabled element drops keyboard focus to <body>; hand it to the button that matters now.
    if (hadFocus && focused && "disabled" in focused && focused.disabled) {
      const next = busy ? this.stopButton : this.runButton.disabled ? null : this.runButton;
      next?.focus();
    }
  }

  showAlert(text) {
    this.alert.replaceChildren(el("p", {}, text));
  }

  clearAlert() {
    this.alert.replaceChildren();
  }

  submit(event) {
    event.preventDefault();
    this.start();
  }

  /** @param {{auto?: boolean}} [options]  auto: the busy countdown ended (not a press of Run) */
  start({ auto = false } = {}) {
    if (this.isBusy) return;
    if (!auto) this.busy.pressed();
    this.clearAlert();
    const read = this.controls.read();
    if (read.invalid) {
      read.invalid.reportValidity();
      this.showAlert(`${read.label}: ${read.invalid.validationMessage}`);
      read.invalid.focus();
      return;
    }
    const columns = read.columns;
    columns.forEach((values, index) => {
      this.values[index] = values;
    });
    if (!this.socket.isOpen) {
      this.showAlert("Not connected to the demo server yet; Run works again once it reconnects.");
      return;
    }
    const free = this.socket.freeRuns;
    if (columns.length > free) {
      this.showAlert(
        free <= 0
          ? "Another demo on this page is still running; stop it or wait for it to finish."
          : "Another demo on this page is still running, and comparing needs two runs at once; wait for it to finish.",
      );
      return;
    }
    const titles = this.controls.describeDifferences(columns);
    this.records = columns.map((values, index) => new RunRecord({ tag: columns.length > 1 ? TAGS[index] : "", params: values }));
    this.stopRequested = false;
    this.titles = titles;
    // A recording being watched stays in view until a live run is accepted to take its place.
    this.viewPending = this.busy.showingRecording;
    if (!this.viewPending) this.view.setRecords(this.records, titles);
    const group = columns.length > 1 ? compareGroupId() : null;
    const origin = originOf(this.section);
    this.records.forEach((record, index) => {
      record.starting(columns[index]);
      const compare = group ? { group, side: record.tag } : undefined;
      const request = { demo: this.demo.slug, params: columns[index], refPrefix: `${this.id}${record.tag}`, compare, origin };
      const ref = this.socket.startRun(request, this.handlersFor(record));
      if (ref === null) record.reject({ code: "disconnected", message: "Not connected to the demo server." });
    });
    this.lastStatus = "";
    this.reported = false;
    announce("demo-started", { demo: this.demo.slug, block: this.section.id, compare: this.records.length > 1 });
    this.updateStatus();
    this.updateButtons();
  }

  /** Once every run of the last Run has ended: coursesite:demo-finished, with what the runs measured. */
  reportFinished() {
    if (this.reported || !this.records.length || !this.records.every((record) => record.isFinal)) return;
    this.reported = true;
    const failed = this.records.find((record) => record.status !== "succeeded");
    announce("demo-finished", {
      demo: this.demo.slug,
      block: this.section.id,
      runs: this.records.map((record) => record.runId).filter(Boolean),
      status: failed ? failed.status : "succeeded",
      compare: this.records.length > 1,
      summaries: this.records.map((record) => record.summary),
      params: this.records.map((record) => record.params),
      summaryFields: this.demo.summary_fields ?? {},
    });
  }

  handlersFor(record) {
    return {
      onAccepted: (message) => {
        record.accepted(message.run, message.params);
        this.busy.clear();
        if (this.viewPending) {
          this.viewPending = false;
          this.view.setRecords(this.records, this.titles);
        }
        if (this.stopRequested) this.socket.cancel(message.run);
        this.changed();
      },
      onEvents: (message) => {
        record.addBatch(message.seq, message.events);
        this.view.invalidate();
      },
      onFinished: (message) => {
        record.finish(message.status, message.summary);
        this.changed();
      },
      onError: (message) => {
        const refused = record.status === "starting";
        if (refused) record.reject(message);
        if (refused && message.code === "busy") this.busyRefused();
        else if (message.code !== "unknown_run" || !record.isFinal) this.showAlert(errorText(message, record.tag));
        this.changed();
      },
      onLost: (refusal) => {
        record.lose();
        const subject = record.tag ? `Run ${record.tag}: the` : "The";
        this.showAlert(
          refusal
            ? `${subject} demo server closed the connection (${refusal}), so the run was stopped.`
            : `${subject} connection to the demo server dropped, so the run was stopped. Run it again once reconnected.`,
        );
        this.changed();
      },
    };
  }

  /** A run of this press was turned away as busy: once none is left waiting, count down to a retry. */
  busyRefused() {
    if (this.records.some((record) => record.status === "starting")) return;
    const turnedAway = this.records.filter((record) => record.status === "rejected" && record.error?.code === "busy");
    // A compare with one side accepted or refused otherwise: the reader is told; half a compare is not retried.
    if (turnedAway.length < this.records.length) {
      for (const record of turnedAway) this.showAlert(errorText(record.error, record.tag));
      return;
    }
    this.busy.refused(turnedAway.map((record) => record.error), this.records.map((record) => record.params), this.titles ?? []);
  }

  changed() {
    this.reportFinished();
    this.updateStatus();
    this.updateButtons();
    this.view.invalidate();
  }

  stop() {
    if (this.busy.pending && !this.isBusy) {
      this.busy.cancel("Stopped: it will not try again on its own; press Run when you like.");
      this.updateButtons();
      return;
    }
    this.stopRequested = true;
    for (const record of this.records) {
      if (record.status === "running" && record.runId) this.socket.cancel(record.runId);
    }
    this.status.textContent = "Stopping…";
    this.lastStatus = "Stopping…";
  }

  updateStatus() {
    // Closed or refused: the connection notice says why; "Ready." beside a Run that is off would not be true.
    const cutOff = ["closed", "refused"].includes(this.connectionState?.state ?? "");
    let text = cutOff && !this.records.length ? "Run is off: not connected to the demo server." : statusLine(this.records);
    if (this.stopRequested && this.isBusy) text = "Stopping…";
    if (text !== this.lastStatus) {
      this.lastStatus = text;
      this.status.textContent = text;
    }
  }

  /** Per frame while a run is live: the running clock, and the line each program editor marks. */
  tick() {
    this.controls.follow(this.records);
    const live = this.records.filter((record) => record.status === "running");
    const text = live.length ? formatClock(Math.max(...live.map((record) => record.now()))) : "";
    if (this.elapsed.textContent !== text) this.elapsed.textContent = text;
  }
}

