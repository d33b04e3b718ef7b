/*
 * Step mode (loaded as its own <script type="module"> by lesson pages).
 *
 * Replaces each <section class="demo-steps" data-demo data-scenario
 * data-step-mode> with a widget in which the reader schedules two real
 * database transactions, T1 and T2, one statement at a time, over
 * /ws/steps/<demo>/ (the protocol belongs to the demo's step consumer). The
 * words about the demo come from data-step-mode (see stepper-text.js). Each
 * widget opens its own socket when the reader presses Start, so a page that
 * is only read costs the server nothing. Sections get
 * data-widget-state="loading" (until its turn to be built, build-queue.js) | "ready" | "error" and, while a session is open,
 * data-session-state="open" | "finished" for tests and styling.
 *
 * Each scenario is a level with a goal (data-step-mode's scenarios[].level).
 * Whether it is reached is the server's word, a `goal` message its sandbox
 * sends from the database; data-goal-state="pending" | "reached" | "missed"
 * follows it. "Step back" opens a fresh session with `replay`, every statement
 * pressed so far but the last; the server runs them again and the answers
 * rebuild the columns, so the reader sees the state from before that step.
 */
import { BuildQueue } from "./build-queue.js";
import { el, headingLevelFor, replaceChildren, uniqueId } from "./dom.js";
import { JsonSocket, socketUrl } from "./socket.js";
import {
  actionLabel, goalStatus, laneStateText, sourceLines, lockHolders, lostUpdates, parseStepModeText, replayedText, resultText, scenarioActions,
  stepBackSchedule, stepWords, transactionStateText, verdictText,
} from "./stepper-text.js";

/**
 * @typedef {import("./stepper-text.js").StepModeText} StepModeText
 * @typedef {import("./stepper-text.js").StepLevel} StepLevel
 * @typedef {import("./stepper-text.js").GoalState} GoalState
 * @typedef {import("./stepper-text.js").LaneSnapshot} LaneSnapshot
 * @typedef {import("./socket.js").CloseInfo} CloseInfo
 */

/**
 * The step consumer's messages (mirroring its OpenedMessage, StepMessage, ClosedMessage, StepErrorMessage).
 * @typedef {{type: "opened", session: string, scenario: string, actions: Record<string, string[]>, counter: number, ref: unknown,
 *   replay?: Array<[string, string]>}} OpenedMessage
 * @typedef {{type: "step", session: string, tx: string, action: string, sql: string, status: "done" | "blocked" | "error",
 *   result: Record<string, any>, counter_committed: number | null}} StepMessage
 * @typedef {{type: "closed", session: string, reason: "closed" | "idle" | "failed"}} ClosedMessage
 * @typedef {{type: "goal", session: string, status: "reached" | "missed", evidence: Record<string, unknown>}} GoalMessage
 * @typedef {{type: "replayed", session: string, steps: number, of: number}} ReplayedMessage
 * @typedef {{type: "error", code?: string, message?: string, session?: string, tx?: string, action?: string, ref?: unknown}} StepErrorMessage
 * @typedef {OpenedMessage | StepMessage | GoalMessage | ReplayedMessage | ClosedMessage | StepErrorMessage} StepServerMessage
 */

/**
 * @typedef {object} LogEntry
 * @property {number} number
 * @property {boolean} answered
 * @property {boolean} blocked  answered "blocked": its result is still to come
 * @property {HTMLLIElement} item
 */

/**
 * @typedef {object} TransactionState
 * @property {number} next
 * @property {boolean} busy
 * @property {string | null} blocked
 * @property {boolean} failed
 * @property {boolean} [refocus]
 * @property {LogEntry[]} entries
 */

/**
 * @typedef {object} Column
 * @property {HTMLElement} root
 * @property {HTMLDivElement} buttons
 * @property {HTMLParagraphElement} state
 * @property {HTMLOListElement} log
 * @property {Map<string, HTMLButtonElement>} buttonByAction
 */

const TRANSACTIONS = ["T1", "T2"];
const OPEN_TIMEOUT_MS = 20_000;
// How long a finished session stays open for the goal's judgement to arrive.
const FINISHED_CLOSE_WAIT_MS = 5_000;

