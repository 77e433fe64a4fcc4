"""The deal page and list: optimistic locking on the form, the "no next activity" flag kept by
the activity listeners, the contact card panel, the formula-safe audited export, quick create,
and won deals feeding the contacts' revenue signal."""
from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from addons.contacts.models import Partner
from addons.pipeline.models import Deal
from addons.pipeline.state import create_deal, move_deal, seed_defaults
from core.activities import mark_done, schedule_activity, seed_activity_types
from core.api import AuditLog, assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


@pytest.fixture
def sales(app, make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline = seed_defaults()
    db.session.commit()
    return user, pipeline, {s.name: s for s in pipeline.stages}


def _form(deal: Deal, token: str, **changes) -> dict:
    data = {"csrf_token": token, "title": deal.title, "stage_id": deal.stage_id,
            "amount": str(deal.amount), "currency": deal.currency, "version": deal.version,
            "owner_id": deal.owner_id or ""}
    data.update(changes)
    return data


def test_a_form_save_from_an_old_copy_is_a_conflict_not_an_overwrite(sales, client, login):
    user, pipeline, _stages = sales
    deal = create_deal(title="Boilers", pipeline=pipeline, user=user, amount="100")
    db.session.commit()
    login(client, user)
    token = csrf_token(client, f"/pipeline/deals/{deal.id}")
    stale = _form(deal, token, title="Boilers (mine)")
    fresh = client.post(f"/pipeline/deals/{deal.id}", data=_form(deal, token, amount="700"))
    assert fresh.status_code == 302
    response = client.post(f"/pipeline/deals/{deal.id}", data=stale)
    assert response.status_code == 409
    assert "Someone else saved this record" in response.get_data(as_text=True)
    db.session.expire_all()
    saved = db.session.get(Deal, deal.id)
    assert saved.title == "Boilers" and saved.amount == Decimal("700.00")


def test_a_form_save_can_clear_the_probability_back_to_the_stage(sales, client, login):
    user, pipeline, stages = sales
    deal = create_deal(title="Pumps", pipeline=pipeline, user=user, probability=80)
    db.session.commit()
    login(client, user)
    token = csrf_token(client, f"/pipeline/deals/{deal.id}")
    response = client.post(f"/pipeline/deals/{deal.id}",
                           data=_form(deal, token, probability=""))
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(Deal, deal.id)
    assert saved.probability is None
    assert saved.effective_probability == stages["New"].probability


def test_activities_keep_next_and_last_activity_on_the_deal(sales, client, login):
    user, pipeline, _stages = sales
    seed_activity_types()
    deal = create_deal(title="Chillers", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    page = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)
    assert "No next activity is planned" in page
    call = schedule_activity(type_id=1, summary="Call the buyer", assignee=user, creator=user,
                             due_at=datetime.now(UTC) + timedelta(days=2),
                             model="pipeline.deal", record_id=deal.id)
    later = schedule_activity(type_id=1, summary="Send terms", assignee=user, creator=user,
                              due_at=datetime.now(UTC) + timedelta(days=5),
                              model="pipeline.deal", record_id=deal.id)
    db.session.commit()
    db.session.expire_all()
    saved = db.session.get(Deal, deal.id)
    assert saved.next_activity_at is not None
    assert abs((_utc(saved.next_activity_at) - call.due_utc).total_seconds()) < 1
    page = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)
    assert "No next activity is planned" not in page
    mark_done(db.session.get(type(call), call.id), by=user, outcome="Agreed on a demo")
    db.session.commit()
    db.session.expire_all()
    saved = db.session.get(Deal, deal.id)
    assert abs((_utc(saved.next_activity_at) - later.due_utc).total_seconds()) < 1
    assert saved.last_activity_at is not None
    mark_done(db.session.get(type(later), later.id), by=user)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Deal, deal.id).next_activity_at is None
    assert db.session.get(Deal, deal.id).version == deal.version  # no edit was made stale


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_the_list_flags_deals_without_next_step_and_exports_formula_safe_with_audit(
        sales, client, login):
    user, pipeline, _stages = sales
    create_deal(title="=HYPERLINK(\"http://evil\")", pipeline=pipeline, user=user)
    planned = create_deal(title="Planned deal", pipeline=pipeline, user=user)
    db.session.flush()
    planned.next_activity_at = datetime.now(UTC) + timedelta(days=1)
    db.session.commit()
    login(client, user)
    html = client.get("/pipeline/deals").get_data(as_text=True)
    assert html.count('class="no-next"') == 1
    response = client.get("/pipeline/deals.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    titles = sorted(row[1] for row in rows[1:])
    assert titles == ["'=HYPERLINK(\"http://evil\")", "Planned deal"]
    logged = db.session.scalars(select(AuditLog).where(AuditLog.action == "export",
                                                       AuditLog.model == "pipeline.deal"))
    assert len(logged.all()) == 1


def test_the_list_names_each_rows_stage_as_it_is_now(sales, client, login):
    """The stages are kept by the worker (`core.cache`): a renamed stage, or a new one, shows
    on the next list page."""
    user, pipeline, stages = sales
    create_deal(title="Named", pipeline=pipeline, user=user, stage=stages["Proposal"])
    db.session.commit()
    login(client, user)
    assert "Proposal" in client.get("/pipeline/deals").get_data(as_text=True)
    stages["Proposal"].name = "Offer sent"
    db.session.commit()
    html = client.get("/pipeline/deals").get_data(as_text=True)
    assert "Offer sent" in html and "Proposal" not in html.split("<tbody>")[1]


def test_a_salesperson_cannot_export(app, client, login, make_user):
    sam = make_user("sam")
    assign_roles(sam, "salesperson")
    login(client, sam)
    assert client.get("/pipeline/deals.csv").status_code == 404


def test_quick_create_puts_the_deal_in_the_column(sales, client, login):
    user, pipeline, stages = sales
    login(client, user)
    token = csrf_token(client, f"/pipeline/board/{pipeline.id}")
    response = client.post(f"/pipeline/board/{pipeline.id}/quick", data={
        "csrf_token": token, "title": "Quick one", "stage_id": stages["Proposal"].id,
        "amount": "1 500,50", "currency": "usd"})
    assert response.status_code == 302
    deal = db.session.scalar(select(Deal).where(Deal.title == "Quick one"))
    assert deal.stage.name == "Proposal" and deal.amount == Decimal("1500.50")
    assert deal.currency == "USD" and deal.owner_id == user.id


def test_the_contact_card_lists_the_partners_deals(sales, client, login):
    user, pipeline, _stages = sales
    company = Partner(kind="company", name="Daugava Build SIA", owner_id=user.id)
    db.session.add(company)
    db.session.flush()
    deal = create_deal(title="Cranes for Daugava", pipeline=pipeline, user=user,
                       company_id=company.id)
    create_deal(title="Someone else's cranes", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    html = client.get(f"/contacts/{company.id}").get_data(as_text=True)
    assert "Cranes for Daugava" in html and "Someone else" not in html
    page = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)
    assert f'href="/contacts/{company.id}">Daugava Build SIA</a>' in page  # key facts


def test_won_deals_feed_the_contacts_revenue_signal(sales):
    from addons.contacts.signals import collect_revenue

    user, pipeline, stages = sales
    company = Partner(kind="company", name="Buyer SIA", owner_id=user.id)
    person = Partner(kind="person", name="Solo Buyer", owner_id=user.id)
    db.session.add_all([company, person])
    db.session.flush()
    won = create_deal(title="Won big", pipeline=pipeline, user=user, amount="1000",
                      currency="EUR", company_id=company.id)
    won_usd = create_deal(title="Won in USD", pipeline=pipeline, user=user, amount="50",
                          currency="USD", partner_id=person.id)
    create_deal(title="Still open", pipeline=pipeline, user=user, amount="999",
                company_id=company.id)
    move_deal(won, stages["Won"], user=user)
    move_deal(won_usd, stages["Won"], user=user)
    db.session.commit()
    today = date.today()
    answers = collect_revenue.send(app_of(), start=today - timedelta(days=1),
                                   end=today + timedelta(days=1), currency="EUR")
    merged: dict = {}
    for _receiver, result in answers:
        for partner_id, amounts in (result or {}).items():
            merged.setdefault(partner_id, {}).update(amounts)
    assert merged[company.id] == {"EUR": Decimal("1000.00")}
    assert merged[person.id] == {"USD": Decimal("50.00")}
    earlier = collect_revenue.send(app_of(), start=today - timedelta(days=30),
                                   end=today - timedelta(days=1), currency="EUR")
    assert all(company.id not in (result or {}) for _r, result in earlier)


def app_of():
    from flask import current_app

    return current_app._get_current_object()


def test_demo_data_fills_every_stage_through_the_state_machine(app, make_user):
    from sqlalchemy import func

    from addons.pipeline import demo
    from addons.pipeline.models import Stage, StageChange

    make_user("admin", is_admin=True)
    demo.load()
    per_stage = dict(db.session.execute(
        select(Stage.name, func.count(Deal.id)).join(Deal, Deal.stage_id == Stage.id)
        .group_by(Stage.name)).all())
    assert per_stage == dict(demo.SPREAD)
    lost = db.session.scalars(select(Deal).join(Stage).where(Stage.kind == "lost")).all()
    assert all(d.lost_reason_id is not None for d in lost)
    assert db.session.scalar(select(func.count(StageChange.id))) > len(demo.SPREAD)


def test_merged_contacts_take_their_deals_to_the_survivor(sales):
    from flask import current_app

    from addons.contacts.signals import partner_merged

    user, pipeline, _stages = sales
    keep = Partner(kind="company", name="Keep SIA", owner_id=user.id)
    gone = Partner(kind="company", name="Gone SIA", owner_id=user.id)
    db.session.add_all([keep, gone])
    db.session.flush()
    deal = create_deal(title="Follows the merge", pipeline=pipeline, user=user,
                       company_id=gone.id, partner_id=gone.id)
    db.session.flush()
    partner_merged.send(current_app._get_current_object(), survivor_id=keep.id,
                        merged_ids=[gone.id])
    db.session.commit()
    db.session.expire_all()
    moved = db.session.get(Deal, deal.id)
    assert (moved.company_id, moved.partner_id) == (keep.id, keep.id)
