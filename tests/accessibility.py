"""axe-core (from npm, node_modules/axe-core) run inside a real page: the serious and critical findings.

Playwright injects the script itself, so contexts that run it are made with
`bypass_csp=True` (the site's policy rightly refuses inline scripts).
"""
from __future__ import annotations

from pathlib import Path

AXE_SCRIPT = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")
# Moderate in axe, but Lighthouse's accessibility score counts it, and the pages are meant to score 100.
ALSO_REPORTED = ("heading-order",)


async def serious_violations(page) -> list[str]:
    """One line per serious or critical axe finding on the page as it is now (rule, impact, first targets),
    and per heading-order finding."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE_SCRIPT))
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    lines = []
    for violation in result["violations"]:
        if violation["impact"] in SERIOUS or violation["id"] in ALSO_REPORTED:
            targets = ", ".join(str(node["target"]) for node in violation["nodes"][:3])
            lines.append(f"{violation['id']} ({violation['impact']}, {len(violation['nodes'])} nodes): {targets}")
    return lines
