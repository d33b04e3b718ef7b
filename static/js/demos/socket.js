/*
 * The one websocket layer of the front end.
 *
 * JsonSocket is a websocket that speaks JSON objects, tells listeners what
 * state it is in, and decides for itself whether to come back after a close:
 * only an abnormal close (the network dropped, the server crashed or
 * restarted) is retried, after a full-jitter exponential backoff, so a
 * restarted server is not hit by every reader at the same instant. A
 * deliberate refusal (an application code 4000-4999, or a normal 1000/1001
 * close) is never retried: retrying would only be refused again, so the
 * reason goes to the widget instead and the reader may retry by hand.
 *
 * DemoSocket is the page's one socket to /ws/demos/, shared by every demo
 * widget: it routes replies by `ref` until the server accepts (or refuses) a
 * run, then by run id, and reports every run in flight lost when the socket
 * drops (the server stops runs whose reader left). The step-mode widget uses
 * JsonSocket directly.
 *
 * Nothing here touches `window` or `document` at import time, so node's test
 * runner can import it.
 */

/**
 * @typedef {import("./messages.js").ServerMessage} ServerMessage
 * @typedef {import("./messages.js").AcceptedMessage} AcceptedMessage
 * @typedef {import("./messages.js").EventsMessage} EventsMessage
 * @typedef {import("./messages.js").FinishedMessage} FinishedMessage
 * @typedef {import("./messages.js").ErrorMessage} ErrorMessage
 */

/**
 * "idle" before connect(), "closed" while waiting to retry (or after a normal
 * close), "refused" after the server's deliberate refusal.
 * @typedef {"idle" | "connecting" | "open" | "closed" | "refused"} SocketState
 */

/**
 * @typedef {object} SocketStatus
 * @property {SocketState} state
 * @property {number | null} retryInMs  milliseconds to the next attempt, or null when none is planned
 * @property {string | null} refusal  why the server refused or closed the socket, for the reader
 * @property {boolean} [busy]  waiting out the server's "busy" before trying again
 */

/**
 * @typedef {object} CloseDecision
 * @property {boolean} reconnect  whether to try again by itself
 * @property {string | null} refusal  a readable reason when the server closed on purpose
 * @property {boolean} [busy]  the server was at its capacity: the retry waits for its retry_after_s
 */

/**
 * @typedef {object} CloseInfo
 * @property {number} code
 * @property {string} reason
 * @property {boolean} wasOpen  whether the socket had opened before it closed
 * @property {CloseDecision} decision
 */

/**
 * The part of the browser's WebSocket this module uses (a fake in tests).
 * @typedef {object} SocketLike
 * @property {number} readyState
 * @property {(data: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {(type: string, listener: (event: any) => void) => void} addEventListener
 */

/**
 * @typedef {object} JsonSocketOptions
 * @property {number} [baseMs]  first backoff window
 * @property {number} [capMs]  largest backoff window
 * @property {() => number} [random]  uniform in [0, 1); Math.random unless a test fixes it
 * @property {(url: string) => SocketLike} [createSocket]  opens the socket; `new WebSocket(url)` by default
 * @property {boolean} [watchPage]  retry at once when the browser comes online or the tab comes back
 */

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 15_000;

// Closes after which the same request may well succeed: the connection or the server failed.
// 1006 is what the browser reports for a dropped connection or a refused handshake.
export const ABNORMAL_CLOSE_CODES = new Set([1006, 1011, 1012, 1013, 1014]);

// The server's "busy" close: a web process at its capacity let the socket in only to say so (with a
// `busy` error carrying retry_after_s just before). A refusal for now, not for good: come back after it.
export const BUSY_CLOSE_CODE = 4503;
// With no retry_after_s heard before the close, wait this long (plus jitter) before coming back.
const BUSY_DEFAULT_WAIT_MS = 5000;

/** @type {Record<number, string>} */
const REFUSAL_REASONS = {
  1008: "the server refused a message",
  1009: "message too big",
  4413: "message too big",
  4429: "too many messages",
};

