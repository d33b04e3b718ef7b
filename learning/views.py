"""POST /api/predictions/: a reader's guess, checked against the runs it was made for.

Reader pages are cached and shared between readers, so they cannot carry a per-reader CSRF
token; the endpoint is exempt from Django's token check and instead admits a post only when
its Origin header names this site (same scheme, host and port, or a CSRF_TRUSTED_ORIGINS
entry), the rule coursesite/origins.py applies to the demo sockets. A browser always sends
Origin on a cross-site POST and a page cannot forge it; the JSON content type keeps plain
HTML forms out as well.
"""
from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.http.request import split_domain_port
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from coursesite.origins import DEFAULT_PORTS, parse_origin, trusted_origin
from learning.services import PredictionInvalid, prediction_rate_check, prediction_record, reader_hash, reader_token_from

# A prediction is a few hundred bytes; anything far larger is not one.
MAX_BODY_BYTES = 4096


def _error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def same_origin(request: HttpRequest) -> bool:
    """True when the request's one Origin header is this site's own origin (or a trusted one)."""
    values = request.headers.get("Origin")
    origin = parse_origin(values) if values and "," not in values else None
    if origin is None:
        return False
    domain, port = split_domain_port(request.get_host())
    scheme = request.scheme or "http"
    own = (scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS.get(scheme, 80))
    return origin == own or trusted_origin(origin)


@csrf_exempt
@never_cache
def prediction_create(request: HttpRequest) -> JsonResponse:
    """Store one prediction: 201 with what was measured, 400 naming what is wrong, 429 when posting too fast."""
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "Send predictions with POST.")
        response["Allow"] = "POST"
        return response
    if not same_origin(request):
        return _error(403, "cross_origin", "Predictions are accepted only from this site's own pages.")
    if request.content_type != "application/json":
        return _error(415, "unsupported_media_type", "Send the prediction as JSON (Content-Type: application/json).")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        return _error(413, "too_large", f"A prediction is at most {MAX_BODY_BYTES} bytes of JSON.")
    try:
        payload = json.loads(request.body)
        token = reader_token_from(payload)
    except (ValueError, RecursionError) as error:
        message = str(error) if isinstance(error, PredictionInvalid) else "The body is not valid JSON."
        return _error(400, "invalid_prediction", message)
    limited = prediction_rate_check(reader=reader_hash(token), address=request.META.get("REMOTE_ADDR") or "unknown")
    if limited is not None:
        whose = "this browser" if limited.who == "reader" else "your address"
        return _error(429, "rate_limited", f"Too many predictions from {whose} just now; try again in "
                                           f"{limited.retry_after_s} s.", retry_after_s=limited.retry_after_s)
    try:
        recorded = prediction_record(payload=payload, user=request.user)
    except PredictionInvalid as error:
        return _error(400, "invalid_prediction", str(error))
    return JsonResponse({"measured": recorded.measured, "close": recorded.close, "explain": recorded.explain}, status=201)
