"""The list's search box: folded across scripts and diacritics, phones typed any way."""
from __future__ import annotations

import pytest

from addons.contacts import services
from addons.contacts.models import Partner, SearchToken
from core.api import assign_roles, db

pytestmark = pytest.mark.addons("contacts")

PEOPLE = [
    # (first, last, phone)
    ("Jānis", "Bērziņš", "+371 2000 0001"),
    ("Иван", "Петров", "+7 916 123-45-67"),
    ("Ion", "Țurcanu", "+373 69 123 456"),
    ("Aziz", "Gʻulomov", "+998 90 123 45 67"),
    ("Әлия", "Қасымова", "+7 701 234 5678"),
    ("Maria", "Popescu", "+40 721 234 567"),
]


def _person(first: str, last: str, phone: str) -> Partner:
    partner = Partner(kind="person", first_name=first, last_name=last)
    services.set_phones(partner, [phone])
    services.refresh_search(partner)
    return partner


@pytest.fixture
def seller(app, client, make_user, login):
    user = make_user("root", is_admin=True)
    assign_roles(user, "administrator")
    for first, last, phone in PEOPLE:
        _person(first, last, phone)
    db.session.commit()
    login(client, user)
    return user


def _names(client, query: str) -> set[str]:
    html = client.get("/contacts/", query_string={"q": query}).get_data(as_text=True)
    return {last for _f, last, _p in PEOPLE if last in html}


@pytest.mark.parametrize(("query", "expected"), [
    ("berzins", "Bērziņš"),          # Latvian diacritics
    ("BERZIŅŠ", "Bērziņš"),
    ("петров", "Петров"),            # Cyrillic, lower case finds upper case
    ("petrov", "Петров"),            # Latin typing finds Cyrillic
    ("turcanu", "Țurcanu"),          # Romanian comma-below T
    ("gulomov", "Gʻulomov"),         # Uzbek modifier-letter apostrophe
    ("g'ulomov", "Gʻulomov"),
    ("касымова", "Қасымова"),        # Kazakh letters typed as their Russian neighbours
    ("қасым", "Қасымова"),           # a prefix
    ("алия", "Қасымова"),
])
def test_search_folds_every_script(seller, client, query, expected):
    assert _names(client, query) == {expected}


@pytest.mark.parametrize(("query", "expected"), [
    ("+371 2000 0001", "Bērziņš"),
    ("0037120000001", "Bērziņš"),
    ("20000001", "Bērziņš"),
    ("(+371) 2000-0001", "Bērziņš"),
    ("8 (916) 123-45-67", "Петров"),
    ("+7 916 1234567", "Петров"),
    ("9161234567", "Петров"),
    ("0721 234 567", "Popescu"),
    ("+998901234567", "Gʻulomov"),
])
def test_search_finds_phones_typed_any_way(seller, client, query, expected):
    assert _names(client, query) == {expected}


def test_search_by_several_words_needs_all_of_them(seller, client):
    assert _names(client, "ivan petrov") == {"Петров"}
    assert _names(client, "ivan berzins") == set()


def test_search_finds_email_and_tax_number(seller, client):
    partner = db.session.scalar(db.select(Partner).where(Partner.last_name == "Popescu"))
    services.set_emails(partner, ["Maria.Popescu@Example.RO"])
    partner.vat = "18547290"
    services.refresh_search(partner)
    db.session.commit()
    assert _names(client, "maria.popescu@example.ro") == {"Popescu"}
    assert _names(client, "18547290") == {"Popescu"}


def test_a_word_that_begins_another_of_the_contacts_words_gets_no_row_yet_finds_them(
        seller, client):
    partner = db.session.scalar(db.select(Partner).where(Partner.last_name == "Popescu"))
    services.set_emails(partner, ["Maria.Popescu@Example.RO"])
    services.refresh_search(partner)
    db.session.commit()
    stored = set(db.session.scalars(db.select(SearchToken.token).where(
        SearchToken.partner_id == partner.id)))
    assert "maria.popescu@example.ro" in stored
    # Both begin the address (so a prefix search finds it for them): no rows of their own.
    assert "maria" not in stored and "maria.popescu" not in stored
    assert partner.search_text == " ".join(sorted(stored))
    for query in ("maria", "Maria.Popescu", "mar", "popescu"):
        assert _names(client, query) == {"Popescu"}, query


def test_tax_number_is_found_with_or_without_its_country_prefix(seller, client):
    popescu = db.session.scalar(db.select(Partner).where(Partner.last_name == "Popescu"))
    popescu.vat = "18547290"  # a Romanian number as the form stores it, bare
    petrov = db.session.scalar(db.select(Partner).where(Partner.last_name == "Петров"))
    petrov.vat = "LV40003000009"  # as an import without a country kept it
    for partner in (popescu, petrov):
        services.refresh_search(partner)
    db.session.commit()
    assert _names(client, "RO18547290") == {"Popescu"}
    assert _names(client, "ro 18547290") == set()  # two words: "ro" is no one's word
    assert _names(client, "40003000009") == {"Петров"}
    assert _names(client, "lv40003000009") == {"Петров"}


def test_search_of_something_absent_shows_nothing(seller, client):
    html = client.get("/contacts/", query_string={"q": "zzzyx"}).get_data(as_text=True)
    assert _names(client, "zzzyx") == set()
    assert "No contacts match." in html


def test_demo_data_is_searchable_and_loads_once(app, client, make_user, login):
    from addons.contacts import demo

    first = demo.load()
    db.session.commit()
    assert demo.load() == {"skipped": True}
    count = db.session.scalar(db.select(db.func.count(Partner.id)))
    assert count == first["companies"] + first["people"]
    login(client, make_user("root", is_admin=True))
    html = client.get("/contacts/", query_string={"q": "berzins"}).get_data(as_text=True)
    assert "Jānis Bērziņš" in html
    html = client.get("/contacts/", query_string={"q": "астык"}).get_data(as_text=True)
    assert "Астық Трейд" in html
