"""Edit and run: every demo offers a short program of its idea, which runs; the page opening it in the demo that
runs a reader's code is found by that demo's declared capability; a run's permalink shows the program it ran."""
import html
import json
import os
import re
import subprocess
import sys
import types

import pytest

from demos import registry
from demos.embedding import parse_configs
from demos.library import one_cook
from demos.library.playground import tracer
from demos.models import Run

pytestmark = pytest.mark.django_db

OFFERING = [demo for demo in registry.library_demos() if not getattr(demo, "runs_reader_code", False)]


def test_one_demo_declares_that_it_runs_a_readers_code():
    runner = registry.reader_code_demo()
    assert runner is not None, "no demo declares runs_reader_code = True: Edit and run has nothing to open"
    assert any(param.type == "text" and param.multiline for param in runner.params)


def test_every_other_demo_offers_a_starting_program_that_runs_to_exit_code_0(tmp_path):
    """Each program runs as the sandbox runs it (the tracer, plain Python, fd 3 on a pipe), all at once."""
    running = []
    for demo in OFFERING:
        program = registry.program_of(demo)
        assert program is not None, f"{demo.slug} declares no starting_program"
        assert 10 <= len(program.splitlines()) <= 45, f"{demo.slug}: keep the starting program short"
        folder = tmp_path / demo.slug
        folder.mkdir()
        (folder / "main.py").write_text(program)
        read_end, write_end = os.pipe()
        process = subprocess.Popen([sys.executable, "-I", "-X", "utf8", tracer.__file__, str(folder / "main.py")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder, pass_fds=(3,),
                                   preexec_fn=lambda write_end=write_end: os.dup2(write_end, 3))
        os.close(write_end)
        running.append((demo.slug, process, os.fdopen(read_end, "rb")))
    for slug, process, trace in running:
        lanes = sum(json.loads(line)["kind"] == "lane" for line in trace.read().splitlines())
        trace.close()
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, f"{slug} exited {process.returncode}: {stderr.decode()[-800:]}"
        assert stdout.strip() and lanes >= 1, slug


def test_the_registry_refuses_a_starting_program_that_is_not_a_short_runnable_program():
    declared = types.ModuleType("demos.library.declared")
    vars(declared).update({name: value for name, value in vars(one_cook).items() if not name.startswith("__")})
    registry._check(declared.__name__, declared)  # as shipped, it loads
    for program, words in [(b"print(1)", "must be a non-empty str"), ("  \n", "must be a non-empty str"),
                           ("def broken(:\n", "does not compile"), ("#\n" * 10_001, "at most 20,000")]:
        declared.starting_program = program
        with pytest.raises(registry.DemoDeclarationError, match=words):
            registry._check(declared.__name__, declared)


def test_each_offering_demo_links_to_edit_and_run_and_the_page_opens_its_program(client):
    described = {demo["slug"]: demo for demo in client.get("/api/demos/").json()["demos"]}
    runner = registry.reader_code_demo()
    assert described[runner.slug]["edit_url"] is None  # it is where the link goes
    for demo in OFFERING:
        assert described[demo.slug]["edit_url"] == f"/edit-and-run/?template={demo.slug}"
    page = client.get("/edit-and-run/?template=one-cook")
    assert page.status_code == 200
    text = page.content.decode()
    section = re.search(r'<section class="demo" data-demo="([^"]+)" data-configs="([^"]+)"', text)
    assert section and section.group(1) == runner.slug
    configs = json.loads(html.unescape(section.group(2)))
    assert configs[0]["template"] == "one-cook" and configs[0]["code"] == one_cook.starting_program
    # Without JavaScript the program is there to read.
    assert html.escape(one_cook.starting_program.splitlines()[4]) in text
    assert client.get("/edit-and-run/?template=no-such-demo").status_code == 404
    assert client.get(f"/edit-and-run/?template={runner.slug}").status_code == 404
    assert client.get("/edit-and-run/").status_code == 200  # the runner's own starting program


def test_a_recorded_programs_permalink_shows_its_code_without_javascript(client):
    runner = registry.reader_code_demo()
    code = "import asyncio\nprint('<shared>')\n"
    run = Run.objects.create(demo=runner.slug, placement=runner.placement, params={"code": code, "template": ""},
                             status=Run.Status.SUCCEEDED, summary={"text": "Your program finished."})
    page = client.get(f"/runs/{run.id}/").content.decode()
    assert '<pre class="demo-program"><code>import asyncio\nprint(&#x27;&lt;shared&gt;&#x27;)\n</code></pre>' in page


def test_a_lesson_block_holds_a_multi_line_program_under_name_bar():
    configs = parse_configs("template: one-cook\ncode: |\n  import asyncio\n\n  async def main():\n"
                            "      await asyncio.sleep(0)\nsteps: 2\n")
    assert configs == [{"template": "one-cook", "steps": "2",
                        "code": "import asyncio\n\nasync def main():\n    await asyncio.sleep(0)\n"}]
