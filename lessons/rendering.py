"""Markdown to safe HTML, once, when a lesson is saved.

markdown-it-py parses (raw HTML off), Pygments highlights fenced code, demo
fences become widget placeholders, and nh3 sanitises the result so that no
script, event handler, `javascript:` or `data:` URL from an author reaches a
reader. The table of contents comes from the same parse.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import nh3
from django.utils.text import slugify
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.anchors import anchors_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from demos.embedding import DemoEmbedError, render_demo_fence

# What a rendered lesson may contain; everything else is stripped.
ALLOWED_TAGS = {
    "a", "abbr", "blockquote", "br", "code", "del", "div", "em", "h2", "h3", "h4", "h5", "h6",
    "hr", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul", "section", "aside", "figure", "figcaption", "noscript",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id"},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "section": {"data-demo", "data-configs", "data-scenario", "data-step-mode", "aria-label"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}

DEMO_FENCES = {"demo", "demo-planned", "demo-steps"}


class LessonRenderError(ValueError):
    """The Markdown cannot be published as it is; the message says why."""


@dataclass(frozen=True)
class RenderedLesson:
    html: str
    toc: list[dict]
    demo_slugs: list[str]
    # Interactive blocks (predictions, check questions) as plain dicts, stored on the lesson for the server's checks.
    blocks: list[dict] = field(default_factory=list)


def _highlight(code: str, language: str, attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    body = highlight(code, lexer, HtmlFormatter(nowrap=True))
    label = html.escape(language or "text")
    # Focusable, so a keyboard reader can scroll a long line into view (axe: scrollable-region-focusable).
    return (f'<pre class="highlight" data-lang="{label}" tabindex="0" role="region" aria-label="Code ({label})">'
            f"<code>{body}</code></pre>")


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": True, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.use(anchors_plugin, min_level=2, max_level=3, slug_func=lambda text: slugify(text) or "section")
    return md


FenceRule = Callable[[RendererHTML, Sequence[Token], int, OptionsDict, EnvType], str]


def _render_fence(demos_seen: list[str]) -> FenceRule:
    def fence(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        words = token.info.split()
        if words and words[0] in DEMO_FENCES:
            slug = words[1] if len(words) > 1 else ""
            try:
                rendered = render_demo_fence(kind=words[0], slug=slug, body=token.content)
            except DemoEmbedError as error:
                line = (token.map[0] + 1) if token.map else "?"
                raise LessonRenderError(f"Demo block at line {line}: {error}") from error
            if words[0] == "demo":
                demos_seen.append(slug)
            return rendered
        # Any other fence: the renderer's own rule (code, highlighted through the `highlight` option).
        return renderer.fence(tokens, idx, options, env)

    return fence


def render_lesson_markdown(source: str) -> RenderedLesson:
    """Render and sanitise a lesson body; raise LessonRenderError for a bad demo block."""
    md = _markdown()
    demos_seen: list[str] = []
    md.add_render_rule("fence", _render_fence(demos_seen))
    tokens = md.parse(source)
    toc = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag in {"h2", "h3"}:
            toc.append(_toc_entry(token, tokens[index + 1]))
    raw_html = md.renderer.render(tokens, md.options, {})
    clean_html = nh3.clean(
        raw_html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES | {"pre": {"class", "data-lang", "tabindex", "role", "aria-label"}},
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return RenderedLesson(html=clean_html, toc=toc, demo_slugs=demos_seen)


def _toc_entry(heading: Token, inline: Token) -> dict:
    """One contents line: the plain text (for screen readers and tests) and the same with its inline code marked up."""
    text_parts: list[str] = []
    html_parts: list[str] = []
    for child in inline.children or []:
        if child.type == "code_inline":
            text_parts.append(child.content)
            html_parts.append(f"<code>{html.escape(child.content)}</code>")
        elif child.type in {"text", "softbreak"} or child.content:
            text_parts.append(child.content)
            html_parts.append(html.escape(child.content))
    return {"level": int(heading.tag[1]), "id": heading.attrGet("id"), "text": "".join(text_parts),
            "html": "".join(html_parts)}
