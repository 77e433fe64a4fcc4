"""Demo data (`birga demo`): the seeded funnel with deals on the demo contacts.

Uses the contacts the contacts addon's demo created; on an empty installation it creates a few
companies and people itself. Every deal is created and moved through the state machine, so the
demo has the same stage history and timeline a real one would.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from addons.contacts.models import Partner
from core.api import (
    RateNotFound,
    User,
    company_currency,
    db,
    rate_on,
    seed_reference_data,
    set_exchange_rate,
)

from .models import Lead, LostReason, Tag
from .state import create_deal, move_deal, seed_defaults

COMPANIES = (("Daugava Būve SIA", "LV", "EUR"), ("ООО «Северный Строй»", "RU", "RUB"),
             ("Samarqand Savdo MChJ", "UZ", "USD"), ("«Алатау Логистика» АҚ", "KZ", "KZT"),
             ("Chișinău Comerț SRL", "MD", "EUR"))
TITLES = ("Office furniture", "Warehouse racks", "Fleet tracking", "Annual service contract",
          "Solar panels", "Forklift lease", "Security cameras", "Cold storage",
          "Printing equipment", "Staff training")
#: Illustrative rates (EUR per unit) so the board's converted totals show in the demo; only
#: set for a currency that has no rate yet, and only when the company currency is EUR.
DEMO_RATES = {"USD": "0.92", "RUB": "0.0098", "KZT": "0.0018", "UZS": "0.000072",
              "MDL": "0.051"}
#: (stage name, how many demo deals end up there)
SPREAD = (("New", 4), ("Qualified", 3), ("Proposal", 3), ("Negotiation", 2), ("Won", 3),
          ("Lost", 2))


def _partners() -> list[Partner]:
    companies = list(db.session.scalars(select(Partner).where(
        Partner.kind == "company", Partner.active.is_(True)).order_by(Partner.id).limit(10)))
    if companies:
        return companies
    owner = db.session.scalar(select(User).order_by(User.id).limit(1))
    for name, country, _currency in COMPANIES:
        db.session.add(Partner(kind="company", name=name, country=country, status="prospect",
                               owner_id=owner.id if owner else None))
    db.session.flush()
    return list(db.session.scalars(select(Partner).where(Partner.kind == "company")
                                   .order_by(Partner.id)))


def load() -> None:
    """Create the demo pipeline content; `birga demo` runs it once per installation."""
    pipeline = seed_defaults()
    stages = {s.name: s for s in pipeline.stages}
    users = list(db.session.scalars(select(User).where(User.active.is_(True))
                                    .order_by(User.id)))
    reasons = list(db.session.scalars(select(LostReason).order_by(LostReason.sequence)))
    tags = []
    for name, color in (("hot", "#c9544d"), ("repeat client", "#4caf7a")):
        tag = db.session.scalar(select(Tag).where(Tag.name == name))
        if tag is None:
            tag = Tag(name=name, color=color)
            db.session.add(tag)
        tags.append(tag)
    partners = _partners()
    _demo_rates()
    currencies = {name: currency for name, _country, currency in COMPANIES}
    index = 0
    for stage_name, count in SPREAD:
        for _ in range(count):
            company = partners[index % len(partners)]
            owner = users[index % len(users)] if users else None
            currency = currencies.get(company.name, pipeline.currency or "EUR")
            deal = create_deal(
                title=TITLES[index % len(TITLES)], pipeline=pipeline, user=owner, via="import",
                company_id=company.id, amount=Decimal(1500 + 750 * index), currency=currency,
                expected_close=date.today() + timedelta(days=7 * (index + 1)),
                tags=[tags[index % 2]] if index % 3 == 0 else None)
            target = stages[stage_name]
            if target.kind == "lost":
                move_deal(deal, target, user=owner, via="import",
                          lost_reason=reasons[index % len(reasons)])
            elif target.id != deal.stage_id:
                move_deal(deal, target, user=owner, via="import")
            index += 1
    _leads(pipeline)
    db.session.commit()


#: (name, company, e-mail, subject): new requests nobody has taken yet, for the inbox and the
#: managers' start page.
DEMO_LEADS = (("Laura Ozola", "SIA Zaļā Māja", "laura@zala-maja.example",
               "Price request for 40 office desks"),
              ("Сергей Ким", "ТОО «Степь Агро»", "kim@step-agro.example",
               "Need a quote for warehouse racks"))


def _leads(pipeline: Any) -> None:
    for name, company, email, subject in DEMO_LEADS:
        if db.session.scalar(select(Lead.id).where(Lead.email == email)) is None:
            db.session.add(Lead(channel="web", status="new", pipeline_id=pipeline.id,
                                name=name, company_name=company, email=email,
                                subject=subject, message=subject + ".", payload={}))


def _demo_rates() -> None:
    if company_currency() != "EUR":
        return
    seed_reference_data()
    for code, rate in DEMO_RATES.items():
        try:
            rate_on(code, date.today())
        except RateNotFound:
            set_exchange_rate(code, rate, date.today() - timedelta(days=1))
