"""Demo blocks inside lesson Markdown.

A fenced block with info string `demo SLUG` embeds a live demo; its lines are
preset parameters (`name: value`, or `name: |` and indented lines below), and a `---` line separates a second
configuration for side-by-side compare. `demo-planned SLUG` marks the place of
a demo that is not built yet. `demo-steps SLUG` embeds the step mode of a demo that declares one
(optional line: `scenario: NAME`).
Validation happens here so that the admin rejects a bad block instead of a
reader seeing a broken page.
"""
from __future__ import annotations

import html
import json
import textwrap


class DemoEmbedError(ValueError):
    """A demo block names an unknown demo or carries invalid presets."""


def parse_configs(body: str) -> list[dict[str, str]]:
    """Split a block body into one or two dicts of raw preset strings.

    `name: |` starts a multi-line value (a program): the indented lines below it, dedented, with their
    blank lines, up to the first line that is not indented.
    """
    configs: list[dict[str, str]] = [{}]
    lines = body.splitlines()
    number = 0
    while number < len(lines):
        raw_line = lines[number]
        number += 1
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line == "---":
            configs.append({})
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise DemoEmbedError(f"line {number} of the block should read `name: value`, not {line!r}")
        if value.strip() == "|":
            block = []
            while number < len(lines) and (not lines[number].strip() or lines[number].startswith((" ", "\t"))):
                block.append(lines[number])
                number += 1
            value = textwrap.dedent("\n".join(block)).strip("\n") + "\n"
            configs[-1][name.strip()] = value
            continue
        configs[-1][name.strip()] = value.strip()
    configs = [config for config in configs if config] or [{}]
    if len(configs) > 2:
        raise DemoEmbedError("a demo block holds at most two configurations (one `---` separator)")
    return configs


def render_demo_fence(*, kind: str, slug: str, body: str) -> str:
    """HTML for one demo block, or DemoEmbedError with a reason an author can act on."""
    if not slug:
        raise DemoEmbedError(f"`{kind}` needs a demo name, e.g. ```{kind} SLUG (GET /api/demos/ lists them)")
    configs = parse_configs(body)
    if kind == "demo-steps":
        return _render_steps_fence(slug=slug, configs=configs)
    if kind == "demo-planned":
        return (
            f'<aside class="demo-planned"><p><strong>Live demo coming here:</strong> '
            f"<code>{html.escape(slug)}</code>.</p></aside>\n"
        )
    from demos.registry import get_demo

    demo = get_demo(slug)
    if demo is None:
        raise DemoEmbedError(f"there is no demo called {slug!r}")
    from demos.params import ParamError, validate_params

    checked = []
    for config in configs:
        try:
            checked.append(validate_params(demo, config, from_text=True))
        except ParamError as error:
            raise DemoEmbedError(f"preset for {slug!r}: {error}") from error
    configs_json = html.escape(json.dumps(checked), quote=True)
    return (
        f'<section class="demo" data-demo="{html.escape(slug)}" data-configs="{configs_json}" '
        f'aria-label="Live demo: {html.escape(demo.title)}">'
        f'<p class="demo-fallback"><strong>Live demo: {html.escape(demo.title)}.</strong> '
        f"{html.escape(demo.concept)} Running it needs JavaScript.</p></section>\n"
    )


def _render_steps_fence(*, slug: str, configs: list[dict[str, str]]) -> str:
    from demos.registry import get_demo, step_mode_of, step_modes

    demo = get_demo(slug)
    step_mode = step_mode_of(demo) if demo is not None else None
    if step_mode is None:
        have = ", ".join(sorted(step_modes())) or "no demo"
        raise DemoEmbedError(f"{slug!r} has no step mode (those that do: {have})")
    if len(configs) > 1:
        raise DemoEmbedError("a `demo-steps` block takes one configuration, no `---`")
    config = configs[0]
    unknown = set(config) - {"scenario"}
    if unknown:
        raise DemoEmbedError(f"a `demo-steps` block only takes `scenario`, not {', '.join(sorted(unknown))}")
    scenarios = step_mode.scenarios
    scenario = config.get("scenario", scenarios[0])
    if scenario not in scenarios:
        raise DemoEmbedError(f"scenario must be one of {', '.join(scenarios)}, not {scenario!r}")
    return (
        f'<section class="demo-steps" data-demo="{html.escape(slug)}" data-scenario="{html.escape(scenario)}" '
        f'data-step-mode="{html.escape(json.dumps(step_mode.text), quote=True)}" '
        f'aria-label="{html.escape(step_mode.label)}">'
        f'<p class="demo-fallback">{html.escape(step_mode.fallback)} It needs JavaScript.</p></section>\n'
    )
