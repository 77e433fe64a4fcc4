"""End to end in headless Chromium: schedule an activity on a record page, let a day pass,
find it overdue in "My activities", mark it done with a note, read the note on the record's
timeline. Everything happens through real forms (no JavaScript is needed by the pages), under
the real Content-Security-Policy; the clock is moved with `BIRGA_FAKE_NOW`, never the system's.

Uses `core.testing.browser_page` (Debian's `/usr/bin/chromium`, never a downloaded browser).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from core.extensions import db
from core.security import assign_roles
from core.testing import browser_page, requires_chromium

pytestmark = [
    pytest.mark.browser,
    requires_chromium,
]


def test_an_activity_scheduled_today_is_overdue_tomorrow_and_its_outcome_lands_on_the_record(
        rec_app: Flask, chromium: Any, make_user: Any, tmp_path: Path) -> None:
    from addons.fx_records.models import Item

    anna = make_user("anna", timezone="Europe/Riga")
    assign_roles(anna, "salesperson")
    item = Item(name="Baltic Oil", owner_id=anna.id)
    db.session.add(item)
    db.session.commit()
    record_path = f"/fx_records/{item.id}"
    with browser_page(chromium, rec_app, login=anna.login) as live:
        page = live.page

        # Schedule on the record page: the form opens by itself while nothing is planned.
        page.goto(record_path)
        planned = page.locator("#activities")
        form = planned.locator("form.activity-form")
        assert form.locator("input[name=due_date]").input_value() == "2026-11-23"  # her today
        form.locator("select[name=type_id]").select_option(label="☎ Call")
        form.locator("input[name=summary]").fill("Call about the winter contract")
        form.locator("input[name=due_time]").fill("15:00")
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        assert page.url.endswith(record_path)
        row = planned.locator("li.activity", has_text="Call about the winter contract")
        assert row.count() == 1 and "overdue" not in (row.get_attribute("class") or "")
        page.screenshot(path=str(tmp_path / "scheduled.png"), full_page=True)

        # A day later, "My activities" (through the menu) shows it as overdue.
        rec_app.config["BIRGA_FAKE_NOW"] = "2026-11-24T08:00:00+00:00"
        with page.expect_navigation():
            page.click('.mainnav [data-menu="activities"]')
        overdue = page.locator("section#overdue")
        item_row = overdue.locator("li.activity", has_text="Call about the winter contract")
        assert item_row.count() == 1
        assert page.locator("section#today li.activity").count() == 0

        # Mark it done with a note: the "done" form opens from its <details> summary.
        item_row.locator("details.activity-done > summary").click()
        item_row.locator("textarea[name=outcome]").fill("They sign on Friday; send the draft.")
        page.screenshot(path=str(tmp_path / "marking-done.png"), full_page=True)
        with page.expect_navigation():
            item_row.locator("details.activity-done button[type=submit]").click()
        assert overdue.locator("li.activity").count() == 0

        # The record: nothing planned any more, and the outcome in its history.
        page.goto(record_path)
        assert planned.locator("li.activity").count() == 0
        entry = page.locator("#timeline li.timeline-entry.kind-call")
        assert entry.count() == 1
        assert "They sign on Friday; send the draft." in entry.inner_text()
        assert "Call about the winter contract" in entry.locator(".timeline-subject").inner_text()
        page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)

    assert not live.problems, f"the browser reported errors: {live.problems}"
