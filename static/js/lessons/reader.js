/*
 * The anonymous reader: a random token made in this browser and kept in
 * localStorage (no account, nothing personal), and the one call that stores
 * a prediction, POST /api/predictions/.
 *
 * "Clear my progress" (the progress script) removes READER_TOKEN_KEY too.
 */

/** The localStorage key of the reader token. */
export const READER_TOKEN_KEY = "coursesite.reader.v1";
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{22,64}$/;

/**
 * 32 URL-safe characters from 24 random bytes.
 * @returns {string}
 */
export function newReaderToken() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * This browser's reader token, made on first use; null when storage is off (private modes, blocked cookies).
 * @returns {string | null}
 */
export function readerToken() {
  try {
    const stored = localStorage.getItem(READER_TOKEN_KEY);
    if (stored && TOKEN_SHAPE.test(stored)) return stored;
    const token = newReaderToken();
    localStorage.setItem(READER_TOKEN_KEY, token);
    return token;
  } catch {
    return null;
  }
}

/** @returns {string} */
function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/**
 * Store one prediction. Resolves to the server's answer, or throws an Error whose message a reader can read.
 * @param {{lesson: number, block: string, answer: number | string | null, runs: string[]}} prediction
 * @returns {Promise<{measured: unknown, close: boolean | null, explain: string}>}
 */
export async function postPrediction(prediction) {
  const reader = readerToken();
  if (!reader) throw new Error("this browser keeps no local storage, so there is no reader token");
  const response = await fetch("/api/predictions/", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ reader, ...prediction }),
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page or an unknown address
  }
  if (!response.ok) {
    const message = body?.error?.message;
    throw new Error(message ? String(message) : `the server answered ${response.status}`);
  }
  return body;
}
