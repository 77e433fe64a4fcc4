"""Exports of the filtered list: CSV, XLSX (read back with openpyxl) and vCard 3.0; cells
that would start a formula neutralised; record rules and filters obeyed; every export
audited; an export imports back unchanged."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from addons.contacts import services
from addons.contacts.importing import runner
from addons.contacts.importing.uploads import create_batch
from addons.contacts.models import CustomField, CustomValue, Partner
from core.api import assign_roles, db
from core.audit import AuditLog

DANGEROUS = ["=1+2", "@SUM(A1:A9)", "-2+3", "+cmd|' /C calc'!A0", "\tTab", "\rReturn"]


@pytest.fixture
def env(make_app, make_user, login):
    app = make_app(["contacts"], BIRGA_PHONE_REGION="LV")
    with app.app_context():
        manager = make_user("manager")
        assign_roles(manager, "sales_manager")  # may export; sees own records (no team)
        other = make_user("other")
        assign_roles(other, "salesperson")
        client = app.test_client()
        login(client, manager)
        yield app, client, manager, other


def _partner(owner, first: str, last: str, *, phone: str = "", email: str = "",
             city: str = "Rīga", company: Partner | None = None) -> Partner:
    partner = Partner(kind="person", first_name=first, last_name=last, name="", city=city,
                      owner_id=owner.id, company=company)
    db.session.add(partner)
    if phone:
        services.set_phones(partner, [phone])
    if email:
        services.set_emails(partner, [email])
    services.refresh_search(partner)
    db.session.commit()
    return partner


def _rows(response) -> list[dict[str, str]]:
    text = response.get_data(as_text=True).lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_neutralises_cells_that_start_a_formula(env):
    _app, client, manager, _other = env
    for i, text in enumerate(DANGEROUS):
        _partner(manager, text, f"Person{i}", email=f"p{i}@example.lv")
    response = client.get("/contacts/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = _rows(response)
    firsts = sorted(row["First name"] for row in rows)
    assert firsts == sorted("'" + text for text in DANGEROUS)
    assert not any(value.startswith(("=", "+", "-", "@", "\t", "\r"))
                   for row in rows for value in row.values())


def test_xlsx_export_read_back_with_openpyxl_holds_no_formula(env):
    from openpyxl import load_workbook

    _app, client, manager, _other = env
    company = Partner(kind="company", name="=EVIL()", owner_id=manager.id)
    db.session.add(company)
    services.refresh_search(company)
    for i, text in enumerate(DANGEROUS):
        _partner(manager, text, f"Person{i}", phone=f"+371 2000 00{i:02d}", company=company)
    response = client.get("/contacts/export.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    assert header[:3] == ["Type (person or company)", "Name (full name or company name)",
                          "First name"]
    cells = [c for row in rows for c in row if c.value is not None]
    assert all(c.data_type != "f" for c in cells)
    assert not any(str(c.value).startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    values = {c.value for c in cells}
    assert "'=EVIL()" in values and "'+37120000001" in values and "'@SUM(A1:A9)" in values


def test_vcard_export_is_version_3_and_reads_back(env):
    import vobject

    _app, client, manager, _other = env
    _partner(manager, "Jānis", "Bērziņš", phone="+371 2000 0001", email="janis@koks.lv")
    response = client.get("/contacts/export.vcf")
    assert response.status_code == 200
    cards = list(vobject.readComponents(response.get_data(as_text=True)))
    assert len(cards) == 1
    card = cards[0]
    assert card.version.value == "3.0"
    assert card.fn.value == "Jānis Bērziņš"
    assert (card.n.value.family, card.n.value.given) == ("Bērziņš", "Jānis")
    assert card.tel.value == "+37120000001" and card.email.value == "janis@koks.lv"


def test_export_obeys_record_rules_and_the_list_filters_and_is_audited(env):
    _app, client, manager, other = env
    _partner(manager, "Anna", "Liepa", city="Rīga")
    _partner(manager, "Ilze", "Ozola", city="Liepāja")
    _partner(other, "Secret", "Person", city="Rīga")
    names = [r["Name (full name or company name)"] for r in _rows(
        client.get("/contacts/export.csv"))]
    assert sorted(names) == ["Anna Liepa", "Ilze Ozola"]  # not the other seller's contact
    filtered = _rows(client.get("/contacts/export.csv?q=ozola"))
    assert [r["Name (full name or company name)"] for r in filtered] == ["Ilze Ozola"]
    logs = db.session.scalars(select(AuditLog).where(AuditLog.action == "export")
                              .order_by(AuditLog.id)).all()
    assert [(log.user_id, log.changes["rows"], log.changes["format"]) for log in logs] == [
        (manager.id, 2, "csv"), (manager.id, 1, "csv")]
    assert logs[1].changes["filters"] == {"q": "ozola"}


def test_export_needs_the_export_permission(env, login):
    app, _client, _manager, other = env
    seller = app.test_client()
    login(seller, other)
    assert seller.get("/contacts/export.csv").status_code == 404
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "export")) is None


def test_an_export_imports_back_unchanged(env):
    _app, client, manager, _other = env
    field = CustomField(code="fleet", labels={"en": "Fleet size"}, kind="number")
    db.session.add(field)
    db.session.commit()
    anna = _partner(manager, "=Anna", "Liepa", phone="+371 2000 0001",
                    email="anna@example.lv")
    db.session.add(CustomValue(partner_id=anna.id, field_id=field.id, value_number=12))
    db.session.commit()
    data = client.get("/contacts/export.csv").data
    batch = create_batch(data, "export.csv", user_id=manager.id)
    batch.options = {**batch.options, "match_key": "email"}
    db.session.commit()
    assert "custom:fleet" in batch.mapping.values()
    runner.execute(batch.id)
    db.session.expire_all()
    batch = db.session.get(type(batch), batch.id)
    assert (batch.state, batch.result["update"], batch.result["create"]) == ("done", 1, 0)
    anna = db.session.get(Partner, anna.id)
    assert anna.first_name == "=Anna" and anna.phone == "+37120000001"  # guard stripped
    assert db.session.scalar(select(CustomValue.value_number)) == 12
