"""Merging partners: every linked record kind moves to the survivor, in one transaction, with
the merge on the survivor's timeline and in the audit log; the merge screen's access rules."""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from addons.contacts.merge import MergeError, merge_partners
from addons.contacts.models import (
    CustomField,
    CustomValue,
    Partner,
    PartnerEmail,
    PartnerPhone,
    SearchToken,
    Tag,
)
from addons.contacts.segment_models import Segment, SegmentMember
from addons.contacts.services import refresh_search, search_condition, set_emails, set_phones
from addons.contacts.signals import partner_merged
from core.api import AuditLog, RecordAttachment, TimelineEntry, add_note, assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("contacts")
MODEL = "contacts.partner"


def partner(first: str | None = None, last: str | None = None, *, kind: str = "person",
            name: str = "", phones=(), emails=(), company: Partner | None = None,
            owner=None, **fields) -> Partner:
    p = Partner(kind=kind, name=name, first_name=first, last_name=last,
                owner_id=owner.id if owner else None, **fields)
    db.session.add(p)
    p.company = company
    set_phones(p, phones)
    set_emails(p, emails)
    refresh_search(p)
    db.session.commit()
    return p


# A table of a fake "deals" addon: it knows contacts only through the published signal.
fake_meta = sa.MetaData()
fake_deal = sa.Table("fx_deal", fake_meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("partner_id", sa.Integer, nullable=False))


@pytest.fixture
def deals(app):
    fake_meta.create_all(db.engine)

    def move(sender, survivor_id, merged_ids, **_kw):
        db.session.execute(fake_deal.update().where(fake_deal.c.partner_id.in_(merged_ids))
                           .values(partner_id=survivor_id))

    partner_merged.connect(move)
    yield fake_deal
    partner_merged.disconnect(move)


def test_merge_moves_every_linked_record_to_the_survivor(app, make_user, deals):
    from core.activities import Activity, schedule_activity, seed_activity_types
    from core.api import save_attachment

    user = make_user("boss", is_admin=True)
    firm_a = partner(kind="company", name="Būve SIA", city="Rīga")
    firm_b = partner(kind="company", name="Buve SIA", city="Riga", vat="LV40003000001",
                     phones=("+37167000001",), emails=("info@buve.lv",))
    worker = partner("Jānis", "Bērziņš", company=firm_b)
    tag_a, tag_b = Tag(name="vip"), Tag(name="wholesale")
    db.session.add_all([tag_a, tag_b])
    firm_a.tags.append(tag_a)
    firm_b.tags.extend([tag_a, tag_b])
    fleet = CustomField(code="fleet", labels={"en": "Fleet"}, kind="number")
    db.session.add(fleet)
    db.session.flush()
    db.session.add(CustomValue(partner_id=firm_b.id, field_id=fleet.id, value_number=12))
    segment = Segment(name="Autumn offer", kind="static")
    db.session.add(segment)
    db.session.flush()
    db.session.add(SegmentMember(segment_id=segment.id, partner_id=firm_b.id))
    add_note(MODEL, firm_b.id, "Called about the spring order", author=user)
    seed_activity_types()
    from core.activities import ActivityType

    call = db.session.scalar(select(ActivityType).where(ActivityType.code == "call"))
    schedule_activity(type_id=call.id, summary="Call back", assignee=user, creator=user,
                      due_at=datetime.now(UTC) + timedelta(days=1), model=MODEL,
                      record_id=firm_b.id)
    save_attachment(MODEL, firm_b.id, io.BytesIO(b"hello contract"), "contract.txt",
                    user=user)
    db.session.execute(deals.insert(), [{"id": 1, "partner_id": firm_b.id},
                                        {"id": 2, "partner_id": firm_a.id}])
    db.session.commit()
    a_id, b_id = firm_a.id, firm_b.id

    result = merge_partners(a_id, [b_id], {"city": b_id})
    db.session.commit()
    db.session.expire_all()

    survivor = db.session.get(Partner, a_id)
    assert db.session.get(Partner, b_id) is None  # deleted, see merge.py for why
    assert result.merged_ids == [b_id]
    assert survivor.city == "Riga"  # chosen from the merged one
    assert survivor.name == "Būve SIA"  # survivor's by default
    assert survivor.vat == "LV40003000001"  # survivor had none: the other's non-empty value
    assert [p.number for p in survivor.phones] == ["+37167000001"]
    assert survivor.email == "info@buve.lv"
    assert sorted(t.name for t in survivor.tags) == ["vip", "wholesale"]
    assert db.session.scalar(select(CustomValue.value_number).where(
        CustomValue.partner_id == a_id, CustomValue.field_id == fleet.id)) == 12
    assert db.session.get(Partner, worker.id).company_id == a_id
    assert db.session.get(Partner, worker.id).company_name == "Būve SIA"
    assert db.session.scalars(select(SegmentMember.partner_id)).all() == [a_id]
    notes = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == MODEL, TimelineEntry.record_id == a_id)).all()
    assert any("spring order" in n.body for n in notes)
    system = [n for n in notes if n.kind == "system"]
    assert len(system) == 1 and "Buve SIA" in system[0].body
    assert db.session.scalar(select(func.count()).select_from(TimelineEntry).where(
        TimelineEntry.record_id == b_id, TimelineEntry.model == MODEL)) == 0
    assert db.session.scalar(select(Activity.record_id).where(
        Activity.summary == "Call back")) == a_id
    assert [a.record_id for a in db.session.scalars(select(RecordAttachment))] == [a_id]
    assert sorted(db.session.execute(select(deals.c.partner_id)).scalars()) == [a_id, a_id]
    # Derived data follows: the survivor is found by the merged one's e-mail and tax number.
    found = db.session.scalars(select(Partner.id).where(search_condition("LV40003000001")))
    assert list(found) == [a_id]
    assert db.session.scalar(select(func.count()).select_from(SearchToken).where(
        SearchToken.partner_id == b_id)) == 0

    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "merge"))
    assert entry.model == MODEL and entry.record_id == a_id
    snapshot = entry.changes["merged"][0]
    assert snapshot["id"] == b_id and snapshot["city"] == "Riga"
    assert snapshot["phones"] == [["+37167000001", "mobile"]]
    assert snapshot["tags"] == ["vip", "wholesale"] and snapshot["custom"] == {"fleet": "12.0000"}
    assert db.session.scalar(select(AuditLog).where(
        AuditLog.action == "delete", AuditLog.record_id == b_id)) is not None


