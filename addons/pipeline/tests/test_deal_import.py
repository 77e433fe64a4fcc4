"""Deals from a spreadsheet: through the state machine, all or nothing, errors by line in the
reader's language, the export's own columns understood in every staff language."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from flask_babel import force_locale
from openpyxl import Workbook
from sqlalchemy import func, select

from addons.contacts.models import Partner
from addons.contacts.services import refresh_search, set_emails
from addons.pipeline.models import Deal, LostReason, StageChange
from addons.pipeline.state import seed_defaults
from core.api import assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


@pytest.fixture
def office(app, make_user):
    """A sales manager (may import), a salesperson, the seeded funnel, a company and a
    contact person, both the manager's."""
    mara, anna = make_user("mara", name="Mara Ozola"), make_user("anna", name="Anna Kalna")
    assign_roles(mara, "sales_manager")
    assign_roles(anna, "salesperson")
    seed_defaults()
    company = Partner(kind="company", name="SIA Būve", owner_id=mara.id)
    person = Partner(kind="person", first_name="Jānis", last_name="Bērziņš", name="Jānis Bērziņš",
                     owner_id=mara.id)
    for partner in (company, person):
        refresh_search(partner)
    set_emails(person, ["janis@buve.lv"])
    db.session.commit()
    return {"mara": mara, "anna": anna, "company": company, "person": person}


