"""Recording a reader's prediction: validate everything, measure from the stored runs, write one row or nothing.

`prediction_record` is the API's whole logic; the view only reads the request and answers.
`prediction_rate_check` keeps one reader token and one client address within their share of
posts per window, in Redis, in one script (both counted, or neither).
"""
from __future__ import annotations

import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac
from redis.exceptions import RedisError

from coursesite import keys
from coursesite.redis_clients import sync_redis
from demos.models import Run
from learning.checking import check_prediction
from learning.models import Prediction
from lessons.models import Lesson

logger = logging.getLogger("learning")

READER_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")
FIELDS = {"reader", "lesson", "block", "answer", "runs"}
READER_HMAC_SALT = "learning.Prediction.reader"


class PredictionInvalid(ValueError):
    """The post cannot be stored as it is; the message says why, in words a front end may show."""


@dataclass(frozen=True)
class Recorded:
    """The stored prediction and what the API answers about it."""

    prediction: Prediction
    measured: float | str | None
    close: bool | None
    explain: str


def reader_hash(token: str) -> str:
    """The keyed hash a reader token is stored as (HMAC-SHA256 keyed by SECRET_KEY); the token itself is never kept."""
    return salted_hmac(READER_HMAC_SALT, token, algorithm="sha256").hexdigest()


def reader_token_from(payload: Any) -> str:
    """The payload's reader token, checked for shape; PredictionInvalid for anything else."""
    if not isinstance(payload, dict):
        raise PredictionInvalid("The body must be a JSON object with reader, lesson, block, answer and runs.")
    token = payload.get("reader")
    if not isinstance(token, str) or not READER_TOKEN.fullmatch(token):
        raise PredictionInvalid("`reader` must be the browser's reader token: 22 to 64 letters, digits, '-' or '_'.")
    return token


def _block_of(lesson: Lesson, block_id: Any) -> dict[str, Any]:
    if not isinstance(block_id, str) or not block_id:
        raise PredictionInvalid("`block` must be the id of a prediction block of the lesson.")
    for block in lesson.blocks or []:
        if isinstance(block, dict) and block.get("id") == block_id:
            if block.get("kind") != "prediction":
                raise PredictionInvalid(f"Block {block_id!r} of this lesson is a {block.get('kind')}, not a prediction.")
            return block
    raise PredictionInvalid(f"This lesson has no prediction block {block_id!r}.")


def _answer_for(block: dict[str, Any], answer: Any) -> float | str | None:
    if answer is None:
        return None
    if block["answer"] == "number":
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
            raise PredictionInvalid("This prediction takes a number (or null to skip).")
        bounds = block.get("range")
        if bounds and not bounds[0] <= answer <= bounds[1]:
            raise PredictionInvalid(f"The answer must lie between {bounds[0]:g} and {bounds[1]:g}.")
        return float(answer)
    keys_allowed = [choice["key"] for choice in block.get("choices") or []]
    if not isinstance(answer, str) or answer not in keys_allowed:
        raise PredictionInvalid(f"This prediction takes one of the choices {', '.join(keys_allowed)} (or null to skip).")
    return answer


def _runs_for(block: dict[str, Any], run_ids: Any) -> list[Run]:
    wanted = 2 if block.get("compare") else 1
    if not isinstance(run_ids, list) or len(run_ids) != wanted or not all(isinstance(i, str) for i in run_ids):
        sides = "two run ids (side A, then side B)" if wanted == 2 else "one run id"
        raise PredictionInvalid(f"`runs` must be a list of {sides} for this prediction.")
    try:
        ids = [uuid.UUID(run_id) for run_id in run_ids]
    except ValueError:
        raise PredictionInvalid("`runs` must hold run ids as the site gave them (UUIDs).") from None
    if len(set(ids)) != len(ids):
        raise PredictionInvalid("The two sides of a compare must be two different runs.")
    # Only what the check needs: a run's events can be megabytes.
    found = {run.id: run for run in Run.objects.filter(id__in=ids).only("id", "demo", "status", "summary")}
    runs = []
    for run_id in ids:
        run = found.get(run_id)
        if run is None:
            raise PredictionInvalid(f"There is no run {run_id}.")
        if run.demo != block["demo"]:
            raise PredictionInvalid(f"Run {run_id} is of the demo {run.demo!r}, not {block['demo']!r}, "
                                    "which this prediction asks about.")
        if run.status == Run.Status.RUNNING:
            raise PredictionInvalid(f"Run {run_id} has not finished yet; post the prediction once it has.")
        runs.append(run)
    return runs


