"""Offers printed to PDF and read back with pdftotext; SSRF refused; the glyph warning."""
from __future__ import annotations

import http.server
import re
import subprocess
import threading
from datetime import date
from decimal import Decimal

import pytest
from flask_babel import force_locale, gettext

from addons.contacts.models import Partner
from addons.documents import pdf
from addons.documents.offers import add_line, create_offer
from addons.documents.pdf import ResourceRefused, html_to_pdf, missing_glyphs, render_offer_pdf
from addons.documents.sandbox import render_document
from core.api import db

pytestmark = pytest.mark.addons("documents")

D = Decimal
U = "\u02bb"  # Uzbek oʻ / gʻ modifier letter turned comma
SAMPLES = {
    # lang: (currency, client name, line text, the letters that must come back)
    "lv": ("EUR", "SIA Ābeļziedu dārzs", "Ūdens sūknis, ķēdes zāģis, čaulas, šļūtene, "
           "ņieburs, īss žogs", "āčēģīķļņšūž"),
    "ro": ("MDL", "Grădina \u0218tefan SRL", "\u0218urub \u021beav\u0103 \u0219i \u021bigl\u0103",
           "\u0219\u021b\u0218"),
    "kk": ("KZT", "Әлем ЖШС", "ғимарат әдемі, қоңыр өнім ұзын үй һауа ірі", "әғқңөұүһі"),
    "uz": ("UZS", "Toshkent savdo", f"O{U}zbekiston g{U}ishti va o{U}tin", f"o{U} g{U}"),
    "ru": ("RUB", "ООО «Ёлка»", "Щётка и ящик для подъёма", "ёщъ"),
    "en": ("EUR", "Acme Ltd", "Widget", ""),
}


def pdftotext(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=data,  # noqa: S607
                          capture_output=True, check=True).stdout.decode("utf-8")


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def make_offer(lang: str, currency: str, client: str, lines: list[tuple[str, str, str]]):
    partner = Partner(kind="company", name=client, lang=lang, country="LV", vat="LV40003000000",
                      city="Rīga", street="Brīvības iela 1")
    db.session.add(partner)
    db.session.flush()
    offer = create_offer(partner, currency=currency, lang=lang, offer_date=date(2026, 11, 23),
                         valid_until=date(2026, 12, 23), payment_terms="14")
    for text, qty, price in lines:
        add_line(offer, description=text, quantity=qty, unit_price=price, vat_rate="21")
    db.session.flush()
    return offer


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_offer_pdf_reads_back_with_every_special_letter(app, lang):
    currency, client, text, letters = SAMPLES[lang]
    offer = make_offer(lang, currency, client, [(text, "2", "1000.50"), ("Extra", "1", "5")])
    result = render_offer_pdf(offer)
    assert result.missing_glyphs == ""
    out = flat(pdftotext(result.pdf))
    assert client in out
    assert text in out
    for letter in letters.replace(" ", ""):
        assert letter in out, letter
    from addons.documents.words import amount_in_words
    assert flat(amount_in_words(offer.amount_total, currency, lang)) in out
    assert "1 / 1" in out


def test_long_offer_has_page_numbers_and_the_header_on_every_page(app):
    lines = [(f"Pozīcija {i} — ķēdes zāģis", "1", "10") for i in range(1, 301)]
    offer = make_offer("lv", "EUR", "SIA Ābele", lines)
    text = pdftotext(render_offer_pdf(offer).pdf)
    with force_locale("lv"):
        header = gettext("Description")
    assert header != "Description"
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) >= 8
    for number, page in enumerate(pages, 1):
        assert f"{number} / {len(pages)}" in page
        # The lines table's header repeats (thead as table-header-group), in the document's
        # language.
        assert header in page or number == len(pages)
    assert "Pozīcija 300 — ķēdes zāģis" in text


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    _Recorder.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("where", ["img", "css-url", "css-import", "link"])
def test_loopback_http_is_refused_and_never_contacted(app, loopback_server, where):
    url = f"http://127.0.0.1:{loopback_server.server_port}/secret"
    html = {"img": f'<img src="{url}">',
            "css-url": f'<div style="background: url({url})">x</div>',
            "css-import": f"<style>@import url({url});</style>x",
            "link": f'<link rel="stylesheet" href="{url}">x'}[where]
    with pytest.raises(ResourceRefused) as caught:
        html_to_pdf("<html><body>" + html + "</body></html>")
    assert url in str(caught.value)
    assert _Recorder.hits == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/static/../../../etc/passwd",
                                 "/static/%2e%2e/%2e%2e/pyproject.toml",
                                 "https://example.invalid/logo.png", "ftp://127.0.0.1/x"])
def test_files_and_other_urls_are_refused(app, url):
    with pytest.raises(ResourceRefused):
        html_to_pdf(f'<html><body><img src="{url}">x</body></html>')


def test_template_with_file_url_is_refused_through_the_offer_path(app):
    html = render_document('<img src="file:///etc/passwd">{{ company.name }}', "", {
        "company": {"name": "X"}}, "en")
    with pytest.raises(ResourceRefused):
        html_to_pdf(html)


def test_own_static_assets_and_data_urls_are_served():
    fetcher = pdf.make_fetcher()
    served = fetcher(pdf.BASE_URL + "static/birga.css")
    assert served.read() == (pdf.CORE_STATIC / "birga.css").read_bytes()
    assert served.content_type == "text/css"
    assert fetcher("data:text/plain;base64,aGk=").read() == b"hi"
    assert fetcher.refused == []


def test_logo_from_data_url_renders(app):
    png = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
           "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    result = html_to_pdf(f'<html><body><img src="{png}">Logo</body></html>')
    assert result.pdf.startswith(b"%PDF")


def test_glyph_check_finds_characters_the_fonts_lack():
    css = '<style>body { font-family: "DejaVu Sans"; }</style>'
    assert missing_glyphs(f"<html><head>{css}</head><body>āčē ș ț әғқ o{U}</body></html>") == ""
    assert missing_glyphs(f"<html><head>{css}</head><body>Offer 漢字 ok</body></html>") == "漢字"


def test_glyph_check_reads_strings_printed_by_css():
    html = ('<html><head><style>body { font-family: "DejaVu Sans"; } '
            '@page { @bottom-center { content: "頁 " counter(page) } }</style></head>'
            "<body>x</body></html>")
    assert missing_glyphs(html) == "頁"


def test_offer_with_missing_glyphs_still_renders_but_reports_them(app):
    offer = make_offer("en", "EUR", "漢 Trading", [("Widget", "1", "1")])
    result = render_offer_pdf(offer)
    assert result.missing_glyphs == "漢"
    assert result.pdf.startswith(b"%PDF")
