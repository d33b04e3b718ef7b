/*
 * Entry point (loaded as <script type="module"> by lesson and replay pages).
 *
 * Finds every <section class="demo" data-demo data-configs> in a lesson and
 * every <section class="demo-replay" data-run-url> on a replay page, fetches
 * each demo's declaration and boots a widget in place of the no-JS fallback.
 * All live widgets share one websocket. Each section gets
 * data-widget-state="loading" | "ready" | "error" for tests and styling.
 * Widgets are built one at a time, the ones near the viewport (or focused, or
 * deep-linked) first and the rest when the browser is idle (build-queue.js);
 * a section keeps "loading" and its no-JS text until its turn.
 */
import { fetchDemo, fetchLimits } from "./api.js";
import { BuildQueue } from "./build-queue.js";
import { DemoWidget } from "./demo-widget.js";
import { el, headingLevelFor } from "./dom.js";
import { bootReplay } from "./replay.js";
import { sharedDemoSocket } from "./socket.js";

function parseConfigs(section) {
  try {
    const configs = JSON.parse(section.dataset.configs || "[]");
    return Array.isArray(configs) ? configs.filter((config) => config && typeof config === "object") : [];
  } catch {
    return [];
  }
}


function showBootError(section, what, error) {
  console.error(`demo widget: ${what}`, error);
  section.dataset.widgetState = "error";
  section.append(el("p", { className: "demo-boot-error", role: "alert" }, `The live demo could not load (${error.message}). Reload the page to try again.`));
}

async function bootDemo(section, socket) {
  try {
    const [demo, limits] = await Promise.all([fetchDemo(section.dataset.demo ?? ""), fetchLimits()]);
    socket.runsPerSocket = limits.runs_per_socket;
    new DemoWidget(section, { demo, configs: parseConfigs(section), socket, headingLevel: headingLevelFor(section) });
    section.dataset.widgetState = "ready";
  } catch (error) {
    showBootError(section, section.dataset.demo, error);
  }
}

async function bootReplaySection(section) {
  section.dataset.widgetState = "loading";
  try {
    await bootReplay(section);
    section.dataset.widgetState = "ready";
  } catch (error) {
    showBootError(section, "replay", error);
  }
}

function boot() {
  const demos = /** @type {HTMLElement[]} */ ([...document.querySelectorAll("section.demo[data-demo]")]);
  if (demos.length) {
    const socket = sharedDemoSocket();
    for (const section of demos) {
      section.dataset.widgetState = "loading";
      fetchDemo(section.dataset.demo ?? "").catch(() => {}); // fetched now, built in its turn (a failure shows then)
    }
    fetchLimits().catch(() => {});
    new BuildQueue(demos, (section) => bootDemo(section, socket));
  }
  for (const section of document.querySelectorAll("section.demo-replay[data-run-url]")) bootReplaySection(section);
}

boot(); // modules run after the document is parsed, so the sections are there
