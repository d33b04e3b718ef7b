"""An author's Markdown never smuggles script into a reader's page."""
from html.parser import HTMLParser

import pytest

from lessons.rendering import render_lesson_markdown

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '<svg onload="alert(1)"></svg>',
    '<iframe src="https://evil.example"></iframe>',
    '<div onclick="alert(1)">hi</div>',
    "<style>body{display:none}</style>",
    '<a href="&#106;avascript:alert(1)">x</a>',
    "[x](&#106;avascript:alert(1))",
    '<body onload="alert(1)">',
    '<form action="https://evil.example"><input name=a></form>',
    "```html\n<script>alert(1)</script>\n```",
    # A few from the usual XSS cheat sheets.
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    '<IMG SRC="jav&#x09;ascript:alert(1);">',
    "<a href=\"  javascript:alert(1)\">x</a>",
    "[x](javascript&colon;alert(1))",
    "[x](  javascript:alert(1)  )",
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    '<details open ontoggle=alert(1)>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="data:text/html,<script>alert(1)</script>">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<video><source onerror="alert(1)"></video>',
    '![x](x" onerror="alert(1))',
    '[x](vbscript:msgbox(1))',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
]


class ElementCollector(HTMLParser):
    """The elements and attributes a browser would build from the HTML."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_script_handler_or_dangerous_url_survives(payload):
    collector = ElementCollector()
    collector.feed(render_lesson_markdown(f"Intro\n\n{payload}\n\nOutro").html)
    for tag, attrs in collector.elements:
        assert tag not in {"script", "iframe", "style", "form", "svg", "body", "input", "object", "embed", "meta", "base", "math", "details", "video"}
        assert not [name for name in attrs if name.lower().startswith("on")]
        for name in ("href", "src"):
            url = (attrs.get(name) or "").strip().lower()
            assert not url.startswith(("javascript:", "data:", "vbscript:")), (tag, attrs)


def test_code_blocks_are_highlighted_and_escaped():
    html = render_lesson_markdown("```python\nasync def f():\n    return '<b>'\n```").html
    assert 'class="highlight"' in html
    assert '<span class="k">async</span>' in html
    assert "&lt;b&gt;" in html


def test_ordinary_markdown_survives():
    rendered = render_lesson_markdown("## Waiting\n\nSome *text* with [a link](https://example.com).\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert '<h2 id="waiting">Waiting</h2>' in rendered.html
    assert "<em>text</em>" in rendered.html
    assert 'href="https://example.com"' in rendered.html
    assert "<table>" in rendered.html
    assert rendered.toc == [{"level": 2, "id": "waiting", "text": "Waiting", "html": "Waiting"}]


def test_contents_show_inline_code_as_code_and_escape_the_rest():
    rendered = render_lesson_markdown("## Why `await` <matters>\n\nText.")
    assert rendered.toc[0]["text"] == "Why await <matters>"
    assert rendered.toc[0]["html"] == "Why <code>await</code> &lt;matters&gt;"