def test_survivor_keeps_its_own_values_and_every_phone_with_the_chosen_primary(app):
    a = partner("Ivan", "Petrov", phones=("+79161234567",), emails=("ivan@a.ru",),
                city="Москва")
    b = partner("Иван", "Петров", phones=("+79160000000", "+79161234567"),
                emails=("IVAN@a.ru", "petrov@b.ru"), city="Казань", job_title="CEO")
    merge_partners(a.id, [b.id], {"phone": b.id})
    db.session.commit()
    survivor = db.session.get(Partner, a.id)
    assert [p.number for p in survivor.phones] == ["+79160000000", "+79161234567"]
    assert survivor.phone == "+79160000000"
    assert [e.email for e in survivor.emails] == ["ivan@a.ru", "petrov@b.ru"]
    assert (survivor.city, survivor.job_title, survivor.name) == ("Москва", "CEO",
                                                                 "Ivan Petrov")
    assert db.session.scalar(select(func.count()).select_from(PartnerPhone)) == 2
    assert db.session.scalar(select(func.count()).select_from(PartnerEmail)) == 2


def test_a_failing_listener_rolls_the_whole_merge_back(app):
    a = partner("Anna", "One", emails=("a@one.lv",))
    b = partner("Anna", "Two", emails=("a@two.lv",))
    add_note(MODEL, b.id, "keep me", author=None)
    db.session.commit()

    def broken(sender, **_kw):
        raise RuntimeError("deals addon is down")

    partner_merged.connect(broken)
    try:
        with pytest.raises(RuntimeError):
            merge_partners(a.id, [b.id])
    finally:
        partner_merged.disconnect(broken)
    db.session.rollback()
    assert db.session.get(Partner, b.id) is not None
    assert [e.email for e in db.session.get(Partner, a.id).emails] == ["a@one.lv"]
    assert db.session.scalar(select(TimelineEntry.record_id).where(
        TimelineEntry.body.contains("keep me"))) == b.id
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "merge")) is None


def test_a_person_and_a_company_are_not_merged(app):
    person = partner("Ion", "Rusu")
    firm = partner(kind="company", name="Rusu SRL")
    with pytest.raises(MergeError):
        merge_partners(person.id, [firm.id])
    with pytest.raises(MergeError):
        merge_partners(person.id, [person.id])


def _merge_form(client, ids):
    html = client.get("/contacts/merge?" + "&".join(f"ids={i}" for i in ids))
    assert html.status_code == 200
    text = html.get_data(as_text=True)
    versions = dict(re.findall(r'name="(version_\d+)" value="(\d+)"', text))
    return text, versions


