// A run turned away as busy: when the widget asks again on its own, what it says, and where it finds a recording.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  busySentence, countdownText, MAX_AUTO_RETRIES, MAX_SPREAD_MS, nextStep, recordingLabel, recordingTime, recordingUrl, retryDelayMs,
} from "../../static/js/demos/busy-retry.js";

test("a busy refusal with retry_after_s is retried after it, spread by at most a tenth and at most a second", () => {
  assert.equal(retryDelayMs({ code: "busy", retry_after_s: 7 }, () => 0), 7000);
  assert.equal(retryDelayMs({ code: "busy", retry_after_s: 7 }, () => 0.999), 7000 + Math.round(0.999 * 700));
  assert.equal(retryDelayMs({ code: "busy", retry_after_s: 30 }, () => 0.999), 30_000 + Math.round(0.999 * MAX_SPREAD_MS));
  assert.equal(retryDelayMs({ code: "busy", retry_after_s: 1.5 }, () => 0.5), 1575);
});

test("no automatic retry without a usable hint, nor for other errors", () => {
  assert.equal(retryDelayMs({ code: "busy" }), null); // this socket's own cap
  for (const hint of [0, -1, Number.NaN, Infinity, "5", null]) assert.equal(retryDelayMs({ code: "busy", retry_after_s: hint }), null);
  assert.equal(retryDelayMs({ code: "rate_limited", retry_after_s: 5 }), null);
  assert.equal(retryDelayMs({ code: "unavailable", retry_after_s: 5 }), null);
});

test("the widget retries a few times, then leaves it to the reader", () => {
  assert.deepEqual(nextStep({ delayMs: 4000, retriesSoFar: 0 }), { kind: "retry", delayMs: 4000 });
  assert.deepEqual(nextStep({ delayMs: 4000, retriesSoFar: MAX_AUTO_RETRIES - 1 }), { kind: "retry", delayMs: 4000 });
  assert.deepEqual(nextStep({ delayMs: 4000, retriesSoFar: MAX_AUTO_RETRIES }), { kind: "manual", reason: "gave-up" });
  assert.deepEqual(nextStep({ delayMs: null, retriesSoFar: 0 }), { kind: "manual", reason: "no-hint" });
  assert.ok(MAX_AUTO_RETRIES >= 2 && MAX_AUTO_RETRIES <= 5);
});

test("the countdown counts whole seconds up and never shows 0 while it waits", () => {
  assert.equal(countdownText(7000), "Trying again in 7 s");
  assert.equal(countdownText(6001), "Trying again in 7 s");
  assert.equal(countdownText(200), "Trying again in 1 s");
  assert.equal(countdownText(-50), "Trying again in 1 s");
});

test("a recording's time is the local clock today, with the day otherwise", () => {
  const now = new Date(2026, 11, 1, 15, 30);
  assert.equal(recordingTime(new Date(2026, 11, 1, 12, 4).toISOString(), now), "12:04");
  assert.equal(recordingTime(new Date(2026, 10, 30, 9, 5).toISOString(), now), "30 Nov, 09:05");
  assert.equal(recordingTime(new Date(2025, 0, 2, 23, 59).toISOString(), now), "2 Jan 2025, 23:59");
  assert.equal(recordingTime("not a date", now), "earlier");
  assert.equal(recordingLabel("12:04"), "Recording from 12:04, not a live run");
});

test("the recording is asked for with the settings sent, side B as `compare`", () => {
  const one = new URL(recordingUrl("one-cook", [{ requests: 4, mode: "concurrent" }]), "http://x");
  assert.equal(one.pathname, "/api/demos/one-cook/recording/");
  assert.deepEqual(JSON.parse(one.searchParams.get("params")), { requests: 4, mode: "concurrent" });
  assert.equal(one.searchParams.has("compare"), false);
  const two = new URL(recordingUrl("one cook", [{ requests: 1 }, { requests: 2 }]), "http://x");
  assert.equal(two.pathname, "/api/demos/one%20cook/recording/");
  assert.deepEqual(JSON.parse(two.searchParams.get("compare")), { requests: 2 });
});

test("the server's own \"try again in about N s\" gives way to the countdown", () => {
  assert.equal(busySentence("Too many demos are running across the site; try again in about 10 s."), "Too many demos are running across the site.");
  assert.equal(busySentence("Your address already has 20 demos of this kind running; try again in about 3 s."), "Your address already has 20 demos of this kind running.");
  assert.equal(busySentence("The site is full."), "The site is full.");
  assert.equal(busySentence(undefined), "The demo server is busy.");
});
