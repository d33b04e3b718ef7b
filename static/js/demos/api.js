/*
 * HTTP reads the widgets need: a demo's description (with its highlighted
 * source), the limits the server applies to a page, and a recorded run.
 * Each is cached per page, so two widgets of the same demo make one request.
 */

/**
 * @typedef {import("./messages.js").DemoListResponse} DemoListResponse
 * @typedef {DemoListResponse["limits"]} DemoLimits
 */

/** @type {Map<string, Promise<Record<string, any>>>} */
const demoRequests = new Map();
/** @type {Promise<DemoLimits> | null} */
let limitsRequest = null;

/**
 * @param {string} url
 * @returns {Promise<any>}
 */
async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/**
 * GET /api/demos/SLUG/: the declaration, `source_html` and `source_path`.
 * @param {string} slug
 * @returns {Promise<Record<string, any>>}
 */
export function fetchDemo(slug) {
  let request = demoRequests.get(slug);
  if (!request) {
    request = getJson(`/api/demos/${encodeURIComponent(slug)}/`);
    request.catch(() => demoRequests.delete(slug)); // let a later widget retry
    demoRequests.set(slug, request);
  }
  return request;
}

/**
 * The `limits` of GET /api/demos/ (e.g. how many runs one socket may have in flight).
 * @returns {Promise<DemoLimits>}
 */
export function fetchLimits() {
  if (!limitsRequest) {
    const request = getJson("/api/demos/").then((/** @type {DemoListResponse} */ body) => readLimits(body));
    request.catch(() => {
      limitsRequest = null;
    });
    limitsRequest = request;
  }
  return limitsRequest;
}

/**
 * The limits in a /api/demos/ answer, checked: a missing or bad number is an error, not a guess.
 * @param {unknown} body
 * @returns {DemoLimits}
 */
export function readLimits(body) {
  const limits = body && typeof body === "object" ? /** @type {{limits?: unknown}} */ (body).limits : undefined;
  const runs = limits && typeof limits === "object" ? /** @type {{runs_per_socket?: unknown}} */ (limits).runs_per_socket : undefined;
  if (typeof runs !== "number" || !Number.isInteger(runs) || runs < 1) {
    throw new Error("/api/demos/ gave no usable limits.runs_per_socket");
  }
  return { runs_per_socket: runs };
}

/**
 * GET /api/runs/RUN_ID/ (the URL comes from the page).
 * @param {string} url
 * @returns {Promise<Record<string, any>>}
 */
export function fetchRun(url) {
  return getJson(url);
}

/**
 * The replay page of a run.
 * @param {string} runId
 * @returns {string}
 */
export function runPageUrl(runId) {
  return `/runs/${encodeURIComponent(runId)}/`;
}