const SOCKET_OPEN = 1;

/**
 * Whether to reconnect after a close, and how to tell the reader about it.
 * Only abnormal closes come back; 1000/1001 are normal closes and 4000-4999
 * (or any other code the server chose) are refusals.
 * @param {number} code  the close event's code
 * @param {string} [reason]  the close frame's reason, used for refusals this module has no words for
 * @returns {CloseDecision}
 */
export function closeDecision(code, reason = "") {
  if (ABNORMAL_CLOSE_CODES.has(code)) return { reconnect: true, refusal: null };
  if (code === BUSY_CLOSE_CODE) return { reconnect: true, refusal: null, busy: true };
  if (code === 1000 || code === 1001) return { reconnect: false, refusal: null };
  const words = REFUSAL_REASONS[code] ?? (reason.trim() || `the server closed the connection (code ${code})`);
  return { reconnect: false, refusal: words };
}

/**
 * Full-jitter backoff: a delay drawn uniformly from [0, min(cap, base * 2^attempt)).
 * @param {number} attempt  failed attempts so far, from 0
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [options]
 * @returns {number} milliseconds
 */
export function backoffDelayMs(attempt, { baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS, random = Math.random } = {}) {
  const windowMs = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return random() * windowMs;
}

/**
 * A ws:// or wss:// URL for a path on the page's own host.
 * @param {string} path  starting with "/"
 * @param {{protocol: string, host: string}} [location]  the page's location by default
 * @returns {string}
 */
