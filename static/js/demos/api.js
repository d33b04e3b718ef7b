/*
 * HTTP reads the widget needs: a demo's description (with its highlighted
 * source) and a recorded run. Descriptions are cached per page, so two
 * widgets of the same demo make one request.
 */

const demoRequests = new Map();

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/** GET /api/demos/SLUG/: the declaration, `source_html` and `source_path`. */
export function fetchDemo(slug) {
  if (!demoRequests.has(slug)) {
    const request = getJson(`/api/demos/${encodeURIComponent(slug)}/`);
    request.catch(() => demoRequests.delete(slug)); // let a later widget retry
    demoRequests.set(slug, request);
  }
  return demoRequests.get(slug);
}

/** GET /api/runs/RUN_ID/ (the URL comes from the page). */
export function fetchRun(url) {
  return getJson(url);
}

/** The replay page of a run. */
export function runPageUrl(runId) {
  return `/runs/${encodeURIComponent(runId)}/`;
}
