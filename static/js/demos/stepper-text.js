/*
 * What the step-mode widget says, kept apart from the widget so node can test it.
 *
 * The words about a particular demo (its title, scenarios, statement labels,
 * what a result means, the closing verdict) are not written here: the server
 * renders them into the section's data-step-mode attribute from the demo's
 * own package, and these functions fill them in. Only the step protocol's own
 * vocabulary (transactions, locks, rollback) is worded here.
 */

/**
 * @typedef {object} StepScenario
 * @property {string} id  what `open` sends as `scenario`
 * @property {string} label  the option's text
 * @property {string[]} actions  the statements each transaction runs, shown before a session opens
 * @property {Record<string, string[]>} [actions_by_tx]  per transaction, where they differ from `actions`
 * @property {StepLevel} level  the goal the reader plays for in this scenario
 * @property {string[]} [source]  the code the two run, line by line (line 1 first), for steps whose results carry `tasks`
 */

/**
 * A level: the goal, and what the page says when the sandbox judges it (filled from its `evidence`).
 * @typedef {object} StepLevel
 * @property {string} goal  the goal, in a sentence
 * @property {boolean} reachable  whether some schedule reaches it (false for the fixed versions)
 * @property {string} reached  said when the database shows the goal reached
 * @property {string} missed  said when both transactions ended without it: for a fixed level, why no order can
 */

/**
 * Where the reader stands on a level's goal: the sandbox's `goal` message, or "pending" before one.
 * @typedef {{status: "pending"} | {status: "reached" | "missed", evidence: Record<string, unknown>}} GoalState
 */

/**
 * The data-step-mode attribute, parsed.
 * @typedef {object} StepModeText
 * @property {string} title
 * @property {string} intro
 * @property {string} value_label  what the committed value is called ("Committed counter")
 * @property {StepScenario[]} scenarios
 * @property {Record<string, string>} actions  button label per action
 * @property {Record<string, string>} results  template per action for a done step, filled from its `result`
 * @property {{failed: string, kept: string, lost_one: string, lost_many: string, ended?: string}} verdicts  filled from {start},
 *   {final}, {lost}; with `ended`, that one sentence is the verdict, unflagged (the goal line carries the judgement)
 * @property {Record<string, string>} [lane_states]  for steps whose results carry `tasks`: per lane state ("queued",
 *   "running", "waiting", "lock-wait", "done"), the column's state line, filled from that task's snapshot
 * @property {Partial<StepWords>} [words]  the status lines, where "transaction" and "connection" are the wrong words
 */

/**
 * The widget's status lines. Templates fill {tx}, {holder}, {first}.
 * @typedef {object} StepWords
 * @property {string} opening  while a session opens
 * @property {string} reopening  while a step back opens a fresh session
 * @property {string} opened  once it is open; {first} is the first step's label
 * @property {string} blocked  the status line when a step waits for a lock
 * @property {string} blocked_result  a blocked step's log line
 * @property {string} ended  once both have ended
 * @property {string} goal_pending  the goal's status line before the sandbox has judged it
 */

/** @type {StepWords} */
const DEFAULT_WORDS = {
  opening: "Opening two connections…",
  reopening: "Stepping back: opening two fresh connections on fresh rows…",
  opened: "Two connections open. Start with {first} in either column.",
  blocked: "{tx} is blocked: its statement waits for {holder}'s lock on the row.",
  blocked_result: "blocked — waiting for {holder}'s lock",
  ended: "Both transactions have ended; their connections are closed. Press Step back to take back the last statement, or Start to try another order.",
  goal_pending: "Choose which transaction steps next.",
};

/**
 * One of the widget's status lines, in the demo's words where it has its own, filled in.
 * @param {StepModeText} text
 * @param {keyof StepWords} key
 * @param {Record<string, unknown>} [values]
 * @returns {string}
 */
export function stepWords(text, key, values = {}) {
  const own = text.words?.[key];
  return fillTemplate(typeof own === "string" ? own : DEFAULT_WORDS[key], values);
}

/**
 * The step consumer's answer to one statement (a subset of its StepMessage).
 * @typedef {object} StepResult
 * @property {string} [action]
 * @property {"done" | "blocked" | "error"} [status]
 * @property {{waiting_for?: string[], message?: string, sqlstate?: string, detail?: string, [field: string]: unknown}} [result]
 */

/**
 * The verdict's inputs once both transactions have ended.
 * @typedef {object} VerdictInput
 * @property {number} start  the committed value when the session opened
 * @property {number} final  the committed value now
 * @property {number} committed  how many transactions committed
 * @property {boolean} failed  whether either transaction rolled back
 */