def upload(client, body: bytes | str, *, action: str = "import", name: str = "deals.csv"):
    token = csrf_token(client, "/pipeline/import")
    data = body.encode() if isinstance(body, str) else body
    response = client.post("/pipeline/import", data={
        "csrf_token": token, "action": action, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data")
    assert response.status_code == 200
    db.session.expire_all()
    return response.get_data(as_text=True)


def deals() -> dict[str, Deal]:
    return {d.title: d for d in db.session.scalars(select(Deal))}


def test_new_deals_from_the_exports_latvian_columns_go_through_the_state_machine(
        office, client, login):
    login(client, office["mara"])
    body = ("Nosaukums;Posms;Kontakts;Uzņēmums;Summa;Valūta;Pārdošanas speciālists;"
           "Plānotā noslēgšana\n"
           "Jumts;Kvalificēts;janis@buve.lv;SIA Būve;1 250,50;eur;anna;31.12.2026\n"
           "Logi;Won;;SIA Būve;900;;;\n")
    html = upload(client, body)
    assert "Imported. New deals: 2, updated: 0." in html
    found = deals()
    roof, windows = found["Jumts"], found["Logi"]
    assert roof.stage.name == "Qualified" and roof.amount == Decimal("1250.50")
    assert roof.currency == "EUR" and roof.owner_id == office["anna"].id
    assert roof.partner_id == office["person"].id and roof.company_id == office["company"].id
    assert str(roof.expected_close) == "2026-12-31"
    assert windows.stage.name == "Won" and windows.won_at is not None
    assert windows.owner_id == office["mara"].id  # no salesperson given: the importer
    vias = set(db.session.scalars(select(StageChange.via).where(
        StageChange.deal_id == windows.id)))
    assert vias == {"import"}


def test_one_bad_row_imports_nothing_and_every_problem_is_told_by_line_in_russian(
        office, client, login):
    office["mara"].locale = "ru"
    db.session.commit()
    login(client, office["mara"])
    body = ("Title,Stage,Amount,Company,Lost reason\n"
           "Good one,New,100,,\n"
           "Lost for nothing,Lost,,,\n"
           "Won for nothing,Won,,,\n"
           "Nowhere,Limbo,,,\n"
           "Stranger,New,,Nobody Ltd,\n")
    html = upload(client, body)
    assert db.session.scalar(select(func.count(Deal.id))) == 0
    with force_locale("ru"):
        from flask_babel import gettext as _

        assert _("Choose why the deal was lost.") in html
        assert _("Give the amount the deal was won for.") in html
    assert "Limbo" in html and "Nobody Ltd" in html
    lines = [int(cell) for cell in __import__("re").findall(r"<tr><td>(\d+)</td>", html)]
    assert lines == [3, 4, 5, 6]


def test_a_check_writes_nothing_and_says_what_the_import_would_do(office, client, login):
    login(client, office["mara"])
    html = upload(client, "Title;Stage\nFirst;New\nSecond;Proposal\n", action="check")
    assert "The file is ready. New deals: 2, updated: 0." in html
    assert db.session.scalar(select(func.count(Deal.id))) == 0


def test_the_exported_list_edited_and_read_back_moves_the_deals(office, client, login):
    login(client, office["mara"])
    upload(client, "Title;Amount\nAnnual contract;500\n")
    deal = deals()["Annual contract"]
    exported = client.get("/pipeline/deals.csv").get_data(as_text=True)
    assert "Annual contract" in exported
    reason = db.session.scalars(select(LostReason).order_by(LostReason.sequence)).first()
    rows = list(csv.DictReader(io.StringIO(exported)))
    rows[0].update({"Stage": "Lost", "Lost reason": reason.name})  # edited in a spreadsheet
    edited = io.StringIO()
    writer = csv.DictWriter(edited, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    html = upload(client, edited.getvalue())
    assert "Imported. New deals: 0, updated: 1." in html, html
    assert db.session.get(Deal, deal.id).stage.name == "Lost"
    assert db.session.get(Deal, deal.id).lost_reason_id == reason.id


def test_a_cyrillic_company_is_found_by_its_name_as_written(office, client, login):
    company = Partner(kind="company", name="ТОО Алтын Жол", owner_id=office["mara"].id)
    refresh_search(company)
    db.session.commit()
    login(client, office["mara"])
    assert "Imported. New deals: 1," in upload(client, "Title;Company\nЖол;ТОО Алтын Жол\n")
    assert deals()["Жол"].company_id == company.id


def test_an_xlsx_workbook_is_read_too(office, client, login):
    login(client, office["mara"])
    book = Workbook()
    sheet = book.active
    sheet.append(["Title", "Stage", "Amount"])
    sheet.append(["From Excel", "Negotiation", 42])
    buffer = io.BytesIO()
    book.save(buffer)
    html = upload(client, buffer.getvalue(), name="deals.xlsx")
    assert "Imported. New deals: 1, updated: 0." in html
    assert deals()["From Excel"].stage.name == "Negotiation"


def test_contacts_and_deals_the_importer_may_not_see_are_not_found(office, client, login,
                                                                 make_user):
    """A salesperson given the import permission still works within the record rules."""
    from core.testing import grant

    anna = office["anna"]
    grant(anna, "pipeline.import")
    login(client, anna)
    theirs = upload(client, "Title;Company\nPeek;SIA Būve\n")
    assert "No company “SIA Būve” among your contacts." in theirs
    mine = upload(client, "Title\nMine\n")
    assert "Imported. New deals: 1," in mine
    deal_of_mara = deals()["Mine"]
    deal_of_mara.owner_id = office["mara"].id
    db.session.commit()
    html = upload(client, f"Number;Stage\n{deal_of_mara.id};Won\n")
    assert f"No deal number {deal_of_mara.id} among yours." in html


def test_importing_needs_the_permission_and_the_csrf_token(office, app, client, login):
    login(client, office["anna"])  # a salesperson: no pipeline.import
    assert client.get("/pipeline/import").status_code == 404
    client = app.test_client()
    login(client, office["mara"])
    response = client.post("/pipeline/import", data={
        "file": (io.BytesIO(b"Title\nX\n"), "deals.csv"), "action": "import"},
        content_type="multipart/form-data")
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(Deal.id))) == 0


def test_a_file_that_is_no_table_of_deals_gets_a_clear_message(office, client, login):
    login(client, office["mara"])
    assert "The file has no Title column." in upload(client, "Name;Phone\nX;1\n")
    assert "A vCard holds contacts, not deals" in upload(
        client, "BEGIN:VCARD\nVERSION:3.0\nFN:X\nEND:VCARD\n", name="x.vcf")
