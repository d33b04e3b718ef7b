"""HTTP side of the demo engine: the demo list, recorded runs, the replay page, the "Edit and run" page."""
import contextlib
import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, JSONField, OuterRef, Value
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from pygments import highlight
from redis.exceptions import RedisError
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from demos.embedding import demo_block_id
from demos.models import Run, params_digest
from demos.params import ParamError, validate_params
from demos.registry import DEMOS, demo_module, describe, get_demo, program_of, reader_code_demo


def demo_list(request):
    """GET /api/demos/: every demo with its parameters and placement, and the limits a page's widgets must respect."""
    return JsonResponse({
        "demos": [describe(demo) for demo in DEMOS.values()],
        "limits": {"runs_per_socket": settings.DEMO_RUNS_PER_SOCKET},
    })


def demo_detail(request, slug: str):
    """GET /api/demos/SLUG/: one demo, with its source highlighted for the "code that ran" panel."""
    demo = get_demo(slug)
    if demo is None:
        raise Http404("No such demo")
    source = inspect.getsource(demo_module(demo))
    path = Path(inspect.getfile(demo_module(demo))).resolve()
    try:
        path = path.relative_to(settings.BASE_DIR)
    except ValueError:
        pass
    return JsonResponse({
        **describe(demo),
        "source_path": str(path),
        "source_html": highlight(source, PythonLexer(), HtmlFormatter(nowrap=True)),
    })


# The replay page lists this many events of each run as a table, for readers without JavaScript.
EVENTS_IN_TABLE = 50


def _run_or_404(run_id) -> Run:
    return get_object_or_404(Run.objects.select_related("origin_lesson__course"), id=run_id)


def _origin(run: Run, user) -> dict[str, Any] | None:
    """Where the run was started, as a link a reader may follow: only to a lesson they can see."""
    lesson = run.origin_lesson
    if lesson is None or run.origin_block is None or not (lesson.published or (user.is_active and user.is_staff)):
        return None
    return {"url": f"{lesson.get_absolute_url()}#{demo_block_id(run.origin_block)}", "lesson": lesson.title,
            "block": run.origin_block}


def _compare(run: Run, partner: Run | None) -> dict[str, Any] | None:
    if not run.compare_side:
        return None
    return {"side": run.compare_side, "partner": str(partner.id) if partner else None}


def run_detail(request, run_id):
    """GET /api/runs/RUN_ID/: a recorded run, events included, with its compare partner and where it was started."""
    run = _run_or_404(run_id)
    return JsonResponse({
        "run": str(run.id),
        "demo": run.demo,
        "placement": run.placement,
        "params": run.params,
        "status": run.status,
        "summary": run.summary,
        "events": run.events,
        "events_dropped": run.events_dropped,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "compare": _compare(run, run.compare_partner()),
        "origin": _origin(run, request.user),
    })


def _event_row(event: Any) -> dict[str, str]:
    """One event as table cells: its time, kind, lane and the rest of its fields in words."""
    if not isinstance(event, dict):
        return {"t": "", "kind": "?", "lane": "", "detail": str(event)}
    t = event.get("t")
    lane = event.get("lane")
    rest = {key: value for key, value in event.items() if key not in {"t", "kind", "lane"}}
    return {
        "t": f"{t:,.1f}" if isinstance(t, int | float) else "",
        "kind": str(event.get("kind", "")),
        "lane": str(lane + 1) if isinstance(lane, int) else "",  # lanes are numbered from 1 on screen
        "detail": ", ".join(f"{key}: {value}" for key, value in rest.items()),
    }


def _side(run: Run, tag: str) -> dict[str, Any]:
    events = run.events if isinstance(run.events, list) else []
    return {
        "run": run, "tag": tag, "summary_text": run.summary.get("text", "") if isinstance(run.summary, dict) else "",
        "events": [_event_row(event) for event in events[:EVENTS_IN_TABLE]], "event_count": len(events),
    }


def _program_params(demo) -> list:
    """A demo's multi-line text parameters: the programs a reader wrote (shown on the replay page, even without JS)."""
    return [param for param in demo.params if getattr(param, "type", "") == "text" and getattr(param, "multiline", False)]


def _programs_of(run: Run, demo) -> list[tuple[str, str]]:
    """The programs a run was given, as (label, source), from its recorded params."""
    params = run.params if isinstance(run.params, dict) else {}
    return [(param.label or param.name, params[param.name]) for param in (_program_params(demo) if demo else ())
            if isinstance(params.get(param.name), str)]


def run_replay(request, run_id):
    """/runs/RUN_ID/: the recorded run replayed; a compare run shows both of its sides, A first."""
    run = _run_or_404(run_id)
    demo = get_demo(run.demo)
    partner = run.compare_partner()
    runs = sorted([run, partner], key=lambda side: side.compare_side) if partner else [run]
    sides = [_side(side, side.compare_side if partner else "") for side in runs]
    return render(request, "demos/replay.html", {
        "run": run, "partner": partner, "demo": demo, "sides": sides, "origin": _origin(run, request.user),
        "events_in_table": EVENTS_IN_TABLE, "programs": _programs_of(run, demo),
    })