/**
 * Replace each {name} with values[name]; names without a value stay as they are.
 * @param {string} template
 * @param {Record<string, unknown>} values
 * @returns {string}
 */
export function fillTemplate(template, values) {
  return template.replace(/\{([a-z_][a-z0-9_]*)\}/gi, (whole, name) => (Object.hasOwn(values, name) ? String(values[name]) : whole));
}

/**
 * Parse and check a data-step-mode attribute; throws with the first thing missing.
 * @param {string | undefined} raw
 * @returns {StepModeText}
 */
export function parseStepModeText(raw) {
  if (!raw) throw new Error("the section has no data-step-mode");
  const text = JSON.parse(raw);
  for (const key of ["title", "intro", "value_label"]) {
    if (typeof text?.[key] !== "string") throw new Error(`data-step-mode has no ${key}`);
  }
  if (!Array.isArray(text.scenarios) || !text.scenarios.length) throw new Error("data-step-mode lists no scenarios");
  for (const scenario of text.scenarios) {
    if (typeof scenario?.id !== "string" || typeof scenario.label !== "string" || !Array.isArray(scenario.actions)) {
      throw new Error("a data-step-mode scenario needs id, label and actions");
    }
    const level = scenario.level;
    if (!level || typeof level.reachable !== "boolean" || !["goal", "reached", "missed"].every((key) => typeof level[key] === "string")) {
      throw new Error(`data-step-mode scenario ${scenario.id} needs a level: goal, reachable, reached and missed`);
    }
  }
  for (const key of ["actions", "results", "verdicts"]) {
    if (!text[key] || typeof text[key] !== "object") throw new Error(`data-step-mode has no ${key}`);
  }
  for (const key of ["failed", "kept", "lost_one", "lost_many"]) {
    if (typeof text.verdicts[key] !== "string") throw new Error(`data-step-mode has no verdicts.${key}`);
  }
  return text;
}

/**
 * A statement's button label.
 * @param {StepModeText} text
 * @param {string} action
 * @returns {string}
 */
export function actionLabel(text, action) {
  return text.actions[action] || action;
}

/**
 * The transactions that hold the lock a blocked statement waits for, as words.
 * @param {StepResult} message
 * @returns {string}
 */
export function lockHolders(message) {
  return (message.result?.waiting_for || []).join(" and ") || "the other transaction";
}

/**
 * The statements one transaction runs in a scenario, before the server names them.
 * @param {StepScenario | undefined} scenario
 * @param {string} tx
 * @returns {string[]}
 */
export function scenarioActions(scenario, tx) {
  return scenario?.actions_by_tx?.[tx] ?? scenario?.actions ?? [];
}

/**
 * What one step's result says, in a few words.
 * @param {StepModeText} text
 * @param {StepResult} message
 * @returns {string}
 */
export function resultText(text, message) {
  const result = message.result || {};
  if (message.status === "blocked") return stepWords(text, "blocked_result", { holder: lockHolders(message) });
  if (message.status === "error") {
    // The server's own words, with its SQLSTATE and DETAIL when the step consumer passes them on.
    // (The widget adds its own full stop, hence the detail's is dropped.)
    const code = result.sqlstate ? `, SQLSTATE ${result.sqlstate}` : "";
    const detail = result.detail ? ` — ${String(result.detail).replace(/\.\s*$/, "")}` : "";
    return `error: ${result.message || "the statement failed"}${code} (rolled back)${detail}`;
  }
  const template = message.action === undefined ? undefined : text.results[message.action];
  return template === undefined ? "done" : fillTemplate(template, result);
}

/**
 * The closing sentence once both transactions have ended. Each commit adds one
 * to the committed value, so whatever falls short of start + commits was lost.
 * @param {StepModeText} text
 * @param {VerdictInput} input
 * @returns {string}
 */
export function verdictText(text, { start, final, committed, failed }) {
  const lost = start + committed - final;
  const values = { start, final, lost };
  if (typeof text.verdicts.ended === "string") return fillTemplate(text.verdicts.ended, values);
  if (failed) return fillTemplate(text.verdicts.failed, values);
  if (lost === 0) return fillTemplate(text.verdicts.kept, values);
  return fillTemplate(lost === 1 ? text.verdicts.lost_one : text.verdicts.lost_many, values);
}

/**
 * Whether the verdict reports a loss (the widget marks it for styling); never for an `ended` verdict.
 * @param {VerdictInput} input
 * @param {StepModeText} [text]
 * @returns {boolean}
 */
export function lostUpdates({ start, final, committed, failed }, text) {
  if (typeof text?.verdicts.ended === "string") return false;
  return !failed && final !== start + committed;
}

