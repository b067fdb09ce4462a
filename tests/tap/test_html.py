"""MOCO's HTML note text rendered as the plain text a Contacts API note shows."""

from __future__ import annotations

import pytest

from moco_api.html import html_to_text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        # block tags and <br> become line breaks; inline tags vanish, their text stays
        (
            "<div>Telefonat mit <strong>Zoë</strong>: Interesse.</div><div>Zweite Zeile</div>",
            "Telefonat mit Zoë: Interesse.\nZweite Zeile",
        ),
        (
            "Meeting notes:<br>- Budget confirmed<br/>- Next step",
            "Meeting notes:\n- Budget confirmed\n- Next step",
        ),
        # an empty paragraph (<div><br></div>, what MOCO's editor writes) is one empty line
        ("<div>a</div><div><br></div><div><br></div><div>b</div>", "a\n\nb"),
        # list items get "- ", nested lists are indented, ordered lists too
        (
            "<ul><li>Newsletter abbestellt</li><li>Rückruf<ul><li>im Q3</li></ul></li></ul>",
            "- Newsletter abbestellt\n- Rückruf\n  - im Q3",
        ),
        (
            "<div>Follow-up:</div><ol><li>Vertrag senden</li><li> Kick-off </li></ol>",
            "Follow-up:\n- Vertrag senden\n- Kick-off",
        ),
        # entities decoded, including &nbsp; and numeric references
        (
            "<div>Preis &amp; Laufzeit &lt;klären&gt;&nbsp;&#8364; &#x1F44D;</div>",
            "Preis & Laufzeit <klären> € 👍",
        ),
        # whitespace tidied: runs collapse, lines are trimmed, source newlines are not breaks
        ("<div>\n   viel    Platz\n\t hier  </div>", "viel Platz hier"),
        # <pre> keeps its line breaks and indentation
        (
            "<pre>Code: ABC-123\n    Zeile 2</pre><div>danach</div>",
            "Code: ABC-123\n    Zeile 2\ndanach",
        ),
        # plain text (system comments, API-written notes) keeps its own line breaks
        ("Firma angelegt.", "Firma angelegt."),
        ("Zeile 1\n\n\nZeile  2 &amp; mehr", "Zeile 1\n\nZeile 2 & mehr"),
        # unknown and unbalanced markup never raises; script content is dropped
        ("<div><span>offen<div>innen</span></div>", "offen\ninnen"),
        ("<script>alert(1)</script><u>ok</u>", "ok"),
        ("", ""),
        ("<div></div><div> </div>", ""),
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_none_stays_none() -> None:
    assert html_to_text(None) is None
