"""Markdown to safe HTML, once, when a lesson is saved.

markdown-it-py parses (raw HTML off), Pygments highlights fenced code, demo
fences become widget placeholders, and nh3 sanitises the result so that no
script, event handler, `javascript:` or `data:` URL from an author reaches a
reader. The table of contents comes from the same parse.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


def _highlight(code: str, language: str, attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    body = highlight(code, lexer, HtmlFormatter(nowrap=True))
    label = html.escape(language or "text")
    return f'<pre class="highlight" data-lang="{label}"><code>{body}</code></pre>'


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
                block = len(demos_seen) + 1 if words[0] == "demo" else None
                rendered = render_demo_fence(kind=words[0], slug=slug, body=token.content, block=block)
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
            text = tokens[index + 1].content
            toc.append({"level": int(token.tag[1]), "id": token.attrGet("id"), "text": text})
    raw_html = md.renderer.render(tokens, md.options, {})
    clean_html = nh3.clean(
        raw_html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES | {"pre": {"class", "data-lang"}},
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return RenderedLesson(html=clean_html, toc=toc, demo_slugs=demos_seen)