/**
 * @typedef {object} TransactionView
 * @property {boolean} started  a session is open or has finished
 * @property {string | null} blocked  who holds the lock it waits for
 * @property {boolean} busy
 * @property {boolean} failed
 * @property {number} next  index of its next statement
 * @property {string[]} actions
 */

/**
 * The one-line state under a transaction's column.
 * @param {StepModeText} text
 * @param {TransactionView} tx
 * @returns {string}
 */
export function transactionStateText(text, { started, blocked, busy, failed, next, actions }) {
  if (!started) return "Not connected.";
  if (blocked !== null) return `Blocked — waiting for ${blocked}'s lock.`;
  if (busy) return "Running…";
  if (failed) return "Rolled back.";
  if (next >= actions.length) return "Committed.";
  if (next === 0) return "Idle: no transaction yet.";
  return `In a transaction; next: ${actionLabel(text, actions[next])}.`;
}

/**
 * One task's snapshot, as a step result's `tasks` carries it.
 * @typedef {{state: string, line?: number | null, code?: string, holder?: string, outcome?: string}} LaneSnapshot
 */

/**
 * The one-line state under a task's column, from the lane state its last snapshot gave, in the demo's words.
 * A step on its way is "running"; before any snapshot, an open session's task is "queued".
 * @param {StepModeText} text
 * @param {{started: boolean, busy: boolean, blocked: string | null, snapshot?: LaneSnapshot}} lane
 * @returns {string}
 */
export function laneStateText(text, { started, busy, blocked, snapshot }) {
  const templates = text.lane_states ?? {};
  if (!started) return "Not started.";
  /** @type {LaneSnapshot} */
  let shown = snapshot ?? { state: "queued" };
  if (busy && blocked === null) shown = { ...shown, state: "running" };
  const template = templates[shown.state];
  return template === undefined ? shown.state : fillTemplate(template, shown);
}

/**
 * The source listing's lines, each with the tasks whose current line it is ("◀ T1 waiting").
 * @param {string[]} source
 * @param {Record<string, LaneSnapshot>} lanes  each task's last snapshot
 * @returns {Array<{number: number, code: string, marks: string}>}
 */
export function sourceLines(source, lanes) {
  return source.map((code, index) => {
    const here = Object.entries(lanes).filter(([, lane]) => lane.line === index + 1 && lane.state !== "done");
    const marks = here.map(([name, lane]) => `${name} ${lane.state}`).join(", ");
    return { number: index + 1, code, marks: marks ? `◀ ${marks}` : "" };
  });
}

/**
 * What the page says about a level's goal: a short status and the sentence behind it.
 * "Cannot be reached" is said only of a fixed level, and only once both
 * transactions have ended without reaching it (the sandbox's "missed").
 * @param {StepLevel} level
 * @param {GoalState} goal
 * @param {string} [pending]  what to say before the judgement
 * @returns {{label: string, text: string}}
 */
export function goalStatus(level, goal, pending = DEFAULT_WORDS.goal_pending) {
  if (goal.status === "reached") return { label: "Reached", text: fillTemplate(level.reached, goal.evidence) };
  if (goal.status === "missed") {
    return { label: level.reachable ? "Not reached this time" : "Cannot be reached", text: fillTemplate(level.missed, goal.evidence) };
  }
  return { label: "Not yet", text: pending };
}

/**
 * The schedule to replay for "step back": every statement the reader ran but the last.
 * @param {Array<[string, string]>} schedule  [tx, action] pairs in the order they were pressed
 * @returns {Array<[string, string]>}
 */
export function stepBackSchedule(schedule) {
  return schedule.slice(0, -1).map(([tx, action]) => [tx, action]);
}

/**
 * What the status line says once a replay is over.
 * @param {StepModeText} text
 * @param {{steps: number, of: number}} replayed
 * @param {Array<[string, string]>} schedule  what was asked for
 * @returns {{status: string, alert: string}}
 */
export function replayedText(text, { steps, of }, schedule) {
  if (steps >= of) {
    const status = `Stepped back: fresh rows, and your first ${of} statement${of === 1 ? "" : "s"} ran again, so this is where you stood before your last one.`;
    return { status, alert: "" };
  }
  const [tx, action] = schedule[steps] ?? ["?", "?"];
  return {
    status: `Stepped back, but only ${steps} of ${of} statements ran again.`,
    alert: `This time the server would not run step ${steps + 1} (${tx}: ${actionLabel(text, action)}), so the replay stopped there. `
      + "PostgreSQL decides some things by timing, such as which of two waiting transactions it aborts; carry on from here.",
  };
}
