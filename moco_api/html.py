"""Render MOCO's HTML note text as plain text.

MOCO stores comment (note) text as HTML limited to ``div, strong, em, u, pre, ul, ol, li, br``
(reference/moco-api.md §6.3). A Contacts API note is plain text, so the tap adds ``text_plain``
next to MOCO's own ``text``. Only the standard library's :mod:`html.parser` is used.

What a caller may rely on (:func:`html_to_text`):

- block elements (``div``, ``p``, ``pre``, ``ul``, ``ol``, ``li``, headings, ``blockquote``,
  table rows …) start and end on their own line; ``<br>`` is a line break;
- every ``<li>`` starts with ``"- "``, indented by two spaces per enclosing list level;
- entities and character references are decoded (``&amp;`` → ``&``, ``&#8364;`` → ``€``);
- runs of whitespace collapse to one space, lines carry no leading or trailing blanks, at most
  one empty line separates paragraphs, and the result has no leading or trailing blank lines;
- whitespace inside ``<pre>`` is kept as written;
- other tags (``strong``, ``em``, ``u``, unknown ones) are dropped, their text kept;
  the content of ``script`` and ``style`` is dropped;
- text without any tag is treated as plain text: its line breaks are kept.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from typing_extensions import override

__all__ = ["html_to_text", "same_text", "text_to_html"]

_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tr",
        "ul",
    }
)
_LIST_TAGS = frozenset({"ul", "ol"})
_DROPPED_CONTENT_TAGS = frozenset({"script", "style", "head", "title"})
_CELL_TAGS = frozenset({"td", "th"})
_TAG_PATTERN = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>")
_SPACES = re.compile(r"[ \t\r\f\v\n\u00a0]+")
# Whitespace that must survive the tidying (inside <pre>, list indentation) is written as these
# private-use stand-ins while the text is built and turned back into blanks at the very end.
_KEPT_SPACE, _KEPT_TAB = "\ue000", "\ue001"


def _kept(text: str) -> str:
    return text.replace(" ", _KEPT_SPACE).replace("\t", _KEPT_TAB)


class _TextCollector(HTMLParser):
    """Collects text and line structure while the parser walks the markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.list_depth = 0
        self.pre_depth = 0
        self.dropped_depth = 0

    def _at_line_start(self) -> bool:
        for part in reversed(self.parts):
            stripped = part.strip(" \t")
            if stripped:
                return stripped.endswith("\n")
        return True

    def _line_break(self) -> None:
        if not self._at_line_start():
            self.parts.append("\n")

    @override
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_CONTENT_TAGS:
            self.dropped_depth += 1
            return
        if tag == "br":
            self.parts.append("\n")
            return
        if tag in _CELL_TAGS and not self._at_line_start():
            self.parts.append(" ")
        if tag in _BLOCK_TAGS:
            self._line_break()
        if tag in _LIST_TAGS:
            self.list_depth += 1
        elif tag == "li":
            self.parts.append(_kept("  " * max(self.list_depth - 1, 0)) + "- ")
        elif tag == "pre":
            self.pre_depth += 1

    @override
    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self._line_break()

    @override
    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED_CONTENT_TAGS:
            self.dropped_depth = max(self.dropped_depth - 1, 0)
            return
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if tag in _LIST_TAGS and self.list_depth:
            self.list_depth -= 1
        if tag in _BLOCK_TAGS:
            self._line_break()

    @override
    def handle_data(self, data: str) -> None:
        if self.dropped_depth:
            return
        if self.pre_depth:
            # Inside <pre> line breaks are real and blanks are kept as written.
            self.parts.append(_kept(data.replace("\r\n", "\n").replace("\r", "\n")))
            return
        self.parts.append(_SPACES.sub(" ", data))


def _tidy(text: str) -> str:
    """Collapse blanks, trim lines, keep at most one empty line, restore kept whitespace."""
    tidy: list[str] = []
    for raw_line in text.split("\n"):
        line = re.sub(r"[ \t]+", " ", raw_line).strip(" \t")
        if not line:
            if tidy and tidy[-1]:
                tidy.append("")
            continue
        tidy.append(line)
    while tidy and not tidy[-1]:
        tidy.pop()
    return "\n".join(tidy).replace(_KEPT_SPACE, " ").replace(_KEPT_TAB, "\t")


def _plain_text_to_text(text: str) -> str:
    return _tidy("\n".join(_SPACES.sub(" ", html.unescape(line)) for line in text.splitlines()))


def html_to_text(markup: str | None) -> str | None:
    """Return ``markup`` (MOCO note HTML) as plain text; ``None`` stays ``None``.

    See the module docstring for the rules. The function never raises on malformed markup:
    unknown or unbalanced tags are ignored and their text kept.
    """
    if markup is None:
        return None
    if not _TAG_PATTERN.search(markup):
        return _plain_text_to_text(markup)
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    return _tidy("".join(collector.parts))


def text_to_html(text: str) -> str:
    """Plain text as MOCO comment HTML that shows it as written.

    Markup in it (``<script>``, ``<b>``) is escaped so that it arrives as visible text; line
    breaks become ``<br>``.
    """
    escaped = html.escape(text.strip(), quote=False)
    return "<br>".join(escaped.splitlines())


def same_text(a: str | None, b: str | None) -> bool:
    """Whether two plain texts read the same once whitespace is collapsed per line.

    That is how :func:`html_to_text` renders MOCO's HTML.
    """

    def lines(value: str | None) -> list[str]:
        return [" ".join(line.split()) for line in (value or "").strip().splitlines()]

    return [line for line in lines(a) if line] == [line for line in lines(b) if line]
