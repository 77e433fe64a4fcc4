"""`core.html.escape_text` writes exactly what `markupsafe.escape` writes, as a plain str."""
from __future__ import annotations

from decimal import Decimal

import pytest
from markupsafe import Markup, escape

from core.html import escape_text

TRICKY = ["", "plain", "Bērziņš & Co", "<script>alert('x')</script>", '"quoted" \'single\'',
          "a&amp;b", "Ғалым <b>", "\u0000\ud7ff", "😀 > 1", "x" * 5000]


@pytest.mark.parametrize("value", TRICKY)
def test_text_is_escaped_exactly_as_markupsafe_escapes_it(value):
    escaped = escape_text(value)
    assert type(escaped) is str
    assert escaped == str(escape(value))


def test_markup_and_other_values_behave_as_with_markupsafe():
    assert escape_text(Markup("<b>ours</b>")) == "<b>ours</b>"
    assert escape_text(7) == "7"
    assert escape_text(Decimal("1.50")) == "1.50"
    assert escape_text(None) == "None"  # as markupsafe: callers write `value or ""`


def test_a_str_subclass_is_escaped_too():
    class Name(str):
        pass

    assert escape_text(Name("<i>")) == "&lt;i&gt;"


def test_option_tags_escape_values_and_labels_and_mark_the_selected_one_by_its_text():
    from core.html import option_tags

    html = option_tags([(1, "Anna"), (12, 'Ilze "<b>" & co'), ("me", "Me")], "12")
    assert isinstance(html, Markup)
    assert html == ('<option value="1">Anna</option>'
                    '<option value="12" selected>Ilze &#34;&lt;b&gt;&#34; &amp; co</option>'
                    '<option value="me">Me</option>')
    assert "selected" not in option_tags([(1, "Anna")])
    assert "selected" not in option_tags([(1, "Anna")], "")
    assert option_tags([('"><script>', "x")]) == (
        '<option value="&#34;&gt;&lt;script&gt;">x</option>')
