/*
 * The one call that stores a prediction, POST /api/predictions/, made as the
 * anonymous reader whose token learning/reader.js keeps in localStorage.
 * "Clear my progress" (learning/progress.js) forgets the token too.
 */

import { readerToken } from "../learning/reader.js";

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
