/*
 * The page's one websocket to /ws/demos/, shared by every demo widget.
 *
 * Widgets call startRun() with handlers; replies are routed back by `ref`
 * until the server accepts (or refuses) the run, then by run id. When the
 * socket drops, every run in flight is reported lost (the server stops runs
 * whose reader left) and the socket reconnects with exponential backoff.
 * Widgets subscribe to onStatus() to disable Run while disconnected.
 */

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const ACCEPT_TIMEOUT_MS = 15_000;
const RECENT_RUNS_KEPT = 20; // late errors (e.g. for a cancel) still find their widget
export const MAX_RUNS_PER_SOCKET = 2;

export function demoSocketUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/demos/`;
}

export class DemoSocket {
  constructor(url) {
    this.url = url;
    this.socket = null;
    this.state = "connecting"; // "connecting" | "open" | "closed"
    this.attempt = 0;
    this.retryAt = null; // performance.now() of the next attempt while closed
    this.retryTimer = null;
    this.statusListeners = new Set();
    this.pendingByRef = new Map(); // ref -> {handlers, timer}
    this.runsById = new Map(); // run id -> handlers
    this.recentRuns = new Map(); // finished run id -> handlers
    this.refCounter = 0;
    window.addEventListener("online", () => this.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
  }

  get isOpen() {
    return this.state === "open";
  }

  /** Runs waiting for acceptance plus runs in flight, across all widgets. */
  get busyCount() {
    return this.pendingByRef.size + this.runsById.size;
  }

  connect() {
    if (this.socket) return;
    this.setState("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      console.warn("demo socket: cannot connect", error);
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      this.setState("open");
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => this.closed(socket));
    socket.addEventListener("error", () => {
      /* a close event always follows; reconnecting happens there */
    });
  }

  closed(socket) {
    if (this.socket !== socket) return;
    this.socket = null;
    const lost = [...this.pendingByRef.values()].map((pending) => pending.handlers);
    lost.push(...this.runsById.values());
    for (const pending of this.pendingByRef.values()) clearTimeout(pending.timer);
    this.pendingByRef.clear();
    this.runsById.clear();
    for (const handlers of new Set(lost)) handlers.onLost?.();
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
    const jittered = delay / 2 + Math.random() * (delay / 2);
    this.attempt += 1;
    this.retryAt = performance.now() + jittered;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.retryNow(), jittered);
    this.setState("closed");
  }

  /** Reconnect at once (the browser came online, the tab came back, or the reader asked). */
  retryNow() {
    if (this.socket) return;
    clearTimeout(this.retryTimer);
    this.retryAt = null;
    this.connect();
  }

  setState(state) {
    this.state = state;
    for (const listener of this.statusListeners) listener(this.status());
  }

  status() {
    return {
      state: this.state,
      retryInMs: this.retryAt === null ? null : Math.max(0, this.retryAt - performance.now()),
      busyCount: this.busyCount,
    };
  }

  /** listener({state, retryInMs, busyCount}) now and on every change; returns an unsubscribe function. */
  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status());
    return () => this.statusListeners.delete(listener);
  }

  notifyBusyChange() {
    for (const listener of this.statusListeners) listener(this.status());
  }

  /**
   * Ask the server to start a run. handlers: onAccepted(msg), onEvents(msg),
   * onFinished(msg), onError(msg), onLost(). Returns the ref, or null when the
   * socket is not open (the widget keeps Run disabled then).
   */
  startRun({ demo, params, refPrefix = "run" }, handlers) {
    if (!this.isOpen) return null;
    this.refCounter += 1;
    const ref = `${refPrefix}:${this.refCounter}`.slice(-100);
    const timer = setTimeout(() => {
      if (!this.pendingByRef.has(ref)) return;
      this.pendingByRef.delete(ref);
      handlers.onError?.({ type: "error", code: "timeout", message: "The demo server did not answer; try again.", ref });
      this.notifyBusyChange();
    }, ACCEPT_TIMEOUT_MS);
    this.pendingByRef.set(ref, { handlers, timer });
    this.send({ type: "run", demo, params, ref });
    this.notifyBusyChange();
    return ref;
  }

  cancel(runId) {
    if (this.isOpen && runId) this.send({ type: "cancel", run: runId });
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("demo socket: a frame that is not JSON", data);
      return;
    }
    if (!message || typeof message !== "object") return;
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

  accepted(message) {
    const pending = this.pendingByRef.get(message.ref);
    if (!pending) {
      // Accepted after we gave up waiting: stop it rather than leave it running unseen.
      this.cancel(message.run);
      return;
    }
    clearTimeout(pending.timer);
    this.pendingByRef.delete(message.ref);
    this.runsById.set(message.run, pending.handlers);
    pending.handlers.onAccepted?.(message);
  }

  finished(message) {
    const handlers = this.runsById.get(message.run);
    if (!handlers) return;
    this.runsById.delete(message.run);
    this.recentRuns.set(message.run, handlers);
    if (this.recentRuns.size > RECENT_RUNS_KEPT) this.recentRuns.delete(this.recentRuns.keys().next().value);
    handlers.onFinished?.(message);
    this.notifyBusyChange();
  }

  error(message) {
    if (message.ref !== undefined && message.ref !== null && this.pendingByRef.has(message.ref)) {
      const pending = this.pendingByRef.get(message.ref);
      clearTimeout(pending.timer);
      this.pendingByRef.delete(message.ref);
      pending.handlers.onError?.(message);
      this.notifyBusyChange();
      return;
    }
    const runHandlers = this.runsById.get(message.run) ?? this.recentRuns.get(message.run);
    if (runHandlers) {
      runHandlers.onError?.(message);
      return;
    }
    // No ref or run to go by: tell every widget still waiting for an answer.
    const waiting = new Set([...this.pendingByRef.values()].map((pending) => pending.handlers));
    if (waiting.size === 0) console.warn("demo socket: error from the server", message);
    for (const handlers of waiting) handlers.onError?.(message);
  }
}

let sharedSocket = null;

/** The page's socket, created (and connected) on first use. */
export function sharedDemoSocket() {
  if (!sharedSocket) {
    sharedSocket = new DemoSocket(demoSocketUrl());
    sharedSocket.connect();
  }
  return sharedSocket;
}
