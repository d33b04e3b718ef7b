// Reader progress kept in the browser: events recorded per lesson, the index's summary line, where to continue.
import assert from "node:assert/strict";
import { test } from "node:test";

import { continueHref, emptyProgress, lessonSummary, parseProgress, recordEvent } from "../../static/js/learning/progress-store.js";
import { newReaderToken, readerToken } from "../../static/js/learning/reader.js";

const LESSON = { id: "7", path: "/course/waiting/" };

function played() {
  let progress = emptyProgress();
  progress = recordEvent(progress, LESSON, { type: "demo-finished", block: "demo-1" }, 1);
  progress = recordEvent(progress, LESSON, { type: "demo-finished", block: "demo-1" }, 2);
  progress = recordEvent(progress, LESSON, { type: "prediction", block: "total-time", skipped: false, close: true }, 3);
  progress = recordEvent(progress, LESSON, { type: "prediction", block: "how-many", skipped: true, close: null }, 4);
  progress = recordEvent(progress, LESSON, { type: "quiz-answered", block: "quiz-1", correct: false }, 5);
  return progress;
}

test("events are counted once per block, and the summary says what was done", () => {
  const summary = lessonSummary(played().lessons["7"]);
  assert.equal(summary?.demos, 1);
  assert.equal(summary?.predictions, 1, "a skipped prediction is not a prediction made");
  assert.equal(summary?.text, "Started · 1 demo run · 1 prediction (1 close) · 1 question answered (0 right)");
});

test("reading the lesson marks it read and keeps the last block for continuing", () => {
  const progress = recordEvent(played(), LESSON, { type: "read" }, 6);
  assert.equal(lessonSummary(progress.lessons["7"])?.text.startsWith("Read ·"), true);
  assert.equal(continueHref(progress), "/course/waiting/#quiz-1");
  const elsewhere = recordEvent(progress, { id: "8", path: "/course/next/" }, { type: "read" }, 7);
  assert.equal(continueHref(elsewhere), "/course/next/");
});

test("recording leaves the earlier progress untouched", () => {
  const before = emptyProgress();
  recordEvent(before, LESSON, { type: "read" }, 1);
  assert.deepEqual(before, emptyProgress());
});

test("stored progress round-trips; junk, another version or a foreign link start afresh", () => {
  const progress = played();
  assert.deepEqual(parseProgress(JSON.stringify(progress)), progress);
  assert.deepEqual(parseProgress("{not json"), emptyProgress());
  assert.deepEqual(parseProgress(JSON.stringify({ ...progress, version: 2 })), emptyProgress());
  const foreign = { ...progress, last: { lesson: "7", path: "//evil.example/", block: null, at: 1 } };
  assert.equal(continueHref(parseProgress(JSON.stringify(foreign))), null);
});

test("a block id that is not one of ours is ignored", () => {
  const progress = recordEvent(emptyProgress(), LESSON, { type: "demo-finished", block: "<img src=x>" }, 1);
  assert.deepEqual(progress, emptyProgress());
  assert.equal(lessonSummary(undefined), null);
});

test("a reader token is 32 URL-safe characters, made once and then kept", () => {
  assert.match(newReaderToken(), /^[A-Za-z0-9_-]{32}$/);
  const kept = new Map();
  const storage = /** @type {Storage} */ ({ getItem: (k) => kept.get(k) ?? null, setItem: (k, v) => kept.set(k, v) });
  const first = readerToken(storage);
  assert.equal(readerToken(storage), first);
  assert.notEqual(newReaderToken(), newReaderToken());
});