export function socketUrl(path, location = globalThis.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/**
 * A websocket that sends and receives JSON objects and reconnects only after abnormal closes.
 */
export class JsonSocket {
  /**
   * @param {string} url
   * @param {JsonSocketOptions} [options]
   */
  constructor(url, { baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS, random = Math.random, createSocket, watchPage = true } = {}) {
    this.url = url;
    this.backoff = { baseMs, capMs, random };
    this.createSocket = createSocket ?? ((/** @type {string} */ address) => new WebSocket(address));
    /** @type {SocketLike | null} */
    this.socket = null;
    /** @type {SocketState} */
    this.state = "idle";
    /** @type {string | null} */
    this.refusal = null;
    this.attempt = 0;
    /** @type {number | null} the retry_after_s of a connection-level busy just heard, in milliseconds */
    this.busyWaitMs = null;
    this.busy = false;
    /** @type {number | null} performance.now() of the next attempt */
    this.retryAt = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {Set<(status: SocketStatus) => void>} */
    this.statusListeners = new Set();
    /** @type {Set<(message: Record<string, any>) => void>} */
    this.messageListeners = new Set();
    /** @type {Set<(info: CloseInfo) => void>} */
    this.closeListeners = new Set();
    /** @type {Array<{resolve: () => void, reject: (error: Error) => void}>} */
    this.openWaiters = [];
    if (watchPage && typeof window !== "undefined" && typeof document !== "undefined") {
      // Waiting out the backoff makes no sense once the reason for the failure is likely gone.
      window.addEventListener("online", () => this.retryIfWaiting());
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") this.retryIfWaiting();
      });
    }
  }

  /** @returns {boolean} whether messages can be sent now */
  get isOpen() {
    return this.state === "open";
  }

  /** Open the socket unless it is open or opening already. */
  connect() {
    if (this.socket) return;
    clearTimeout(this.retryTimer);
    this.retryAt = null;
    this.refusal = null;
    this.setState("connecting");
    let socket;
    try {
      socket = this.createSocket(this.url);
    } catch (error) {
      console.warn("socket: cannot connect", error);
      this.afterClose({ code: 1006, reason: "", wasOpen: false, decision: closeDecision(1006) });
      return;
    }
    this.socket = socket;
    let wasOpen = false;
    socket.addEventListener("open", () => {
      wasOpen = true;
      this.attempt = 0;
      this.setState("open");
      for (const waiter of this.openWaiters.splice(0)) waiter.resolve();
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      const code = typeof event.code === "number" ? event.code : 1006;
      const reason = typeof event.reason === "string" ? event.reason : "";
      this.afterClose({ code, reason, wasOpen, decision: closeDecision(code, reason) });
    });
    socket.addEventListener("error", () => {
      /* a close event always follows; the decision is made there */
    });
  }

  /**
   * Connect if needed and resolve once open; rejects if this attempt closes first.
   * @returns {Promise<void>}
   */
  whenOpen() {
    if (this.isOpen) return Promise.resolve();
    const waiting = new Promise((resolve, reject) => this.openWaiters.push({ resolve: () => resolve(undefined), reject }));
    if (!this.socket) this.connect();
    return /** @type {Promise<void>} */ (waiting);
  }

  /**
   * Reconnect now, whatever the last close was (the reader asked).
   */
  retryNow() {
    if (this.socket) return;
    this.connect();
  }

  /** Reconnect now only if a retry is already planned (the page came back). */
  retryIfWaiting() {
    if (!this.socket && this.retryAt !== null) this.connect();
  }

  /**
   * Close on purpose: no reconnect follows.
   * @param {number} [code]
   */
  close(code = 1000) {
    clearTimeout(this.retryTimer);
    this.retryAt = null;
    const socket = this.socket;
    this.socket = null;
    socket?.close(code);
    if (this.state !== "idle") this.setState("closed");
  }

  /**
   * Send one message as JSON.
   * @param {object} message
   * @returns {boolean} false when the socket is not open (nothing was sent)
   */
  send(message) {
    if (!this.socket || this.socket.readyState !== SOCKET_OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /**
   * @param {(message: Record<string, any>) => void} listener  called with every JSON object the server sends
   * @returns {() => void} unsubscribe
   */
  onMessage(listener) {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  /**
   * @param {(info: CloseInfo) => void} listener  called after every close, before any reconnect
   * @returns {() => void} unsubscribe
   */
  onClose(listener) {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /**
   * @param {(status: SocketStatus) => void} listener  called now and on every change
   * @returns {() => void} unsubscribe
   */
  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status());
    return () => this.statusListeners.delete(listener);
  }

  /** @returns {SocketStatus} */
  status() {
    return {
      state: this.state,
      retryInMs: this.retryAt === null ? null : Math.max(0, this.retryAt - performance.now()),
      refusal: this.refusal,
      busy: this.busy && this.state !== "open",
    };
  }

  /**
   * @param {unknown} data
   */
  receive(data) {
    let message;
    try {
      message = JSON.parse(String(data));
    } catch {
      console.warn("socket: a frame that is not JSON", data);
      return;
    }
    if (!message || typeof message !== "object" || Array.isArray(message)) return;
    if (message.type === "error" && message.code === "busy" && message.ref == null) {
      // The process's own refusal of this connection; the busy close follows, and the retry waits this long.
      const seconds = Number(message.retry_after_s);
      this.busyWaitMs = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 60) * 1000 : null;
      return;
    }
    for (const listener of this.messageListeners) listener(message);
  }

  /**
   * @param {CloseInfo} info
   */
  afterClose(info) {
    for (const waiter of this.openWaiters.splice(0)) {
      waiter.reject(new Error(info.decision.refusal ?? "cannot reach the server"));
    }
    for (const listener of this.closeListeners) listener(info);
    this.busy = Boolean(info.decision.busy);
    if (info.decision.reconnect) {
      // Readers turned away together should not all come back in the same instant: up to a tenth later.
      const busyWaitMs = this.busyWaitMs ?? BUSY_DEFAULT_WAIT_MS;
      const delay = this.busy ? busyWaitMs * (1 + 0.1 * this.backoff.random()) : backoffDelayMs(this.attempt, this.backoff);
      this.busyWaitMs = null;
      this.attempt += 1;
      this.retryAt = performance.now() + delay;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.connect(), delay);
      this.setState("closed");
    } else {
      this.retryAt = null;
      this.refusal = info.decision.refusal;
      this.setState(info.decision.refusal ? "refused" : "closed");
    }
  }

  /**
   * @param {SocketState} state
   */
  setState(state) {
    this.state = state;
    this.notifyStatus();
  }

  notifyStatus() {
    const status = this.status();
    for (const listener of this.statusListeners) listener(status);
  }
}

