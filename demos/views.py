"""HTTP side of the demo engine: the demo list, recorded runs, the replay page, the "Edit and run" page."""
import inspect
import json
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

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


def _run_or_404(run_id) -> Run:
    return get_object_or_404(Run, id=run_id)


def run_detail(request, run_id):
    """GET /api/runs/RUN_ID/: a recorded run, events included."""
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
    })


def _program_params(demo) -> list:
    """A demo's multi-line text parameters: the programs a reader wrote (shown on the replay page, even without JS)."""
    return [param for param in demo.params if getattr(param, "type", "") == "text" and getattr(param, "multiline", False)]


def run_replay(request, run_id):
    """/runs/RUN_ID/: the same widget, replaying a recorded run."""
    run = _run_or_404(run_id)
    demo = get_demo(run.demo)
    params = run.params if isinstance(run.params, dict) else {}
    programs = [(param.label or param.name, params[param.name]) for param in (_program_params(demo) if demo else ())
                if isinstance(params.get(param.name), str)]
    return render(request, "demos/replay.html", {"run": run, "demo": demo, "programs": programs})


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
