/*
 * The part of a demo widget a reader sees after the site turned a run away
 * as busy: the server's sentence, a countdown to the widget's own retry, and
 * an offer to watch a recording of the same settings meanwhile.
 *
 * BusyPanel owns the timers and the words (the decisions are busy-retry.js's);
 * RecordingPlayer plays a stored run in the widget's own RunView, with a
 * label above the timeline and above the summary saying it is a recording.
 * The widget calls `refused` when every run of a Run press has been turned
 * away, `cancel` when the reader stops or changes a setting, and `clear` once
 * a live run is accepted.
 */
import { fetchRun, runPageUrl } from "./api.js";
import { el } from "./dom.js";
import { busySentence, countdownText, nextStep, recordingLabel, recordingTime, recordingUrl, retryDelayMs } from "./busy-retry.js";
import { Playhead, ReplayTrack } from "./replay-state.js";
import { RunRecord } from "./run-record.js";

/**
 * @typedef {{run: string, side: string, created_at: string, url: string}} RecordingRun
 * @typedef {{demo: string, created_at: string, replay_url: string, runs: RecordingRun[]}} RecordingAnswer
 */

/**
 * GET the recording of these settings; null when there is none (or the lookup failed: the offer is a courtesy).
 * @param {string} url
 * @returns {Promise<RecordingAnswer | null>}
 */
async function lookUp(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) return null;
    const body = await response.json();
    return Array.isArray(body?.runs) && body.runs.length ? body : null;
  } catch {
    return null;
  }
}

export class RecordingPlayer {
  /** @param {import("./run-view.js").RunView} view */
  constructor(view) {
    this.view = view;
    /** @type {ReplayTrack[]} */
    this.tracks = [];
    this.playhead = new Playhead(0);
    this.frame = 0;
    this.playing = false;
    this.link = el("a", { className: "demo-recording-link" }, "Open its replay page");
    this.bannerText = el("strong", {});
    // Above the timeline and above the summary, so the label is in view wherever the reader looks.
    this.banner = el("p", { className: "demo-recording-banner", hidden: true }, el("span", { className: "demo-recording-badge", "aria-hidden": "true" }, "Recording"), " ", this.bannerText, ". ", this.link);
    this.summaryLabel = el("p", { className: "demo-recording-banner demo-recording-summary", hidden: true });
  }

  /** True while a recording is in the view (playing or played to its end). */
  get showing() {
    return this.tracks.length > 0;
  }

  /**
   * Fetch the recorded run(s) and play them in the view from the start, at their own speed.
   * @param {RecordingAnswer} answer
   * @param {string[]} titles  the widget's titles for the runs (what differs between A and B)
   */
  async play(answer, titles) {
    const recordings = await Promise.all(answer.runs.map((run) => fetchRun(run.url)));
    this.stop();
    const compare = recordings.length > 1;
    this.tracks = recordings.map((recording) => {
      const record = new RunRecord({ tag: compare ? recording.compare?.side ?? "" : "", params: recording.params ?? {} });
      record.accepted(recording.run, recording.params);
      return new ReplayTrack({ record, events: recording.events, status: recording.status, summary: recording.summary ?? null, eventsDropped: recording.events_dropped ?? 0 });
    });
    const duration = Math.max(0, ...this.tracks.map((track) => track.end));
    this.playhead = new Playhead(duration);
    const label = recordingLabel(recordingTime(answer.created_at));
    this.bannerText.textContent = label;
    this.summaryLabel.textContent = `${label}: the summary below is that recording's.`;
    this.link.setAttribute("href", runPageUrl(answer.runs[0].run));
    this.view.fixedDomainMs = duration;
    this.view.setRecords(this.tracks.map((track) => track.record), titles);
    this.view.element.prepend(this.banner);
    this.view.element.insertBefore(this.summaryLabel, this.view.summaries.element);
    this.banner.hidden = false;
    this.playhead.play(performance.now());
    this.playing = true;
    this.step();
  }

  step() {
    if (!this.playing) return;
    const t = this.playhead.positionAt(performance.now());
    for (const track of this.tracks) track.seek(t);
    this.summaryLabel.hidden = !this.tracks.some((track) => track.finished);
    this.view.invalidate();
    if (this.playhead.playing) this.frame = requestAnimationFrame(() => this.step());
    else this.playing = false;
  }

  /** Take the recording out of the view (a live run is about to take its place). */
  stop() {
    this.playing = false;
    cancelAnimationFrame(this.frame);
    if (!this.tracks.length) return;
    this.tracks = [];
    this.banner.remove();
    this.summaryLabel.remove();
    this.banner.hidden = true;
    this.summaryLabel.hidden = true;
    this.view.fixedDomainMs = null;
  }
}

export class BusyPanel {
  /**
   * @param {{slug: string, view: import("./run-view.js").RunView, onRetry: () => void}} options
   *   onRetry: start the same run again (the countdown ended)
   */
  constructor({ slug, view, onRetry }) {
    this.slug = slug;
    this.onRetry = onRetry;
    this.player = new RecordingPlayer(view);
    this.retries = 0;
    this.timer = 0;
    this.ticker = 0;
    this.deadline = 0;
    /** @type {RecordingAnswer | null} */
    this.recording = null;
    this.titles = [];
    this.lookups = 0; // answers of older lookups are dropped
    this.fromSocket = false; // shown because the page's socket was turned away, not a run
    // Announced when it changes: the server's sentence and when the widget tries again, once per refusal.
    this.text = el("span", {});
    this.spoken = el("span", { className: "demo-busy-sr" });
    this.status = el("p", { className: "demo-busy-text", role: "status" }, this.text, this.spoken);
    // Ticks every second on screen only.
    this.countdown = el("p", { className: "demo-busy-countdown", "aria-hidden": "true" });
    this.watchButton = el("button", { type: "button", className: "demo-link-button demo-busy-watch", onclick: () => this.watch() });
    this.watching = el("span", { hidden: true }, "Watching the recording below.");
    this.offer = el("p", { className: "demo-busy-offer", hidden: true }, this.watchButton, this.watching);
    this.element = el("div", { className: "demo-busy", hidden: true }, this.status, this.countdown, this.offer);
  }

