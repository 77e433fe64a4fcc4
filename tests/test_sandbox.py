"""The kernel's one template sandbox (`core.sandbox`), used by mail and document templates:
unsafe access is an error, not a quiet blank; only plain data goes in."""
from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import pytest
from jinja2.sandbox import SecurityError
from markupsafe import Markup

from core.models import User
from core.sandbox import PlainDataError, SandboxError, check_plain, make_sandbox


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}",
    "{% if ''.__class__ is defined %}leak{% endif %}",
    "{{ [].append(1) }}",
])
def test_unsafe_access_is_an_error_not_a_blank(source):
    with pytest.raises(SecurityError):
        make_sandbox().from_string(source).render()


def test_only_the_named_globals_unless_jinjas_are_kept():
    env = make_sandbox(globals={"greet": "hi"}, filters={"shout": str.upper})
    assert env.from_string("{{ greet|shout }}").render() == "HI"
    assert set(env.globals) == {"greet"}
    assert "range" in make_sandbox(jinja_globals=True).globals


def test_plain_data_passes_and_an_orm_object_is_named_where_it_was(app):
    check_plain({"a": [1, 2.5, Decimal("3"), None, True], "b": {"d": date.today(),
                 "t": time(9), "m": Markup("<b>x</b>")}})

    class Refused(PlainDataError):
        pass

    with pytest.raises(Refused, match=r"context\['people'\]\[1\] is a User") as caught:
        check_plain({"people": ["ok", User(login="x")]}, error=Refused)
    assert isinstance(caught.value, SandboxError) and isinstance(caught.value, TypeError)
    with pytest.raises(PlainDataError, match="key that is not text"):
        check_plain({1: "x"})
