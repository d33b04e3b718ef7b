/*
 * Entry point (loaded as <script type="module"> by lesson and replay pages).
 *
 * Finds every <section class="demo" data-demo data-configs> in a lesson and
 * every <section class="demo-replay" data-run-url> on a replay page, fetches
 * each demo's declaration and boots a widget in place of the no-JS fallback.
 * All live widgets share one websocket. Each section gets
 * data-widget-state="loading" | "ready" | "error" for tests and styling.
 */
import { fetchDemo, fetchLimits } from "./api.js";
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
  section.dataset.widgetState = "loading";
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
  const demos = [...document.querySelectorAll("section.demo[data-demo]")];
  if (demos.length) {
    const socket = sharedDemoSocket();
    for (const section of demos) bootDemo(section, socket);
  }
  for (const section of document.querySelectorAll("section.demo-replay[data-run-url]")) bootReplaySection(section);
}

boot(); // modules run after the document is parsed, so the sections are there
