/*
 * Step mode (loaded as its own <script type="module"> by lesson pages).
 *
 * Replaces each <section class="demo-steps" data-scenario> with a widget in
 * which the reader schedules two real PostgreSQL transactions, T1 and T2, one
 * statement at a time, over /ws/steps/ (protocol: demos/step_consumer.py).
 * Each widget opens its own socket when the reader presses Start, so a page
 * that is only read costs the server nothing. Sections get
 * data-widget-state="ready" | "error" and, while a session is open,
 * data-session-state="open" | "finished" for tests and styling.
 */
import { el, replaceChildren, uniqueId } from "./dom.js";

const SCENARIOS = [
  { id: "read-modify-write", label: "Read, then write back (no lock)" },
  { id: "select-for-update", label: "SELECT … FOR UPDATE (row lock)" },
  { id: "atomic-update", label: "Atomic UPDATE n = n + 1" },
];
const ACTION_LABELS = { begin: "BEGIN", read: "Read n", write: "Write n + 1", update: "UPDATE n + 1", commit: "COMMIT" };
const TRANSACTIONS = ["T1", "T2"];
const OPEN_TIMEOUT_MS = 20_000;

export function stepSocketUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/steps/`;
}

/** What one step's result says, in a few words. */
export function resultText(message) {
  const result = message.result || {};
  if (message.status === "blocked") {
    const holders = (result.waiting_for || []).join(" and ") || "the other transaction";
    return `blocked — waiting for ${holders}'s lock`;
  }
  if (message.status === "error") return `error: ${result.message || "the statement failed"} (rolled back)`;
  switch (message.action) {
    case "read":
      return `n = ${result.n}`;
    case "write":
      return `wrote n = ${result.n}`;
    case "update":
      return `n is now ${result.n} (for this transaction)`;
    case "commit":
      return "committed";
    case "begin":
      return "transaction open";
    default:
      return "done";
  }
}

/** The closing sentence once both transactions have ended. */
export function verdictText({ start, final, committed, failed }) {
  if (failed) {
    return `A transaction failed and was rolled back; the counter went from ${start} to ${final}.`;
  }
  const expected = start + committed;
  if (final === expected) {
    return `Both transactions added one, and the counter went from ${start} to ${final}: nothing lost.`;
  }
  const lost = expected - final;
  return `Both transactions added one, but the counter went from ${start} to ${final}: ${lost === 1 ? "one update was" : `${lost} updates were`} lost.`;
}

function headingLevelFor(section) {
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5")].filter(
    (heading) => heading.compareDocumentPosition(section) & Node.DOCUMENT_POSITION_FOLLOWING,
  );
  const nearest = headings[headings.length - 1];
  return nearest ? Math.min(5, Number(nearest.tagName[1]) + 1) : 2;
}

export class StepperWidget {
  constructor(section, { scenario, headingLevel = 3 }) {
    this.section = section;
    this.id = uniqueId("stepper");
    this.scenario = SCENARIOS.some((known) => known.id === scenario) ? scenario : SCENARIOS[0].id;
    this.socket = null;
    this.socketReady = null;
    this.session = null;
    this.pendingRef = null;
    this.openTimer = null;
    this.resetState();
    this.build(headingLevel);
    this.render();
  }

  resetState() {
    this.actions = { T1: [], T2: [] };
    this.tx = Object.fromEntries(TRANSACTIONS.map((name) => [name, { next: 0, busy: false, blocked: null, failed: false, entries: [] }]));
    this.startCounter = null;
    this.committedCounter = null;
    this.commits = 0;
    this.stepNumber = 0;
    this.finished = false;
  }

  // --- building ---------------------------------------------------------------------------------

