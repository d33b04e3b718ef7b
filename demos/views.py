"""HTTP side of the demo engine: the demo list, recorded runs, the replay page."""
import inspect
from pathlib import Path

from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from demos.models import Run
from demos.registry import DEMOS, demo_module, describe, get_demo


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


def run_replay(request, run_id):
    """/runs/RUN_ID/: the same widget, replaying a recorded run."""
    run = _run_or_404(run_id)
    demo = get_demo(run.demo)
    return render(request, "demos/replay.html", {"run": run, "demo": demo})
