/*
 * The reader token: a random name this browser gives itself, so the site can tell one reader's predictions
 * from another's without an account. It lives in localStorage under READER_KEY; the server stores only a keyed
 * hash of it. "Clear my progress" forgets it too, after which the browser is a new reader.
 */

export const READER_KEY = "coursesite.reader.v1";
const TOKEN = /^[A-Za-z0-9_-]{22,64}$/;

/**
 * A new token: 24 random bytes as base64url (32 characters).
 * @param {Crypto} randomSource
 */
export function newReaderToken(randomSource = crypto) {
  const bytes = randomSource.getRandomValues(new Uint8Array(24));
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/**
 * This browser's token, made and kept on first use; null when storage is unavailable (private modes may refuse it).
 * @param {Storage} storage
 * @returns {string|null}
 */
export function readerToken(storage = localStorage) {
  try {
    const kept = storage.getItem(READER_KEY);
    if (kept && TOKEN.test(kept)) return kept;
    const token = newReaderToken();
    storage.setItem(READER_KEY, token);
    return token;
  } catch {
    return null;
  }
}
