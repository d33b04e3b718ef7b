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
# axe reports a finding of a rule that declares its impact at that impact whatever its checks say
# (_finalizeRuleResult in axe.js), so a rule declared minor or moderate can never add a line here: it is
# switched off, which saves a third of a scan's rules and changes no result. A rule that declares no
# impact still runs.
RUN_AXE = """([serious, also]) => {
  const quiet = axe._audit.rules.filter((rule) => rule.impact && !serious.includes(rule.impact) && !also.includes(rule.id));
  const rules = Object.fromEntries(quiet.map((rule) => [rule.id, { enabled: false }]));
  return axe.run(document, { resultTypes: ["violations"], rules });
}"""


async def serious_violations(page) -> list[str]:
    """One line per serious or critical axe finding on the page as it is now (rule, impact, first targets),
    and per heading-order finding."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE_SCRIPT))
    result = await page.evaluate(RUN_AXE, [list(SERIOUS), list(ALSO_REPORTED)])
    lines = []
    for violation in result["violations"]:
        if violation["impact"] in SERIOUS or violation["id"] in ALSO_REPORTED:
            targets = ", ".join(str(node["target"]) for node in violation["nodes"][:3])
            lines.append(f"{violation['id']} ({violation['impact']}, {len(violation['nodes'])} nodes): {targets}")
    return lines