  build(headingLevel) {
    const selectId = `${this.id}-scenario`;
    this.select = el(
      "select",
      { id: selectId, className: "stepper-select", onchange: () => this.scenarioChanged() },
      SCENARIOS.map((scenario) => el("option", { value: scenario.id, selected: scenario.id === this.scenario }, scenario.label)),
    );
    this.startButton = el("button", { type: "button", className: "stepper-button stepper-start", onclick: () => this.start() }, "Start");
    this.status = el("p", { className: "stepper-status", role: "status", "aria-live": "polite" });
    this.counterOutput = el("output", { className: "stepper-counter-value", "aria-live": "polite" }, "—");
    this.alert = el("p", { className: "stepper-alert", role: "alert" });
    this.verdict = el("p", { className: "stepper-verdict", role: "status", "aria-live": "polite", hidden: true });
    this.columns = {};
    const columns = TRANSACTIONS.map((name) => this.buildColumn(name, headingLevel + 1));
    const root = el(
      "div",
      { className: "stepper", role: "group", "aria-labelledby": `${this.id}-title` },
      el(`h${headingLevel}`, { id: `${this.id}-title`, className: "stepper-title" }, "Step through it: you are the scheduler"),
      el(
        "p",
        { className: "stepper-intro" },
        "Two real transactions on two real PostgreSQL connections share one counter row that starts at 0. " +
          "Press one statement at a time, in any order you like, and watch what each one sees.",
      ),
      el(
        "div",
        { className: "stepper-toolbar" },
        el("label", { className: "stepper-label", for: selectId }, "Scenario"),
        this.select,
        this.startButton,
      ),
      this.status,
      el("p", { className: "stepper-counter" }, "Committed counter: ", this.counterOutput),
      el("div", { className: "stepper-columns" }, columns),
      this.verdict,
      this.alert,
    );
    replaceChildren(this.section, root);
  }

  buildColumn(name, level) {
    const titleId = `${this.id}-${name}`;
    const column = {
      root: null,
      buttons: el("div", { className: "stepper-actions", role: "group", "aria-label": `${name} statements` }),
      state: el("p", { className: "stepper-state" }),
      log: el("ol", { className: "stepper-log", "aria-live": "polite", "aria-label": `What ${name} ran` }),
      buttonByAction: new Map(),
    };
    column.root = el(
      "section",
      { className: "stepper-tx", dataset: { tx: name }, "aria-labelledby": titleId },
      el(`h${Math.min(6, level)}`, { id: titleId, className: "stepper-tx-title" }, name),
      column.buttons,
      column.state,
      column.log,
    );
    this.columns[name] = column;
    return column.root;
  }

  // --- rendering ----------------------------------------------------------------------------------

  render() {
    const open = this.session !== null;
    this.startButton.textContent = open || this.pendingRef ? "Reset" : "Start";
    this.startButton.disabled = this.pendingRef !== null;
    this.counterOutput.textContent = this.committedCounter === null ? "—" : String(this.committedCounter);
    this.section.dataset.sessionState = this.finished ? "finished" : open ? "open" : "closed";
    for (const name of TRANSACTIONS) this.renderColumn(name, open);
  }

  renderColumn(name, open) {
    const column = this.columns[name];
    const tx = this.tx[name];
    const actions = this.actions[name].length ? this.actions[name] : this.previewActions();
    const known = [...column.buttonByAction.keys()].join(",");
    if (known !== actions.join(",")) {
      column.buttonByAction.clear();
      replaceChildren(
        column.buttons,
        actions.map((action) => {
          const button = el(
            "button",
            { type: "button", className: "stepper-button stepper-action", dataset: { action }, onclick: () => this.step(name, action) },
            ACTION_LABELS[action] || action,
          );
          button.setAttribute("aria-label", `${name}: ${ACTION_LABELS[action] || action}`);
          column.buttonByAction.set(action, button);
          return button;
        }),
      );
    }
    const nextAction = open && !tx.busy && !tx.failed ? actions[tx.next] : undefined;
    for (const [action, button] of column.buttonByAction) {
      button.disabled = action !== nextAction;
      button.classList.toggle("is-done", actions.indexOf(action) < tx.next);
    }
    column.root.classList.toggle("is-blocked", tx.blocked !== null);
    const started = open || this.finished;
    column.root.classList.toggle("is-finished", started && (tx.failed || tx.next >= actions.length));
    let state;
    if (!started) state = "Not connected.";
    else if (tx.blocked !== null) state = `Blocked — waiting for ${tx.blocked}'s lock.`;
    else if (tx.busy) state = "Running…";
    else if (tx.failed) state = "Rolled back.";
    else if (tx.next >= actions.length) state = "Committed.";
    else if (tx.next === 0) state = "Idle: no transaction yet.";
    else state = `In a transaction; next: ${ACTION_LABELS[actions[tx.next]]}.`;
    column.state.textContent = state;
  }

