"""The start page's cards in a real browser on the demo data: a grid of several columns on a
1280 px screen, one column without sideways scrolling on a 390 px phone, no script or CSP
errors."""
from __future__ import annotations

import os

import pytest

from core.testing import browser_page, requires_chromium

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.mark.parametrize("width", [390, 1280])
def test_dashboard_cards_fit_the_screen(demo_app, chromium, width):
    with browser_page(chromium, demo_app, login="admin",
                      viewport={"width": width, "height": 900}) as live:
        live.page.goto("/")
        cards = live.page.locator(".dash-card")
        assert cards.count() == 4
        lefts = {round(box["x"]) for box in (cards.nth(i).bounding_box()
                                            for i in range(cards.count()))}
        overflow = live.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        shots = os.environ.get("BIRGA_SCREENSHOTS")
        if shots:
            live.page.screenshot(path=f"{shots}/dashboard-{width}.png", full_page=True)
        assert overflow <= 0
        assert len(lefts) == 1 if width == 390 else len(lefts) >= 3
        assert live.problems == []
