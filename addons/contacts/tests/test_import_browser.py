"""In a real headless Chromium: upload a small CSV, map it on the mapping screen, check it,
import it, find a person by a folded search ("berzins" for Bērziņš) and open the card in
Romanian. Uses Debian's /usr/bin/chromium (`core.testing.browser_page`, never a download).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from core.i18n import merge_catalogs
from core.testing import browser_page, requires_chromium

pytestmark = [
    pytest.mark.browser,
    requires_chromium,
]

CSV = ("Vārds;Uzvārds;Tālrunis;E-pasts;Pilsēta\n"
       "Jānis;Bērziņš;+371 2000 0001;janis@koks.lv;Rīga\n"
       "Ștefan;Țurcanu;+373 60 000 001;stefan@example.md;Chișinău\n").encode()


def romanian(app: Flask, message: str) -> str:
    directories = app.extensions["birga.i18n"].directories
    return merge_catalogs(directories, "ro").gettext(message)


@pytest.fixture
def app(make_app):
    application = make_app(["contacts"], BIRGA_PHONE_REGION="LV")
    with application.app_context():
        yield application


def test_import_a_csv_find_a_person_by_folded_search_and_open_the_card_in_romanian(
        app: Flask, make_user: Callable[..., Any], chromium: Any, tmp_path: Path) -> None:
    dashboard = romanian(app, "Dashboard")
    assert dashboard != "Dashboard", "the Romanian catalogue must translate the menu"
    admin = make_user("admin", is_admin=True)

    with browser_page(chromium, app, login=admin.login) as live:
        page = live.page
        page.goto("/contacts/import")
        page.set_input_files("#file", files=[{"name": "people.csv", "mimeType": "text/csv",
                                              "buffer": CSV}])
        with page.expect_navigation():
            page.click("form.import-upload button.primary")
        # The mapping screen guessed the Latvian headers; the user leaves the e-mails out.
        assert page.input_value("#map-0") == "first_name"
        assert page.input_value("#map-1") == "last_name"
        assert page.input_value("#map-2") == "phone"
        assert page.input_value("#map-3") == "email"
        page.select_option("#map-3", "")
        with page.expect_navigation():
            page.click("#check")
        assert page.inner_text("#count-create").strip() == "2"
        with page.expect_navigation():
            page.click("#run")
        assert page.locator("text=Revert this import").is_visible()
        page.screenshot(path=str(tmp_path / "import-done.png"), full_page=True)

        page.goto("/contacts/")
        page.fill("#q", "berzins")
        with page.expect_navigation():
            page.click(".searchbox button")
        link = page.locator("a", has_text="Jānis Bērziņš").first
        assert page.locator("a", has_text="Ștefan Țurcanu").count() == 0
        with page.expect_navigation():
            link.click()
        assert "Jānis Bērziņš" in page.inner_text("main h1")

        with page.expect_navigation():
            page.select_option(".topbar select[name=locale]", "ro")
        assert page.get_attribute("html", "lang") == "ro"
        assert page.locator('.mainnav [data-menu="home"]').inner_text().strip() == dashboard
        assert "Jānis Bērziņš" in page.inner_text("main h1")
        card = page.inner_text("main")
        assert "20 000 001" in card  # the firm's own numbers in national format
        assert "janis@koks.lv" not in card  # the column left out was not imported
        page.screenshot(path=str(tmp_path / "card-ro.png"), full_page=True)

    assert not live.problems, f"the browser reported errors: {live.problems}"