  /** A retry is counting down. */
  get pending() {
    return this.timer !== 0;
  }

  /** The view holds a recording rather than a live run. */
  get showingRecording() {
    return this.player.showing;
  }

  /** A fresh press of Run: forget earlier retries (the countdown, if any, is replaced by the new run). */
  pressed() {
    this.stopTimers();
    this.retries = 0;
    this.countdown.textContent = "";
  }

  /**
   * Every run of the press was turned away; `refusals` are the `busy` errors.
   * @param {Array<{code?: string, message?: string, retry_after_s?: number}>} refusals
   * @param {Record<string, unknown>[]} columns  the settings that were sent
   * @param {string[]} titles
   */
  refused(refusals, columns, titles) {
    this.stopTimers();
    this.fromSocket = false;
    this.titles = titles;
    const delays = refusals.map((refusal) => retryDelayMs(refusal));
    const delayMs = delays.includes(null) ? null : Math.max(...delays.map(Number));
    const step = nextStep({ delayMs, retriesSoFar: this.retries });
    const sentence = busySentence(refusals.find((refusal) => refusal.message)?.message);
    this.element.hidden = false;
    this.setText(sentence);
    if (step.kind === "retry") {
      this.retries += 1;
      // The seconds shown are the server's; the retry itself comes a little after (spread over readers).
      const shownMs = Math.min(step.delayMs, Math.max(...refusals.map((refusal) => Number(refusal.retry_after_s) * 1000)));
      this.deadline = performance.now() + shownMs;
      this.spoken.textContent = ` ${countdownText(shownMs)}.`;
      this.tick();
      this.ticker = window.setInterval(() => this.tick(), 1000);
      this.timer = window.setTimeout(() => this.fire(), step.delayMs);
    } else {
      this.spoken.textContent = "";
      this.countdown.textContent = step.reason === "gave-up"
        ? `Still busy after ${this.retries} tries; press Run to try again.`
        : "Press Run to try again when one of your runs has finished.";
    }
    this.offerRecording(columns);
  }

  /**
   * The page's socket was turned away (the server at its capacity) and comes back by itself: no countdown of
   * the panel's own (the connection notice has the socket's), but the same offer of a recording meanwhile.
   * @param {Record<string, unknown>[]} columns  the settings in the widget now
   * @param {string[]} titles
   */
  socketRefused(columns, titles) {
    if (this.pending) return; // a run's own refusal is already counting down
    this.titles = titles;
    this.fromSocket = true; // the panel shows only once there is a recording to offer (below)
    this.setText("");
    this.countdown.textContent = "";
    this.spoken.textContent = "";
    this.offerRecording(columns);
  }

  /** The socket is open again: an offer made while it was away goes, a recording being watched stays. */
  socketBack() {
    if (!this.fromSocket || this.pending || this.player.showing) return;
    this.clear();
  }

  setText(text) {
    if (this.text.textContent !== text) this.text.textContent = text;
  }

  tick() {
    this.countdown.textContent = `${countdownText(this.deadline - performance.now())}.`;
  }

  fire() {
    this.stopTimers();
    this.countdown.textContent = "Trying again now…";
    this.spoken.textContent = " Trying again now.";
    this.onRetry();
  }

  /** Ask the server for a recording of these settings and offer it (unless one is already in the view). */
  async offerRecording(columns) {
    const lookup = ++this.lookups;
    const answer = await lookUp(recordingUrl(this.slug, columns));
    if (lookup !== this.lookups || (this.element.hidden && !this.fromSocket)) return;
    this.recording = answer;
    // Turned away at the socket, the connection notice says it all: an empty panel beside it would be noise.
    if (this.fromSocket) this.element.hidden = !answer && !this.player.showing;
    if (answer) this.watchButton.textContent = `Watch a recording of this preset from ${recordingTime(answer.created_at)} while you wait`;
    this.watchButton.hidden = this.player.showing;
    this.watching.hidden = !this.player.showing;
    this.offer.hidden = !answer && !this.player.showing;
  }

  async watch() {
    if (!this.recording) return;
    const hadFocus = document.activeElement === this.watchButton;
    try {
      await this.player.play(this.recording, this.titles);
    } catch {
      this.watchButton.textContent = "The recording could not be loaded.";
      return;
    }
    // The line stays (no jump); the button becomes words, and the keyboard moves to the label's replay link.
    this.watchButton.hidden = true;
    this.watching.hidden = false;
    if (hadFocus) this.player.link.focus();
  }

  /**
   * Stop counting down (the reader pressed Stop or changed a setting); says so when a retry was pending.
   * @param {string} why
   */
  cancel(why) {
    if (!this.pending) return;
    this.stopTimers();
    this.countdown.textContent = "";
    this.spoken.textContent = ` ${why}`;
  }

  /** A live run was accepted: the panel goes, and so does any recording. */
  clear() {
    this.stopTimers();
    this.fromSocket = false;
    this.lookups += 1;
    this.retries = 0;
    this.player.stop();
    this.element.hidden = true;
    this.offer.hidden = true;
    this.watchButton.hidden = false;
    this.watching.hidden = true;
    this.countdown.textContent = "";
    this.spoken.textContent = "";
    this.setText("");
  }

  stopTimers() {
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.timer = 0;
    this.ticker = 0;
  }
}
