"""Lighthouse on every lesson page of a site started as `make run` starts it: `make lighthouse`.

    python -m bench.lighthouse [--out docs/lighthouse.md] [--url http://127.0.0.1:8000] [--only race-conditions ...]

Lighthouse (npm) is installed on first use into var/lighthouse, not into the
project's own node_modules: the test suite does not need its two hundred
packages. It drives Debian's Chromium with the same flags as the browser
tests, with its default mobile emulation and simulated throttling, and
reports the performance, accessibility and best-practices scores of each page
with the audits that cost points.

Each page is audited `--runs` times (5 by default), as Lighthouse's own
guide to variability advises (docs/variability.md in its repository: the
median of five runs varies about half as much as one run). Three were not
enough on this kind of virtual machine, whose host changes the speed of its
cores from one moment to the next: in one sitting three pages in a row had
two slow audits of three (74, 84, 97). Lighthouse's own measure of the
machine's speed in each audit (`benchmarkIndex`) is reported beside the
scores, so a slow sitting shows as one. The performance score
shown is the median run's, with every run's score beside it, and the audits
that lost points are that run's; accessibility and best practices are the
lowest of the runs, since they should not move at all. The load average is
printed too: the performance score moves with it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

from bench.site import BASE_DIR, start_site

LIGHTHOUSE_VERSION = "12.8.2"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROME_FLAGS = ("--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
                "--disable-component-update --disable-sync --disable-dev-shm-usage")
CATEGORIES = ("performance", "accessibility", "best-practices")
TARGETS = {"performance": 95, "accessibility": 100, "best-practices": 100}
ATTEMPTS = 4  # of one audit, when Lighthouse fails to record its trace


def lighthouse_binary() -> Path:
    """The lighthouse command, installed into var/lighthouse the first time."""
    prefix = BASE_DIR / "var" / "lighthouse"
    binary = prefix / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
                        f"lighthouse@{LIGHTHOUSE_VERSION}"], check=True, stdout=subprocess.DEVNULL)
    return binary


def lesson_urls(site_url: str) -> list[str]:
    """Every lesson and reference page the index links to, in its order."""
    index = urlopen(site_url + "/", timeout=10).read().decode()
    paths = list(dict.fromkeys(re.findall(r'href="(/[a-z0-9-]+/[a-z0-9-]+/)"', index)))
    return [site_url + path for path in paths]


def audit(binary: Path, url: str, report_dir: Path) -> dict:
    """One Lighthouse run: the category scores (0-100) and the audits that lost points."""
    out = report_dir / (re.sub(r"[^a-z0-9]+", "-", url.split("//", 1)[1]).strip("-") + ".json")
    command = [str(binary), url, "--quiet", f"--chrome-flags={CHROME_FLAGS}",
               f"--only-categories={','.join(CATEGORIES)}", "--output=json", f"--output-path={out}"]
    # Lighthouse now and then loses its own trace (NO_NAVSTART), even on an idle machine and twice running:
    # a few more tries, a moment apart, then give up. A lost trace measures nothing, so retrying hides no score.
    for attempt in range(1, ATTEMPTS + 1):
        finished = subprocess.run(command, env={**os.environ, "CHROME_PATH": CHROMIUM}, timeout=300)
        if finished.returncode == 0:
            break
        print(f"lighthouse {url}: exit {finished.returncode} (attempt {attempt} of {ATTEMPTS})", file=sys.stderr)
        time.sleep(2)
    else:
        raise RuntimeError(f"Lighthouse failed {ATTEMPTS} times on {url}; its messages are above")
    report = json.loads(out.read_text())
    scores = {name: round(100 * (report["categories"][name]["score"] or 0)) for name in CATEGORIES}
    lost = []
    for category in CATEGORIES:
        for ref in report["categories"][category]["auditRefs"]:
            found = report["audits"][ref["id"]]
            if ref.get("weight", 0) > 0 and found.get("score") is not None and found["score"] < 0.9:
                lost.append(f"{found['title']} ({found.get('displayValue', '').strip() or round(found['score'], 2)})")
    return {"url": url, "scores": scores, "lost": lost,
            "benchmark_index": report.get("environment", {}).get("benchmarkIndex")}


def median_of(runs: list[dict]) -> dict:
    """One page's result from several audits: the median run by performance, every performance score beside it,
    and the lowest accessibility and best-practices scores of all the runs."""
    ordered = sorted(runs, key=lambda run: run["scores"]["performance"])
    median = ordered[(len(ordered) - 1) // 2]  # of an even count, the lower middle: never the kinder one
    scores = {**median["scores"], **{name: min(run["scores"][name] for run in runs)
                                     for name in CATEGORIES if name != "performance"}}
    return {"url": median["url"], "scores": scores, "lost": median["lost"],
            "performance_runs": [run["scores"]["performance"] for run in runs],
            "benchmark_indexes": [index for run in runs if (index := run.get("benchmark_index")) is not None]}


def write(results: list[dict], out: Path, load: tuple[float, float, float],
          load_before: tuple[float, float, float] | None = None, runs: int = 1) -> None:
    lines = ["# Lighthouse on every lesson page", "",
             f"Run {datetime.date.today().isoformat()} with `make lighthouse` (Lighthouse {LIGHTHOUSE_VERSION}, Debian "
             f"Chromium, mobile emulation with simulated throttling), against a site started as `make run` starts it "
             f"on this 2-core machine. Load average (1 / 5 / 15 min) "
             + (f"when it started: {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f}; " if load_before else "")
             + f"when it ended: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.",
             f"Targets (issue 17): performance >= {TARGETS['performance']}, accessibility and best practices "
             f"{TARGETS['accessibility']}.", "",
             f"Each page was audited {runs} time{'s' if runs != 1 else ''}: performance is the median run's "
             "(every run's score in parentheses, in the order they ran) and the audits that lost points are that run's; "
             "accessibility and best practices are the lowest of the runs.", "",
             "| Page | Performance | Accessibility | Best practices | Audits that lost points (median run) |",
             "|---|---:|---:|---:|---|"]
    for result in results:
        scores = result["scores"]
        page = "/" + result["url"].split("/", 3)[-1]
        every_run = result.get("performance_runs", [scores["performance"]])
        performance = f"{scores['performance']}" + (f" ({', '.join(map(str, every_run))})" if len(every_run) > 1 else "")
        lines.append(f"| `{page}` | {performance} | {scores['accessibility']} | {scores['best-practices']} | "
                     f"{'; '.join(result['lost']) or '-'} |")
    missed = [result for result in results
              if any(result["scores"][name] < target for name, target in TARGETS.items())]
    lines += ["", f"Pages below a target: {len(missed)} of {len(results)}."
              + ("" if not missed else " " + ", ".join(f"`{r['url'].split('/', 3)[-1]}`" for r in missed) + ".")]
    indexes = sorted(index for result in results for index in result.get("benchmark_indexes", []))
    if indexes:
        lines += ["", f"Lighthouse's measure of this machine's speed in each audit (`benchmarkIndex`, higher is faster), "
                      f"over all {len(indexes)} audits: lowest {indexes[0]:.0f}, median {indexes[len(indexes) // 2]:.0f}, "
                      f"highest {indexes[-1]:.0f}."]
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(BASE_DIR / "docs" / "lighthouse.md"))
    parser.add_argument("--url", help="a site already running; default: start one as `make run` does")
    parser.add_argument("--only", nargs="+", metavar="WORD",
                        help="audit only the pages whose address contains one of these words (a quick before/after)")
    parser.add_argument("--runs", type=int, default=5, help="audits of each page; the median one is reported")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    binary = lighthouse_binary()
    site = None
    if args.url:
        site_url = args.url.rstrip("/")
    else:
        var_root = Path(tempfile.mkdtemp(prefix="lighthouse-", dir=BASE_DIR / "var"))
        site = start_site(var_root / "site", extra_env={"DEBUG": "0", "SECRET_KEY": "bench-only-" + os.urandom(24).hex()})
        site_url = site.url
    try:
        report_dir = Path(tempfile.mkdtemp(prefix="lighthouse-reports-", dir=BASE_DIR / "var"))
        urls = [site_url + "/", *lesson_urls(site_url)]
        if args.only:
            urls = [url for url in urls if any(word in url.split("//", 1)[1] for word in args.only)]
        load_before = os.getloadavg()
        results = []
        for url in urls:
            audits = []
            for number in range(1, args.runs + 1):
                print(f"lighthouse {url} ({number} of {args.runs})", file=sys.stderr)
                audits.append(audit(binary, url, report_dir))
            results.append(median_of(audits))
        write(results, Path(args.out), os.getloadavg(), load_before, runs=args.runs)
    finally:
        if site is not None:
            site.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
