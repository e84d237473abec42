"""Model output rendered as Markdown must never carry script into the page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.conf import settings

from workbench.lib.markdown import pygments_css, render_markdown, sanitize_html


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """The elements a browser would build (escaped text is not an element)."""
    parser = _Elements()
    parser.feed(html)
    return parser.elements


def handlers(html: str) -> list[str]:
    return [name for _tag, attrs in elements(html) for name in attrs if name.startswith("on")]


def test_it_renders_ordinary_markdown() -> None:
    html = render_markdown("# Title\n\nSome **bold**, *em*, `code` and ~~gone~~.\n\n- a\n- b\n")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<em>em</em>" in html
    assert "<code>code</code>" in html
    assert "<s>gone</s>" in html
    assert "<li>a</li>" in html


def test_it_shows_a_script_tag_as_text() -> None:
    html = render_markdown("before <script>alert(1)</script> after")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_shows_raw_html_in_markdown_as_text() -> None:
    html = render_markdown(
        '<div onclick="x()">hi</div>\n\n<iframe src="https://evil.test"></iframe>'
    )
    assert "<div" not in html
    assert "<iframe" not in html.lower()
    assert "&lt;iframe" in html


def test_it_never_emits_an_img_with_an_event_handler() -> None:
    html = render_markdown('<img src=x onerror="alert(1)">\n\n![x](https://a.test/x.png "t")')
    assert "img" not in [tag for tag, _attrs in elements(html)]
    assert handlers(html) == []


def test_it_turns_images_into_links_so_nothing_loads_by_itself() -> None:
    html = render_markdown("![a chart](https://tracker.test/pixel.png?leak=secret)")
    assert "<img" not in html
    assert 'href="https://tracker.test/pixel.png?leak=secret"' in html
    assert "[image: a chart]" in html


@pytest.mark.parametrize(
    "markdown",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](javascript&#58;alert(1))",
        "[click](vbscript:msgbox(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<javascript:alert(1)>",
        "![x](javascript:alert(1))",
    ],
)
def test_it_drops_script_urls(markdown: str) -> None:
    html = render_markdown(markdown)
    hrefs = [attrs.get("href") or "" for _tag, attrs in elements(html)]
    assert all(href.startswith(("http://", "https://", "mailto:")) for href in hrefs if href)


def test_it_keeps_web_and_mail_links_with_a_safe_rel() -> None:
    html = render_markdown("[site](https://example.com/a?b=1) and [mail](mailto:a@example.com)")
    assert 'href="https://example.com/a?b=1"' in html
    assert 'href="mailto:a@example.com"' in html
    assert html.count('rel="noopener noreferrer nofollow"') == 2


def test_it_drops_relative_links_into_this_site() -> None:
    html = render_markdown("[cancel](/w/acme/runs/1/cancel/)")
    assert "href" not in html


def test_it_highlights_fenced_code_with_css_classes() -> None:
    html = render_markdown("```python\ndef f():\n    return '<b>'\n```")
    assert '<pre class="highlight" data-lang="python">' in html
    assert '<span class="k">def</span>' in html
    assert "&lt;b&gt;" in html
    assert "style=" not in html  # classes only: the stylesheet colours them


def test_it_escapes_code_in_an_unknown_language() -> None:
    html = render_markdown("```nosuchlang\n<script>x</script>\n```")
    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_it_escapes_a_hostile_language_name() -> None:
    html = render_markdown('```"><script>alert(1)</script>\ncode\n```')
    assert "<script" not in html


def test_it_keeps_table_alignment_and_nothing_else_in_style() -> None:
    html = render_markdown("| a | b |\n|:-|-:|\n| 1 | 2 |")
    assert '<th style="text-align:left">a</th>' in html
    assert '<td style="text-align:right">2</td>' in html


def test_the_sanitiser_strips_what_the_renderer_never_makes() -> None:
    dirty = (
        '<a href="javascript:alert(1)" onclick="x()">a</a>'
        '<img src=x onerror="alert(1)">'
        "<script>alert(1)</script><style>body{}</style>"
        '<span class="k evil" onmouseover="x()">k</span>'
        '<td style="position:fixed">t</td>'
        '<svg onload="alert(1)"><circle/></svg>'
    )
    clean = sanitize_html(dirty)
    assert "javascript:" not in clean
    assert "<img" not in clean
    assert "<script" not in clean and "alert(1)" not in clean
    assert "<style" not in clean and "<svg" not in clean
    assert handlers(clean) == []
    assert '<span class="k">k</span>' in clean
    assert "position" not in clean


def test_it_renders_nothing_for_no_text() -> None:
    assert render_markdown("") == ""


def test_the_pygments_stylesheet_is_up_to_date() -> None:
    path = settings.BASE_DIR / "static" / "css" / "pygments.css"
    assert path.read_text() == pygments_css(), "run: python manage.py pygments_css"
