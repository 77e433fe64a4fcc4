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
