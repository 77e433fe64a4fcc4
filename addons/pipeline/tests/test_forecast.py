"""The forecast against a hand computation on a small data set: several currencies, the stage's
probability and overridden ones, closed deals left out, record rules applied."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from addons.pipeline.models import LostReason
from addons.pipeline.reports import ReportFilter, forecast
from addons.pipeline.state import create_deal, move_deal, seed_defaults
from core.api import Currency, assign_roles, db, set_exchange_rate

pytestmark = pytest.mark.addons("pipeline")


def _stages(pipeline):
    return {stage.name: stage for stage in pipeline.stages}


@pytest.fixture
def data(app, make_user):
    """Anna and Boris (salespeople) with seven deals; the expected figures are in the tests.

    Stage probabilities: New 10, Qualified 25, Proposal 50, Negotiation 75.
    """
    anna, boris = make_user("anna"), make_user("boris")
    assign_roles(anna, "salesperson")
    assign_roles(boris, "salesperson")
    admin = make_user("boss", is_admin=True)
    pipeline = seed_defaults()
    stages = _stages(pipeline)

    def deal(title, owner, stage, amount, currency, close, probability=None):
        d = create_deal(title=title, pipeline=pipeline, stage=stages[stage], owner_id=owner.id,
                        amount=amount, currency=currency, expected_close=close,
                        probability=probability, user=admin)
        db.session.flush()
        return d

    deal("A1", anna, "New", "1000.00", "EUR", date(2026, 1, 15))  # 10 % -> 100.00
    deal("A2", anna, "Proposal", "2000.50", "EUR", date(2026, 1, 20), 80)  # own 80 -> 1600.40
    deal("B1", boris, "Qualified", "300.00", "USD", date(2026, 2, 3))  # 25 % -> 75.00
    deal("B2", boris, "Negotiation", "999.99", "EUR", date(2026, 2, 28))  # 75 % -> 749.9925
    won = deal("A3", anna, "Negotiation", "500.00", "EUR", date(2026, 1, 5))
    move_deal(won, stages["Won"], user=admin)
    lost = deal("B3", boris, "New", "100.00", "USD", date(2026, 2, 5))
    reason = db.session.scalar(select(LostReason.id).order_by(LostReason.id).limit(1))
    move_deal(lost, stages["Lost"], user=admin, lost_reason=reason)
    deal("A4", anna, "New", "10000.00", "RUB", None, 0)  # own 0 % -> 0.00, no date
    db.session.commit()
    return {"anna": anna, "boris": boris, "admin": admin, "pipeline": pipeline}


def _months(report):
    return {(line.key, line.currency): (line.deals, line.amount, line.weighted)
            for line in report.by_month}


def test_forecast_per_month_and_currency_matches_the_hand_computation(data):
    report = forecast(ReportFilter(), data["admin"])
    assert _months(report) == {
        ("2026-01", "EUR"): (2, Decimal("3000.50"), Decimal("1700.40")),
        ("2026-02", "EUR"): (1, Decimal("999.99"), Decimal("749.99")),
        ("2026-02", "USD"): (1, Decimal("300.00"), Decimal("75.00")),
        ("", "RUB"): (1, Decimal("10000.00"), Decimal("0.00")),
    }
    # Dated months first, in order; deals without a date last.
    assert [line.key for line in report.by_month] == ["2026-01", "2026-02", "2026-02", ""]
    assert report.totals()["EUR"] == (Decimal("4000.49"), Decimal("2450.39"))


def test_forecast_per_salesperson_and_currency(data):
    report = forecast(ReportFilter(), data["admin"])
    lines = {(line.user_id, line.currency): (line.deals, line.amount, line.weighted)
             for line in report.by_person}
    anna, boris = data["anna"].id, data["boris"].id
    assert lines == {
        (anna, "EUR"): (2, Decimal("3000.50"), Decimal("1700.40")),
        (anna, "RUB"): (1, Decimal("10000.00"), Decimal("0.00")),
        (boris, "EUR"): (1, Decimal("999.99"), Decimal("749.99")),
        (boris, "USD"): (1, Decimal("300.00"), Decimal("75.00")),
    }


def test_a_salesperson_forecasts_only_own_deals(data):
    report = forecast(ReportFilter(), data["boris"])
    assert _months(report) == {
        ("2026-02", "EUR"): (1, Decimal("999.99"), Decimal("749.99")),
        ("2026-02", "USD"): (1, Decimal("300.00"), Decimal("75.00")),
    }


def test_period_and_salesperson_filters_narrow_the_forecast(data):
    report = forecast(ReportFilter(date_from=date(2026, 2, 1), date_to=date(2026, 2, 28)),
                      data["admin"])
    assert set(_months(report)) == {("2026-02", "EUR"), ("2026-02", "USD")}
    report = forecast(ReportFilter(user_id=data["anna"].id), data["admin"])
    assert set(_months(report)) == {("2026-01", "EUR"), ("", "RUB")}


def test_weighted_totals_convert_to_the_company_currency_at_todays_rate(data):
    if db.session.get(Currency, "USD") is None:
        db.session.add(Currency(code="USD", decimals=2))
    set_exchange_rate("USD", Decimal("0.9"), date(2020, 1, 1))  # 1 USD = 0.90 EUR
    db.session.commit()
    report = forecast(ReportFilter(), data["admin"])
    assert report.company_currency == "EUR"
    assert report.converted["2026-01"] == Decimal("1700.40")
    assert report.converted["2026-02"] == Decimal("749.99") + Decimal("67.50")
    assert report.converted[""] is None  # no RUB rate: not guessed
    assert report.missing_rates == ["RUB"]
