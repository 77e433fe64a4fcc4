"""Contacts with offers: merging duplicate clients keeps their offers (documents answers
contacts' `partner_merged` signal), deleting contacts keeps those with offers and says so, and
an import whose contacts got offers since is not reverted (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from addons.contacts.merge import merge_partners
from addons.contacts.models import Partner
from addons.documents import offers as svc
from addons.documents.models import Offer
from core.api import db

pytestmark = pytest.mark.addons("documents")


def test_merged_clients_offers_move_to_the_surviving_client(app, make_user):
    user = make_user("anna")
    keep = Partner(kind="company", name="SIA Kalns", owner_id=user.id, country="LV")
    twin = Partner(kind="company", name="Kalns SIA", owner_id=user.id, country="LV")
    db.session.add_all([keep, twin])
    db.session.flush()
    offer = svc.create_offer(twin, user=user, currency="EUR", seller_country="LV")
    svc.add_line(offer, description="Galds", quantity=1, unit_price="100", vat_rate="21")
    db.session.commit()
    keep_id, twin_id, offer_id = keep.id, twin.id, offer.id

    merge_partners(keep_id, [twin_id], {})
    db.session.commit()

    db.session.expire_all()
    assert db.session.get(Partner, twin_id) is None
    assert db.session.get(Offer, offer_id).partner_id == keep_id


def _offer_for(partner: Partner, user) -> Offer:
    offer = svc.create_offer(partner, user=user, currency="EUR", seller_country="LV")
    svc.add_line(offer, description="Galds", quantity=1, unit_price="100", vat_rate="21")
    db.session.commit()
    return offer


def test_deleting_contacts_keeps_those_with_offers_and_says_so(app, client, make_user, login):
    from core.testing import csrf_token

    boss = make_user("boss", is_admin=True)
    quoted = Partner(kind="company", name="SIA Kalns", owner_id=boss.id, country="LV")
    idle = Partner(kind="company", name="SIA Lejas", owner_id=boss.id, country="LV")
    db.session.add_all([quoted, idle])
    db.session.flush()
    offer_id = _offer_for(quoted, boss).id
    ids = [quoted.id, idle.id]
    login(client, boss)
    response = client.post("/contacts/bulk/delete", data={
        "csrf_token": csrf_token(client, "/contacts/"), "ids": [str(i) for i in ids],
        "action": "delete"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "1 contact deleted." in page
    assert "1 contact is used by other records (such as offers) and was kept." in page
    db.session.expire_all()
    assert db.session.get(Partner, ids[1]) is None
    assert db.session.get(Offer, offer_id).partner_id == ids[0]


def test_the_card_says_why_a_contact_with_offers_cannot_be_deleted(app, client, make_user,
                                                                   login):
    boss = make_user("boss", is_admin=True)
    quoted = Partner(kind="company", name="SIA Kalns", owner_id=boss.id, country="LV")
    db.session.add(quoted)
    db.session.flush()
    _offer_for(quoted, boss)
    login(client, boss)
    page = client.get(f"/contacts/{quoted.id}/delete").get_data(as_text=True)
    assert "SIA Kalns is used by other records (such as offers), so it cannot be deleted." \
        in page
    assert 'action="/contacts/bulk/delete"' not in page  # nothing to confirm


def test_an_import_whose_contacts_got_offers_since_is_not_reverted(app, client, make_user,
                                                                    login):
    from addons.contacts.importing.models import ImportBatch
    from addons.contacts.tests.test_import import csv_bytes, run_import
    from core.testing import csrf_token

    boss = make_user("boss", is_admin=True)
    batch = run_import(csv_bytes([["Name", "City"], ["SIA Kalns", "Rīga"],
                                  ["SIA Lejas", "Cēsis"]]), "firms.csv", boss, kind="company")
    assert batch.result["create"] == 2
    kalns = db.session.scalar(select(Partner).where(Partner.name == "SIA Kalns"))
    _offer_for(kalns, boss)
    login(client, boss)
    url = f"/contacts/import/{batch.id}/revert"
    response = client.post(url, data={"csrf_token": csrf_token(client, "/contacts/import")},
                           follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "1 contact created by this import is used by other records since" in page
    db.session.expire_all()
    assert db.session.get(ImportBatch, batch.id).state == "done"
    assert db.session.scalar(select(func.count(Partner.id))) == 2
