"""Templates render in a sandbox with plain data; SSTI payloads get a clear error."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from flask_babel import force_locale

from addons.contacts.models import Partner
from addons.documents.offers import add_line, create_offer
from addons.documents.sandbox import (
    TemplateRenderError,
    offer_context,
    render_document,
    render_string,
)
from core.api import db
from core.sandbox import check_plain

pytestmark = pytest.mark.addons("documents")

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ offer.__class__ }}",
    "{{ offer|attr('__class__') }}",
    "{{ self._TemplateReference__context }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{% set x = offer.update({'a': 1}) %}{{ x }}",
    "{{ ''.join.__self__.__class__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_ssti_payload_gets_a_clear_error_and_renders_nothing(app, payload):
    with pytest.raises(TemplateRenderError) as caught:
        render_string("SECRET-MARKER " + payload, {"offer": {"number": "1"}}, "en")
    message = str(caught.value)
    assert "may not reach" in message or "unknown field" in message
    assert "SECRET-MARKER" not in message


def test_syntax_error_names_the_line(app):
    with pytest.raises(TemplateRenderError, match="line 2"):
        render_string("ok\n{% if %}", {}, "en")


def test_unknown_fields_are_empty_but_attributes_of_them_are_an_error(app):
    assert render_string("[{{ nothing }}]", {}, "en") == "[]"
    with pytest.raises(TemplateRenderError):
        render_string("{{ nothing.deeper }}", {}, "en")


def test_orm_objects_are_refused_as_data(app):
    partner = Partner(kind="company", name="X")
    with pytest.raises(TypeError, match="Partner"):
        check_plain({"client": partner})
    with pytest.raises(TypeError):
        render_string("{{ client.name }}", {"client": partner}, "en")


def test_html_in_data_is_escaped(app):
    assert render_string("{{ name }}", {"name": "<b>x</b>"}, "en") == "&lt;b&gt;x&lt;/b&gt;"


def test_money_dates_and_numbers_follow_the_documents_language_not_the_users(app):
    data = {"v": Decimal("1234.5"), "d": date(2026, 11, 23)}
    src = "{{ v|money('EUR') }}|{{ v|number(2) }}|{{ d|date('short') }}"
    with app.test_request_context(), force_locale("en"):
        lv = render_string(src, data, "lv")
        ru = render_string(src, data, "ru")
        en = render_string(src, data, "en")
    assert lv.replace("\xa0", " ") == "1 234,50 €|1 234,50|23.11.26"
    assert ru.replace("\xa0", " ") == "1 234,50 €|1 234,50|23.11.2026"
    assert en == "€1,234.50|1,234.50|11/23/26"


def test_words_filter_spells_the_amount_in_the_documents_language(app):
    assert render_string("{{ 21|words('RUB') }}", {}, "ru") == "Двадцать один рубль 00 копеек"


def test_offer_context_is_plain_data_with_totals_per_vat_rate(app):
    partner = Partner(kind="company", name="SIA Ābele", lang="lv", country="LV")
    db.session.add(partner)
    db.session.flush()
    offer = create_offer(partner, currency="EUR", lang="lv", offer_date=date(2026, 11, 23))
    add_line(offer, description="A", quantity="2", unit_price="10.00", vat_rate="21")
    add_line(offer, description="B", quantity="1", unit_price="5.00", vat_rate="12")
    data = offer_context(offer)
    check_plain(data)
    assert [(g["rate"], g["base"], g["tax"]) for g in data["totals"]["groups"]] == [
        (Decimal("12"), Decimal("5.00"), Decimal("0.60")),
        (Decimal("21"), Decimal("20.00"), Decimal("4.20"))]
    assert data["totals"]["total"] == Decimal("29.80")
    assert data["totals"]["in_words"] == "Divdesmit deviņi eiro, 80 centi"
    assert data["client"]["name"] == "SIA Ābele"
    assert [line["description"] for line in data["lines"]] == ["A", "B"]


def test_document_wraps_body_and_css_in_the_documents_language(app):
    html = render_document("<p>{{ x }}</p>", "@page { content: '{{ labels.page }}' }",
                           {"x": "y", "labels": {"page": "Lapa"}}, "lv")
    assert html.startswith('<!DOCTYPE html><html lang="lv">')
    assert "<p>y</p>" in html and "Lapa" in html
