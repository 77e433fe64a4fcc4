"""The partner totals the triggers keep (`contacts_partner_total`) always equal counting the
partners, whoever writes them, and the list reads them only when its WHERE can be answered
from them."""
from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import delete, func, insert, select, update

from addons.contacts import services
from addons.contacts.importing import runner
from addons.contacts.importing.models import ImportBatch
from addons.contacts.importing.uploads import create_batch
from addons.contacts.merge import merge_partners
from addons.contacts.models import Partner
from addons.contacts.totals import PartnerTotal, refill
from core.api import assign_roles, db
from core.testing import statements

pytestmark = pytest.mark.addons("contacts")


def _kept() -> dict[tuple, int]:
    return {(t.owner_key or None, bool(t.active), t.kind, t.status): t.partners
            for t in db.session.scalars(select(PartnerTotal))}


def _counted() -> dict[tuple, int]:
    rows = db.session.execute(
        select(Partner.owner_id, Partner.active, Partner.kind, Partner.status, func.count())
        .group_by(Partner.owner_id, Partner.active, Partner.kind, Partner.status))
    return {(o, bool(a), k, s): n for o, a, k, s, n in rows}


def _assert_kept() -> None:
    db.session.expire_all()
    assert _kept() == _counted()
    assert db.session.scalar(select(func.count()).where(PartnerTotal.partners <= 0)) == 0


def _person(last: str, **fields) -> Partner:
    partner = Partner(kind="person", last_name=last, name=last, **fields)
    services.refresh_search(partner)
    db.session.add(partner)
    return partner


def test_the_totals_follow_orm_writes_of_every_kept_column(app, make_user):
    anna, boris = make_user("anna"), make_user("boris")
    people = [_person(f"P{i}", owner_id=(anna if i % 2 else boris).id,
                      status="client" if i % 3 else "lead") for i in range(1, 9)]
    firm = Partner(kind="company", name="Firm", status="prospect")
    services.refresh_search(firm)
    db.session.add(firm)
    db.session.commit()
    _assert_kept()
    assert sum(_kept().values()) == 9

    people[0].owner_id = boris.id
    people[1].owner_id = None  # nobody
    people[2].status = "inactive"
    people[3].kind = "company"
    people[4].active = False
    people[5].city = "Rīga"  # not kept: no total changes
    firm.owner_id, firm.status = anna.id, "client"  # two kept columns at once
    db.session.commit()
    _assert_kept()

    db.session.delete(people[6])
    db.session.commit()
    _assert_kept()

    people[7].status = "prospect"
    db.session.flush()
    db.session.rollback()  # a rolled back change leaves the totals as they were
    _assert_kept()


def test_the_totals_follow_core_statements_and_the_imports_bulk_insert(app, make_user):
    anna = make_user("anna")
    table = Partner.__table__
    db.session.execute(insert(table), [
        {"kind": "person", "name": f"C{i}", "status": "lead", "owner_id": anna.id if i % 2
         else None, "active": True, "search_text": "", "version": 1} for i in range(6)])
    db.session.commit()
    _assert_kept()

    # The import's own writer: COPY on PostgreSQL, multi-row INSERTs on SQLite.
    rows = [_with_defaults(kind="company", name=f"B{i}", status="client", owner_id=anna.id)
            for i in range(5)]
    columns = tuple(rows[0])
    runner.bulk_insert(db.session.connection(), table, columns,
                       [tuple(r.values()) for r in rows])
    db.session.commit()
    _assert_kept()

    db.session.execute(update(table).where(table.c.name.in_(["C0", "C1", "B0"]))
                       .values(status="prospect", owner_id=None))
    db.session.execute(update(table).where(table.c.name == "C2").values(city="Tallinn"))
    db.session.commit()
    _assert_kept()

    db.session.execute(delete(table).where(table.c.name.in_(["C3", "B1", "B2"])))
    db.session.commit()
    _assert_kept()
    db.session.execute(delete(table))
    db.session.commit()
    assert _kept() == {}


