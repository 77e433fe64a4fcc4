"""End to end in a real headless Chromium: sign in, switch to Latvian, open the Addons page.

The other tests drive the app through Flask's test client, which never runs our JavaScript,
never applies the Content-Security-Policy and never hovers a menu. This one proves the pieces
that only a browser exercises work together: the login form, the language switcher that
submits itself through `core/static/birga.js` (under our CSP), the translated menu and its
drop-down. Expected Latvian words come from the catalogues the app merges, so the test holds
whatever the translator chooses, yet fails when a string stays English.

Uses Debian's `/usr/bin/chromium` (never `playwright install`: a test must not download a
browser); `scripts/check-system.sh --test` installs it.
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


def latvian(app: Flask, message: str) -> str:
    """`message` as the app's merged `lv` catalogue translates it."""
    directories = app.extensions["birga.i18n"].directories
    return merge_catalogs(directories, "lv").gettext(message)


def test_admin_switches_to_latvian_and_opens_addons_through_the_menu(
        app: Flask, make_user: Callable[..., Any], chromium: Any, tmp_path: Path) -> None:
    expected = {source: latvian(app, source) for source in ("Dashboard", "Settings", "Addons")}
    untranslated = [source for source, text in expected.items() if text == source]
    assert not untranslated, (
        f"translations/lv/LC_MESSAGES/messages.po does not translate {untranslated}; "
        "the test needs Latvian words that differ from the English source")
    admin = make_user("admin", is_admin=True)

    with browser_page(chromium, app, login=admin.login,
                      viewport={"width": 1280, "height": 800}) as live:
        page, base_url = live.page, live.base_url
        assert page.url == base_url + "/"
        home = page.locator('.mainnav [data-menu="home"]')
        assert home.inner_text().strip() == "Dashboard"

        # No button press: choosing an option submits the form through birga.js.
        assert page.locator(".topbar .locale-switcher button").is_hidden()
        with page.expect_navigation():
            page.select_option(".topbar select[name=locale]", "lv")
        assert page.get_attribute("html", "lang") == "lv"
        assert home.inner_text().strip() == expected["Dashboard"]
        settings = page.locator('.mainnav [data-menu="settings"]')
        assert settings.inner_text().strip() == expected["Settings"]

        addons_link = page.locator('.mainnav [data-menu="settings.addons"]')
        assert addons_link.is_hidden()  # the drop-down opens on hover only
        settings.hover()
        assert addons_link.inner_text().strip() == expected["Addons"]
        page.screenshot(path=str(tmp_path / "menu-lv.png"))
        with page.expect_navigation():
            addons_link.click()
        assert page.url == base_url + "/admin/addons"
        assert page.locator("main h1").inner_text().strip() == expected["Addons"]

        page.screenshot(path=str(tmp_path / "addons-lv.png"), full_page=True)

    assert not live.problems, f"the browser reported errors: {live.problems}"
