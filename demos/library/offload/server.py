"""The `offload` demo's web server: one process, one thread, three endpoints.

    python -m demos.library.offload.server RUN_KEY --max-seconds S

It stands in for one web worker of a site (a sync Gunicorn worker, or one
event loop of an ASGI server): it answers one request at a time, so whatever a
request does holds up every request behind it.

    GET  /ping          the cheap endpoint the demo's probe calls every 20 ms
    POST /jobs/inline   does the CPU job inside the request, answers 200 when done
    POST /jobs/celery   enqueues the same job on the `offload-jobs` queue, answers 202 at once

Both job endpoints take JSON {"job_id": ..., "job_ms": ..., "failure": ...}:
the client chooses the job id (as with an idempotency key), and it becomes the
Celery task id. The server prints one JSON line, {"port": P}, once it listens.
Unlike the other sandboxes it imports the project (Celery and the job itself),
so it runs as a module from the project directory.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from coursesite.celery import app as celery_app
from coursesite.redis_clients import sync_redis
from demos.library.offload.tasks import FAILURES, JOBS_QUEUE, hash_job, iterations_per_cpu_ms, offload_job, time_limits

PR_SET_PDEATHSIG = 1
JOB_EXPIRES_S = 60  # a job still queued after this is dropped by the worker, not run late


class OffloadHandler(BaseHTTPRequestHandler):
    server_version = "OffloadSandbox/1"
    run_key = ""

    def log_message(self, format, *args):  # one line per probe would swamp the worker's log
        pass

    def _answer(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/ping":
            self._answer(200, {"pong": True})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
            job = json.loads(self.rfile.read(length) or b"{}")
            job_id, job_ms = str(job["job_id"]), int(job["job_ms"])
            failure = job.get("failure", "none")
            if failure not in FAILURES or not 1 <= job_ms <= 10_000:
                raise ValueError(job)
        except (KeyError, TypeError, ValueError):
            self._answer(400, {"error": "expected JSON {job_id, job_ms, failure}"})
            return
        if self.path == "/jobs/inline":
            # The whole job happens here, while every other request waits for this one thread.
            worker = f"web server · pid {os.getpid()}"
            try:
                result = hash_job(job_id=job_id, run_key=self.run_key, job_ms=job_ms, worker=worker)
            except Exception as error:
                self._answer(500, {"job_id": job_id, "error": f"{error.__class__.__name__}: {error}"})
                return
            self._answer(200, result)
        elif self.path == "/jobs/celery":
            soft, hard = time_limits(job_ms)
            offload_job.apply_async(
                args=[job_id, self.run_key, job_ms, failure], task_id=job_id, queue=JOBS_QUEUE,
                soft_time_limit=soft, time_limit=hard, expires=JOB_EXPIRES_S,
            )
            self._answer(202, {"job_id": job_id, "status": "queued"})
        else:
            self._answer(404, {"error": "not found"})


def guard_process(max_seconds: int) -> None:
    """Make sure this process cannot outlive the demo that started it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the alarm below still applies
        pass
    signal.alarm(max_seconds)  # the default action of SIGALRM ends the process


def warm_up() -> None:
    """Pay the one-off costs before the demo starts measuring: calibration and connections."""
    iterations_per_cpu_ms()
    sync_redis().ping()
    celery_app.finalize(auto=True)
    celery_app.backend  # noqa: B018  (imported on first use otherwise: ~50 ms inside the first request)
    with celery_app.producer_or_acquire() as producer:
        producer.maybe_declare(celery_app.amqp.queues[JOBS_QUEUE])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_key")
    parser.add_argument("--max-seconds", type=int, default=120)
    args = parser.parse_args(argv)
    guard_process(args.max_seconds)
    warm_up()
    OffloadHandler.run_key = args.run_key
    server = HTTPServer(("127.0.0.1", 0), OffloadHandler, bind_and_activate=False)
    server.request_queue_size = 1024  # queued probes wait in the backlog, as on a real server, not in SYN retries
    server.server_bind()
    server.server_activate()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
