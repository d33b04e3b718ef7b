/*
 * A reader's progress, kept only in their browser: plain data and pure functions, no DOM, no storage.
 *
 * The shape (localStorage key "coursesite.progress.v1"):
 *   {version: 1, lessons: {<lesson id>: {path, read, demos: [section ids], predictions: {<block>: {skipped, close}},
 *    quizzes: {<block>: {correct}}, updated}}, last: {lesson, path, block, at} | null}
 * progress.js feeds it the page's events (issue 16 contract: coursesite:demo-finished,
 * coursesite:prediction, coursesite:quiz-answered, and "lesson read") and draws it.
 */

export const PROGRESS_KEY = "coursesite.progress.v1";
// Far more than a course has; a stored value past these bounds is someone else's data, not ours.
const MAX_LESSONS = 500;
const MAX_BLOCKS_PER_LESSON = 200;
const BLOCK_ID = /^[A-Za-z0-9_-]{1,100}$/;

/**
 * @typedef {{path: string, read: boolean, demos: string[], predictions: Record<string, {skipped: boolean, close: boolean|null}>,
 *            quizzes: Record<string, {correct: boolean}>, updated: number}} LessonProgress
 * @typedef {{lesson: string, path: string, block: string|null, at: number}} LastPlace
 * @typedef {{version: 1, lessons: Record<string, LessonProgress>, last: LastPlace|null}} Progress
 * @typedef {{type: "read"} | {type: "demo-finished", block: string}
 *         | {type: "prediction", block: string, skipped: boolean, close: boolean|null}
 *         | {type: "quiz-answered", block: string, correct: boolean}} ProgressEvent
 */

/** @returns {Progress} */
export function emptyProgress() {
  return { version: 1, lessons: {}, last: null };
}

/**
 * Progress from its stored text; anything unreadable or of another version starts afresh.
 * @param {string|null} text
 * @returns {Progress}
 */
export function parseProgress(text) {
  if (!text) return emptyProgress();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return emptyProgress();
  }
  if (!data || data.version !== 1 || typeof data.lessons !== "object" || data.lessons === null) return emptyProgress();
  const progress = emptyProgress();
  for (const [id, lesson] of Object.entries(data.lessons).slice(0, MAX_LESSONS)) {
    if (!lesson || typeof lesson.path !== "string") continue;
    progress.lessons[id] = {
      path: lesson.path,
      read: lesson.read === true,
      demos: Array.isArray(lesson.demos) ? lesson.demos.filter((b) => typeof b === "string" && BLOCK_ID.test(b)) : [],
      predictions: typeof lesson.predictions === "object" && lesson.predictions ? lesson.predictions : {},
      quizzes: typeof lesson.quizzes === "object" && lesson.quizzes ? lesson.quizzes : {},
      updated: Number(lesson.updated) || 0,
    };
  }
  const last = data.last;
  if (last && typeof last.lesson === "string" && typeof last.path === "string" && progress.lessons[last.lesson]) {
    progress.last = { lesson: last.lesson, path: last.path, block: typeof last.block === "string" ? last.block : null,
                      at: Number(last.at) || 0 };
  }
  return progress;
}

/**
 * A new Progress with one event of one lesson recorded (the input is left as it was).
 * @param {Progress} progress
 * @param {{id: string, path: string}} lesson
 * @param {ProgressEvent} event
 * @param {number} now
 * @returns {Progress}
 */
export function recordEvent(progress, lesson, event, now) {
  const next = /** @type {Progress} */ (structuredClone(progress));
  const entry = next.lessons[lesson.id] ?? { path: lesson.path, read: false, demos: [], predictions: {}, quizzes: {}, updated: now };
  entry.path = lesson.path;
  entry.updated = now;
  const block = event.type === "read" ? null : event.block;
  if (block !== null && !BLOCK_ID.test(block)) return progress;
  const blocksKept = entry.demos.length + Object.keys(entry.predictions).length + Object.keys(entry.quizzes).length;
  if (block !== null && blocksKept >= MAX_BLOCKS_PER_LESSON) return progress;
  if (event.type === "read") entry.read = true;
  else if (event.type === "demo-finished") {
    if (!entry.demos.includes(event.block)) entry.demos.push(event.block);
  } else if (event.type === "prediction") {
    entry.predictions[event.block] = { skipped: event.skipped === true, close: typeof event.close === "boolean" ? event.close : null };
  } else if (event.type === "quiz-answered") {
    entry.quizzes[event.block] = { correct: event.correct === true };
  }
  next.lessons[lesson.id] = entry;
  // Reading to the end says where the reader was, but not which block: keep the block they last used.
  const sameLesson = next.last?.lesson === lesson.id;
  next.last = { lesson: lesson.id, path: lesson.path, block: block ?? (sameLesson ? next.last?.block ?? null : null), at: now };
  return next;
}

/**
 * What the index shows for one lesson: counts, and a sentence saying them (null when nothing is recorded).
 * @param {LessonProgress|undefined} entry
 * @returns {{read: boolean, demos: number, predictions: number, close: number, questions: number, correct: number, text: string}|null}
 */
export function lessonSummary(entry) {
  if (!entry) return null;
  const predictions = Object.values(entry.predictions).filter((p) => !p.skipped);
  const quizzes = Object.values(entry.quizzes);
  const counts = {
    read: entry.read, demos: entry.demos.length, predictions: predictions.length,
    close: predictions.filter((p) => p.close === true).length, questions: quizzes.length,
    correct: quizzes.filter((q) => q.correct).length,
  };
  if (!counts.read && !counts.demos && !counts.predictions && !counts.questions) return null;
  const parts = [counts.read ? "Read" : "Started"];
  if (counts.demos) parts.push(plural(counts.demos, "demo run", "demos run"));
  if (counts.predictions) parts.push(`${plural(counts.predictions, "prediction", "predictions")} (${counts.close} close)`);
  if (counts.questions) parts.push(`${plural(counts.questions, "question", "questions")} answered (${counts.correct} right)`);
  return { ...counts, text: parts.join(" · ") };
}

/**
 * @param {number} count
 * @param {string} one
 * @param {string} many
 */
function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * Where "continue where you left off" points: the last lesson, at the last block used.
 * @param {Progress} progress
 * @returns {string|null}
 */
export function continueHref(progress) {
  const last = progress.last;
  if (!last || !last.path.startsWith("/") || last.path.startsWith("//")) return null;
  return last.block ? `${last.path}#${last.block}` : last.path;
}