// --- the demo widgets' shared socket --------------------------------------------------------------

const ACCEPT_TIMEOUT_MS = 15_000;
const RECENT_RUNS_KEPT = 20; // late errors (e.g. for a cancel) still find their widget

/**
 * What a widget hears about one run.
 * @typedef {object} RunHandlers
 * @property {(message: AcceptedMessage) => void} [onAccepted]
 * @property {(message: EventsMessage) => void} [onEvents]
 * @property {(message: FinishedMessage) => void} [onFinished]
 * @property {(message: ErrorMessage) => void} [onError]
 * @property {(refusal: string | null) => void} [onLost]  the socket closed; `refusal` says why when the server closed it on purpose
 */

/**
 * @typedef {SocketStatus & {busyCount: number}} DemoSocketStatus
 */

/** The /ws/demos/ URL of this page's host. */
export function demoSocketUrl(location = globalThis.location) {
  return socketUrl("/ws/demos/", location);
}

/**
 * The demo widgets' one socket: `run` and `cancel` out; accepted, events, finished and error back.
 */
export class DemoSocket {
  /**
   * @param {string} url
   * @param {JsonSocketOptions} [options]
   */
  constructor(url, options = {}) {
    this.connection = new JsonSocket(url, options);
    /** @type {number | null} the server's cap on runs in flight per socket, once known */
    this.runsPerSocket = null;
    /** @type {Map<string, {handlers: RunHandlers, timer: ReturnType<typeof setTimeout>}>} */
    this.pendingByRef = new Map();
    /** @type {Map<string, RunHandlers>} */
    this.runsById = new Map();
    /** @type {Map<string, RunHandlers>} finished runs, newest last */
    this.recentRuns = new Map();
    /** @type {Set<(status: DemoSocketStatus) => void>} */
    this.statusListeners = new Set();
    this.refCounter = 0;
    this.connection.onMessage((message) => this.receive(/** @type {ServerMessage} */ (message)));
    this.connection.onClose((info) => this.lostAll(info.decision.refusal));
    this.connection.onStatus(() => this.notifyStatus());
  }

  /** @returns {boolean} */
  get isOpen() {
    return this.connection.isOpen;
  }

  /** Runs waiting for acceptance plus runs in flight, across all widgets. */
  get busyCount() {
    return this.pendingByRef.size + this.runsById.size;
  }

  /** How many more runs the server would take on this socket now (Infinity until the cap is known). */
  get freeRuns() {
    return this.runsPerSocket === null ? Infinity : this.runsPerSocket - this.busyCount;
  }

  connect() {
    this.connection.connect();
  }

  /** Reconnect at once (the reader asked). */
  retryNow() {
    this.connection.retryNow();
  }

  /** @returns {DemoSocketStatus} */
  status() {
    return { ...this.connection.status(), busyCount: this.busyCount };
  }