/**
 * The step socket URL of one demo on this page's host.
 * @param {string} slug  the section's data-demo
 * @param {{protocol: string, host: string}} [location]
 * @returns {string}
 */
export function stepSocketUrl(slug, location = globalThis.location) {
  return socketUrl(`/ws/steps/${encodeURIComponent(slug)}/`, location);
}


/**
 * One step-mode widget in place of its section.
 */
export class StepperWidget {
  /**
   * @param {HTMLElement} section
   * @param {{slug: string, scenario?: string, text: StepModeText, headingLevel?: number}} options
   */
  constructor(section, { slug, scenario, text, headingLevel = 3 }) {
    this.section = section;
    this.text = text;
    this.id = uniqueId("stepper");
    this.scenario = text.scenarios.some((known) => known.id === scenario) ? /** @type {string} */ (scenario) : text.scenarios[0].id;
    // Opened on the first Start; after an abnormal close it comes back by itself, with backoff.
    this.socket = new JsonSocket(stepSocketUrl(slug));
    this.socket.onMessage((message) => this.receive(/** @type {StepServerMessage} */ (message)));
    this.socket.onClose((info) => this.socketClosed(info));
    /** @type {string | null} */
    this.session = null;
    /** @type {string | null} */
    this.pendingRef = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.openTimer = undefined;
    /** @type {Record<string, string[]>} */
    this.actions = {};
    /** @type {Record<string, TransactionState>} */
    this.tx = {};
    /** @type {number | null} */
    this.startCounter = null;
    /** @type {number | null} */
    this.committedCounter = null;
    this.commits = 0;
    this.stepNumber = 0;
    this.finished = false;
    /** @type {Array<[string, string]>} the statements pressed (and not refused), in order: what step back replays */
    this.schedule = [];
    /** @type {Array<[string, string]> | null} while a replay runs, what it was asked to run */
    this.replaying = null;
    /** @type {GoalState} */
    this.goal = { status: "pending" };
    /** @type {string | null} the session whose goal messages count: the open one, or the one that just ended */
    this.judgedSession = null;
    /** @type {(() => void) | null} closes the session that just ended, once its goal is judged */
    this.pendingClose = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.closeTimer = undefined;
    /** @type {Record<string, LaneSnapshot>} each task's last snapshot, for steps whose results carry `tasks` */
    this.lanes = {};
    this.resetState();
    /** @type {Record<string, Column>} */
    this.columns = {};
    const parts = this.build(headingLevel);
    this.select = parts.select;
    this.startButton = parts.startButton;
    this.backButton = parts.backButton;
    this.goalText = parts.goalText;
    this.goalLabel = parts.goalLabel;
    this.goalDetail = parts.goalDetail;
    this.status = parts.status;
    this.counterOutput = parts.counterOutput;
    this.alert = parts.alert;
    this.verdict = parts.verdict;
    this.source = parts.source;
    this.sourceCode = parts.sourceCode;
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
    this.replaying = null;
    this.goal = { status: "pending" };
    this.judgedSession = null;
    this.lanes = {};
  }

  // --- building ---------------------------------------------------------------------------------

