/*
 * When the page's widgets are built: the one a reader looks at, right away; every other one later, one per
 * idle moment, so that loading a lesson with eight demos is not one long task that freezes scrolling.
 *
 * A section is built, whichever comes first:
 *  - when it comes within about a screen of the viewport (IntersectionObserver), a deep link (`#demo-3`)
 *    included, since the browser scrolls it into view;
 *  - when something in it takes focus or is pressed (a keyboard reader tabbing into the no-JS text);
 *  - when the browser is idle (requestIdleCallback), in document order, one section per callback.
 * Until then the section keeps the server's no-JavaScript text, which reads on its own.
 * Each build runs in a task of its own: two sections never build in the same task.
 */

/** How far outside the viewport a section starts building: the screen above and below it. */
export const NEAR_VIEWPORT = "100% 0px 100% 0px";

/**
 * @param {() => void} callback
 * @returns {void}
 */
function whenIdle(callback) {
  if (typeof requestIdleCallback === "function") requestIdleCallback(callback, { timeout: 2000 });
  else setTimeout(callback, 50);
}

/** A fresh task (a message, not a timer: timers are clamped, messages are not). */
function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve(undefined);
    };
    channel.port2.postMessage(null);
  });
}

export class BuildQueue {
  /**
   * @param {HTMLElement[]} sections in document order
   * @param {(section: HTMLElement) => Promise<void> | void} build makes one section's widget
   */
  constructor(sections, build) {
    this.build = build;
    /** @type {HTMLElement[]} sections not started yet, in document order */
    this.waiting = [...sections];
    /** @type {HTMLElement[]} sections asked for (seen, focused), built before the idle ones */
    this.wanted = [];
    this.running = false;
    this.observer = typeof IntersectionObserver === "function"
      ? new IntersectionObserver((entries) => {
        for (const entry of entries) if (entry.isIntersecting) this.want(/** @type {HTMLElement} */ (entry.target));
      }, { rootMargin: NEAR_VIEWPORT })
      : null;
    for (const section of this.waiting) {
      this.observer?.observe(section);
      const now = () => this.want(section);
      section.addEventListener("focusin", now, { once: true });
      section.addEventListener("pointerdown", now, { once: true });
    }
    const target = this.targetOfHash();
    if (target) this.want(target);
    window.addEventListener("hashchange", () => {
      const section = this.targetOfHash();
      if (section) this.want(section);
    });
    this.pump();
  }

  /** The waiting section the address's #fragment points at or into, if any. */
  targetOfHash() {
    const id = decodeURIComponent(window.location.hash.slice(1));
    const element = id ? document.getElementById(id) : null;
    return this.waiting.find((section) => section === element || section.contains(element)) ?? null;
  }

  /** @param {HTMLElement} section build this one next */
  want(section) {
    if (!this.waiting.includes(section) || this.wanted.includes(section)) return;
    this.wanted.push(section);
    this.pump();
  }

  /** Build the wanted sections now, one task each, then the rest when the browser is idle. */
  async pump() {
    if (this.running) return;
    this.running = true;
    try {
      while (this.waiting.length) {
        let section = this.wanted.shift();
        if (!section) {
          await new Promise((resolve) => whenIdle(() => resolve(undefined)));
          section = this.wanted.shift() ?? this.waiting[0];
        } else {
          await nextTask();
        }
        if (!this.waiting.includes(section)) continue;
        this.waiting.splice(this.waiting.indexOf(section), 1);
        this.observer?.unobserve(section);
        await this.build(section);
      }
    } finally {
      this.running = false;
      this.observer?.disconnect();
    }
  }
}
