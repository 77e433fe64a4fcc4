"""In a real headless Chromium: upload a small CSV, map it on the mapping screen, check it,
import it, find a person by a folded search ("berzins" for Bērziņš) and open the card in
Romanian. Uses Debian's /usr/bin/chromium as `tests/test_browser.py` does (never a download).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from core.i18n import merge_catalogs
from core.testing import BROWSER_TIMEOUT_MS as TIMEOUT_MS
from core.testing import CHROMIUM, CHROMIUM_ARGS, TEST_PASSWORD, live_server, requires_chromium

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


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_import_a_csv_find_a_person_by_folded_search_and_open_the_card_in_romanian(
        app: Flask, make_user: Callable[..., Any], browser: Any, tmp_path: Path) -> None:
    dashboard = romanian(app, "Dashboard")
    assert dashboard != "Dashboard", "the Romanian catalogue must translate the menu"
    admin = make_user("admin", is_admin=True)

    with live_server(app) as base_url:
        context = browser.new_context(base_url=base_url, locale="en-US",
                                       viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text)
                if msg.type == "error" and "Failed to load resource" not in msg.text else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)

        page.goto("/login")
        page.fill("#login", admin.login)
        page.fill("#password", TEST_PASSWORD)
        with page.expect_navigation():
            page.click("button.primary")

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
        context.close()

    assert not problems, f"the browser reported errors: {problems}"