  /**
   * @param {(status: DemoSocketStatus) => void} listener  called now and on every change
   * @returns {() => void} unsubscribe
   */
  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status());
    return () => this.statusListeners.delete(listener);
  }

  notifyStatus() {
    const status = this.status();
    for (const listener of this.statusListeners) listener(status);
  }

  /**
   * @param {string | null} refusal
   */
  lostAll(refusal) {
    const lost = [...this.pendingByRef.values()].map((pending) => pending.handlers);
    lost.push(...this.runsById.values());
    for (const pending of this.pendingByRef.values()) clearTimeout(pending.timer);
    this.pendingByRef.clear();
    this.runsById.clear();
    for (const handlers of new Set(lost)) handlers.onLost?.(refusal);
  }

  /**
   * Ask the server to start a run; `compare` and `origin` are only recorded on the run (the replay page uses them).
   * @param {{demo: string, params: Record<string, unknown>, refPrefix?: string,
   *   compare?: {group: string, side: string}, origin?: {path: string, block: number}}} request
   * @param {RunHandlers} handlers
   * @returns {string | null} the ref, or null when the socket is not open (the widget keeps Run disabled then)
   */
  startRun({ demo, params, refPrefix = "run", compare, origin }, handlers) {
    if (!this.isOpen) return null;
    this.refCounter += 1;
    const ref = `${refPrefix}:${this.refCounter}`.slice(-100);
    const timer = setTimeout(() => {
      if (!this.pendingByRef.has(ref)) return;
      this.pendingByRef.delete(ref);
      handlers.onError?.({ type: "error", code: "timeout", message: "The demo server did not answer; try again.", ref });
      this.notifyStatus();
    }, ACCEPT_TIMEOUT_MS);
    this.pendingByRef.set(ref, { handlers, timer });
    this.connection.send({ type: "run", demo, params, ref, ...(compare ? { compare } : {}), ...(origin ? { origin } : {}) });
    this.notifyStatus();
    return ref;
  }

  /**
   * @param {string | null | undefined} runId
   */
  cancel(runId) {
    if (runId) this.connection.send({ type: "cancel", run: runId });
  }

  /**
   * @param {ServerMessage} message
   */
  receive(message) {
    switch (message.type) {
      case "accepted":
        this.accepted(message);
        break;
      case "events":
        this.runsById.get(message.run)?.onEvents?.(message);
        break;
      case "finished":
        this.finished(message);
        break;
      case "error":
        this.error(message);
        break;
      default:
        break; // a message type from a newer server: ignore
    }
  }

  /**
   * @param {AcceptedMessage} message
   */
  accepted(message) {
    const pending = message.ref === null ? undefined : this.pendingByRef.get(message.ref);
    if (!pending || message.ref === null) {
      // Accepted after we gave up waiting: stop it rather than leave it running unseen.
      this.cancel(message.run);
      return;
    }
    clearTimeout(pending.timer);
    this.pendingByRef.delete(message.ref);
    this.runsById.set(message.run, pending.handlers);
    pending.handlers.onAccepted?.(message);
  }

  /**
   * @param {FinishedMessage} message
   */
  finished(message) {
    const handlers = this.runsById.get(message.run);
    if (!handlers) return;
    this.runsById.delete(message.run);
    this.recentRuns.set(message.run, handlers);
    if (this.recentRuns.size > RECENT_RUNS_KEPT) this.recentRuns.delete(this.recentRuns.keys().next().value ?? "");
    handlers.onFinished?.(message);
    this.notifyStatus();
  }

  /**
   * @param {ErrorMessage} message
   */
  error(message) {
    const pending = message.ref === undefined ? undefined : this.pendingByRef.get(message.ref);
    if (pending && message.ref !== undefined) {
      clearTimeout(pending.timer);
      this.pendingByRef.delete(message.ref);
      pending.handlers.onError?.(message);
      this.notifyStatus();
      return;
    }
    const runHandlers = message.run === undefined ? undefined : this.runsById.get(message.run) ?? this.recentRuns.get(message.run);
    if (runHandlers) {
      runHandlers.onError?.(message);
      return;
    }
    // No ref or run to go by: tell every widget still waiting for an answer.
    const waiting = new Set([...this.pendingByRef.values()].map((entry) => entry.handlers));
    if (waiting.size === 0) console.warn("demo socket: error from the server", message);
    for (const handlers of waiting) handlers.onError?.(message);
  }
}

/** @type {DemoSocket | null} */
let sharedSocket = null;

/**
 * The page's socket, created (and connected) on first use.
 * @returns {DemoSocket}
 */
export function sharedDemoSocket() {
  if (!sharedSocket) {
    sharedSocket = new DemoSocket(demoSocketUrl());
    sharedSocket.connect();
  }
  return sharedSocket;
}
