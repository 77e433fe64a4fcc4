"""End to end in a real headless Chromium: from a deal of a Latvian client, create an offer, add
a line, send it (loopback SMTP), then preview and download the PDF exactly as sent from the
client's folder in the file manager, and open the client's public link.

Uses Debian's `/usr/bin/chromium` (never `playwright install`) through
`core.testing.browser_page`.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from addons.contacts.models import Partner
from addons.documents.models import Offer
from core.api import assign_roles, db
from core.storage import Attachment
from core.testing import browser_page, requires_chromium

pytestmark = [
    pytest.mark.browser,
    requires_chromium,
    pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext"),
]


def test_offer_from_a_deal_is_sent_previewed_and_downloaded(make_app, make_user, smtp_inbox,
                                                            chromium, tmp_path):
    app = make_app(["documents", "pipeline"], **smtp_inbox.config())
    with app.app_context():
        from addons.pipeline.state import create_deal, seed_defaults

        seller = make_user("anna", name="Anna Bērziņa")
        assign_roles(seller, "salesperson")
        client = Partner(kind="company", name="Ozols SIA", lang="lv", country="LV",
                         email="birojs@ozols.lv", owner_id=seller.id)
        db.session.add(client)
        db.session.flush()
        pipeline = seed_defaults()
        deal = create_deal(title="Sulas piegāde", pipeline=pipeline, user=seller,
                           owner_id=seller.id, company_id=client.id, currency="EUR")
        db.session.commit()
        deal_id, client_id = deal.id, client.id

    with browser_page(chromium, app, login="anna", locale="lv-LV",
                      accept_downloads=True) as live:
        page, base_url = live.page, live.base_url

        # The deal page offers "New offer" (the documents panel in pipeline's hook).
        page.goto(f"/pipeline/deals/{deal_id}")
        with page.expect_navigation():
            page.click(".deal-offers a.button")
        assert page.locator("select[name=lang]").input_value() == "lv"
        with page.expect_navigation():
            page.click("form button.primary")
        offer_id = int(re.search(r"/documents/offers/(\d+)", page.url).group(1))

        page.fill("input[name=description]", "Ābolu sula 1 l")
        page.fill("input[name=quantity]", "12")
        page.fill("input[name=unit_price]", "2.50")
        page.fill("input[name=vat_rate]", "21")
        with page.expect_navigation():
            page.click("form[action$='/lines'] button[type=submit]")

        # Send from the offer page.
        with page.expect_navigation():
            page.click("a.offer-send-link")
        assert page.locator("input[name=to]").input_value() == "birojs@ozols.lv"
        with page.expect_navigation():
            page.click("form.offer-send button.primary")
        [message] = smtp_inbox.wait_for(1)
        [part] = list(message.iter_attachments())
        mailed = part.get_content()
        with app.app_context():
            offer = db.session.get(Offer, offer_id)
            number, state = offer.number, offer.state
            stored = db.session.get(Attachment, offer.sent_attachment_id)
            stored_id = stored.id
        assert state == "sent"
        assert message["Subject"] == f"Komercpiedāvājums {number}"
        text = subprocess.run(["pdftotext", "-", "-"], input=mailed, capture_output=True,
                              check=True).stdout.decode()
        assert number in text and "Ābolu sula" in text

        # Preview and download the PDF as sent from the client's folder.
        page.goto(f"/documents/files/client/{client_id}")
        with page.expect_navigation():
            page.click(f"tr[data-file-id='{stored_id}'] td:first-child a")
        frame = page.locator("iframe.file-preview")
        assert frame.get_attribute("src").endswith(f"/documents/files/{stored_id}/inline")
        with page.expect_download() as info:
            page.click(f"a[href$='/documents/files/{stored_id}/download']")
        download = info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert saved.read_bytes() == mailed

        # The public link the client got opens the offer in Latvian without signing in.
        link = re.search(r"https?://\S+/documents/p/[^\s\"<]+",
                         message.get_body(preferencelist=("plain",)).get_content()).group(0)
        visitor = chromium.new_context(base_url=base_url).new_page()
        visitor.goto(re.sub(r"^https?://[^/]+", base_url, link))
        assert visitor.get_attribute("html", "lang") == "lv"
        assert "Ābolu sula 1 l" in visitor.inner_text("main")
        page.screenshot(path=str(tmp_path / "offer-sent.png"))
        assert live.problems == []