def test_merge_screen_offers_a_choice_per_differing_field_and_merges(app, client, make_user,
                                                                     login):
    seller = make_user("seller")
    assign_roles(seller, "salesperson")
    a = partner("Maria", "Popescu", city="Chișinău", owner=seller)
    b = partner("Maria", "Popescu", city="Bălți", owner=seller, emails=("m@p.md",))
    a_id, b_id = a.id, b.id
    login(client, seller)
    text, versions = _merge_form(client, [a_id, b_id])
    assert f'name="choice_city" value="{a_id}" checked' in text
    assert f'name="choice_email" value="{b_id}" checked' in text  # survivor's is empty
    assert 'name="choice_last_name"' not in text  # same value: nothing to choose
    token = csrf_token(client, f"/contacts/merge?ids={a_id}&ids={b_id}")
    response = client.post("/contacts/merge", data={
        "csrf_token": token, "ids": [a_id, b_id], "survivor": a_id,
        "choice_city": b_id, **versions})
    assert response.status_code == 302
    db.session.expunge_all()
    assert db.session.get(Partner, b_id) is None
    assert db.session.get(Partner, a_id).city == "Bălți"
    assert db.session.get(Partner, a_id).email == "m@p.md"


def test_merge_screen_labels_every_field_in_the_users_language(app, client, make_user, login):
    seller = make_user("seller")
    assign_roles(seller, "salesperson")
    a = partner("Maria", "Popescu", owner=seller, external_id="demo:person:0", region="Sud",
                website="a.md")
    b = partner("Maria", "Popescu", owner=seller, external_id="demo:person:1", region="Nord",
                website="b.md")
    login(client, seller)
    text, _versions = _merge_form(client, [a.id, b.id])
    labels = re.findall(r'<th scope="row">([^<]*)</th>', text)
    assert {"External ID", "Region", "Website"} <= set(labels)
    assert not [label for label in labels if "_" in label]  # no raw column names


def test_merge_screen_refuses_without_csrf_a_stale_version_or_an_invisible_partner(
        app, client, make_user, login):
    seller, other = make_user("seller"), make_user("other")
    auditor = make_user("auditor")
    assign_roles(seller, "salesperson")
    assign_roles(other, "salesperson")
    assign_roles(auditor, "auditor")
    a = partner("Ana", "Lungu", owner=seller)
    b = partner("Ana", "Lungu", owner=seller)
    foreign = partner("Ana", "Lungu", owner=other)
    login(client, seller)
    _text, versions = _merge_form(client, [a.id, b.id])
    assert client.get(f"/contacts/merge?ids={a.id}&ids={foreign.id}").status_code == 404
    assert client.post("/contacts/merge", data={"ids": [a.id, b.id]}).status_code == 400
    db.session.get(Partner, b.id).city = "Cahul"  # someone saves b meanwhile
    db.session.commit()
    token = csrf_token(client, f"/contacts/merge?ids={a.id}&ids={b.id}")
    response = client.post("/contacts/merge", data={"csrf_token": token, "ids": [a.id, b.id],
                                                    **versions})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, b.id) is not None  # nothing merged on a stale form

    reader = app.test_client()
    login(reader, auditor)  # reads everything, may not write
    assert reader.get(f"/contacts/merge?ids={a.id}&ids={b.id}").status_code == 404


def test_the_merge_line_reads_in_the_readers_language_with_names_escaped(app, client,
                                                                          make_user, login):
    from flask_babel import force_locale

    from core.testing import acting_as

    boris = make_user("boris", locale="ru")
    liga = make_user("liga", locale="lv", is_admin=True)
    survivor = partner(name="Ozola SIA", kind="company")
    b = partner(name="<b>Ozola</b> <script>alert(1)</script>", kind="company")
    with acting_as(app, boris), force_locale("ru"):
        merge_partners(survivor.id, [b.id])
        db.session.commit()
    [entry] = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == MODEL, TimelineEntry.record_id == survivor.id,
        TimelineEntry.kind == "system")).all()
    assert entry.subject == "Contacts merged"  # stored in the installation's language
    login(client, liga)
    html = client.get(f"/contacts/{survivor.id}").get_data(as_text=True)
    assert "Kontakti apvienoti" in html and "Šajā kontaktā apvienoti:" in html
    assert "Контакты" not in html
    assert "<script>alert(1)" not in html and "&lt;b&gt;Ozola&lt;/b&gt;" in html