  /**
   * @param {number} headingLevel
   */
  build(headingLevel) {
    const selectId = `${this.id}-scenario`;
    const select = el(
      "select",
      { id: selectId, className: "stepper-select", onchange: () => this.scenarioChanged() },
      this.text.scenarios.map((scenario) => el("option", { value: scenario.id, selected: scenario.id === this.scenario }, scenario.label)),
    );
    const startButton = el("button", { type: "button", className: "stepper-button stepper-start", onclick: () => this.start() }, "Start");
    // aria-disabled rather than disabled: a keyboard reader who steps back twice keeps the focus here.
    const backButton = el("button", { type: "button", className: "stepper-button stepper-back", onclick: () => this.stepBack() }, "Step back");
    const goalText = el("p", { className: "stepper-goal-text", id: `${this.id}-goal`, "aria-live": "polite" });
    const goalLabel = el("strong", { className: "stepper-goal-label" });
    const goalDetail = el("span", { className: "stepper-goal-detail" });
    const goalStatusLine = el("p", { className: "stepper-goal-status", role: "status", "aria-live": "polite" }, "Status: ", goalLabel, ". ", goalDetail);
    const status = el("p", { className: "stepper-status", role: "status", "aria-live": "polite" });
    const counterOutput = el("output", { className: "stepper-counter-value", "aria-live": "polite" }, "—");
    const alert = el("p", { className: "stepper-alert", role: "alert" });
    const verdict = el("p", { className: "stepper-verdict", role: "status", "aria-live": "polite", hidden: true });
    // Only for a demo whose scenarios list the code its two tasks run: where each one is, line by line.
    const sourceCode = el("code", { className: "stepper-source-code" });
    const source = el(
      "figure",
      { className: "stepper-source", hidden: true },
      el("figcaption", { className: "stepper-source-caption" }, "The code both tasks run, and where each one is"),
      // Focusable: on a narrow screen the listing scrolls sideways, and a keyboard must be able to scroll it.
      el("pre", { className: "stepper-source-pre", tabindex: "0" }, sourceCode),
    );
    const columns = TRANSACTIONS.map((name) => this.buildColumn(name, headingLevel + 1));
    const root = el(
      "div",
      { className: "stepper", role: "group", "aria-labelledby": `${this.id}-title` },
      el(`h${headingLevel}`, { id: `${this.id}-title`, className: "stepper-title" }, this.text.title),
      el("p", { className: "stepper-intro" }, this.text.intro),
      el(
        "div",
        { className: "stepper-toolbar" },
        el("label", { className: "stepper-label", for: selectId }, "Level"),
        select,
        startButton,
        backButton,
      ),
      el("div", { className: "stepper-goal", role: "group", "aria-label": "Goal" }, goalText, goalStatusLine),
      source,
      status,
      el("p", { className: "stepper-counter" }, `${this.text.value_label}: `, counterOutput),
      el("div", { className: "stepper-columns" }, columns),
      verdict,
      alert,
    );
    replaceChildren(this.section, root);
    return { select, startButton, backButton, goalText, goalLabel, goalDetail, status, counterOutput, alert, verdict, source, sourceCode };
  }

  /**
   * @param {string} name
   * @param {number} level
   * @returns {HTMLElement}
   */
  buildColumn(name, level) {
    const titleId = `${this.id}-${name}`;
    const buttons = el("div", { className: "stepper-actions", role: "group", "aria-label": `${name} statements` });
    const state = el("p", { className: "stepper-state" });
    const log = el("ol", { className: "stepper-log", "aria-live": "polite", "aria-label": `What ${name} ran` });
    const root = el(
      "section",
      { className: "stepper-tx", dataset: { tx: name }, "aria-labelledby": titleId },
      el(`h${Math.min(6, level)}`, { id: titleId, className: "stepper-tx-title" }, name),
      buttons,
      state,
      log,
    );
    this.columns[name] = { root, buttons, state, log, buttonByAction: new Map() };
    return root;
  }

  // --- rendering ----------------------------------------------------------------------------------

  render() {
    const open = this.session !== null;
    this.startButton.textContent = open || this.pendingRef ? "Reset" : "Start";
    this.startButton.disabled = this.pendingRef !== null;
    const canStepBack = this.schedule.length > 0 && this.pendingRef === null && this.replaying === null;
    this.backButton.setAttribute("aria-disabled", String(!canStepBack));
    // While a replay rebuilds the logs, screen readers wait rather than read out every line again.
    this.section.setAttribute("aria-busy", String(this.replaying !== null));
    this.renderGoal();
    this.renderSource();
    this.counterOutput.textContent = this.committedCounter === null ? "—" : String(this.committedCounter);
    this.section.dataset.sessionState = this.finished ? "finished" : open ? "open" : "closed";
    for (const name of TRANSACTIONS) this.renderColumn(name, open);
  }

