/*
 * Reader progress in the page: records what happens on a lesson, shows it on the index, and clears it.
 *
 * On a lesson (<article data-lesson-id data-lesson-path>) it listens for the blocks' events
 * (coursesite:demo-finished, coursesite:prediction, coursesite:quiz-answered) and marks the
 * lesson read when the reader reaches its end or has stayed 30 s. On the index it fills each
 * lesson's progress line, offers "continue where you left off" and "Clear my progress". Without
 * JavaScript, or without storage, nothing of it shows and nothing else changes.
 */
import { PROGRESS_KEY, continueHref, emptyProgress, lessonSummary, parseProgress, recordEvent } from "./progress-store.js";
import { READER_KEY } from "./reader.js";

const READ_AFTER_MS = 30_000;

/** @returns {import("./progress-store.js").Progress} */
function load() {
  try {
    return parseProgress(localStorage.getItem(PROGRESS_KEY));
  } catch {
    return emptyProgress();
  }
}

/** @param {import("./progress-store.js").Progress} progress */
function save(progress) {
  try {
    localStorage.setItem(PROGRESS_KEY, JSON.stringify(progress));
  } catch {
    // Storage full or refused: progress is a convenience, the lesson works without it.
  }
}

/**
 * The lesson's own progress line under its title: what this reader did here, and where they left off
 * when they were last on this lesson (a block further down), refreshed as they go.
 * @param {HTMLElement} holder
 * @param {string} lessonId
 */
function showLessonProgress(holder, lessonId) {
  const progress = load();
  const summary = lessonSummary(progress.lessons[lessonId]);
  const last = progress.last && progress.last.lesson === lessonId && progress.last.block ? progress.last : null;
  const text = holder.querySelector("[data-progress-text]");
  const link = /** @type {HTMLAnchorElement|null} */ (holder.querySelector("[data-continue]"));
  if (text) text.textContent = summary ? `Your progress here: ${summary.text}` : "";
  if (link) {
    link.hidden = !last;
    if (last) link.href = `#${encodeURIComponent(last.block ?? "")}`;
  }
  holder.hidden = !summary;
}

/** @param {HTMLElement} article */
function trackLesson(article) {
  const lesson = { id: article.dataset.lessonId ?? "", path: article.dataset.lessonPath ?? location.pathname };
  if (!lesson.id) return;
  const holder = /** @type {HTMLElement|null} */ (document.getElementById("lesson-progress"));
  if (holder) showLessonProgress(holder, lesson.id);
  /** @param {import("./progress-store.js").ProgressEvent} event */
  const record = (event) => {
    save(recordEvent(load(), lesson, event, Date.now()));
    if (holder) showLessonProgress(holder, lesson.id);
  };

  document.addEventListener("coursesite:demo-finished", (event) => {
    const detail = /** @type {CustomEvent} */ (event).detail ?? {};
    if (typeof detail.block === "string") record({ type: "demo-finished", block: detail.block });
  });
  document.addEventListener("coursesite:prediction", (event) => {
    const detail = /** @type {CustomEvent} */ (event).detail ?? {};
    if (typeof detail.block === "string") {
      record({ type: "prediction", block: detail.block, skipped: detail.skipped === true, close: detail.close ?? null });
    }
  });
  document.addEventListener("coursesite:quiz-answered", (event) => {
    const detail = /** @type {CustomEvent} */ (event).detail ?? {};
    if (typeof detail.block === "string") record({ type: "quiz-answered", block: detail.block, correct: detail.correct === true });
  });

  let read = false;
  const markRead = () => {
    if (read) return;
    read = true;
    record({ type: "read" });
    observer?.disconnect();
  };
  const end = article.lastElementChild;
  const observer = end && "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => entries.some((entry) => entry.isIntersecting) && markRead())
    : null;
  if (observer && end) observer.observe(end);
  setTimeout(() => document.visibilityState === "visible" && markRead(), READ_AFTER_MS);
}

function showIndex() {
  const progress = load();
  for (const line of document.querySelectorAll("[data-lesson-progress]")) {
    const holder = /** @type {HTMLElement} */ (line);
    const summary = lessonSummary(progress.lessons[holder.dataset.lessonProgress ?? ""]);
    holder.textContent = summary ? summary.text : "";
    holder.hidden = !summary;
  }
  const panel = /** @type {HTMLElement|null} */ (document.getElementById("progress-panel"));
  if (!panel) return;
  const href = continueHref(progress);
  const link = /** @type {HTMLAnchorElement|null} */ (panel.querySelector("[data-continue]"));
  const lastLesson = progress.last ? document.querySelector(`[data-lesson-title="${CSS.escape(progress.last.lesson)}"]`) : null;
  if (link && href) {
    link.href = href;
    link.textContent = lastLesson?.textContent ? `Continue “${lastLesson.textContent.trim()}”` : "Continue where you left off";
  }
  panel.hidden = Object.keys(progress.lessons).length === 0;
  const clear = panel.querySelector("[data-clear-progress]");
  clear?.addEventListener("click", () => {
    try {
      localStorage.removeItem(PROGRESS_KEY);
      localStorage.removeItem(READER_KEY);
    } catch {
      // Nothing stored, nothing to remove.
    }
    showIndex();
    const status = document.getElementById("progress-status");
    if (status) status.textContent = "Your progress was cleared, and this browser's reader token with it.";
  }, { once: true });
}

const article = /** @type {HTMLElement|null} */ (document.querySelector("article[data-lesson-id]"));
if (article) trackLesson(article);
if (document.getElementById("progress-panel")) showIndex();