def _with_defaults(**values) -> dict:
    """A partner row for a raw insert: the NOT NULL columns' defaults, then `values`."""
    row = {}
    for column in Partner.__table__.columns:
        default = column.default
        if column.primary_key or column.nullable or default is None:
            continue
        row[column.name] = default.arg(None) if default.is_callable else default.arg
    return {**row, **values}


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def test_the_totals_follow_an_import_its_revert_and_a_merge(app, make_user):
    admin = make_user("importer", is_admin=True)
    existing = _person("Petrov", first_name="Ivan", status="lead")
    services.set_emails(existing, ["ivan@example.ru"])
    db.session.commit()
    data = _csv([["First name", "Last name", "E-mail", "City", "Company"],
                 ["Ivan", "Petrov", "ivan@example.ru", "Kazan", "ООО Новая"],
                 ["Anna", "Liepa", "anna@example.lv", "Riga", "ООО Новая"],
                 ["Olga", "Ozola", "olga@example.lv", "Riga", ""]])
    batch = create_batch(data, "a.csv", user_id=admin.id, kind="person")
    batch.options = {**batch.options, "match_key": "email"}
    db.session.commit()
    runner.execute(batch.id)
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.result["create"] == 2
    _assert_kept()
    assert sum(_kept().values()) == 4  # Ivan, Anna, Olga and the company

    runner.revert(batch, admin)
    db.session.commit()
    _assert_kept()
    assert sum(_kept().values()) == 1

    twin = _person("Petrov", first_name="Ivan", status="client", owner_id=admin.id)
    db.session.commit()
    merge_partners(existing.id, [twin.id])
    db.session.commit()
    _assert_kept()
    assert sum(_kept().values()) == 1


def test_refill_rebuilds_the_totals_from_the_partners(app, make_user):
    anna = make_user("anna")
    for i in range(4):
        _person(f"R{i}", owner_id=anna.id if i % 2 else None)
    db.session.commit()
    conn = db.session.connection()
    conn.execute(delete(PartnerTotal))
    assert _kept() == {}
    refill(conn)
    db.session.commit()
    _assert_kept()


def _total(html: str) -> int:
    return int(re.search(r'<p class="list-summary muted">\s*(\d+) contacts?', html).group(1))


@pytest.mark.parametrize(("query", "kept"), [
    ("", True), ("kind=company", True), ("status=client&status=lead", True),
    ("owner=me", True), ("owner=none", True), ("kind=person&status=lead&owner=me", True),
    ("city=Riga", False), ("segment=A", False), ("q=zed", False), ("idle=5", False),
])
def test_the_list_total_equals_counting_under_the_rules(app, client, make_user, login, query,
                                                        kept):
    """A salesperson's list total, from the kept totals when the filters allow it, else
    counted: the same number either way."""
    sam, other = make_user("sam"), make_user("other")
    assign_roles(sam, "salesperson")
    for i in range(12):
        owner = (sam, other, None)[i % 3]
        _person(f"Zed {i}", owner_id=owner.id if owner else None,
                status=("client", "lead", "prospect")[i % 3 if i < 6 else 0],
                city="Riga" if i % 2 else "Tallinn", segment="A" if i % 4 == 0 else None)
    firm = Partner(kind="company", name="Zed Firm", status="client", owner_id=sam.id)
    services.refresh_search(firm)
    db.session.add(firm)
    db.session.commit()
    login(client, sam)
    client.get("/contacts/")
    with statements() as seen:
        html = client.get("/contacts/?" + query).get_data(as_text=True)
    assert ("contacts_partner_total" in " ".join(seen)) is kept
    with statements() as seen:
        counted = _total(client.get(f"/contacts/?{query}&q=zed").get_data(as_text=True)
                         if "q=" not in query else html)
    assert _total(html) == counted == len(re.findall(r'<tr id="partner-', html))
    if query == "":
        assert _total(html) == 5  # her four people and her company, not the others'
