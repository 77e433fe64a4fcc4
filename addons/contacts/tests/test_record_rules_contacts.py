"""Record rules on contacts: a salesperson sees and changes only their own contacts, on every
page and in every bulk action; bulk actions need the CSRF token and the right permission."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from addons.contacts import services
from addons.contacts.models import Partner, PartnerTag, Tag
from core.api import assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("contacts")


def _partner(name: str, owner) -> Partner:
    partner = Partner(kind="company", name=name, owner_id=owner.id)
    services.refresh_search(partner)
    return partner


@pytest.fixture
def team(app, make_user):
    sam, sara = make_user("sam"), make_user("sara")
    boss = make_user("boss")
    assign_roles(sam, "salesperson")
    assign_roles(sara, "salesperson")
    assign_roles(boss, "sales_manager")
    mine, theirs = _partner("Sam Client SIA", sam), _partner("Sara Client SRL", sara)
    db.session.commit()
    return {"sam": sam, "sara": sara, "boss": boss, "mine": mine.id, "theirs": theirs.id}


def test_card_and_edit_of_another_salespersons_contact_are_404(team, client, login):
    login(client, team["sam"])
    assert client.get(f"/contacts/{team['mine']}").status_code == 200
    assert client.get(f"/contacts/{team['theirs']}").status_code == 404
    assert client.get(f"/contacts/{team['theirs']}/edit").status_code == 404
    token = csrf_token(client, "/contacts/")
    response = client.post(f"/contacts/{team['theirs']}/edit",
                           data={"csrf_token": token, "kind": "company", "name": "Hijacked",
                                 "version": "1", "status": "client"})
    assert response.status_code == 404
    assert db.session.get(Partner, team["theirs"]).name == "Sara Client SRL"


def test_list_and_search_show_own_contacts_only(team, client, login):
    login(client, team["sam"])
    html = client.get("/contacts/").get_data(as_text=True)
    assert "Sam Client SIA" in html and "Sara Client SRL" not in html
    html = client.get("/contacts/?q=client").get_data(as_text=True)
    assert "Sam Client SIA" in html and "Sara Client SRL" not in html
    assert client.get("/contacts/companies.json?q=sara").get_json() == []


def _bulk(client, **data):
    token = csrf_token(client, "/contacts/")
    ids = data.pop("ids")
    return client.post("/contacts/bulk", data={"csrf_token": token, "ids": ids, **data})


def test_bulk_actions_skip_rows_outside_the_rules(team, client, login):
    login(client, team["sam"])
    ids = [str(team["mine"]), str(team["theirs"])]
    assert _bulk(client, ids=ids, action="status", status="client").status_code == 302
    assert _bulk(client, ids=ids, action="tag", tag="Key account").status_code == 302
    mine, theirs = db.session.get(Partner, team["mine"]), db.session.get(Partner, team["theirs"])
    db.session.refresh(mine)
    db.session.refresh(theirs)
    assert (mine.status, theirs.status) == ("client", "lead")
    tag = db.session.scalar(select(Tag).where(Tag.name == "Key account"))
    assert set(db.session.scalars(select(PartnerTag.partner_id).where(
        PartnerTag.tag_id == tag.id))) == {team["mine"]}
    assert _bulk(client, ids=ids, action="owner", owner_id=str(team["boss"].id)).status_code \
        == 302
    db.session.refresh(mine)
    db.session.refresh(theirs)
    assert (mine.owner_id, theirs.owner_id) == (team["boss"].id, team["sara"].id)
    # Once given away, the contact is out of Sam's reach.
    assert client.get(f"/contacts/{team['mine']}").status_code == 404


def test_bulk_action_without_csrf_token_changes_nothing(team, client, login):
    login(client, team["sam"])
    response = client.post("/contacts/bulk", data={"ids": [str(team["mine"])],
                                                   "action": "status", "status": "inactive"})
    assert response.status_code == 400
    assert db.session.get(Partner, team["mine"]).status == "lead"


def test_delete_needs_the_delete_permission(team, client, login):
    login(client, team["sam"])  # salespeople read and write, but do not delete
    assert _bulk(client, ids=[str(team["mine"])], action="delete").status_code == 404
    token = csrf_token(client, "/contacts/")
    response = client.post("/contacts/bulk/delete", data={
        "csrf_token": token, "ids": [str(team["mine"])], "action": "delete"})
    assert response.status_code == 404
    assert db.session.get(Partner, team["mine"]) is not None


def test_delete_asks_for_confirmation_then_deletes_visible_rows(team, app, make_user, login):
    from core.security import Team, TeamMember

    squad = Team(name="North", manager_id=team["boss"].id)
    db.session.add(squad)
    db.session.flush()
    db.session.add(TeamMember(team_id=squad.id, user_id=team["sam"].id))
    db.session.commit()
    client = app.test_client()
    login(client, team["boss"])  # manages Sam's team, not Sara's
    ids = [str(team["mine"]), str(team["theirs"])]
    page = _bulk(client, ids=ids, action="delete")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Sam Client SIA" in html and "Sara Client SRL" not in html
    assert db.session.get(Partner, team["mine"]) is not None  # nothing deleted yet
    token = csrf_token(client, "/contacts/")
    response = client.post("/contacts/bulk/delete", data={
        "csrf_token": token, "ids": ids, "action": "delete"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, team["mine"]) is None
    assert db.session.get(Partner, team["theirs"]) is not None


def _boss_manages_sam(team) -> None:
    from core.security import Team, TeamMember

    squad = Team(name="North", manager_id=team["boss"].id)
    db.session.add(squad)
    db.session.flush()
    db.session.add(TeamMember(team_id=squad.id, user_id=team["sam"].id))
    db.session.commit()


def test_card_deletes_its_contact_after_confirmation(team, client, login):
    _boss_manages_sam(team)
    login(client, team["boss"])  # a sales manager: may delete their team's contacts
    card = client.get(f"/contacts/{team['mine']}").get_data(as_text=True)
    assert f'href="/contacts/{team["mine"]}/delete"' in card
    page = client.get(f"/contacts/{team['mine']}/delete").get_data(as_text=True)
    assert "Delete this contact with its phones, e-mails and tags?" in page
    assert "Sam Client SIA" in page
    assert db.session.get(Partner, team["mine"]) is not None  # asking deletes nothing
    response = client.post("/contacts/bulk/delete", data={
        "csrf_token": csrf_token(client, "/contacts/"), "ids": [str(team["mine"])],
        "action": "delete", "next": "/contacts/companies"}, follow_redirects=True)
    assert "1 contact deleted." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Partner, team["mine"]) is None


def test_card_delete_is_offered_only_to_who_may_delete_what_they_see(team, app, client, login):
    _boss_manages_sam(team)
    login(client, team["sam"])  # salespeople read and write, but do not delete
    assert "/delete" not in client.get(f"/contacts/{team['mine']}").get_data(as_text=True)
    assert client.get(f"/contacts/{team['mine']}/delete").status_code == 404
    boss = app.test_client()
    login(boss, team["boss"])  # Sara is not in the boss's team
    assert boss.get(f"/contacts/{team['mine']}/delete").status_code == 200
    assert boss.get(f"/contacts/{team['theirs']}/delete").status_code == 404


def test_user_without_a_role_sees_no_contacts_page(app, client, make_user, login):
    nobody = make_user("nobody")
    login(client, nobody)
    assert client.get("/contacts/").status_code == 404


def test_a_salesperson_merges_ticked_duplicates_from_the_list(team, client, login):
    """Merging needs only contacts.write: the list's bulk action leads there, with the rows
    the user may see (another salesperson's row ticked is left out, and alone is refused)."""
    twin = _partner("Sam Client SIA", team["sam"])
    db.session.commit()
    login(client, team["sam"])
    assert 'value="merge"' in client.get("/contacts/").get_data(as_text=True)
    response = _bulk(client, ids=[str(team["mine"]), str(twin.id)], action="merge")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "/contacts/merge" in location and f"ids={twin.id}" in location
    assert client.get(location).status_code == 200
    alone = _bulk(client, ids=[str(team["mine"]), str(team["theirs"])], action="merge")
    assert alone.status_code == 302 and "/contacts/merge" not in alone.headers["Location"]
