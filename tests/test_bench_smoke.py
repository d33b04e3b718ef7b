"""`make bench` at tiny sizes, so the benchmark scripts cannot rot."""
import subprocess
import sys

import pytest
from django.conf import settings

pytestmark = [pytest.mark.slow, pytest.mark.own_site]


def test_bench_smoke_writes_every_section(tmp_path):
    out = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = out.read_text()
    for heading in ("## Machine", "## 1. Pages", "## 2. Websocket viewers", "## 3. Demo fidelity at scale",
                    "## 4. Job queue", "## 5. Race", "## 6. Memory", "## 7. Parallelism", "## 8. Playground",
                    "## 9. One web process or two"):
        assert heading in report
    assert "Finished: **10 of 10**" in report
    assert "not measured" not in report, report
