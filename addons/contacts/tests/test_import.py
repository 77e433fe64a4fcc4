"""The import end to end: each format, companies from a people sheet, dry run, update by key,
duplicates, all-or-nothing (a failing row, a killed process), revert, custom fields, the
generated data set, and the bulk path computing exactly what the services compute."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from addons.contacts import services
from addons.contacts.duplicates import find_duplicates
from addons.contacts.folding import sort_keys
from addons.contacts.importing import runner
from addons.contacts.importing.models import ImportBatch, ImportRecord, ImportRowError
from addons.contacts.importing.uploads import create_batch
from addons.contacts.models import (
    CustomField,
    CustomValue,
    Partner,
    PartnerEmail,
    PartnerPhone,
    SearchToken,
)
from core.api import User, db
from core.testing import statements

DATA = Path(__file__).parent / "data"
GENERATOR = Path("/work/shared/bench/gen_dataset.py")
TABLES = (Partner, PartnerPhone, PartnerEmail, SearchToken, CustomValue)


@pytest.fixture
def app(make_app):
    application = make_app(["contacts"], BIRGA_PHONE_REGION="RU")
    with application.app_context():
        yield application


@pytest.fixture
def admin(make_user):
    return make_user("importer", is_admin=True)


def run_import(data: bytes, filename: str, user: User, *, kind: str = "person",
               dry_run: bool = False, mapping: dict[str, str] | None = None,
               **options) -> ImportBatch:
    batch = create_batch(data, filename, user_id=user.id, kind=kind)
    if mapping is not None:
        batch.mapping = mapping
    batch.options = {**batch.options, **options}
    db.session.commit()
    runner.execute(batch.id, dry_run=dry_run)
    db.session.expire_all()
    return db.session.get(ImportBatch, batch.id)


def counts() -> dict[str, int]:
    return {m.__tablename__: db.session.scalar(select(func.count()).select_from(m))
            for m in TABLES}


def csv_bytes(rows: list[list[str]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode()


def by_name(name: str) -> Partner:
    return db.session.scalar(select(Partner).where(Partner.name == name))


def search(query: str) -> list[str]:
    return sorted(db.session.scalars(select(Partner.name).where(
        services.search_condition(query))))


# -- formats -------------------------------------------------------------------------------
def test_windows_1251_csv_imports_people_with_their_companies(app, admin):
    batch = run_import((DATA / "people_cp1251_semicolon.csv").read_bytes(), "people.csv",
                       admin)
    assert batch.state == "done", batch.failure
    assert (batch.encoding, batch.delimiter) == ("cp1251", ";")
    assert batch.result["create"] == 2 and batch.result["error"] == 1
    assert batch.result["companies_created"] == 1
    ivan = by_name("Иван Сергеевич Петров")
    olga = by_name("Ольга Викторовна Смирнова")
    company = by_name("ООО «Ромашка»")
    assert company.kind == "company" and company.vat == "7707083893"
    assert ivan.company_id == olga.company_id == company.id  # matched by tax number
    assert ivan.company_name == "ООО «Ромашка»"
    assert ivan.phone == "+79161234567" and ivan.email == "ivan.petrov@example.ru"
    assert ivan.owner_id == admin.id
    assert search("петров") == ["Иван Сергеевич Петров"]
    assert search("ромашка") == sorted(["Иван Сергеевич Петров", "Ольга Викторовна Смирнова",
                                         "ООО «Ромашка»"])
    error = db.session.scalar(select(ImportRowError))
    assert (error.row_no, error.code) == (4, "email_invalid")
    assert error.values[0] == "Кузнецов"
    assert by_name("АО «Северсталь»") is None  # its only person was rejected


def test_vcard_21_quoted_printable_cyrillic_imports(app, admin):
    batch = run_import((DATA / "phone_v21_qp.vcf").read_bytes(), "phone.vcf", admin)
    assert batch.state == "done", batch.failure
    ivan = by_name("Иван Сергеевич Петров")
    assert [p.number for p in ivan.phones] == ["+79161234567", "+74951234567"]
    assert ivan.company_name == "ООО «Ромашка»"
    assert by_name("Ольга Смирнова").phone == "+79035551234"
    assert search("smirnova") == ["Ольга Смирнова"]


def test_vcard_30_and_xlsx_import(app, admin):
    from openpyxl import Workbook

    batch = run_import((DATA / "contacts_v30.vcf").read_bytes(), "contacts.vcf", admin)
    assert batch.state == "done", batch.failure
    janis = by_name("Jānis Bērziņš")
    assert [e.email for e in janis.emails] == ["janis@koks.lv", "berzins@example.lv"]
    assert (janis.city, janis.postcode, janis.country) == ("Rīga", "LV-1010", "LV")
    assert janis.birthday.isoformat() == "1980-05-17" and janis.job_title == "Valdes loceklis"
    assert janis.company.name == "SIA Koks"

    book = Workbook()
    book.active.append(["Name", "Tax number", "Country", "City"])
    book.active.append(["SIA Ozols", "LV40003245752", "LV", "Rīga"])
    out = io.BytesIO()
    book.save(out)
    batch = run_import(out.getvalue(), "companies.xlsx", admin, kind="company")
    assert batch.state == "done", batch.failure
    ozols = by_name("SIA Ozols")
    assert ozols.kind == "company" and ozols.vat == "40003245752"  # normalised as forms do
    assert search("ozols") == ["SIA Ozols"]


# -- dry run, update by key, duplicates ----------------------------------------------------
def test_dry_run_changes_nothing_and_reports_each_row(app, admin):
    existing = Partner(kind="person", first_name="Ivan", last_name="Petrov", name="")
    services.set_emails(existing, ["ivan@example.ru"])
    services.refresh_search(existing)
    db.session.commit()
    before = counts()
    data = csv_bytes([["First name", "Last name", "E-mail", "Birthday"],
                      ["Ivan", "Petrov", "IVAN@example.ru", ""],
                      ["Anna", "Liepa", "anna@example.lv", "1990-02-03"],
                      ["", "", "x@example.lv", ""],
                      ["Olga", "Kozlova", "olga@example.ru", "31.02.1990"]])
    batch = run_import(data, "people.csv", admin, dry_run=True, match_key="email")
    assert batch.state == "checked"
    assert counts() == before
    actions = [(row["row"], row["action"], row["code"]) for row in batch.result["preview"]]
    assert actions == [(2, "update", None), (3, "create", None), (4, "error", "name_missing"),
                       (5, "error", "date_invalid")]
    assert batch.result["preview"][0]["partner_id"] == existing.id


@pytest.fixture(params=["probe", "scan"])
def lookups(request, monkeypatch):
    """Matching finds existing values by `IN` queries, or for a file as big as the table by
    reading the table whole: both ways must find the same."""
    from addons.contacts.importing import matching

    if request.param == "scan":
        monkeypatch.setattr(matching, "CHUNK", 1)
        monkeypatch.setattr(matching, "SCAN_RATIO", 10**6)
    else:
        monkeypatch.setattr(matching, "SCAN_RATIO", 0)
    return request.param


def test_update_by_key_changes_the_existing_record_instead_of_duplicating(app, admin, lookups):
    first = run_import(csv_bytes([["id", "First name", "Last name", "Phone", "City"],
                                  ["A-1", "Ivan", "Petrov", "+7 916 123-45-67", "Moscow"]]),
                       "v1.csv", admin)
    assert first.result["create"] == 1
    second = run_import(csv_bytes([["id", "First name", "Last name", "Phone", "City"],
                                   ["A-1", "Ivan", "Petrov", "+7 903 000-00-01", "Kazan"]]),
                        "v2.csv", admin, match_key="external_id")
    assert second.state == "done", second.failure
    assert (second.result["create"], second.result["update"]) == (0, 1)
    assert db.session.scalar(select(func.count(Partner.id))) == 1
    ivan = by_name("Ivan Petrov")
    assert ivan.city == "Kazan"
    assert [p.number for p in ivan.phones] == ["+79161234567", "+79030000001"]  # added
    assert search("kazan") == ["Ivan Petrov"] and search("moscow") == []
    record = db.session.scalar(select(ImportRecord).where(
        ImportRecord.import_id == second.id))
    assert record.action == "update" and record.previous["fields"] == {"city": "Moscow"}


def test_rows_like_existing_contacts_are_flagged_or_skipped(app, admin, lookups):
    existing = Partner(kind="person", first_name="Anna", last_name="Liepa", name="")
    services.set_phones(existing, ["+7 916 555-00-00"])
    services.refresh_search(existing)
    db.session.commit()
    rows = [["First name", "Last name", "Phone"], ["Anna", "Liepa", "8 916 555 00 00"],
            ["Maria", "Ozola", "+7 921 111-22-33"], ["Marija", "Ozola", "+79211112233"]]
    flagged = run_import(csv_bytes(rows), "a.csv", admin, dry_run=True)
    dupes = {row["row"]: row["duplicates"] for row in flagged.result["preview"]}
    assert dupes[2] == [{"id": existing.id, "name": "Anna Liepa", "reasons": ["phone"]}]
    assert [m.partner_id for m in find_duplicates(phones=["8 916 555 00 00"])] == [existing.id]
    assert dupes[3] == [] and dupes[4] == [{"row": 3, "reasons": ["phone"]}]  # same file
    skipped = run_import(csv_bytes(rows), "b.csv", admin, skip_duplicates=True)
    assert (skipped.result["create"], skipped.result["skip"]) == (1, 2)
    assert search("ozola") == ["Maria Ozola"]


def test_tax_number_with_a_country_prefix_flags_the_company_stored_without_it(app, admin,
                                                                             lookups):
    existing = Partner(kind="company", name="SIA Koks", vat="40003000001", country="LV")
    services.refresh_search(existing)
    db.session.commit()
    rows = [["Name", "VAT"], ["Koks SIA", "LV40003000001"], ["Other SIA", "LV40003000777"],
            ["Other Ltd", "40003000777"]]
    flagged = run_import(csv_bytes(rows), "c.csv", admin, kind="company", dry_run=True)
    dupes = {row["row"]: row["duplicates"] for row in flagged.result["preview"]}
    assert dupes[2] == [{"id": existing.id, "name": "SIA Koks", "reasons": ["vat"]}]
    assert dupes[3] == [] and dupes[4] == [{"row": 3, "reasons": ["vat"]}]  # same file
    done = run_import(csv_bytes(rows[:2]), "d.csv", admin, kind="company")
    assert done.state == "done", done.failure
    assert search("40003000001") == ["Koks SIA", "SIA Koks"]


def test_a_kept_tax_number_warning_reads_in_each_readers_language(app, admin, client, login):
    batch = run_import(csv_bytes([["Name", "Country", "VAT"], ["SIA Koks", "LV", "LV 123"]]),
                       "t.csv", admin, kind="company")
    assert batch.result["create"] == 1
    assert by_name("SIA Koks").vat == "LV123"  # kept (compacted), not thrown away
    login(client, admin)
    page = client.get(f"/contacts/import/{batch.id}").get_data(as_text=True)
    assert "The tax number is kept as written: This is not a valid PVN: it has the wrong " \
        "number of digits" in page
    admin.locale = "ru"
    db.session.commit()
    page = client.get(f"/contacts/import/{batch.id}").get_data(as_text=True)
    assert "Налоговый номер сохранён как есть:" in page
    assert "в нём неверное число цифр" in page and "wrong number" not in page


def test_strict_import_saves_nothing_when_a_row_fails(app, admin):
    data = csv_bytes([["Name", "E-mail"], ["Good Row", "good@example.lv"],
                      ["Bad Row", "not an address"]])
    batch = run_import(data, "a.csv", admin, strict=True)
    assert batch.state == "failed" and batch.failure["code"] == "strict"
    assert counts()["contacts_partner"] == 0
    assert db.session.scalar(select(func.count(ImportRowError.id))) == 1


# -- all or nothing ------------------------------------------------------------------------
def test_a_failure_while_writing_leaves_the_database_as_it_was(app, admin, monkeypatch):
    before = counts()
    rows = [["First name", "Last name", "Phone"]] + [
        [f"Name{i}", f"Surname{i}", f"+7 916 000-{i:02d}-00"] for i in range(10)]
    real_rows = runner.Writer._rows

    def failing_rows(self, partners, names):
        if any(p.cand.row_no == 9 for p in partners):  # row 9 breaks, after rows 2-7 went in
            raise RuntimeError("disk full")
        return real_rows(self, partners, names)

    monkeypatch.setattr(runner, "WRITE_CHUNK", 3)
    monkeypatch.setattr(runner.Writer, "_rows", failing_rows)
    batch = run_import(csv_bytes(rows), "a.csv", admin)
    assert batch.state == "failed"
    assert batch.failure == {"code": "failed", "params": {"detail": "disk full"}}
    assert counts() == before


KILL_SCRIPT = """
import json, os, signal, sys
from core import create_app
from addons.contacts.importing import runner

