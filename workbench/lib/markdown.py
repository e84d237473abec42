"""Model output (Markdown) rendered to HTML that is safe to put in a page.

Model output is untrusted: a prompt, a document or another model can make it say anything,
``<script>`` included. Three layers keep it inert:

1. markdown-it runs with raw HTML off, so HTML in the Markdown comes out as visible text;
2. images are never loaded: an image becomes a plain link (a remote image is the classic way
   to make a browser leak a conversation to a third party, through its URL);
3. the result goes through nh3 with a short allow-list of tags, attributes, classes and URL
   schemes (http, https, mailto), whatever the first two did.

Code blocks are highlighted on the server by Pygments into CSS classes (``static/css/
pygments.css``, made by :func:`pygments_css`), so no script is needed to read them.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# Highlighting is linear but not cheap; past this size a block is shown as plain text.
MAX_HIGHLIGHT_CHARS = 50_000
LIGHT_STYLE = "friendly"
DARK_STYLE = "github-dark"
SCOPE = ".md .highlight"

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "span",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
# Dropped with everything inside them (the other unknown tags are dropped, their text kept).
DROPPED_WITH_CONTENT = {
    "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
    "frame", "frameset", "noembed", "textarea", "title", "xmp",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
    "pre": {"data-lang"},
}
# Classes are allowed per value, here and not in ALLOWED_ATTRIBUTES (nh3 insists on one place).
ALLOWED_CLASSES = {
    "span": {cls for cls in STANDARD_TYPES.values() if cls},
    "pre": {"highlight"},
    "a": {"md-image"},
}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"
_URL_PREFIXES = ("http://", "https://", "mailto:")


def _keep_absolute_urls(tag: str, attribute: str, value: str) -> str | None:
    """Drop relative links too: a model has no business linking into this site's own pages."""
    if attribute == "href" and not value.strip().lower().startswith(_URL_PREFIXES):
        return None
    return value


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags=DROPPED_WITH_CONTENT,
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_keep_absolute_urls,
    allowed_classes=ALLOWED_CLASSES,
    filter_style_properties={"text-align"},
    url_schemes=URL_SCHEMES,
    link_rel=LINK_REL,
    strip_comments=True,
)


def _highlight(code: str, lang: str, attrs: Any) -> str:
    """A fenced block as ``<pre class="highlight">``; markdown-it uses output starting with
    ``<pre`` as it is."""
    label = html.escape(lang or "", quote=True)
    body = html.escape(code)
    if lang and len(code) <= MAX_HIGHLIGHT_CHARS:
        try:
            lexer = get_lexer_by_name(lang, stripnl=False, ensurenl=False)
        except ClassNotFound:
            pass
        else:
            body = pygments_highlight(code, lexer, _formatter())
    data_lang = f' data-lang="{label}"' if label else ""
    return f'<pre class="highlight"{data_lang}><code>{body}</code></pre>\n'


@lru_cache(maxsize=1)
def _formatter() -> HtmlFormatter:  # type: ignore[type-arg]
    return HtmlFormatter(nowrap=True)


def _render_image_as_link(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return (
        f'<a class="md-image" href="{html.escape(str(src), quote=True)}">'
        f"[image: {html.escape(alt)}]</a>"
    )


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _render_image_as_link)
    return md


def sanitize_html(fragment: str) -> str:
    """Anything HTML-shaped through the allow-list (exposed for the tests and for callers that
    already have HTML)."""
    return _cleaner.clean(fragment)


def render_markdown(text: str) -> str:
    """Model output as safe HTML, to wrap in an element with the ``md`` class."""
    if not text:
        return ""
    return sanitize_html(_parser().render(text))


def pygments_css() -> str:
    """The stylesheet for highlighted code, light and dark (``static/css/pygments.css``)."""
    light = HtmlFormatter(style=LIGHT_STYLE).get_token_style_defs(SCOPE)
    dark = HtmlFormatter(style=DARK_STYLE).get_token_style_defs(SCOPE)
    lines = [
        "/* Generated by workbench.lib.markdown.pygments_css(); do not edit by hand.",
        "   Regenerate: python manage.py pygments_css */",
        f"/* light: Pygments {LIGHT_STYLE} */",
        *light,
        f"/* dark: Pygments {DARK_STYLE} */",
        "@media (prefers-color-scheme: dark) {",
        *(f"  {rule}" for rule in dark),
        "}",
    ]
    return "\n".join(lines) + "\n"
