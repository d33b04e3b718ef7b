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

from demos.embedding import DemoEmbedError, EmbeddedDemo, demo_block_id, embed_demo_fence
from lessons.blocks import DEMO_KINDS, BlockErrors, near_miss, read_body
from lessons.predictions import parse_prediction, render_prediction
from lessons.quizzes import parse_quiz, render_quiz

# What a rendered lesson may contain; everything else is stripped.
ALLOWED_TAGS = {
    "a", "abbr", "blockquote", "br", "code", "del", "div", "em", "h2", "h3", "h4", "h5", "h6",
    "hr", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul", "section", "aside", "figure", "figcaption", "noscript",
    "details", "summary",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id"},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "div": {"data-prediction", "data-quiz"},
    "section": {"data-demo", "data-configs", "data-scenario", "data-step-mode", "aria-label"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}



class LessonRenderError(ValueError):
    """The Markdown cannot be published as it is. `errors` lists every problem as (line, message)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = sorted(errors, key=lambda error: error[0])
        lines = [f"line {line}: {message}" for line, message in self.errors]
        heading = f"{len(lines)} problems in this lesson:\n" if len(lines) > 1 else ""
        super().__init__(heading + "\n".join(lines))


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
    # Before the anchors rule, so the levels it gives ids to are the levels the page shows.
    md.core.ruler.push("heading_levels", lambda state: _descend_one_level_at_a_time(state.tokens))
    md.use(anchors_plugin, min_level=2, max_level=3, slug_func=lambda text: slugify(text) or "section")
    return md


FenceRule = Callable[[RendererHTML, Sequence[Token], int, OptionsDict, EnvType], str]


@dataclass
class _Blocks:
    """What the pass over a lesson's fences found: each block's HTML by token index, the stored blocks, errors."""

    html: dict[int, str] = field(default_factory=dict)
    stored: list[dict] = field(default_factory=list)
    demo_slugs: list[str] = field(default_factory=list)
    errors: BlockErrors = field(default_factory=BlockErrors)


def _read_blocks(md: MarkdownIt, tokens: Sequence[Token]) -> _Blocks:
    """Check and build every block of the lesson, in order, collecting every error instead of stopping at the first."""
    found = _Blocks()
    inline = md.renderInline
    counts = {"demo": 0, "demo-planned": 0, "demo-steps": 0, "prediction": 0, "quiz": 0}
    # The demo block a prediction belongs to: the last `demo` block, if nothing but predictions came after it.
    # (False: no demo to attach to; None: there was one, but it has an error of its own.)
    attached: EmbeddedDemo | None | bool = False
    attached_index = attached_section = None
    for index, token in enumerate(tokens):
        line = token.map[0] + 1 if token.map else 0
        words = token.info.split() if token.type == "fence" else []
        kind = words[0] if words else ""
        if token.level != 0 and token.type == "fence" and (kind in counts or near_miss(token.info)):
            found.errors.add(line, f"the ```{kind or token.info.strip()} block is inside a list or a quote; "
                                   "blocks stand on their own, unindented")
            continue
        if token.level != 0 or token.nesting == -1:
            continue
        if token.type != "fence" or kind not in counts:
            if token.type == "fence" and (problem := near_miss(token.info)):
                found.errors.add(line, problem)
            attached = False
            continue
        counts[kind] += 1
        if kind in DEMO_KINDS:
            # `demo` sections are anchored as demo_block_id says, so a replay can link back to its block.
            section_id = (demo_block_id(counts[kind]) if kind == "demo"
                          else {"demo-planned": "planned", "demo-steps": "steps"}[kind] + f"-{counts[kind]}")
            try:
                embedded = embed_demo_fence(kind=kind, slug=words[1] if len(words) > 1 else "", body=token.content,
                                            section_id=section_id)
            except DemoEmbedError as error:
                found.errors.add(line, f"{kind} block: {error}")
                attached = None if kind == "demo" else False
            else:
                found.html[index] = embedded.html
                attached = embedded if kind == "demo" else False
                if kind == "demo":
                    found.demo_slugs.append(embedded.slug)
            attached_index, attached_section = counts["demo"] - 1, section_id
            continue
        if len(words) > 1:
            found.errors.add(line, f"a {kind} block takes nothing after ```{kind}; give its id inside, as `id: {words[1]}`")
        body = read_body(token.content, first_line=line + 1, errors=found.errors, takes_items=kind == "quiz")
        if kind == "quiz":
            block = parse_quiz(body, line=line, default_id=f"quiz-{counts[kind]}", errors=found.errors)
            found.html[index] = render_quiz(block, inline=inline)
            attached = False
        else:
            if attached is False:
                found.errors.add(line, "a prediction comes right after the ```demo block it asks about "
                                       "(only blank lines or other predictions between them)")
            demo = attached if isinstance(attached, EmbeddedDemo) else None
            block = parse_prediction(body, line=line, default_id=f"prediction-{counts[kind]}", demo=demo,
                                     demo_index=attached_index if attached_index is not None else -1,
                                     section_id=attached_section or "", errors=found.errors)
            found.html[index] = render_prediction(block, inline=inline)
        found.stored.append(block)
    _check_unique_ids(found, tokens)
    return found


def _check_unique_ids(found: _Blocks, tokens: Sequence[Token]) -> None:
    taken = {str(token.attrGet("id")): token.map[0] + 1 if token.map else 0
             for token in tokens if token.type == "heading_open" and token.attrGet("id")}
    for block in found.stored:
        if block["id"] in taken:
            found.errors.add(block["line"], f"id {block['id']!r} is already used (line {taken[block['id']]}); "
                                            "give this block another `id:`")
        else:
            taken[block["id"]] = block["line"]


def _render_fence(blocks: _Blocks) -> FenceRule:
    def fence(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        if idx in blocks.html:
            return blocks.html[idx]
        # Any other fence: the renderer's own rule (code, highlighted through the `highlight` option).
        return renderer.fence(tokens, idx, options, env)

    return fence


def render_lesson_markdown(source: str) -> RenderedLesson:
    """Render and sanitise a lesson body; raise LessonRenderError listing every bad block, with its line."""
    md = _markdown()
    tokens = md.parse(source)
    blocks = _read_blocks(md, tokens)
    if blocks.errors:
        raise LessonRenderError(blocks.errors.errors)
    md.add_render_rule("fence", _render_fence(blocks))
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
    return RenderedLesson(html=clean_html, toc=toc, demo_slugs=blocks.demo_slugs, blocks=blocks.stored)


def _descend_one_level_at_a_time(tokens: Sequence[Token]) -> None:
    """Lesson headings start at h2 (the page's title is the h1) and go at most one level deeper than the one before.

    `# Part` becomes an h2 and `#### Detail` right after an h2 becomes an h3: a screen reader's list of headings
    then has no holes, and widgets, which take the level below the heading before them, follow the same rule.
    """
    previous = 1
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        level = min(max(int(token.tag[1]), 2), previous + 1)
        previous = level
        token.tag = f"h{level}"
        closing = next(t for t in tokens[index + 1:] if t.type == "heading_close")
        closing.tag = token.tag


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