config = json.loads(sys.argv[1])
app = create_app(config, addons=["contacts"])
real_insert = runner.bulk_insert
calls = []

def insert_then_die(conn, table, columns, rows):
    real_insert(conn, table, columns, rows)
    calls.append(table.name)
    if len(calls) == 6:  # the first chunk is in (uncommitted), the second half-way
        os.kill(os.getpid(), signal.SIGKILL)

runner.bulk_insert = insert_then_die
runner.WRITE_CHUNK = 5
runner.REBUILD_MIN_ROWS = 5  # on SQLite the sort-key and token indexes are dropped first
with app.app_context():
    runner.execute(int(sys.argv[2]))
"""


def index_definitions() -> dict[str, str]:
    """Every index of the contacts tables as the database describes it."""
    if db.engine.dialect.name == "sqlite":
        return dict(db.session.execute(text(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name LIKE 'contacts%'")).all())
    return dict(db.session.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'contacts%' "
        "AND schemaname = current_schema()")).all())


def test_an_import_killed_midway_leaves_nothing(app, admin):
    rows = [["First name", "Last name", "Phone"]] + [
        [f"Name{i}", f"Surname{i}", f"+7 916 000-{i:02d}-00"] for i in range(20)]
    batch = create_batch(csv_bytes(rows), "a.csv", user_id=admin.id)
    db.session.commit()
    indexes = index_definitions()
    config = {key: app.config[key] for key in (
        "SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "INSTANCE_PATH", "BIRGA_ADDONS",
        "BIRGA_PHONE_REGION") if key in app.config}
    config["SQLALCHEMY_ENGINE_OPTIONS"] = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})
    config["SQLALCHEMY_ENGINE_OPTIONS"].pop("poolclass", None)
    child = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, json.dumps(config), str(batch.id)],
        cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    db.session.expire_all()
    assert counts() == {t.__tablename__: 0 for t in TABLES}
    assert index_definitions() == indexes
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.state == "running"  # it never got to say anything else
    assert not runner.is_stale(batch)
    from datetime import timedelta

    batch.heartbeat_at = batch.heartbeat_at - runner.STALE_AFTER - timedelta(seconds=1)
    db.session.commit()
    assert runner.is_stale(batch)
    runner.execute(batch.id)  # a stale run can be started again, and completes
    db.session.expire_all()
    assert db.session.get(ImportBatch, batch.id).state == "done"
    assert counts()["contacts_partner"] == 20


# -- revert --------------------------------------------------------------------------------
def test_revert_deletes_what_was_created_and_restores_what_was_updated(app, admin):
    existing = Partner(kind="person", first_name="Ivan", last_name="Petrov", name="",
                       city="Moscow")
    services.set_emails(existing, ["ivan@example.ru"])
    services.refresh_search(existing)
    db.session.commit()
    before = counts()
    data = csv_bytes([["First name", "Last name", "E-mail", "City", "Phone", "Company"],
                      ["Ivan", "Petrov", "ivan@example.ru", "Kazan", "+79161234567",
                       "ООО Новая"],
                      ["Anna", "Liepa", "anna@example.lv", "Riga", "", "ООО Новая"]])
    batch = run_import(data, "a.csv", admin, match_key="email")
    assert (batch.result["create"], batch.result["update"]) == (1, 1)
    assert counts()["contacts_partner"] == before["contacts_partner"] + 2  # Anna + company
    runner.revert(batch, admin)
    db.session.commit()
    db.session.expire_all()
    assert counts() == before
    ivan = db.session.get(Partner, existing.id)
    assert (ivan.city, ivan.company_id, ivan.phone) == ("Moscow", None, None)
    assert search("kazan") == [] and search("moscow") == ["Ivan Petrov"]
    assert db.session.get(ImportBatch, batch.id).state == "reverted"
    with pytest.raises(ValueError):
        runner.revert(db.session.get(ImportBatch, batch.id))


def test_a_company_renamed_by_an_import_is_renamed_on_its_people_and_back_on_revert(
        app, admin):
    company = Partner(kind="company", name="Rīgas Piens", external_id="C-1")
    services.refresh_search(company)
    db.session.flush()
    person = Partner(kind="person", first_name="Jānis", last_name="Ozols", company=company)
    services.refresh_search(person)
    db.session.commit()
    batch = run_import(csv_bytes([["External ID", "Name"], ["C-1", "Latvijas Piens"]]),
                       "firms.csv", admin, kind="company", match_key="external_id")
    assert batch.result["update"] == 1
    assert (by_name("Jānis Ozols").company_name, search("latvijas")) == (
        "Latvijas Piens", ["Jānis Ozols", "Latvijas Piens"])
    runner.revert(batch, admin)
    db.session.commit()
    db.session.expire_all()
    assert (by_name("Jānis Ozols").company_name, search("latvijas")) == ("Rīgas Piens", [])


def test_update_by_key_never_touches_a_contact_the_importer_may_not_see(app, make_user):
    from core.api import assign_roles

    anna, bob = make_user("anna"), make_user("bob")
    for user in (anna, bob):
        assign_roles(user, "salesperson")  # own records only
    theirs = Partner(kind="person", first_name="Ivan", last_name="Petrov", owner_id=anna.id,
                     city="Moscow")
    services.set_emails(theirs, ["ivan@example.ru"])
    services.refresh_search(theirs)
    db.session.commit()
    batch = run_import(csv_bytes([["First name", "Last name", "E-mail", "City"],
                                  ["Ivan", "Petrov", "ivan@example.ru", "Kazan"],
                                  ["Olga", "Sidorova", "olga@example.ru", "Omsk"]]),
                       "mine.csv", bob, match_key="email")
    assert (batch.result["create"], batch.result["update"]) == (1, 0)
    [error] = db.session.scalars(select(ImportRowError).where(
        ImportRowError.import_id == batch.id)).all()
    assert (error.row_no, error.code) == (2, "key_not_visible")
    db.session.expire_all()
    ivan = db.session.get(Partner, theirs.id)
    assert (ivan.city, ivan.owner_id) == ("Moscow", anna.id)


def test_dry_run_flags_a_colleagues_contact_without_naming_it(app, make_user, client, login):
    from core.api import assign_roles
    from core.security import Role, RolePermission

    anna, bob = make_user("anna"), make_user("bob")
    for user in (anna, bob):
        assign_roles(user, "salesperson")  # own records only
    importer = Role(code="importer", name="Importer", default_scope="own")
    db.session.add(importer)
    db.session.flush()
    db.session.add(RolePermission(role_id=importer.id, permission="contacts.import"))
    assign_roles(bob, "importer")
    for owner, first, email in ((anna, "Ivan", "ivan@example.ru"),
                                (bob, "Boris", "boris@example.ru")):
        theirs = Partner(kind="person", first_name=first, last_name="Secret", owner_id=owner.id)
        services.set_emails(theirs, [email])
        services.refresh_search(theirs)
    db.session.commit()
    batch = run_import(csv_bytes([["First name", "Last name", "E-mail"],
                                  ["Ivan", "Petrov", "ivan@example.ru"],
                                  ["Boris", "Petrov", "boris@example.ru"]]),
                       "mine.csv", bob, dry_run=True)
    dupes = {row["row"]: row["duplicates"] for row in batch.result["preview"]}
    assert dupes[2] == [{"hidden": True, "reasons": ["email"]}]  # anna's: no name, no id
    assert dupes[3][0]["name"] == "Boris Secret"  # bob's own contact is named
    login(client, bob)
    html = client.get(f"/contacts/import/{batch.id}").get_data(as_text=True)
    assert "Ivan Secret" not in html and "Looks like a contact of a colleague" in html
    assert "Looks like Boris Secret" in html


def test_countries_are_read_from_names_in_any_staff_language_or_codes(app, admin):
    data = csv_bytes([["Name", "Country"], ["SIA Koks", "Latvija"], ["OOO Sever", "Россия"],
                      ["Codru SRL", "Republica Moldova"], ["Astyq", "kz"],
                      ["Paxta", "Oʻzbekiston"], ["Nowhere Ltd", "Atlantis"]])
    batch = run_import(data, "firms.csv", admin, kind="company")
    countries = dict(db.session.execute(select(Partner.name, Partner.country)).all())
    assert countries == {"SIA Koks": "LV", "OOO Sever": "RU", "Codru SRL": "MD",
                         "Astyq": "KZ", "Paxta": "UZ"}
    [error] = db.session.scalars(select(ImportRowError).where(
        ImportRowError.import_id == batch.id)).all()
    assert error.code == "country_invalid"


# -- custom fields, generated data, the bulk path ------------------------------------------
def test_custom_fields_are_imported_typed_and_searchable(app, admin):
    size = CustomField(code="fleet", labels={"en": "Fleet size"}, kind="number")
    industry = CustomField(code="industry", labels={"en": "Industry"}, kind="choice",
                           choices=[{"value": "logistics",
                                     "labels": {"en": "Logistics", "ru": "Логистика"}}])
    since = CustomField(code="since", labels={"en": "Client since"}, kind="date")
    vip = CustomField(code="vip", labels={"en": "VIP"}, kind="bool")
    db.session.add_all([size, industry, since, vip])
    db.session.commit()
    data = csv_bytes([["Name", "fleet", "industry", "since", "vip"],
                      ["SIA Auto", "1 200,5", "Логистика", "01.03.2020", "да"],
                      ["SIA Moto", "many", "", "", ""]])
    batch = run_import(data, "c.csv", admin, kind="company")
    assert batch.mapping == {"0": "name", "1": "custom:fleet", "2": "custom:industry",
                             "3": "custom:since", "4": "custom:vip"}
    assert batch.result["create"] == 1 and batch.result["error"] == 1
    auto = by_name("SIA Auto")
    values = {v.field_id: v for v in db.session.scalars(select(CustomValue).where(
        CustomValue.partner_id == auto.id))}
    assert str(values[size.id].value_number.normalize()) == "1200.5"
    assert values[industry.id].value_text == "logistics"
    assert values[industry.id].value_key == "logistics"  # the text filter's folded copy
    assert values[since.id].value_date.isoformat() == "2020-03-01"
    assert values[vip.id].value_bool is True
    assert search("logistika") == ["SIA Auto"]  # the choice's labels are searchable


def test_the_bulk_path_derives_the_same_data_as_the_services(app, admin):
    data = csv_bytes([["First name", "Last name", "Middle name", "Phone", "E-mail", "Company",
                       "City", "Tax number"],
                      ["Gʻayrat", "Oʻrinboyev", "", "+998 90 123 45 67; 12345",
                       "G.Orin@Mail.UZ", "Toshkent Savdo MChJ", "Toshkent", "301234567"],
                      ["Әлия", "Қасымова", "Серікқызы", "8 701 555 66 77", "aliya@example.kz",
                       "«Алатау» ЖШС", "Алматы", ""],
                      ["Ștefan", "Țurcanu", "", "+373 60 000 001", "st'efan@example.md",
                       "", "Chișinău", ""]])
    batch = run_import(data, "p.csv", admin)
    assert batch.state == "done", batch.failure
    partners = db.session.scalars(select(Partner).order_by(Partner.id)).all()
    assert len(partners) == 5
    for partner in partners:
        stored = sorted(db.session.scalars(select(SearchToken.token).where(
            SearchToken.partner_id == partner.id)))
        assert stored == services.indexed_tokens(services.search_tokens(partner)), partner.name
        assert partner.search_text == " ".join(stored)
        for column, key in sort_keys(partner.name).items():
            assert getattr(partner, column) == key


def test_generated_data_set_imports_through_the_normal_mapping(app, admin, tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path), "--contacts",
                    "150"], check=True)
    with open(tmp_path / "users.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            db.session.add(User(login=row["login"], name=row["name"]))
    db.session.commit()
    companies = run_import((tmp_path / "companies.csv").read_bytes(), "companies.csv", admin,
                           kind="company")
    assert companies.state == "done", companies.failure
    assert companies.result["create"] == 30 and companies.result["error"] == 0
    people = run_import((tmp_path / "contacts.csv").read_bytes(), "contacts.csv", admin)
    assert people.state == "done", people.failure
    assert people.mapping["3"] == "company_external_id" and people.mapping["9"] == "owner"
    assert people.result["create"] == 150 and people.result["error"] == 0
    with open(tmp_path / "contacts.csv", encoding="utf-8") as f:
        source = list(csv.DictReader(f))
    for row in source[:20]:
        person = db.session.scalar(select(Partner).where(
            Partner.kind == "person", Partner.external_id == row["id"]))
        assert person.first_name == row["first_name"] and person.city == row["city"]
        assert db.session.get(User, person.owner_id).login == row["owner"]
        if row["company_id"]:
            assert person.company.external_id == row["company_id"]
        else:
            assert person.company_id is None
    sample = source[0]
    assert sample["first_name"] + " " + sample["last_name"] in search(sample["last_name"])


def test_a_long_import_runs_as_a_background_job(make_app, make_user):
    from core.jobs import running_consumer

    app = make_app(["contacts"], BIRGA_IMPORT_INLINE_ROWS=5)
    with app.app_context():
        user = make_user("bulk", is_admin=True)
        rows = [["Name", "E-mail"]] + [[f"Company {i}", f"c{i}@example.lv"]
                                       for i in range(30)]
        batch = create_batch(csv_bytes(rows), "c.csv", user_id=user.id, kind="company")
        db.session.commit()
        with running_consumer(app):
            runner.start(batch, dry_run=False)
            import time

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                db.session.expire_all()
                if db.session.get(ImportBatch, batch.id).state in ("done", "failed"):
                    break
                time.sleep(0.1)
        batch = db.session.get(ImportBatch, batch.id)
        assert batch.state == "done", batch.failure
        assert batch.processed_rows == batch.total_rows == 30
        assert db.session.scalar(select(func.count(Partner.id))) == 30


def test_one_sheet_of_companies_and_people_links_people_to_their_company(app, admin,
                                                                         lookups):
    existing = Partner(kind="company", name="SIA Koks", vat="40003245752")
    db.session.add(existing)
    services.refresh_search(existing)
    db.session.commit()
    rows = [["Type", "Name", "First name", "Last name", "Company", "Tax number"],
            ["company", "SIA Koks", "", "", "", "40003245752"],
            ["company", "SIA Akmens", "", "", "", ""],
            ["person", "", "Jānis", "Bērziņš", "SIA Koks", ""],
            ["person", "", "Anna", "Liepa", "sia akmens", ""]]
    batch = run_import(csv_bytes(rows), "mixed.csv", admin, skip_duplicates=True)
    assert batch.state == "done", batch.failure
    assert (batch.result["create"], batch.result["skip"]) == (3, 1)  # SIA Koks exists
    assert by_name("Jānis Bērziņš").company_id == existing.id
    akmens = by_name("SIA Akmens")
    assert akmens.kind == "company" and by_name("Anna Liepa").company_id == akmens.id
    assert db.session.scalar(select(func.count(Partner.id)).where(
        Partner.kind == "company")) == 2


# -- a big import into a small table (SQLite builds some indexes afterwards) ---------------
def people_rows(count: int) -> list[list[str]]:
    return [["First name", "Last name", "Phone", "E-mail", "City"]] + [
        [f"Name{i}", ["Bērziņš", "Петров", "Oʻrinboyev", "Țurcanu"][i % 4],
         f"+371 2{i:07d}", f"p{i}@example.lv", ["Rīga", "Алматы", "Chișinău"][i % 3]]
        for i in range(count)]


def test_a_big_import_into_a_small_table_builds_the_indexes_again(app, admin, monkeypatch):
    monkeypatch.setattr(runner, "REBUILD_MIN_ROWS", 10)
    indexes = index_definitions()
    with statements() as seen:
        batch = run_import(csv_bytes(people_rows(40)), "p.csv", admin)
    assert batch.state == "done", batch.failure
    dropped = [s for s in seen if s.startswith("DROP INDEX")]
    if db.engine.dialect.name == "sqlite":
        assert len(dropped) == len(runner.DEFERRED_INDEXES) == 13
        assert db.session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    else:  # DROP INDEX would lock the contacts list for everyone until the commit
        assert dropped == []
    assert index_definitions() == indexes
    partners = db.session.scalars(select(Partner).order_by(Partner.id)).all()
    assert sorted(p.first_name for p in partners) == sorted(f"Name{i}" for i in range(40))
    # One import's ids follow its names' order (the indexes take them in order).
    assert [p.sort_en for p in partners] == sorted(p.sort_en for p in partners)
    for partner in partners:
        stored = sorted(db.session.scalars(select(SearchToken.token).where(
            SearchToken.partner_id == partner.id)))
        assert stored == services.indexed_tokens(services.search_tokens(partner)), partner.name
        for column, key in sort_keys(partner.name).items():
            assert getattr(partner, column) == key
    assert search("berzins") == sorted(f"Name{i} Bērziņš" for i in range(0, 40, 4))
    assert search("+371 20000006") == ["Name6 Oʻrinboyev"]


def test_a_big_import_that_fails_leaves_the_indexes_as_they_were(app, admin, monkeypatch):
    monkeypatch.setattr(runner, "REBUILD_MIN_ROWS", 10)
    monkeypatch.setattr(runner, "WRITE_CHUNK", 10)
    before, indexes = counts(), index_definitions()
    real_insert = runner.bulk_insert

    def failing_insert(conn, table, columns, rows):
        real_insert(conn, table, columns, rows)
        if table.name == "contacts_search_token":  # the first chunk is in
            raise RuntimeError("disk full")

    monkeypatch.setattr(runner, "bulk_insert", failing_insert)
    batch = run_import(csv_bytes(people_rows(30)), "p.csv", admin)
    assert batch.state == "failed" and batch.failure["params"] == {"detail": "disk full"}
    assert counts() == before
    assert index_definitions() == indexes


def test_an_import_into_a_bigger_table_keeps_its_indexes(app, admin, monkeypatch):
    monkeypatch.setattr(runner, "REBUILD_MIN_ROWS", 10)
    first = run_import(csv_bytes(people_rows(30)), "p.csv", admin)
    assert first.state == "done", first.failure
    with statements() as seen:
        rows = [["First name", "Last name"]] + [[f"More{i}", "Ozols"] for i in range(12)]
        second = run_import(csv_bytes(rows), "more.csv", admin)
    assert second.state == "done", second.failure
    assert not [s for s in seen if s.startswith("DROP INDEX")]
    assert len(search("ozols")) == 12


def planner_row_count(table: str) -> int | None:
    """The row count the query planner believes `table` has (None: never analysed)."""
    if db.engine.dialect.name == "sqlite":
        if db.session.execute(text("SELECT 1 FROM sqlite_schema "
                                   "WHERE name = 'sqlite_stat1'")).first() is None:
            return None
        stat = db.session.execute(text(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = :t ORDER BY idx LIMIT 1"),
            {"t": table}).scalar()
        return None if stat is None else int(stat.split()[0])
    tuples = db.session.execute(text("SELECT reltuples FROM pg_class "
                                     "WHERE oid = to_regclass(:t)"), {"t": table}).scalar()
    return None if tuples is None or tuples < 0 else int(tuples)


def test_a_big_import_leaves_the_planner_statistics_up_to_date(app, admin, monkeypatch):
    monkeypatch.setattr(runner, "STATISTICS_MIN_ROWS", 20)
    small = run_import(csv_bytes(people_rows(10)), "small.csv", admin)
    assert small.state == "done", small.failure
    db.session.rollback()
    assert planner_row_count("contacts_partner") is None  # too few rows to bother
    big = run_import(csv_bytes(people_rows(40)[:1] + people_rows(50)[11:]), "big.csv", admin)
    assert big.state == "done", big.failure
    db.session.rollback()
    assert planner_row_count("contacts_partner") == 50
    assert planner_row_count("contacts_search_token") > 50


def test_local_phone_numbers_are_read_in_each_rows_country(app, admin):
    """A Romanian client's "0721 234 567" is Romanian even when the sheet's phone column comes
    before its country column and the installation's region is Russian."""
    data = csv_bytes([["Name", "Phone", "Country"],
                      ["Ana Țurcanu", "0721 234 567", "RO"],
                      ["Jānis Bērziņš", "29 123 456", "LV"],
                      ["Иван Петров", "8 916 123-45-67", ""]])
    batch = run_import(data, "clients.csv", admin)
    assert batch.state == "done", batch.state
    assert by_name("Ana Țurcanu").phone == "+40721234567"
    assert by_name("Jānis Bērziņš").phone == "+37129123456"
    assert by_name("Иван Петров").phone == "+79161234567"  # no country: BIRGA_PHONE_REGION
