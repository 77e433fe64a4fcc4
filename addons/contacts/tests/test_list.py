"""The contacts list: sort in the reader's alphabet, filters, saved filters, pages and a
constant number of SQL queries per page."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from addons.contacts import services
from addons.contacts.models import Partner, PartnerTag, SavedFilter, Tag
from core.api import assign_roles, db, utcnow
from core.testing import csrf_token, statements

pytestmark = pytest.mark.addons("contacts")


def _person(last: str, first: str = "", **fields) -> Partner:
    partner = Partner(kind="person", first_name=first or None, last_name=last, **fields)
    services.refresh_search(partner)
    return partner


def _rows(html: str) -> list[str]:
    """Names in the list's order (the link text of each row's first column)."""
    return re.findall(r'<tr id="partner-\d+">\s*<td>.*?</td>\s*<td><a href="[^"]+">([^<]+)</a>',
                      html, re.S)


@pytest.fixture
def admin(app, client, make_user, login):
    user = make_user("root", is_admin=True)
    login(client, user)
    return user


def _set_locale(user, locale: str) -> None:
    user.locale = locale
    db.session.commit()


def test_latvian_reader_sees_names_in_latvian_order(admin, client):
    for name in ("Zariņš", "Bērziņš", "Cīrulis", "Čakste", "Berzins", "Abele", "Dārziņš"):
        _person(name)
    db.session.commit()
    _set_locale(admin, "lv")
    rows = _rows(client.get("/contacts/").get_data(as_text=True))
    assert rows == ["Abele", "Berzins", "Bērziņš", "Cīrulis", "Čakste", "Dārziņš", "Zariņš"]


def test_kazakh_reader_sees_cyrillic_first_and_ae_beside_a(admin, client):
    for name in ("Борис", "Әлия", "Smith", "Алия", "Ерлан"):
        _person(name)
    db.session.commit()
    _set_locale(admin, "kk")
    rows = _rows(client.get("/contacts/").get_data(as_text=True))
    assert rows.index("Әлия") == rows.index("Алия") + 1
    assert rows[-1] == "Smith"
    _set_locale(admin, "en")
    rows = _rows(client.get("/contacts/").get_data(as_text=True))
    assert rows[0] == "Smith"


def test_descending_name_and_other_sorts(admin, client):
    old = _person("Ozols", city="Rīga")
    new = _person("Kalns", city="Daugavpils")
    old.last_contact_at = utcnow() - timedelta(days=30)
    new.last_contact_at = utcnow() - timedelta(days=1)
    db.session.commit()
    assert _rows(client.get("/contacts/?sort=-name").get_data(as_text=True)) == ["Ozols", "Kalns"]
    assert _rows(client.get("/contacts/?sort=-created").get_data(as_text=True)) == [
        "Kalns", "Ozols"]
    assert _rows(client.get("/contacts/?sort=city").get_data(as_text=True)) == ["Kalns", "Ozols"]
    assert _rows(client.get("/contacts/?sort=-last_contact").get_data(as_text=True)) == [
        "Kalns", "Ozols"]


@pytest.fixture
def world(admin, make_user):
    anna = make_user("anna", name="Anna Seller")
    assign_roles(anna, "salesperson")
    vip = Tag(name="VIP")
    db.session.add(vip)
    db.session.flush()
    people = {
        "Alpha": _person("Alpha", status="client", owner_id=anna.id, city="Rīga", country="LV",
                         segment="A", last_contact_at=utcnow() - timedelta(days=2)),
        "Bravo": _person("Bravo", status="lead", city="Москва", country="RU", segment="B",
                         last_contact_at=utcnow() - timedelta(days=40)),
        "Charlie": _person("Charlie", status="prospect", owner_id=admin.id, city="Chisinau",
                           country="MD"),
    }
    company = Partner(kind="company", name="Delta SIA", status="client", city="rīga",
                      country="LV", owner_id=anna.id)
    services.refresh_search(company)
    db.session.add(PartnerTag(partner_id=people["Bravo"].id, tag_id=vip.id))
    db.session.commit()
    return {"anna": anna, "vip": vip, **people}


@pytest.mark.parametrize(("query", "expected"), [
    ("kind=company", ["Delta SIA"]),
    ("kind=person", ["Alpha", "Bravo", "Charlie"]),
    ("status=client", ["Alpha", "Delta SIA"]),
    ("status=lead&status=prospect", ["Bravo", "Charlie"]),
    ("owner=none", ["Bravo"]),
    ("owner=me", ["Charlie"]),
    ("segment=A", ["Alpha"]),
    ("segment=none", ["Charlie", "Delta SIA"]),
    ("city=R%C4%ABga", ["Alpha", "Delta SIA"]),      # Rīga: case-insensitive
    ("city=%D0%BC%D0%BE%D1%81%D0%BA%D0%B2%D0%B0", ["Bravo"] ),  # москва finds Москва
    ("country=md", ["Charlie"]),
    ("idle=30", ["Bravo", "Charlie", "Delta SIA"]),   # never contacted counts as idle
    ("idle=1", ["Alpha", "Bravo", "Charlie", "Delta SIA"]),
    ("q=delta&status=client", ["Delta SIA"]),
])
def test_filters_narrow_the_list(world, client, query, expected):
    html = client.get("/contacts/?" + query).get_data(as_text=True)
    assert _rows(html) == expected


def test_owner_and_tag_filters_by_id(world, client):
    assert _rows(client.get(f"/contacts/?owner={world['anna'].id}").get_data(
        as_text=True)) == ["Alpha", "Delta SIA"]
    assert _rows(client.get(f"/contacts/?tag={world['vip'].id}").get_data(
        as_text=True)) == ["Bravo"]


def test_people_and_companies_pages_fix_the_kind(world, client):
    assert _rows(client.get("/contacts/companies").get_data(as_text=True)) == ["Delta SIA"]
    assert "Delta SIA" not in _rows(client.get("/contacts/people").get_data(as_text=True))


def test_saved_filter_belongs_to_its_user(world, admin, client, make_user, login, app):
    token = csrf_token(client, "/contacts/?status=client")
    response = client.post("/contacts/filters", data={
        "csrf_token": token, "name": "My clients", "query": "status=client&page=3&sort=-name"})
    assert response.status_code == 302
    saved = db.session.scalar(select(SavedFilter))
    assert (saved.user_id, saved.name, saved.query) == (admin.id, "My clients",
                                                         {"status": ["client"]})
    listing = client.get("/contacts/").get_data(as_text=True)
    assert "My clients" in listing
    opened = client.get(f"/contacts/filters/{saved.id}", follow_redirects=True)
    assert _rows(opened.get_data(as_text=True)) == ["Alpha", "Delta SIA"]

    other = app.test_client()
    login(other, world["anna"])
    assert "My clients" not in other.get("/contacts/").get_data(as_text=True)
    assert other.get(f"/contacts/filters/{saved.id}").status_code == 404
    token = csrf_token(other, "/contacts/")
    assert other.post(f"/contacts/filters/{saved.id}/delete",
                      data={"csrf_token": token}).status_code == 404

    token = csrf_token(client, "/contacts/")
    client.post(f"/contacts/filters/{saved.id}/delete", data={"csrf_token": token})
    assert db.session.scalar(select(SavedFilter)) is None


def test_saving_a_filter_needs_the_csrf_token(world, client):
    response = client.post("/contacts/filters", data={"name": "x", "query": "status=lead"})
    assert response.status_code == 400
    assert db.session.scalar(select(SavedFilter)) is None


def _bulk_people(count: int) -> None:
    rows = []
    for index in range(count):
        partner = Partner(kind="person", last_name=f"Person {index:04d}", status="lead")
        services.set_phones(partner, [f"+371 2{index:07d}"])
        services.set_emails(partner, [f"p{index}@example.lv"])
        rows.append(partner)
        services.refresh_search(partner)
    db.session.commit()


def test_pages_walk_the_sorted_list(admin, client):
    _bulk_people(45)
    first = _rows(client.get("/contacts/?per_page=20").get_data(as_text=True))
    second = _rows(client.get("/contacts/?per_page=20&page=2").get_data(as_text=True))
    third = _rows(client.get("/contacts/?per_page=20&page=3").get_data(as_text=True))
    # The first page reads in index order, the others pick their ids first: they join up.
    assert first + second == [f"Person {i:04d}" for i in range(40)]
    assert third == [f"Person {i:04d}" for i in range(40, 45)]
    beyond = _rows(client.get("/contacts/?per_page=20&page=99").get_data(as_text=True))
    assert beyond == third  # a page past the end shows the last one


def test_the_pager_links_pages_around_the_current_one_and_keeps_the_filters(admin, client):
    _bulk_people(130)  # 7 pages of 20
    html = client.get("/contacts/?status=lead&per_page=20&page=5").get_data(as_text=True)
    pager = html.split('<nav class="pager"')[1].split("</nav>")[0]
    base = "/contacts/?status=lead&amp;"
    links = re.findall(r'<a href="([^"]+)"( rel="\w+")?>([^<]+)</a>', pager)
    assert links == [
        (base + "page=4&amp;per_page=20", ' rel="prev"', "← Previous"),
        (base + "per_page=20", "", "1"), (base + "page=3&amp;per_page=20", "", "3"),
        (base + "page=4&amp;per_page=20", "", "4"), (base + "page=6&amp;per_page=20", "", "6"),
        (base + "page=7&amp;per_page=20", "", "7"),
        (base + "page=6&amp;per_page=20", ' rel="next"', "Next →"),
        ("/contacts/?status=lead", "", "50"), (base + "per_page=100", "", "100"),
        (base + "per_page=200", "", "200")]
    assert '<strong aria-current="page">5</strong>' in pager and pager.count("…") == 1
    assert "<strong>20</strong>" in pager
    last = client.get("/contacts/?status=lead&per_page=20&page=7").get_data(as_text=True)
    assert 'rel="next"' not in last and 'rel="prev"' in last
    assert '<nav class="pager"' not in client.get("/contacts/?per_page=200").get_data(
        as_text=True)  # one page: no pager


def _queries_for(app, client, url: str) -> int:
    with statements() as seen:
        response = client.get(url)
    assert response.status_code == 200
    return len(seen)


@pytest.mark.parametrize("role", ["administrator", "salesperson"])
def test_a_page_costs_the_same_queries_for_10_or_50_rows(app, client, make_user, login, role):
    user = make_user("sam")
    assign_roles(user, role)
    _bulk_people(50)
    tag = Tag(name="Key")
    db.session.add(tag)
    db.session.flush()
    for partner in db.session.scalars(select(Partner)):
        partner.owner_id = user.id
        db.session.add(PartnerTag(partner_id=partner.id, tag_id=tag.id))
    db.session.commit()
    login(client, user)
    client.get("/contacts/")  # warm-up: first-request work is not the page's
    ten = _queries_for(app, client, "/contacts/?per_page=20&page=3")  # 10 rows
    fifty = _queries_for(app, client, "/contacts/?per_page=50")
    assert ten == fifty
    html = client.get("/contacts/?per_page=50").get_data(as_text=True)
    assert len(_rows(html)) == 50 and html.count(">Key</span>") == 50


def test_a_salesperson_made_auditor_sees_everyones_contacts_at_the_next_request(
        world, app, login):
    """The list's statements and the user's access are kept by the worker (core.cache);
    a change of roles ends them."""
    anna = app.test_client()
    login(anna, world["anna"])
    assert _rows(anna.get("/contacts/").get_data(as_text=True)) == ["Alpha", "Delta SIA"]
    assert _rows(anna.get("/contacts/").get_data(as_text=True)) == ["Alpha", "Delta SIA"]
    assign_roles(world["anna"], "auditor")  # reads everything; commits
    assert _rows(anna.get("/contacts/").get_data(as_text=True)) == [
        "Alpha", "Bravo", "Charlie", "Delta SIA"]


def test_the_list_reads_fields_users_and_tags_once_until_one_changes(world, app, client):
    from addons.contacts.models import CustomField

    client.get("/contacts/")
    with statements() as seen:
        assert client.get("/contacts/").status_code == 200
    read_again = [s for s in seen if "contacts_custom_field" in s or "contacts_segment" in s
                  or "contacts_saved_filter" in s or "core_role_permission" in s]
    assert read_again == []
    assert len(seen) == 2  # the user, the page (with its count and its rows' tags)

    db.session.add(CustomField(code="fleet", kind="number", labels={"en": "Fleet size"},
                               show_in_list=True))
    db.session.add(Tag(name="Wholesale"))
    db.session.commit()
    html = client.get("/contacts/").get_data(as_text=True)
    assert "<th>Fleet size</th>" in html and ">Wholesale</option>" in html


def _panel(html: str) -> str:
    return html.split('id="filters">')[1].split("</form>")[0]


def test_the_kept_page_parts_show_each_request_its_own_filters_and_rights(
        world, app, client, make_user, login):
    """The filter panel, sort links, actions, bulk bar and column titles are rendered once
    per language, list, filters, sort and rights, and shared by every user
    (`views._list_fragments`): each request still sees its own filters' values, language
    and rights, and users or tags added since."""
    first = _panel(client.get("/contacts/?status=client").get_data(as_text=True))
    assert 'value="client" checked>' in first and 'value="lead" checked>' not in first
    second = client.get("/contacts/?status=lead&owner=me&sort=-name").get_data(as_text=True)
    assert 'value="lead" checked>' in _panel(second)
    assert 'value="client" checked>' not in _panel(second)
    assert '<option value="me" selected>' in _panel(second)
    assert '<strong>name Z–A</strong>' in second
    assert 'href="/contacts/?owner=me&amp;status=lead">name A–Z</a>' in second
    assert _panel(client.get("/contacts/?status=client").get_data(as_text=True)) == first
    assert 'name="kind"' not in _panel(client.get("/contacts/companies").get_data(
        as_text=True))  # the companies list fixes the kind: no type filter

    make_user("zed", name="Zed Newcomer")
    db.session.add(Tag(name="Fresh tag"))
    db.session.commit()
    now = client.get("/contacts/?status=client").get_data(as_text=True)
    assert ">Zed Newcomer</option>" in _panel(now) and ">Fresh tag</option>" in _panel(now)

    # The admin's page: every action, export links with the filters, the bulk bar.
    assert 'href="/contacts/import"' in now
    assert 'href="/contacts/export.csv?status=client"' in now and 'id="bulk-form"' in now
    assert 'class="bulk-bar"' in now and 'data-action="segment"' not in now  # no static one

    anna = app.test_client()
    login(anna, world["anna"])
    _set_locale(world["anna"], "lv")
    latvian = anna.get("/contacts/?status=client").get_data(as_text=True)
    # A salesperson's rights, same filters: no import, no export; writes, so the bulk bar.
    assert 'href="/contacts/import"' not in latvian and "export.csv" not in latvian
    assert 'class="bulk-bar"' in latvian
    assert "<summary>Filtri</summary>" in _panel(latvian)
    assert "jaunākie vispirms" in latvian
    assert '<span class="badge status-client">Klients</span>' in latvian  # a row's status
    english = client.get("/contacts/?status=client").get_data(as_text=True)
    assert "<summary>Filters</summary>" in _panel(english)
    assert '<span class="badge status-client">Client</span>' in english

    auditor = make_user("audrey")
    assign_roles(auditor, "auditor")  # reads and exports, never writes
    reader = app.test_client()
    login(reader, auditor)
    audited = reader.get("/contacts/?status=client").get_data(as_text=True)
    assert 'class="bulk-bar"' not in audited and "export.csv?status=client" in audited
    again = client.get("/contacts/?status=client").get_data(as_text=True)  # the admin, again
    assert 'class="bulk-bar"' in again and 'href="/contacts/import"' in again


def test_a_row_shows_every_column_with_what_users_typed_escaped(admin, client):
    company = Partner(kind="company", name="<b>Acme</b> & Co", status="client",
                      city="Rīga <i>", email="office@acme.lv")
    services.refresh_search(company)
    db.session.add(company)
    db.session.flush()
    person = _person("Bērziņš", "Jānis<script>", company=company,
                     phone="+37120000001", status="prospect",
                     owner_id=admin.id, segment="A")
    db.session.add(person)
    db.session.flush()
    db.session.add(Tag(name="<VIP>"))
    db.session.flush()
    db.session.add(PartnerTag(partner_id=person.id,
                              tag_id=db.session.scalar(select(Tag.id))))
    db.session.commit()
    html = client.get("/contacts/").get_data(as_text=True)
    assert "<script>" not in html.split("<tbody>")[1] and "<b>Acme" not in html
    row = re.search(rf'<tr id="partner-{person.id}">(.*?)</tr>', html, re.S).group(1)
    cells = [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                  re.S)]
    assert f'value="{person.id}"' in cells[0] and 'aria-label="Select Jānis&lt;script&gt;' \
        in cells[0]
    assert cells[1] == (f'<a href="/contacts/{person.id}">Jānis&lt;script&gt; Bērziņš</a>'
                        '<span class="badge tag">&lt;VIP&gt;</span>')
    assert cells[2] == f'<a href="/contacts/{company.id}">&lt;b&gt;Acme&lt;/b&gt; &amp; Co</a>'
    assert cells[3] == services.display_phone("+37120000001") == "+371 20 000 001"
    assert cells[5:] == ["", '<span class="badge status-prospect">Prospect</span>',
                         admin.display_name, "A"]
    company_row = re.search(rf'<tr id="partner-{company.id}">(.*?)</tr>', html, re.S).group(1)
    assert '<span class="muted kind">company</span>' in company_row
    assert '<a href="mailto:office@acme.lv">office@acme.lv</a>' in company_row
    assert "<td>Rīga &lt;i&gt;</td>" in company_row


def test_a_row_shows_its_tags_by_name_and_a_row_without_tags_none(admin, client):
    """The tags come with the page's rows (a JSON array per row): every name, escaped,
    whatever it holds, in name order, and only on its own row."""
    tagged, plain = _person("Tagged"), _person("Plain")
    db.session.add_all([tagged, plain])
    names = ["Gamma", 'Beta " \\ back', "Alpha", "Žagars, ё"]
    tags = [Tag(name=n) for n in names]
    db.session.add_all(tags)
    db.session.flush()
    db.session.add_all(PartnerTag(partner_id=tagged.id, tag_id=t.id) for t in tags)
    db.session.commit()
    html = client.get("/contacts/").get_data(as_text=True)
    row = re.search(rf'<tr id="partner-{tagged.id}">(.*?)</tr>', html, re.S).group(1)
    shown = re.findall(r'<span class="badge tag">(.*?)</span>', row)
    assert shown == ["Alpha", "Beta &#34; \\ back", "Gamma", "Žagars, ё"]
    other = re.search(rf'<tr id="partner-{plain.id}">(.*?)</tr>', html, re.S).group(1)
    assert 'class="badge tag"' not in other


def test_page_and_sort_links_keep_every_filter():
    """`ListParams.url` encodes the filters once per page; each link must still carry all of
    them, exactly as encoding the whole query would."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    from addons.contacts.listing import ListParams

    params = ListParams(q="Bērziņš & Co", status=["client", "prospect"], city="Rīga",
                        custom={"cf_3": "ja"}, sort="-created", page=4)
    for changes in ({"page": 5}, {"sort": "name", "page": 1}, {"per_page": 100, "page": 1},
                    {}):
        url = params.url("/contacts/", **changes)
        assert url == "/contacts/?" + urlencode(params.args(**changes), doseq=True)
        query = parse_qs(urlsplit(url).query)
        assert query["q"] == ["Bērziņš & Co"] and query["status"] == ["client", "prospect"]
    assert ListParams().url("/contacts/", page=1) == "/contacts/"
    assert ListParams().url("/contacts/", page=2) == "/contacts/?page=2"