# A recording found (or not) is remembered this long: the lookup is asked exactly when the site is busiest.
RECORDING_CACHE_S = 10


def _recording_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _query_params(demo, request, name: str) -> dict[str, Any]:
    """One side's parameters from the query string (JSON), validated as the socket validates them."""
    text = request.GET.get(name, "")
    try:
        supplied = json.loads(text) if text else {}
    except ValueError:
        raise ParamError(f"`{name}` must be a JSON object of parameters") from None
    return validate_params(demo, supplied)


def _with_params(demo_slug: str, values: dict[str, Any], **filters: Any):
    """Succeeded runs of a demo with exactly these parameters (through the index on their digest), newest first."""
    wanted = Value(values, output_field=JSONField())
    return (Run.objects.alias(digest=params_digest()).filter(
        demo=demo_slug, status=Run.Status.SUCCEEDED, digest=params_digest(wanted), params=wanted, **filters)
        .order_by("-created_at"))


def _find_recording(demo, sides: list[dict[str, Any]]) -> list[Run]:
    """The newest succeeded run with these parameters; for two sides, the newest compare whose A and B both did."""
    if len(sides) == 1:
        run = _with_params(demo.slug, sides[0], compare_side="").only("id", "created_at").first()
        return [run] if run else []
    partners = _with_params(demo.slug, sides[1], compare_side="B", compare_group=OuterRef("compare_group"))
    first = (_with_params(demo.slug, sides[0], compare_side="A").filter(Exists(partners))
             .only("id", "created_at", "compare_group").first())
    if first is None:
        return []
    second = (_with_params(demo.slug, sides[1], compare_side="B", compare_group=first.compare_group)
              .only("id", "created_at").first())
    return [first, second] if second else []


def demo_recording(request, slug: str):
    """GET /api/demos/SLUG/recording/?params=JSON[&compare=JSON]: the newest recorded run of that preset.

    For a reader the site turned away as busy: the widget offers this run to watch while it waits. `params`
    (and `compare`, side B of a compare) are validated and filled in as a run's are, so key order and defaults
    do not matter. A demo that runs a reader's own program has no recordings to offer: those are its reader's.
    """
    demo = get_demo(slug)
    if demo is None:
        return _recording_error(404, "unknown_demo", "There is no demo by that name; GET /api/demos/ lists them.")
    try:
        sides = [_query_params(demo, request, "params")]
        if "compare" in request.GET:
            sides.append(_query_params(demo, request, "compare"))
    except ParamError as error:
        return _recording_error(400, "invalid_params", str(error))
    if getattr(demo, "runs_reader_code", False):
        return _recording_error(404, "no_recording", "This demo runs a reader's own program, so no recording is offered.")
    canonical = json.dumps(sides, sort_keys=True, separators=(",", ":"))
    key = f"demos:recording:{slug}:{hashlib.sha256(canonical.encode()).hexdigest()}"
    try:
        found = cache.get(key)
    except RedisError:
        found = None  # without the cache the answer still comes, from the index
    if found is None:
        runs = _find_recording(demo, sides)
        found = {"runs": [{"run": str(run.id), "side": run.compare_side, "created_at": run.created_at.isoformat(),
                           "url": f"/api/runs/{run.id}/"} for run in runs]}
        with contextlib.suppress(RedisError):
            cache.set(key, found, RECORDING_CACHE_S)
    if not found["runs"]:
        response = _recording_error(404, "no_recording", "No finished run with these settings has been recorded yet.")
    else:
        first = found["runs"][0]
        response = JsonResponse({"demo": slug, "created_at": first["created_at"], "replay_url": f"/runs/{first['run']}/",
                                 "runs": found["runs"]})
    response["Cache-Control"] = f"max-age={RECORDING_CACHE_S}"
    return response


def edit_and_run(request):
    """/edit-and-run/?template=SLUG: the demo that runs a reader's program, opened with SLUG's starting program.

    The runner is whichever demo declares `runs_reader_code`; it takes the program in its first multi-line text
    parameter and the slug it came from in `template`. Without `template` it opens with its own default program.
    """
    runner = reader_code_demo()
    if runner is None:
        raise Http404("Nothing on this site runs a reader's program")
    programs = _program_params(runner)
    slug = request.GET.get("template", "")
    source = get_demo(slug) if slug else None
    presets: dict = {}
    if slug:
        program = program_of(source) if source is not None else None
        if source is None or program is None or not programs:
            raise Http404("That demo has no program to edit and run")
        presets = {programs[0].name: program, "template": slug}
    try:
        values = validate_params(runner, presets)
    except ParamError as error:
        return HttpResponseBadRequest(str(error))
    return render(request, "demos/edit_and_run.html", {
        "runner": runner,
        "source": source,
        "program": values[programs[0].name] if programs else "",
        "configs_json": json.dumps([values]),
    })
