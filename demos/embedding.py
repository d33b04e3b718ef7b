"""Demo blocks inside lesson Markdown.

A fenced block with info string `demo SLUG` embeds a live demo; its lines are
preset parameters (`name: value`, or `name: |` and indented lines below), and a `---` line separates a second
configuration for side-by-side compare. `demo-planned SLUG` marks the place of
a demo that is not built yet. `demo-steps SLUG` embeds the step mode of a demo that declares one
(optional line: `level: NAME`, the level the reader starts on; `scenario: NAME` is its older spelling).
Validation happens here so that the admin rejects a bad block instead of a
reader seeing a broken page. `embed_demo_fence` also hands back what it parsed
(the demo, its checked presets, whether it compares two), so the blocks that
follow a demo, such as predictions, can be checked against it.
"""
from __future__ import annotations

import difflib
import html
import json
import textwrap
from dataclasses import dataclass
from typing import Any

from demos.base import Demo


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


def demo_block_id(block: int) -> str:
    """The anchor of a lesson's demo block number `block` (1-based, in page order): stable while blocks keep their order."""
    return f"demo-{block}"


def demo_block_marker(*, block: int, slug: str) -> str:
    """The text that opens demo block `block` of demo `slug` in a rendered lesson (how a run's origin is checked)."""
    return f'<section class="demo" id="{demo_block_id(block)}" data-demo="{html.escape(slug)}"'


@dataclass(frozen=True)
class EmbeddedDemo:
    """One checked demo block: its HTML and, for a `demo` block, the demo and its presets filled in."""

    kind: str
    slug: str
    html: str
    demo: Demo | None = None
    configs: tuple[dict[str, Any], ...] = ()

    @property
    def compare(self) -> bool:
        """Two configurations: the widget opens in side-by-side compare."""
        return len(self.configs) == 2


def render_demo_fence(*, kind: str, slug: str, body: str, section_id: str = "") -> str:
    """HTML for one demo block, or DemoEmbedError with a reason an author can act on."""
    return embed_demo_fence(kind=kind, slug=slug, body=body, section_id=section_id).html


def embed_demo_fence(*, kind: str, slug: str, body: str, section_id: str = "") -> EmbeddedDemo:
    """Check one demo block and build its HTML (with `id="section_id"` when given); DemoEmbedError if it is wrong."""
    if not slug:
        raise DemoEmbedError(f"`{kind}` needs a demo name, e.g. ```{kind} SLUG (GET /api/demos/ lists them)")
    configs = parse_configs(body)
    id_attribute = f' id="{html.escape(section_id)}"' if section_id else ""
    if kind == "demo-steps":
        return EmbeddedDemo(kind=kind, slug=slug, html=_render_steps_fence(slug=slug, configs=configs, id_attribute=id_attribute))
    if kind == "demo-planned":
        return EmbeddedDemo(kind=kind, slug=slug, html=(
            f'<aside class="demo-planned"{id_attribute}><p><strong>Live demo coming here:</strong> '
            f"<code>{html.escape(slug)}</code>.</p></aside>\n"
        ))
    from demos.registry import get_demo

    demo = get_demo(slug)
    if demo is None:
        raise DemoEmbedError(f"there is no demo called {slug!r}{_did_you_mean(slug)}")
    from demos.params import ParamError, validate_params

    checked = []
    for config in configs:
        try:
            checked.append(validate_params(demo, config, from_text=True))
        except ParamError as error:
            raise DemoEmbedError(f"preset for {slug!r}: {error}") from error
    configs_json = html.escape(json.dumps(checked), quote=True)
    # The id comes first, in the order demo_block_marker writes it: a run's origin is checked against it.
    opening = (f'<section class="demo" id="{html.escape(section_id)}" data-demo="{html.escape(slug)}"' if section_id
               else f'<section class="demo" data-demo="{html.escape(slug)}"')
    return EmbeddedDemo(kind=kind, slug=slug, demo=demo, configs=tuple(checked), html=(
        f'{opening} data-configs="{configs_json}" '
        f'aria-label="Live demo: {html.escape(demo.title)}">'
        f'<p class="demo-fallback"><strong>Live demo: {html.escape(demo.title)}.</strong> '
        f"{html.escape(demo.concept)} Running it needs JavaScript.</p></section>\n"
    ))


def _did_you_mean(slug: str) -> str:
    from demos.registry import DEMOS

    close = difflib.get_close_matches(slug, list(DEMOS), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else " (GET /api/demos/ lists them)"


def _render_steps_fence(*, slug: str, configs: list[dict[str, str]], id_attribute: str) -> str:
    from demos.registry import get_demo, step_mode_of, step_modes

    demo = get_demo(slug)
    step_mode = step_mode_of(demo) if demo is not None else None
    if step_mode is None:
        have = ", ".join(sorted(step_modes())) or "no demo"
        raise DemoEmbedError(f"{slug!r} has no step mode (those that do: {have})")
    if len(configs) > 1:
        raise DemoEmbedError("a `demo-steps` block takes one configuration, no `---`")
    config = configs[0]
    unknown = set(config) - {"level", "scenario"}
    if unknown:
        raise DemoEmbedError(f"a `demo-steps` block only takes `level`, not {', '.join(sorted(unknown))}")
    if len(config) > 1:
        raise DemoEmbedError("a `demo-steps` block takes `level` once (`scenario` is its older name), not both")
    scenarios = step_mode.scenarios
    key, scenario = next(iter(config.items()), ("level", scenarios[0]))
    if scenario not in scenarios:
        raise DemoEmbedError(f"{key} must be one of {', '.join(scenarios)}, not {scenario!r}")
    return (
        f'<section class="demo-steps" data-demo="{html.escape(slug)}" data-scenario="{html.escape(scenario)}" '
        f'data-step-mode="{html.escape(json.dumps(step_mode.text), quote=True)}" '
        f'aria-label="{html.escape(step_mode.label)}"{id_attribute}>'
        f'<p class="demo-fallback">{html.escape(step_mode.fallback)} It needs JavaScript.</p></section>\n'
    )
