// The socket layer's decisions: which closes come back, how long it waits, what the reader is told.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelayMs, closeDecision, JsonSocket, socketUrl } from "../../static/js/demos/socket.js";
import { stepSocketUrl } from "../../static/js/demos/stepper.js";

test("abnormal closes reconnect and are not refusals", () => {
  for (const code of [1006, 1011, 1012, 1013]) {
    assert.deepEqual(closeDecision(code), { reconnect: true, refusal: null }, `code ${code}`);
  }
});

test("normal closes neither reconnect nor read as refusals", () => {
  for (const code of [1000, 1001]) assert.deepEqual(closeDecision(code), { reconnect: false, refusal: null });
});

test("the server's refusals never reconnect and say why", () => {
  assert.deepEqual(closeDecision(4413), { reconnect: false, refusal: "message too big" });
  assert.deepEqual(closeDecision(4429), { reconnect: false, refusal: "too many messages" });
  assert.deepEqual(closeDecision(4000, "session over"), { reconnect: false, refusal: "session over" });
  assert.deepEqual(closeDecision(4999), { reconnect: false, refusal: "the server closed the connection (code 4999)" });
});

test("full jitter: the delay spans zero to the capped window", () => {
  const options = { baseMs: 500, capMs: 15_000 };
  assert.equal(backoffDelayMs(0, { ...options, random: () => 0 }), 0);
  assert.equal(backoffDelayMs(0, { ...options, random: () => 0.5 }), 250);
  assert.equal(backoffDelayMs(3, { ...options, random: () => 0.5 }), 2000);
  assert.equal(backoffDelayMs(20, { ...options, random: () => 0.999 }), 15_000 * 0.999);
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const delay = backoffDelayMs(attempt, options);
    assert.ok(delay >= 0 && delay < Math.min(15_000, 500 * 2 ** attempt), `attempt ${attempt}: ${delay}`);
  }
});

test("URLs follow the page's scheme; step sockets are per demo", () => {
  assert.equal(socketUrl("/ws/demos/", { protocol: "https:", host: "example.org" }), "wss://example.org/ws/demos/");
  assert.equal(stepSocketUrl("a demo", { protocol: "http:", host: "127.0.0.1:8000" }), "ws://127.0.0.1:8000/ws/steps/a%20demo/");
});

/** A stand-in for the browser's WebSocket that the test opens, feeds and closes by hand. */
class FakeSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.listeners = new Map();
  }
  addEventListener(type, listener) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  emit(type, event = {}) {
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }
  open() {
    this.readyState = 1;
    this.emit("open");
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {}
  serverCloses(code, reason = "") {
    this.readyState = 3;
    this.emit("close", { code, reason });
  }
}

function fakeSocketFactory() {
  const made = [];
  return { made, createSocket: (url) => made.push(new FakeSocket(url)) && made[made.length - 1] };
}

test("after a dropped connection the socket comes back; after a refusal it stays closed", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { made, createSocket } = fakeSocketFactory();
  const socket = new JsonSocket("ws://test/", { createSocket, random: () => 0.5, watchPage: false });
  const states = [];
  socket.onStatus((status) => states.push(status.state));
  socket.connect();
  made[0].open();
  made[0].serverCloses(1006);
  assert.equal(socket.state, "closed");
  assert.ok(socket.status().retryInMs !== null);
  t.mock.timers.tick(250);
  assert.equal(made.length, 2, "a second attempt after the jittered delay");
  made[1].open();
  made[1].serverCloses(4429);
  assert.equal(socket.state, "refused");
  assert.equal(socket.status().refusal, "too many messages");
  assert.equal(socket.status().retryInMs, null);
  t.mock.timers.tick(60_000);
  assert.equal(made.length, 2, "no attempt after a refusal");
  assert.deepEqual(states, ["idle", "connecting", "open", "closed", "connecting", "open", "refused"]);
  socket.retryNow();
  assert.equal(made.length, 3, "the reader may still retry by hand");
});

test("JSON objects in and out; other frames are dropped", () => {
  const { made, createSocket } = fakeSocketFactory();
  const socket = new JsonSocket("ws://test/", { createSocket, watchPage: false });
  const received = [];
  socket.onMessage((message) => received.push(message));
  assert.equal(socket.send({ type: "run" }), false, "nothing is sent before the socket opens");
  socket.connect();
  made[0].open();
  assert.equal(socket.send({ type: "run", ref: "a" }), true);
  assert.deepEqual(made[0].sent, [{ type: "run", ref: "a" }]);
  const warn = console.warn;
  console.warn = () => {};
  try {
    for (const data of ['{"type":"events"}', "not json", "[1, 2]", "7", "null"]) made[0].emit("message", { data });
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(received, [{ type: "events" }]);
});

test("whenOpen rejects with the refusal when the server turns the socket away", async () => {
  const { made, createSocket } = fakeSocketFactory();
  const socket = new JsonSocket("ws://test/", { createSocket, watchPage: false });
  const opening = socket.whenOpen();
  made[0].serverCloses(4413);
  await assert.rejects(opening, /message too big/);
});

test("a process at its capacity says busy and closes 4503: the socket comes back after retry_after_s, not refused", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { made, createSocket } = fakeSocketFactory();
  const socket = new JsonSocket("ws://test/", { createSocket, random: () => 0.5, watchPage: false });
  const received = [];
  socket.onMessage((message) => received.push(message));
  socket.connect();
  made[0].open();
  made[0].emit("message", { data: JSON.stringify({ type: "error", code: "busy", message: "Too many readers.", retry_after_s: 3 }) });
  made[0].serverCloses(4503);
  assert.deepEqual(received, [], "the connection's own refusal is the socket's business, not a widget's");
  assert.equal(socket.state, "closed");
  const status = socket.status();
  assert.equal(status.busy, true);
  assert.equal(status.refusal, null);
  assert.equal(Math.round(status.retryInMs ?? -1), 3150, "the server's 3 s, plus a jitter of up to a tenth (half of it here)");
  t.mock.timers.tick(3100);
  assert.equal(made.length, 1, "not before the server said");
  t.mock.timers.tick(100);
  assert.equal(made.length, 2);
  made[1].open();
  assert.equal(socket.status().busy, false);
  // A busy close without a retry_after_s heard first still comes back, after a default wait.
  made[1].serverCloses(4503);
  assert.equal(socket.status().busy, true);
  assert.ok((socket.status().retryInMs ?? 0) >= 5000);
});

test("a busy error answering a run (it has a ref) is the widget's, not the connection's", () => {
  const { made, createSocket } = fakeSocketFactory();
  const socket = new JsonSocket("ws://test/", { createSocket, watchPage: false });
  const received = [];
  socket.onMessage((message) => received.push(message));
  socket.connect();
  made[0].open();
  const answer = { type: "error", code: "busy", message: "Too many demos.", retry_after_s: 4, ref: "w:1" };
  made[0].emit("message", { data: JSON.stringify(answer) });
  assert.deepEqual(received, [answer]);
});