  /**
   * @param {string} name
   * @param {boolean} open
   */
  renderColumn(name, open) {
    const column = this.columns[name];
    const tx = this.tx[name];
    const actions = this.actions[name].length ? this.actions[name] : this.previewActions(name);
    const known = [...column.buttonByAction.keys()].join(",");
    if (known !== actions.join(",")) {
      column.buttonByAction.clear();
      replaceChildren(
        column.buttons,
        actions.map((action) => {
          const label = actionLabel(this.text, action);
          const button = el(
            "button",
            { type: "button", className: "stepper-button stepper-action", dataset: { action }, onclick: () => this.step(name, action) },
            label,
          );
          button.setAttribute("aria-label", `${name}: ${label}`);
          column.buttonByAction.set(action, button);
          return button;
        }),
      );
    }
    const nextAction = open && !tx.busy && !tx.failed && this.replaying === null ? actions[tx.next] : undefined;
    for (const [action, button] of column.buttonByAction) {
      button.disabled = action !== nextAction;
      button.classList.toggle("is-done", actions.indexOf(action) < tx.next);
    }
    column.root.classList.toggle("is-blocked", tx.blocked !== null);
    const started = open || this.finished;
    column.root.classList.toggle("is-finished", started && (tx.failed || tx.next >= actions.length));
    column.state.textContent = this.text.lane_states
      ? laneStateText(this.text, { started, busy: tx.busy, blocked: tx.blocked, snapshot: this.lanes[name] })
      : transactionStateText(this.text, { started, blocked: tx.blocked, busy: tx.busy, failed: tx.failed, next: tx.next, actions });
  }

  renderSource() {
    const source = this.text.scenarios.find((scenario) => scenario.id === this.select.value)?.source;
    this.source.hidden = !source;
    if (!source) return;
    const lines = sourceLines(source, this.lanes);
    const key = JSON.stringify(lines);
    if (this.sourceCode.dataset.key === key) return;
    this.sourceCode.dataset.key = key;
    replaceChildren(
      this.sourceCode,
      lines.map(({ number, code, marks }) => el(
        "span",
        { className: `stepper-source-line${marks ? " is-current" : ""}`, dataset: { line: String(number) } },
        el("span", { className: "stepper-source-number" }, String(number).padStart(2, " ")),
        ` ${code}`,
        marks ? el("strong", { className: "stepper-source-mark" }, `  ${marks}`) : "",
        "\n",
      )),
    );
  }

  /** @returns {StepLevel} the level of the scenario chosen in the select */
  chosenLevel() {
    return (this.text.scenarios.find((scenario) => scenario.id === this.select.value) ?? this.text.scenarios[0]).level;
  }

  renderGoal() {
    const level = this.chosenLevel();
    // Written only when it changes, so the live regions speak only when there is news.
    if (this.goalText.textContent !== `Goal: ${level.goal}`) this.goalText.textContent = `Goal: ${level.goal}`;
    const { label, text } = goalStatus(level, this.goal, stepWords(this.text, "goal_pending"));
    if (this.goalLabel.textContent !== label || this.goalDetail.textContent !== text) {
      this.goalLabel.textContent = label;
      this.goalDetail.textContent = text;
    }
    this.section.dataset.goalState = this.goal.status;
  }

  /**
   * @param {string} name  the transaction
   * @returns {string[]} its statements in the chosen scenario, before the server names them
   */
  previewActions(name) {
    return scenarioActions(this.text.scenarios.find((scenario) => scenario.id === this.select.value), name);
  }

  /**
   * @param {string} text
   */
  setStatus(text) {
    this.status.textContent = text;
  }

  /**
   * @param {string} text
   */
  showAlert(text) {
    this.alert.textContent = text;
  }

  // --- the socket ---------------------------------------------------------------------------------

  /**
   * @param {Record<string, unknown>} message
   */
  send(message) {
    this.socket.send(message);
  }