  previewActions() {
    return this.select.value === "atomic-update" ? ["begin", "update", "commit"] : ["begin", "read", "write", "commit"];
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  showAlert(text) {
    this.alert.textContent = text;
  }

  // --- the socket ---------------------------------------------------------------------------------

  connect() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return this.socketReady;
    const socket = new WebSocket(stepSocketUrl());
    this.socket = socket;
    this.socketReady = new Promise((resolve, reject) => {
      socket.addEventListener("open", () => resolve(socket), { once: true });
      socket.addEventListener("error", () => reject(new Error("cannot reach the server")), { once: true });
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => this.socketClosed(socket));
    return this.socketReady;
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  socketClosed(socket) {
    if (this.socket !== socket) return;
    this.socket = null;
    this.socketReady = null;
    if (this.session !== null || this.pendingRef !== null) {
      this.session = null;
      this.pendingRef = null;
      clearTimeout(this.openTimer);
      this.setStatus("The connection to the server dropped; the server closed both transactions. Press Start to begin again.");
      this.render();
    }
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (!message || typeof message !== "object") return;
    switch (message.type) {
      case "opened":
        this.opened(message);
        break;
      case "step":
        if (message.session === this.session) this.stepAnswered(message);
        break;
      case "closed":
        if (message.session === this.session) this.closed(message);
        break;
      case "error":
        this.errorReceived(message);
        break;
      default:
        break; // a message type from a newer server
    }
  }

  // --- the reader's actions -----------------------------------------------------------------------

  async start() {
    this.showAlert("");
    if (this.session !== null) {
      this.send({ type: "close", session: this.session });
      this.session = null;
    }
    this.scenario = this.select.value;
    this.resetState();
    for (const name of TRANSACTIONS) replaceChildren(this.columns[name].log);
    this.verdict.hidden = true;
    this.verdict.textContent = "";
    this.pendingRef = uniqueId(`${this.id}-open`);
    this.setStatus("Opening two connections…");
    this.render();
    try {
      await this.connect();
    } catch (error) {
      this.pendingRef = null;
      this.setStatus("Not connected.");
      this.showAlert(`Step mode could not connect (${error.message}). Try again in a moment.`);
      this.render();
      return;
    }
    this.send({ type: "open", scenario: this.scenario, ref: this.pendingRef });
    clearTimeout(this.openTimer);
    const ref = this.pendingRef;
    this.openTimer = setTimeout(() => {
      if (this.pendingRef !== ref) return;
      this.pendingRef = null;
      this.showAlert("The server did not answer; press Start to try again.");
      this.render();
    }, OPEN_TIMEOUT_MS);
  }

  scenarioChanged() {
    if (this.session !== null || this.pendingRef !== null || this.stepNumber > 0) {
      this.start();
    } else {
      this.render();
    }
  }

  step(name, action) {
    const tx = this.tx[name];
    if (this.session === null || tx.busy) return;
    this.showAlert("");
    // Disabling the pressed button drops its focus; remember to hand it to the next statement.
    tx.refocus = this.columns[name].buttons.contains(document.activeElement);
    tx.busy = true;
    this.stepNumber += 1;
    const entry = {
      number: this.stepNumber,
      answered: false,
      item: el("li", { className: "stepper-entry is-running" }),
    };
    tx.entries.push(entry);
    replaceChildren(entry.item, el("span", { className: "stepper-entry-number" }, `${entry.number}.`), " ", ACTION_LABELS[action] || action, "…");
    this.columns[name].log.append(entry.item);
    this.send({ type: "step", session: this.session, tx: name, action });
    this.render();
  }

  // --- the server's answers -----------------------------------------------------------------------

  opened(message) {
    if (message.ref !== this.pendingRef) {
      // An answer to an open we gave up on: close that session rather than leave it idle.
      this.send({ type: "close", session: message.session });
      return;
    }
    clearTimeout(this.openTimer);
    this.pendingRef = null;
    this.session = message.session;
    this.actions = message.actions;
    this.startCounter = message.counter;
    this.committedCounter = message.counter;
    this.setStatus(`Two connections open; the counter is ${message.counter}. Start with BEGIN in either column.`);
    this.render();
    this.columns.T1.buttonByAction.get(this.actions.T1[0])?.focus();
  }

  stepAnswered(message) {
    const tx = this.tx[message.tx];
    if (!tx) return;
    const entry = tx.entries[tx.entries.length - 1];
    // Unless the reader has moved on, focus goes to what they can press next. (Browsers drop the
    // focus of a disabled button at their own pace, so the pressed button may still hold it.)
    const active = document.activeElement;
    const hadFocus = tx.refocus && (!active || active === document.body || this.columns[message.tx].buttons.contains(active));
    if (entry) {
      entry.answered = true;
      entry.item.className = `stepper-entry is-${message.status}`;
      replaceChildren(
        entry.item,
        el("span", { className: "stepper-entry-number" }, `${entry.number}.`),
        " ",
        el("code", { className: "stepper-sql" }, message.sql),
        el("span", { className: "stepper-result" }, resultText(message)),
      );
    }
    if (message.status === "blocked") {
      tx.blocked = (message.result?.waiting_for || []).join(" and ") || "the other transaction";
      this.setStatus(`${message.tx} is blocked: its statement waits for ${tx.blocked}'s lock on the row.`);
      this.render();
      return;
    }
    tx.busy = false;
    tx.blocked = null;
    tx.refocus = false;
    if (message.status === "error") {
      tx.failed = true;
    } else {
      tx.next += 1;
      if (message.action === "commit") this.commits += 1;
    }
    if (Number.isFinite(message.counter_committed)) this.committedCounter = message.counter_committed;
    this.setStatus(`${message.tx}: ${message.sql} → ${resultText(message)}.`);
    this.checkFinished();
    this.render();
    if (hadFocus) {
      if (this.finished) this.startButton.focus();
      else this.focusNext(message.tx);
    }
  }

  focusNext(name) {
    const action = this.actions[name][this.tx[name].next];
    const button = this.columns[name].buttonByAction.get(action);
    if (button && !button.disabled) {
      button.focus();
      return;
    }
    const other = TRANSACTIONS.find((candidate) => candidate !== name);
    this.columns[other].buttonByAction.get(this.actions[other][this.tx[other].next])?.focus();
  }

  checkFinished() {
    const ended = TRANSACTIONS.every((name) => this.tx[name].failed || this.tx[name].next >= this.actions[name].length);
    if (!ended || this.finished) return;
    this.finished = true;
    const failed = TRANSACTIONS.some((name) => this.tx[name].failed);
    this.verdict.textContent = verdictText({ start: this.startCounter, final: this.committedCounter, committed: this.commits, failed });
    this.verdict.hidden = false;
    this.verdict.classList.toggle("is-lost", !failed && this.committedCounter !== this.startCounter + this.commits);
    this.send({ type: "close", session: this.session });
    this.session = null;
    this.setStatus("Both transactions have ended; their connections are closed. Press Start to try another order.");
  }

  closed(message) {
    this.session = null;
    for (const name of TRANSACTIONS) {
      this.tx[name].busy = false;
      this.tx[name].blocked = null;
    }
    const reasons = {
      idle: "The session ended after two minutes without a step, and its connections were closed. Press Start to begin again.",
      failed: "The database sandbox stopped unexpectedly. Press Start to begin again.",
    };
    this.setStatus(reasons[message.reason] || "Session closed. Press Start to begin again.");
    this.render();
  }

  errorReceived(message) {
    if (message.ref !== undefined && message.ref === this.pendingRef) {
      clearTimeout(this.openTimer);
      this.pendingRef = null;
      this.setStatus("Not connected.");
    } else if (message.session !== undefined && message.session !== this.session) {
      return; // about a session this widget already left
    }
    const tx = message.tx ? this.tx[message.tx] : undefined;
    const last = tx?.entries[tx.entries.length - 1];
    if (last && !last.answered) {
      // The step was refused, so it never ran: take back its log line.
      tx.entries.pop();
      last.item.remove();
      tx.busy = false;
      if (last.number === this.stepNumber) this.stepNumber -= 1;
    }
    this.showAlert(message.message || "The server refused that step.");
    this.render();
  }
}

function boot() {
  for (const section of document.querySelectorAll("section.demo-steps[data-scenario]")) {
    try {
      new StepperWidget(section, { scenario: section.dataset.scenario, headingLevel: headingLevelFor(section) });
      section.dataset.widgetState = "ready";
    } catch (error) {
      console.error("step mode widget", error);
      section.dataset.widgetState = "error";
    }
  }
}

boot(); // modules run after the document is parsed, so the sections are there
