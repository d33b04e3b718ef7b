"""HTTP side of the demo engine: the demo list, recorded runs, the replay page, the "Edit and run" page."""
import inspect
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from demos.embedding import demo_block_id
from demos.models import Run
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