def prediction_record(*, payload: Any, user: Any) -> Recorded:
    """Validate a posted prediction, measure it from the stored runs and write it; PredictionInvalid writes nothing.

    `user` decides which lessons are visible (staff may predict on drafts they preview).
    """
    token = reader_token_from(payload)
    unknown = set(payload) - FIELDS
    missing = FIELDS - set(payload)
    if unknown or missing:
        parts = ([f"unknown field(s) {', '.join(sorted(unknown))}"] if unknown else []) + (
            [f"missing field(s) {', '.join(sorted(missing))}"] if missing else [])
        raise PredictionInvalid(f"The body has {' and '.join(parts)}; it takes exactly {', '.join(sorted(FIELDS))}.")
    lesson_id = payload["lesson"]
    if isinstance(lesson_id, bool) or not isinstance(lesson_id, int):
        raise PredictionInvalid("`lesson` must be the lesson's id (a whole number).")
    lesson = Lesson.objects.visible_to(user).filter(id=lesson_id).only("id", "blocks").first()
    if lesson is None:
        raise PredictionInvalid(f"There is no lesson {lesson_id} to predict on.")
    block = _block_of(lesson, payload["block"])
    answer = _answer_for(block, payload["answer"])
    runs = _runs_for(block, payload["runs"])
    checked = check_prediction(block, [run.summary if isinstance(run.summary, dict) else {} for run in runs], answer)
    prediction = Prediction.objects.create(
        lesson=lesson, block=block["id"], demo=block["demo"], reader=reader_hash(token),
        skipped=answer is None,
        answer_number=answer if isinstance(answer, float) else None,
        answer_choice=answer if isinstance(answer, str) else "",
        run=runs[0], run_b=runs[1] if len(runs) > 1 else None,
        measured_number=checked.measured if isinstance(checked.measured, float) else None,
        measured_choice=checked.measured if isinstance(checked.measured, str) else "",
        close=checked.close,
    )
    return Recorded(prediction, checked.measured, checked.close, block.get("explain", ""))


# KEYS: the counters of this window. ARGV: window ttl, then one cap per key.
# Returns '' when every counter was under its cap (and all are then counted);
# else "<index of the full counter>:<its seconds to live>", counting nothing.
RATE_SCRIPT = """
for index, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[1 + index]) then
    return tostring(index - 1) .. ':' .. tostring(redis.call('TTL', key))
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return ''
"""


@dataclass(frozen=True)
class RateLimited:
    """Which share was used up ("reader" or "address") and when the window ends."""

    who: str
    retry_after_s: int


def prediction_rate_check(*, reader: str, address: str) -> RateLimited | None:
    """Count one post for this reader hash and this address; RateLimited (counting nothing) when either is at its cap.

    Fixed windows of PREDICTION_RATE_WINDOW_S. When Redis is unreachable the post goes
    through uncounted: the limit protects the table from floods, and a reader's guess is
    worth keeping during an outage of the counters.
    """
    window_s = settings.PREDICTION_RATE_WINDOW_S
    window = int(time.time() // window_s)
    counters = [keys.prediction_rate("reader", reader, window), keys.prediction_rate("address", address, window)]
    caps = [settings.PREDICTIONS_PER_READER, settings.PREDICTIONS_PER_ADDRESS]
    try:
        answer = sync_redis().eval(RATE_SCRIPT, len(counters), *counters, window_s + 1, *caps)
    except (RedisError, OSError):
        logger.warning("prediction rate limits unavailable (Redis); counting nothing")
        return None
    if not answer:
        return None
    index, ttl = (answer.decode() if isinstance(answer, bytes) else str(answer)).split(":", 1)
    return RateLimited(who=("reader", "address")[int(index)], retry_after_s=max(1, int(ttl)))
