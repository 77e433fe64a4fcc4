"""Funnel, win/loss, cycle length, revenue and activity reports against hand-counted figures,
their pages (SVG charts with the numbers in tables), the CSV export and the record rules."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from addons.pipeline.models import LostReason
from addons.pipeline.report_views import csv_safe
from addons.pipeline.reports import (
    ReportFilter,
    activities_done,
    cycle_length,
    funnel,
    revenue_won,
    win_loss,
)
from addons.pipeline.state import create_deal, move_deal, seed_defaults
from core.activities import ActivityType, mark_done, schedule_activity, seed_activity_types
from core.api import Role, assign_roles, db
from core.security import UserRole

pytestmark = pytest.mark.addons("pipeline")


def _analyst(user) -> None:
    """A salesperson who may also see reports (own scope)."""
    assign_roles(user, "salesperson")
    role = db.session.scalar(select(Role).where(Role.code == "sales_analyst"))
    if role is None:
        role = Role(code="sales_analyst", name="Analyst", default_scope="own")
        role.permissions = {"pipeline.read", "pipeline.reports"}
        db.session.add(role)
        db.session.flush()
    db.session.add(UserRole(user_id=user.id, role_id=role.id))
    db.session.commit()


@pytest.fixture
def data(app, make_user):
    """Seven deals of Anna and Boris moved through the default pipeline.

    D1 anna New>Qualified>Proposal>Won (1000 EUR, won 2026-03-05 after 10 days)
    D2 anna New>Proposal>Lost (too expensive)
    D3 anna New>Qualified (open)
    D4 boris New>Lost (no budget)
    D5 boris created in Negotiation (open)
    D6 boris New>Lost (too expensive), lost back in 2020
    D7 boris New>Won (250.50 USD, won 2026-04-10 after 20 days)
    """
    anna, boris = make_user("anna", name="Anna"), make_user("boris", name="=Boris")
    _analyst(anna)
    _analyst(boris)
    admin = make_user("boss", is_admin=True)
    pipeline = seed_defaults()
    db.session.commit()
    s = {stage.name: stage for stage in pipeline.stages}
    reasons = {r.name: r for r in db.session.scalars(select(LostReason))}

    def deal(title, owner, path, amount="100", currency="EUR", reason=None, stage=None):
        d = create_deal(title=title, pipeline=pipeline, owner_id=owner.id, amount=amount,
                        currency=currency, user=admin, stage=s[stage] if stage else None)
        for name in path:
            move_deal(d, s[name], user=admin,
                      lost_reason=reasons[reason].id if name == "Lost" else None)
        return d

    d1 = deal("D1", anna, ["Qualified", "Proposal", "Won"], "1000.00")
    deal("D2", anna, ["Proposal", "Lost"], reason="Too expensive")
    deal("D3", anna, ["Qualified"])
    deal("D4", boris, ["Lost"], reason="No budget")
    deal("D5", boris, [], stage="Negotiation")
    d6 = deal("D6", boris, ["Lost"], reason="Too expensive")
    d7 = deal("D7", boris, ["Won"], "250.50", "USD")
    db.session.flush()
    d1.won_at = datetime(2026, 3, 5, 12, tzinfo=UTC)
    d1.created_at = d1.won_at - timedelta(days=10)
    d7.won_at = datetime(2026, 4, 10, 12, tzinfo=UTC)
    d7.created_at = d7.won_at - timedelta(days=20)
    d6.lost_at = datetime(2020, 1, 10, tzinfo=UTC)
    db.session.commit()
    return {"anna": anna, "boris": boris, "admin": admin, "pipeline": pipeline}


def test_funnel_counts_and_conversions_match_the_hand_count(data):
    report = funnel(ReportFilter(), data["admin"])
    steps = [(step.stage.name, step.reached, step.open_here, step.lost_here, step.conversion)
             for step in report.steps]
    assert steps == [
        ("New", 7, 0, 2, Decimal(5) / 7),
        ("Qualified", 5, 1, 0, Decimal(4) / 5),
        ("Proposal", 4, 0, 1, Decimal(3) / 4),
        ("Negotiation", 3, 1, 0, Decimal(2) / 3),
        ("Won", 2, 0, 0, None),
    ]
    assert report.overall == Decimal(2) / 7


def test_funnel_of_a_salesperson_counts_own_deals_only(data):
    report = funnel(ReportFilter(), data["anna"])
    assert [step.reached for step in report.steps] == [3, 3, 2, 1, 1]


def test_win_loss_by_reason_and_salesperson(data):
    report = win_loss(ReportFilter(), data["admin"])
    assert (report.won, report.lost, report.win_rate) == (2, 3, Decimal(2) / 5)
    assert [(r.name, n) for r, n in report.by_reason] == [("Too expensive", 2),
                                                          ("No budget", 1)]
    people = {uid: (won, lost) for uid, _name, won, lost in report.by_person}
    assert people == {data["anna"].id: (1, 1), data["boris"].id: (1, 2)}


def test_win_loss_period_counts_deals_closed_in_it(data):
    report = win_loss(ReportFilter(date_from=datetime(2021, 1, 1).date()), data["admin"])
    assert (report.won, report.lost) == (2, 2)
    report = win_loss(ReportFilter(date_to=datetime(2020, 12, 31).date()), data["admin"])
    assert (report.won, report.lost) == (0, 1)


def test_cycle_length_average_median_and_per_salesperson(data):
    report = cycle_length(ReportFilter(), data["admin"])
    assert (report.deals, report.average_days, report.median_days) == (
        2, Decimal("15.0"), Decimal("15.0"))
    assert [(uid, days) for uid, _n, _c, days in report.by_person] == [
        (data["anna"].id, Decimal("10.0")), (data["boris"].id, Decimal("20.0"))]


def test_revenue_won_per_month_and_salesperson_never_mixes_currencies(data):
    report = revenue_won(ReportFilter(), data["admin"])
    assert report.by_month == [("2026-03", "EUR", 1, Decimal("1000.00")),
                               ("2026-04", "USD", 1, Decimal("250.50"))]
    assert [(uid, cur, n, amount) for uid, _name, cur, n, amount in report.by_person] == [
        (data["anna"].id, "EUR", 1, Decimal("1000.00")),
        (data["boris"].id, "USD", 1, Decimal("250.50"))]
    mine = revenue_won(ReportFilter(), data["boris"])
    assert mine.totals() == {"USD": Decimal("250.50")}


def test_activities_done_rank_salespeople_with_on_time_share(data, app):
    seed_activity_types()
    types = {t.code: t for t in db.session.scalars(select(ActivityType))}
    anna, boris, admin = data["anna"], data["boris"], data["admin"]
    now = datetime.now(UTC)

    def activity(user, code, due_days_ago, done_late=None):
        act = schedule_activity(type_id=types[code].id, summary=code, creator=admin,
                                due_at=now - timedelta(days=due_days_ago), assignee=user)
        if done_late is not None:
            mark_done(act, by=user)
            act.done_at = act.due_at + timedelta(hours=done_late)
        return act

    activity(anna, "call", 1, done_late=-1)  # on time
    activity(anna, "meeting", 2, done_late=5)  # late
    activity(anna, "task", 3)  # overdue, open
    activity(boris, "email", 1, done_late=0)  # on time
    db.session.commit()
    rows = activities_done(ReportFilter(), admin, now)
    got = [(r.user_id, r.rank, r.done, r.by_type, r.on_time_rate, r.overdue) for r in rows
           if r.user_id in (anna.id, boris.id)]
    assert got == [
        (anna.id, 1, 2, {"call": 1, "meeting": 1, "task": 0}, Decimal("0.5"), 1),
        (boris.id, 2, 1, {"email": 1}, Decimal(1), 0),
    ]
    assert [r.user_id for r in activities_done(ReportFilter(), boris, now)] == [boris.id]


def test_report_pages_draw_svg_charts_with_the_numbers_in_tables(data, client, login):
    login(client, data["admin"])
    for name in ("forecast", "funnel", "winloss", "cycle", "revenue", "activities"):
        page = client.get(f"/pipeline/reports/{name}")
        assert page.status_code == 200, name
        html = page.get_data(as_text=True)
        assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in html, name
        assert "<title id=\"chart-" in html and "<table" in html, name
    html = client.get("/pipeline/reports/funnel").get_data(as_text=True)
    assert "<title>New: 7</title>" in html
    assert '<td class="num">71.4%</td>' in html  # 5 of 7 went on to Qualified


def test_csv_export_is_formula_safe(data, client, login):
    login(client, data["admin"])
    response = client.get("/pipeline/reports/winloss?export=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert ["'=Boris", "1", "2", "0.3333"] in rows  # "=Boris" must not run as a formula
    assert ["Too expensive", "2", "0.6667"] in rows
    assert csv_safe("+1 555") == "'+1 555" and csv_safe(Decimal("-5")) == "-5"


def test_reports_need_the_reports_permission(data, client, login, make_user):
    reader = make_user("reader")
    role = Role(code="deal_reader", name="Reader", default_scope="all")
    role.permissions = {"pipeline.read"}
    db.session.add(role)
    db.session.flush()
    db.session.add(UserRole(user_id=reader.id, role_id=role.id))
    db.session.commit()
    login(client, reader)
    assert client.get("/pipeline/reports/forecast").status_code == 404


def test_a_salespersons_report_page_shows_own_deals_only(data, client, login):
    login(client, data["anna"])
    html = client.get("/pipeline/reports/funnel").get_data(as_text=True)
    assert "<title>New: 3</title>" in html
    rows = list(csv.reader(io.StringIO(client.get(
        "/pipeline/reports/winloss?export=csv").get_data(as_text=True).lstrip("\ufeff"))))
    assert not any("=Boris" in cell for row in rows for cell in row)


def test_page_filters_narrow_the_report_and_its_export(data, client, login):
    login(client, data["admin"])
    boris = data["boris"].id
    html = client.get(f"/pipeline/reports/funnel?user={boris}&name=x").get_data(as_text=True)
    assert "<title>New: 4</title>" in html
    assert "export=csv" in html and f"user={boris}" in html
    rows = list(csv.reader(io.StringIO(client.get(
        f"/pipeline/reports/winloss?export=csv&user={boris}&from=2021-01-01"
    ).get_data(as_text=True).lstrip("\ufeff"))))
    assert ["1", "1", "0.5000"] in rows  # Boris since 2021: D7 won, D4 lost (D6 was 2020)