  /**
   * @param {CloseInfo} info
   */
  socketClosed(info) {
    const refusal = info.decision.refusal;
    if (this.session !== null || this.pendingRef !== null) {
      this.session = null;
      this.pendingRef = null;
      clearTimeout(this.openTimer);
      this.setStatus(
        refusal
          ? `The server closed the connection (${refusal}) and both transactions with it. Press Start to begin again.`
          : "The connection to the server dropped; the server closed both transactions. Press Start to begin again.",
      );
      this.render();
    } else if (refusal) {
      this.showAlert(`The server closed the step-mode connection (${refusal}).`);
    }
  }

  /**
   * @param {StepServerMessage} message
   */
  receive(message) {
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
      case "goal":
        // The judgement follows the step that decided it, so it may come after the widget closed the session.
        if (message.session === this.judgedSession) this.goalJudged(message);
        break;
      case "replayed":
        if (message.session === this.session) this.replayed(message);
        break;
      case "error":
        this.errorReceived(message);
        break;
      default:
        break; // a message type from a newer server
    }
  }

  // --- the reader's actions -----------------------------------------------------------------------

  /**
   * Start the chosen level afresh; with `replay`, the server runs those statements again first.
   * @param {{replay?: Array<[string, string]>}} [options]
   */
  async start({ replay = [] } = {}) {
    this.showAlert("");
    this.pendingClose?.();
    if (this.session !== null) {
      this.send({ type: "close", session: this.session });
      this.session = null;
    }
    this.scenario = this.select.value;
    this.resetState();
    this.schedule = replay.map(([tx, action]) => [tx, action]);
    for (const name of TRANSACTIONS) replaceChildren(this.columns[name].log);
    this.verdict.hidden = true;
    this.verdict.textContent = "";
    const ref = uniqueId(`${this.id}-open`);
    this.pendingRef = ref;
    this.setStatus(stepWords(this.text, replay.length ? "reopening" : "opening"));
    this.render();
    try {
      await this.socket.whenOpen();
    } catch (error) {
      if (this.pendingRef !== ref) return;
      this.pendingRef = null;
      this.setStatus("Not connected.");
      this.showAlert(`Step mode could not connect (${error instanceof Error ? error.message : String(error)}). Try again in a moment.`);
      this.render();
      return;
    }
    if (this.pendingRef !== ref) return;
    this.send({ type: "open", scenario: this.scenario, ref, ...(replay.length ? { replay } : {}) });
    clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      if (this.pendingRef !== ref) return;
      this.pendingRef = null;
      this.showAlert("The server did not answer; press Start to try again.");
      this.render();
    }, OPEN_TIMEOUT_MS);
  }

  /** Undo the last statement: restart both transactions and run again every statement before it. */
  stepBack() {
    if (this.schedule.length === 0 || this.pendingRef !== null || this.replaying !== null) return;
    this.start({ replay: stepBackSchedule(this.schedule) });
  }

  scenarioChanged() {
    this.schedule = [];
    if (this.session !== null || this.pendingRef !== null || this.stepNumber > 0) {
      this.start();
    } else {
      this.render();
    }
  }

  /**
   * @param {string} name
   * @param {string} action
   */
  step(name, action) {
    const tx = this.tx[name];
    if (this.session === null || tx.busy) return;
    this.showAlert("");
    // Disabling the pressed button drops its focus; remember to hand it to the next statement.
    tx.refocus = this.columns[name].buttons.contains(document.activeElement);
    this.schedule.push([name, action]);
    this.addEntry(name, action);
    this.send({ type: "step", session: this.session, tx: name, action });
    this.render();
  }

  /**
   * A log line for a statement on its way (pressed now, or being replayed), and its transaction busy.
   * @param {string} name
   * @param {string} action
   * @returns {LogEntry}
   */
  addEntry(name, action) {
    const tx = this.tx[name];
    tx.busy = true;
    this.stepNumber += 1;
    /** @type {LogEntry} */
    const entry = { number: this.stepNumber, answered: false, blocked: false, item: el("li", { className: "stepper-entry is-running" }) };
    tx.entries.push(entry);
    replaceChildren(entry.item, el("span", { className: "stepper-entry-number" }, `${entry.number}.`), " ", actionLabel(this.text, action), "…");
    this.columns[name].log.append(entry.item);
    return entry;
  }

  // --- the server's answers -----------------------------------------------------------------------

  /**
   * @param {OpenedMessage} message
   */
  opened(message) {
    if (message.ref !== this.pendingRef) {
      // An answer to an open we gave up on: close that session rather than leave it idle.
      this.send({ type: "close", session: message.session });
      return;
    }
    clearTimeout(this.openTimer);
    this.pendingRef = null;
    this.session = message.session;
    this.judgedSession = message.session;
    this.actions = message.actions;
    this.startCounter = message.counter;
    this.committedCounter = message.counter;
    const replay = message.replay ?? [];
    if (replay.length) {
      this.replaying = replay;
      this.setStatus(`Two fresh connections open; running your first ${replay.length} statement${replay.length === 1 ? "" : "s"} again…`);
      this.render();
      return;
    }
    this.setStatus(stepWords(this.text, "opened", { first: actionLabel(this.text, this.actions.T1[0]) }));
    this.render();
    if (!this.section.contains(document.activeElement) || document.activeElement === this.startButton) {
      this.columns.T1.buttonByAction.get(this.actions.T1[0])?.focus();
    }
  }

  /**
   * @param {ReplayedMessage} message
   */
  replayed(message) {
    const asked = this.replaying ?? [];
    this.replaying = null;
    // What did not run again is not part of the schedule any more.
    this.schedule = this.schedule.slice(0, message.steps);
    const { status, alert } = replayedText(this.text, message, asked);
    this.setStatus(status);
    if (alert) this.showAlert(alert);
    this.render();
  }

  /**
   * @param {GoalMessage} message
   */
  goalJudged(message) {
    this.goal = { status: message.status, evidence: message.evidence ?? {} };
    this.pendingClose?.();
    this.render();
  }

  /**
   * @param {StepMessage} message
   */
  stepAnswered(message) {
    const tx = this.tx[message.tx];
    if (!tx) return;
    let entry = tx.entries[tx.entries.length - 1];
    if (this.replaying !== null && (!entry || (entry.answered && !entry.blocked))) {
      // A replayed statement: the server sent it, so its log line starts with its answer.
      entry = this.addEntry(message.tx, message.action);
    }
    // Unless the reader has moved on, focus goes to what they can press next. (Browsers drop the
    // focus of a disabled button at their own pace, so the pressed button may still hold it.)
    const active = document.activeElement;
    const hadFocus = tx.refocus && (!active || active === document.body || this.columns[message.tx].buttons.contains(active));
    const said = resultText(this.text, message);
    if (entry) {
      entry.answered = true;
      entry.blocked = message.status === "blocked";
      entry.item.className = `stepper-entry is-${message.status}`;
      replaceChildren(
        entry.item,
        el("span", { className: "stepper-entry-number" }, `${entry.number}.`),
        " ",
        el("code", { className: "stepper-sql" }, message.sql),
        el("span", { className: "stepper-result" }, said),
      );
    }
    if (message.result?.tasks && typeof message.result.tasks === "object") this.lanes = message.result.tasks;
    if (message.status === "blocked") {
      tx.blocked = lockHolders(message);
      if (this.replaying === null) this.setStatus(stepWords(this.text, "blocked", { tx: message.tx, holder: tx.blocked }));
      this.render();
      return;
    }
    tx.busy = false;
    tx.blocked = null;
    tx.refocus = false;
    if (message.status === "error") {
      tx.failed = true;
    } else {
      // A task that returned early (it found nothing to do after its first step) has no steps left.
      tx.next = message.result?.finished === true ? this.actions[message.tx].length : tx.next + 1;
      if (message.action === "commit") this.commits += 1;
    }
    if (typeof message.counter_committed === "number" && Number.isFinite(message.counter_committed)) this.committedCounter = message.counter_committed;
    // A replay's answers rebuild the columns quietly; `replayed` then says what happened, once.
    if (this.replaying === null) this.setStatus(`${message.tx}: ${message.sql} → ${said}.`);
    this.checkFinished();
    this.render();
    if (hadFocus) {
      if (this.finished) this.startButton.focus();
      else this.focusNext(message.tx);
    }
  }

  /**
   * @param {string} name
   */
  focusNext(name) {
    const action = this.actions[name][this.tx[name].next];
    const button = this.columns[name].buttonByAction.get(action);
    if (button && !button.disabled) {
      button.focus();
      return;
    }
    const other = TRANSACTIONS.find((candidate) => candidate !== name) ?? name;
    this.columns[other].buttonByAction.get(this.actions[other][this.tx[other].next])?.focus();
  }

  checkFinished() {
    const ended = TRANSACTIONS.every((name) => this.tx[name].failed || this.tx[name].next >= this.actions[name].length);
    if (!ended || this.finished) return;
    this.finished = true;
    this.replaying = null; // a replay that ends both transactions is over, whatever `replayed` will say
    const failed = TRANSACTIONS.some((name) => this.tx[name].failed);
    const outcome = { start: this.startCounter ?? 0, final: this.committedCounter ?? 0, committed: this.commits, failed };
    this.verdict.textContent = verdictText(this.text, outcome);
    this.verdict.hidden = false;
    this.verdict.classList.toggle("is-lost", lostUpdates(outcome, this.text));
    const session = this.session;
    this.session = null;
    // The goal's judgement follows the last answer, and the server drops what a session says after its
    // close: so the close waits for the judgement (or, should none come, a few seconds).
    this.pendingClose = () => {
      clearTimeout(this.closeTimer);
      this.pendingClose = null;
      this.send({ type: "close", session });
    };
    if (this.goal.status !== "pending") this.pendingClose();
    else this.closeTimer = setTimeout(() => this.pendingClose?.(), FINISHED_CLOSE_WAIT_MS);
    this.setStatus(stepWords(this.text, "ended"));
  }

  /**
   * @param {ClosedMessage} message
   */
  closed(message) {
    this.session = null;
    for (const name of TRANSACTIONS) {
      this.tx[name].busy = false;
      this.tx[name].blocked = null;
    }
    /** @type {Record<string, string>} */
    const reasons = {
      idle: "The session ended after a while without a step, and its connections were closed. Press Start to begin again.",
      failed: "The database sandbox stopped unexpectedly. Press Start to begin again.",
    };
    this.setStatus(reasons[message.reason] || "Session closed. Press Start to begin again.");
    this.render();
  }

  /**
   * @param {StepErrorMessage} message
   */
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
    if (tx && last && !last.answered) {
      // The step was refused, so it never ran: take back its log line and its place in the schedule.
      tx.entries.pop();
      last.item.remove();
      tx.busy = false;
      if (last.number === this.stepNumber) this.stepNumber -= 1;
      const index = this.schedule.map(([name]) => name).lastIndexOf(/** @type {string} */ (message.tx));
      if (index >= 0) this.schedule.splice(index, 1);
    }
    this.showAlert(message.message || "The server refused that step.");
    this.render();
  }
}

/** @param {HTMLElement} section one step-mode section, made live */
function bootStepper(section) {
  try {
    const text = parseStepModeText(section.dataset.stepMode);
    new StepperWidget(section, {
      slug: section.dataset.demo ?? "",
      scenario: section.dataset.scenario,
      text,
      headingLevel: headingLevelFor(section, 5),
    });
    section.dataset.widgetState = "ready";
  } catch (error) {
    console.error("step mode widget", error);
    section.dataset.widgetState = "error";
  }
}

/** Boot every step-mode section on the page: near the viewport (or focused) first, the rest when idle. */
export function bootSteppers() {
  const sections = [...document.querySelectorAll("section.demo-steps[data-scenario]")].filter(
    (section) => section instanceof HTMLElement,
  );
  for (const section of sections) section.dataset.widgetState = "loading";
  if (sections.length) new BuildQueue(/** @type {HTMLElement[]} */ (sections), bootStepper);
}

// Modules run after the document is parsed, so the sections are there. Outside a browser
// (node's test runner) there is nothing to boot.
if (typeof document !== "undefined") bootSteppers();
