"""Calls from the PBX endpoint and the call-log import: token, matching by any phone format,
missed calls becoming leads with a call-back, idempotency, and the report of calls nobody
followed up (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from addons.contacts.models import Partner
from addons.contacts.services import refresh_search, set_phones
from addons.pipeline.models import Call, Deal, Lead
from addons.pipeline.phone import import_calls, unrecorded_calls
from addons.pipeline.state import create_deal, seed_defaults
from core.activities import Activity, mark_done
from core.api import Notification, Role, Team, add_note, assign_roles, db
from core.security import TeamMember
from core.timeline import TimelineEntry

TOKEN = "pbx-secret-token"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def app(make_app):
    application = make_app(["pipeline"], BIRGA_PBX_TOKEN=TOKEN, BIRGA_PHONE_REGION="LV",
                           BIRGA_FAKE_NOW=NOW.isoformat())
    with application.app_context():
        yield application


@pytest.fixture
def floor(app, make_user):
    """The seeded pipeline with a team of two salespeople and a known client."""
    anna, bruno = make_user("anna", email="anna@firm.example"), make_user("bruno")
    team = Team(name="Sales floor")
    db.session.add(team)
    db.session.flush()
    db.session.add_all([TeamMember(team_id=team.id, user_id=u.id) for u in (anna, bruno)])
    pipeline = seed_defaults()
    pipeline.team_id = team.id
    client_ = Partner(kind="person", name="Jānis Bērziņš", owner_id=bruno.id)
    db.session.add(client_)
    set_phones(client_, ["+371 2000 0001"])
    db.session.flush()
    refresh_search(client_)
    db.session.commit()
    return {"anna": anna, "bruno": bruno, "pipeline": pipeline, "client": client_}


def pbx(client, payload, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/pipeline/pbx/calls", json=payload, headers=headers)


def call(number: str, *, external_id: str | None = None, status: str = "answered",
         direction: str = "in", user: str | None = None, at: datetime | None = None) -> dict:
    data = {"direction": direction, "status": status,
            "from": number if direction == "in" else "+37167000000",
            "to": "+37167000000" if direction == "in" else number,
            "started_at": (at or NOW - timedelta(hours=1)).isoformat(), "duration": 42}
    if external_id:
        data["id"] = external_id
    if user:
        data["user"] = user
    return data


def calls() -> list[Call]:
    db.session.expire_all()
    return db.session.scalars(select(Call).order_by(Call.id)).all()


# -- the endpoint -------------------------------------------------------------------------
def test_the_pbx_endpoint_needs_the_installation_token(app, client, floor):
    assert pbx(client, call("+37120000001"), token=None).status_code == 401
    assert pbx(client, call("+37120000001"), token="guess").status_code == 401
    assert calls() == []
    assert pbx(client, call("+37120000001")).status_code == 200
    assert len(calls()) == 1


def test_without_a_token_configured_the_endpoint_does_not_exist(make_app):
    app = make_app(["pipeline"])
    response = app.test_client().post("/pipeline/pbx/calls", json=call("+37120000001"),
                                      headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404


@pytest.mark.parametrize("number", [
    "+37120000001", "+371 2000 0001", "0037120000001", "20000001", "(+371) 2000-0001",
    "371 20 000 001",
])
def test_a_call_is_matched_to_the_contact_whatever_the_number_format(app, client, floor,
                                                                    number):
    response = pbx(client, call(number, direction="out", user="ANNA@firm.example"))

    assert response.status_code == 200
    [stored] = calls()
    assert stored.partner_id == floor["client"].id
    assert stored.to_number == "+37120000001"
    assert stored.user_id == floor["anna"].id
    assert response.json["calls"][0]["partner_id"] == floor["client"].id


def test_a_repeated_call_id_is_stored_once(app, client, floor):
    first = pbx(client, {"calls": [call("+37120000001", external_id="pbx-1")]})
    again = pbx(client, [call("+37120000001", external_id="pbx-1"),
                         call("+37120000002", external_id="pbx-2")])

    assert first.json["calls"][0]["created"] is True
    assert [c["created"] for c in again.json["calls"]] == [False, True]
    assert len(calls()) == 2


def test_unreadable_calls_are_reported_and_the_rest_stored(app, client, floor):
    response = pbx(client, [{"from": "+37120000001"}, call("+37120000009"),
                            dict(call("+37120000009"), direction="sideways")])

    assert response.status_code == 200
    assert [e["index"] for e in response.json["errors"]] == [0, 2]
    assert len(calls()) == 1


# -- missed calls -------------------------------------------------------------------------
def test_a_missed_call_from_an_unknown_number_becomes_a_lead_with_a_call_back(app, client,
                                                                              floor):
    response = pbx(client, call("2612 3456", status="missed", external_id="m-1"))

    assert response.status_code == 200
    [lead] = db.session.scalars(select(Lead)).all()
    assert (lead.channel, lead.phone, lead.pipeline_id) == ("phone", "+37126123456",
                                                            floor["pipeline"].id)
    assert lead.owner_id == floor["anna"].id  # round robin: first of the team
    [activity] = db.session.scalars(select(Activity)).unique().all()
    assert (activity.model, activity.record_id) == ("pipeline.lead", lead.id)
    assert activity.assignee_id == floor["anna"].id
    assert activity.type.code == "call"
    assert "26 123 456" in activity.summary
    [stored] = calls()
    assert (stored.lead_id, stored.user_id) == (lead.id, floor["anna"].id)
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == floor["anna"].id)) == 1


def test_a_second_missed_call_from_the_number_joins_the_open_lead(app, client, floor):
    pbx(client, call("+37126123456", status="missed", external_id="m-1"))
    pbx(client, call("+371 2612 3456", status="NO ANSWER", external_id="m-2"))

    assert db.session.scalar(select(func.count()).select_from(Lead)) == 1
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 1
    assert len({c.lead_id for c in calls()}) == 1


def test_a_missed_call_from_a_client_gives_their_salesperson_a_call_back(app, client, floor):
    pbx(client, call("20000001", status="missed"))

    assert db.session.scalar(select(func.count()).select_from(Lead)) == 0
    [activity] = db.session.scalars(select(Activity)).unique().all()
    assert (activity.model, activity.record_id) == ("contacts.partner", floor["client"].id)
    assert activity.assignee_id == floor["bruno"].id


def test_an_answered_call_is_on_the_clients_and_open_deals_timelines_and_counts_as_contact(
        app, client, floor):
    jan = floor["client"]
    open_deal = create_deal(title="Chairs", pipeline=floor["pipeline"], partner_id=jan.id)
    db.session.commit()
    at = NOW - timedelta(hours=2)
    assert pbx(client, [call("+371 2000 0001", user="anna", at=at),
                        call("+371 2000 0001", status="missed", at=NOW)]).status_code == 200
    db.session.expire_all()
    entries = db.session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "call")
                                 .order_by(TimelineEntry.model)).all()
    assert [(e.model, e.record_id) for e in entries] == [("contacts.partner", jan.id),
                                                         ("pipeline.deal", open_deal.id)]
    assert all(e.author_id is None for e in entries)  # the salesperson's own note is asked for
    assert "Incoming call, answered by Anna" in entries[0].subject
    deal = db.session.get(Deal, open_deal.id)
    assert deal.last_activity_at.replace(tzinfo=UTC) == at  # rotation sees the contact


def test_an_answered_call_from_an_unknown_number_makes_no_lead(app, client, floor):
    pbx(client, call("+37126123456", user="anna"))

    assert db.session.scalar(select(func.count()).select_from(Lead)) == 0
    [stored] = calls()
    assert (stored.partner_id, stored.lead_id) == (None, None)


# -- the call-log import ------------------------------------------------------------------
CSV = """\
uniqueid;calldate;src;dst;disposition;billsec;agent
a-1;2026-11-23 09:00:00;+371 2000 0001;+37167000000;ANSWERED;60;anna
a-2;23.11.2026 09:10;26123456;+37167000000;NO ANSWER;0;
a-3;yesterday;26123456;+37167000000;ANSWERED;10;anna
a-4;2026-11-23 09:20:00;+37167000000;0037120000001;ANSWERED;30;bruno
"""


def test_the_call_log_import_matches_and_follows_up_like_the_pbx(app, floor):
    result = import_calls(CSV.encode("utf-8"))

    assert (result.created, result.duplicates) == (3, 0)
    assert [line for line, _error in result.errors] == [4]
    by_id = {c.external_id: c for c in calls()}
    assert by_id["a-1"].partner_id == floor["client"].id
    assert by_id["a-1"].user_id == floor["anna"].id
    assert by_id["a-4"].direction == "in" and by_id["a-4"].partner_id is None
    assert by_id["a-2"].status == "missed" and by_id["a-2"].lead_id is not None

    again = import_calls(CSV.encode("utf-8"))
    assert (again.created, again.duplicates) == (0, 3)


def test_the_import_page_takes_a_file_from_a_manager(app, client, floor, make_user, login):
    manager = make_user("mara")
    assign_roles(manager, "sales_manager")
    login(client, manager)
    from io import BytesIO

    page = client.get("/pipeline/calls/import")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/pipeline/calls/import", data={
        "csrf_token": token, "file": (BytesIO(CSV.encode("cp1251")), "calls.csv")},
        content_type="multipart/form-data")

    assert response.status_code == 200
    assert len(calls()) == 3
    assert 'id="import-errors"' in response.get_data(as_text=True)


# -- the report ---------------------------------------------------------------------------
def test_the_report_lists_calls_without_contact_or_record_per_manager(app, floor, client):
    anna, bruno, jan = floor["anna"], floor["bruno"], floor["client"]
    before = NOW - timedelta(hours=3)
    pbx(client, [
        call("+37120000001", external_id="c-1", user="anna", at=before),  # noted below
        call("+37120000001", external_id="c-2", user="anna", at=NOW - timedelta(days=3)),
        call("+37126000000", external_id="c-3", user="anna", at=before),  # unknown number
        call("+37120000001", external_id="c-4", user="bruno", at=before),  # a deal note
        call("+37126999999", external_id="c-5", status="missed", at=before),  # lead to anna
    ])
    deal = create_deal(title="Chairs", pipeline=floor["pipeline"], partner_id=jan.id)
    db.session.flush()
    notes = [add_note("contacts.partner", jan.id, "Called, wants an offer.", author=anna),
             add_note("pipeline.deal", deal.id, "Discussed the price.", author=bruno)]
    for note in notes:  # written an hour after the calls (the clock is pinned to NOW)
        note.created_at = before + timedelta(hours=1)
    db.session.commit()
    by_id = {c.external_id: c.id for c in calls()}

    rows = unrecorded_calls(NOW - timedelta(days=7), NOW + timedelta(hours=1))

    report = {row.user.login: (row.calls, sorted(
        (p.call.id, p.no_contact, p.no_record) for p in row.problems)) for row in rows}
    # c-2 was three days ago: today's note is outside its follow-up window.
    assert report["anna"] == (4, sorted([(by_id["c-2"], False, True),
                                         (by_id["c-3"], True, True),
                                         (by_id["c-5"], False, True)]))
    assert report["bruno"] == (1, [])

    [callback] = db.session.scalars(select(Activity)).unique().all()
    mark_done(callback, by=anna, outcome="Called back, no answer.")
    db.session.commit()
    [anna_row] = [r for r in unrecorded_calls(NOW - timedelta(days=7), NOW + timedelta(hours=1))
                  if r.user is not None and r.user.login == "anna"]
    assert by_id["c-5"] not in [p.call.id for p in anna_row.problems]


def test_the_report_page_shows_a_manager_their_teams_calls(app, floor, client, make_user,
                                                            login):
    manager = make_user("mara")
    assign_roles(manager, "sales_manager")
    # The default sales manager role grants no `*.reports`: the firm adds it to a role.
    head = Role(code="head_of_sales", default_scope="team")
    head.permissions = {"pipeline.manage"}
    db.session.add(head)
    db.session.commit()
    assign_roles(manager, "head_of_sales")
    team = db.session.scalar(select(Team))
    team.manager_id = manager.id
    outsider = make_user("otto")
    db.session.commit()
    pbx(client, [call("+37126000000", external_id="r-1", user="anna"),
                 call("+37126000001", external_id="r-2", user="otto")])
    login(client, manager)

    page = client.get("/pipeline/calls/report?start=2026-11-20&end=2026-11-23")
    csv_export = client.get("/pipeline/calls/report?start=2026-11-20&end=2026-11-23"
                            "&format=csv")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    anna_call = db.session.scalar(select(Call.id).where(Call.external_id == "r-1"))
    otto_call = db.session.scalar(select(Call.id).where(Call.external_id == "r-2"))
    assert f'data-call="{anna_call}"' in html
    assert f'data-call="{otto_call}"' not in html
    assert csv_export.get_data(as_text=True).count("\n") == 2  # header and anna's call
    assert client.get(f"/pipeline/calls/report?user={outsider.id}").status_code == 404


def test_a_salesperson_cannot_open_the_report(app, floor, client, login):
    assign_roles(floor["anna"], "salesperson")
    login(client, floor["anna"])

    assert client.get("/pipeline/calls/report").status_code == 404
