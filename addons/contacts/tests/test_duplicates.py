"""Duplicate detection: each reason on create/import, and the managers' duplicates page."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from addons.contacts.duplicates import duplicate_pairs, find_duplicates
from addons.contacts.models import Partner
from addons.contacts.services import refresh_search, set_emails, set_phones
from core.api import assign_roles, db, scoped

pytestmark = pytest.mark.addons("contacts")


def partner(name: str = "", *, kind: str = "person", first: str | None = None,
            last: str | None = None, phones: tuple[str, ...] = (), emails: tuple[str, ...] = (),
            vat: str | None = None, company: Partner | None = None, owner=None,
            active: bool = True) -> Partner:
    p = Partner(kind=kind, name=name, first_name=first, last_name=last, vat=vat,
                company_id=company.id if company else None, active=active,
                owner_id=owner.id if owner else None)
    if company is not None:
        p.company = company
    set_phones(p, phones)
    set_emails(p, emails)
    refresh_search(p)
    db.session.commit()
    return p


@pytest.fixture
def region(app):
    app.config["BIRGA_PHONE_REGION"] = "LV"


def test_same_phone_typed_another_way_is_a_duplicate(app, region):
    existing = partner(first="Jānis", last="Bērziņš", phones=("+371 2000 0001",))
    partner(first="Other", last="Person", phones=("+371 2999 9999",))
    matches = find_duplicates(phones=["20 000 001"])
    assert [(m.partner_id, m.reasons) for m in matches] == [(existing.id, ["phone"])]
    assert find_duplicates(phones=["0037120000001"])[0].partner_id == existing.id


def test_same_email_in_other_case_is_a_duplicate(app):
    existing = partner(first="Anna", last="Ozola", emails=("Anna.Ozola@Example.LV",))
    matches = find_duplicates(emails=["anna.ozola@example.lv", "not an address"])
    assert [(m.partner_id, m.reasons) for m in matches] == [(existing.id, ["email"])]


def test_same_tax_number_with_spaces_and_dashes_is_a_duplicate(app):
    company = partner("SIA Būve", kind="company", vat="LV40003000001")
    matches = find_duplicates(vat="lv 4000-3000 001")
    assert [(m.partner_id, m.reasons) for m in matches] == [(company.id, ["vat"])]


def test_tax_number_matches_with_or_without_its_country_prefix(app):
    # The form stores a Latvian number bare; an import without a country kept the prefix.
    bare = partner("SIA Bare", kind="company", vat="40003000001")
    prefixed = partner("SIA Prefixed", kind="company", vat="LV40003000002")
    assert [m.partner_id for m in find_duplicates(vat="LV 4000 3000 001")] == [bare.id]
    assert [m.partner_id for m in find_duplicates(vat="40003000002", country="LV")] \
        == [prefixed.id]
    # Without the country a bare number says nothing about the prefix it may be stored with.
    assert find_duplicates(vat="40003000002") == []


def test_similar_name_only_counts_within_the_same_company(app):
    firm = partner("ООО Строй", kind="company")
    other_firm = partner("АО Логистик", kind="company")
    colleague = partner(first="Иван", last="Петров", company=firm)
    partner(first="Иван", last="Петров", company=other_firm)
    # Transliterated and in the other order, still "very similar" (folded, token-sorted).
    matches = find_duplicates(name="Petrov Ivan", company_id=firm.id)
    assert [(m.partner_id, m.reasons) for m in matches] == [(colleague.id, ["name"])]
    assert find_duplicates(name="Sergey Smirnov", company_id=firm.id) == []
    assert find_duplicates(name="Petrov Ivan") == []  # no company: names alone say nothing


def test_several_reasons_rank_first_and_inactive_or_excluded_are_skipped(app):
    strong = partner(first="A", last="One", phones=("+37120000002",), emails=("a@x.lv",))
    weak = partner(first="B", last="Two", phones=("+37120000002",))
    partner(first="C", last="Gone", emails=("a@x.lv",), active=False)
    matches = find_duplicates(phones=["+37120000002"], emails=["a@x.lv"])
    assert [m.partner_id for m in matches] == [strong.id, weak.id]
    assert sorted(matches[0].reasons) == ["email", "phone"]
    assert [m.partner_id for m in find_duplicates(phones=["+37120000002"],
                                                  exclude_id=strong.id)] == [weak.id]


def test_pairs_are_listed_per_reason_and_limited_to_what_the_user_sees(app, make_user):
    seller = make_user("seller")
    assign_roles(seller, "salesperson")
    firm = partner("Firm", kind="company")
    a = partner(first="Līga", last="Zariņa", phones=("+37120000003",), emails=("l@z.lv",),
                company=firm, owner=seller)
    b = partner(first="Liga", last="Zarina", phones=("+37120000003",), emails=("L@Z.lv",),
                company=firm, owner=seller)
    c = partner(first="Someone", last="Else", phones=("+37120000003",))  # not the seller's
    v1 = partner("Vat One", kind="company", vat="LV123")
    v2 = partner("Vat Two", kind="company", vat="LV123")

    phone_pairs, more = duplicate_pairs("phone")
    assert not more
    assert {(p.first_id, p.second_id) for p in phone_pairs} == {(a.id, b.id), (a.id, c.id),
                                                                (b.id, c.id)}
    assert [(p.first_id, p.second_id, p.value) for p in duplicate_pairs("email")[0]] == [
        (a.id, b.id, "l@z.lv")]
    assert [(p.first_id, p.second_id) for p in duplicate_pairs("vat")[0]] == [(v1.id, v2.id)]
    assert [(p.first_id, p.second_id) for p in duplicate_pairs("name")[0]] == [(a.id, b.id)]

    mine = scoped(select(Partner.id), seller, model=Partner)
    assert [(p.first_id, p.second_id) for p in duplicate_pairs("phone", within=mine)[0]] == [
        (a.id, b.id)]
    first_page, more = duplicate_pairs("phone", limit=2)
    assert len(first_page) == 2 and more


def test_the_duplicates_page_pairs_a_tax_number_with_and_without_its_country_prefix(app):
    prefixed = partner("SIA Būve", kind="company", vat="LV40003000001")
    bare = partner("Būve", kind="company", vat="40003000001")
    bare.country = "LV"
    partner("Ehitus OÜ", kind="company", vat="EE40003000001")  # another country's number
    romanian = partner("Construct SRL", kind="company", vat="40003000001")
    romanian.country = "RO"
    partner("Other", kind="company", vat="40003000009")
    db.session.commit()
    pairs = duplicate_pairs("vat")[0]
    assert [(p.first_id, p.second_id) for p in pairs] == [(prefixed.id, bare.id)]
    assert duplicates_count("vat") == 1


def duplicates_count(reason: str) -> int:
    from addons.contacts.duplicates import count_pairs

    return count_pairs()[reason]


def test_duplicates_page_is_for_managers(app, client, make_user, login):
    manager, seller = make_user("manager"), make_user("seller")
    assign_roles(manager, "sales_manager")
    assign_roles(seller, "salesperson")
    a = partner(first="Ērika", last="Ābele", emails=("e@a.lv",), owner=manager)
    b = partner(first="Erika", last="Abele", emails=("e@a.lv",), owner=manager)
    login(client, manager)
    html = client.get("/contacts/duplicates?reason=email").get_data(as_text=True)
    assert "e@a.lv" in html and f"ids={a.id}&amp;ids={b.id}" in html
    seller_client = app.test_client()
    login(seller_client, seller)
    assert seller_client.get("/contacts/duplicates").status_code == 404


def test_reason_tabs_keep_abbreviations_in_upper_case(app, client, make_user, login):
    manager = make_user("manager", locale="ru")
    assign_roles(manager, "sales_manager")
    login(client, manager)
    html = client.get("/contacts/duplicates").get_data(as_text=True)
    assert "Тот же ИНН" in html and "Тот же инн" not in html
