/*
 * The shapes of the messages on /ws/demos/, as JSDoc types for `tsc --checkJs`.
 *
 * They mirror the TypedDicts in demos/base.py (AcceptedMessage,
 * EventsMessage, FinishedMessage, ErrorMessage); keep the two in step. The
 * module holds types only, so importing it costs nothing at run time.
 */

/**
 * @typedef {"running" | "succeeded" | "failed" | "cancelled" | "timed_out"} RunStatus
 */

/**
 * Server codes from demos/base.py ErrorCode, plus "timeout" and "disconnected",
 * which the browser makes up when no answer comes.
 * @typedef {"bad_message" | "too_big" | "internal" | "unknown_demo" | "invalid_params" | "busy" | "unavailable"
 *   | "unknown_run" | "rate_limited" | "timeout" | "disconnected"} ErrorCode
 */

/**
 * One recorded event of a run (kind, time and whatever fields the demo gave).
 * @typedef {{kind?: string, t?: number, lane?: number | string, [field: string]: any}} RunEvent
 */

/**
 * The server took a run: from now on its messages carry `run`.
 * @typedef {object} AcceptedMessage
 * @property {"accepted"} type
 * @property {string | null} ref  the ref the browser sent with `run`
 * @property {string} run  the run id
 * @property {string} demo
 * @property {Record<string, any>} params  the parameters after validation
 */

/**
 * A batch of a run's events, numbered from 0 so gaps show.
 * @typedef {object} EventsMessage
 * @property {"events"} type
 * @property {string} run
 * @property {number} seq
 * @property {RunEvent[]} events
 */

/**
 * @typedef {object} FinishedMessage
 * @property {"finished"} type
 * @property {string} run
 * @property {RunStatus} status
 * @property {Record<string, any>} summary  always `text` and `elapsed_ms`; the demo's measurements besides
 */

/**
 * @typedef {object} ErrorMessage
 * @property {"error"} type
 * @property {ErrorCode} [code]
 * @property {string} [message]  a sentence for the reader
 * @property {string} [ref]
 * @property {string} [run]
 * @property {number} [retry_after_s]
 */

/**
 * @typedef {AcceptedMessage | EventsMessage | FinishedMessage | ErrorMessage} ServerMessage
 */

/**
 * GET /api/demos/: every demo's declaration and the limits the server applies to a page.
 * @typedef {object} DemoListResponse
 * @property {Array<Record<string, any>>} demos
 * @property {{runs_per_socket: number}} limits
 */

export {};
