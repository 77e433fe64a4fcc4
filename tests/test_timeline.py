"""The timeline on any record: tracked changes written on flush, sanitised notes, @mentions,
e-mails from the `mail_sent` signal, newest-first pages, and 404 for records one may not read
(SQLite and PostgreSQL)."""
from __future__ import annotations

import io
import re
from decimal import Decimal
from email.message import EmailMessage

import pytest
from sqlalchemy import Integer, MetaData, Numeric, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.api import TimelineMixin, mail_sent
from core.extensions import db
from core.records import ANNOTATE, RecordModelError, can_read, record_model, record_ref
from core.records import register_record_model as register
from core.testing import TEST_PASSWORD, acting_as, csrf_token, grant
from core.timeline import Notification, TimelineEntry, add_note, render_timeline

from .conftest import annotating

MODEL = "core.test_timeline_deal"


@pytest.fixture
def make_user(make_user):
    """Users get `records.annotate` unless `annotate=False` (see `conftest.annotating`)."""
    return annotating(make_user)


class _Base(DeclarativeBase):
    # Own metadata: this test-only table never joins core's migrations.
    metadata = MetaData()


class Deal(TimelineMixin, _Base):
    __tablename__ = "core_test_timeline_deal"
    __tracked__ = ("stage", "amount")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(20), default="new", info={"label": "Stage"})
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    owner_id: Mapped[int | None] = mapped_column(Integer)


@pytest.fixture
def deal(app):
    Deal.__table__.create(db.engine)
    record = Deal(title="Acme renewal", stage="new", amount=Decimal("100.00"))
    db.session.add(record)
    db.session.commit()
    return record


def entries(record_id, kind=None):
    db.session.expire_all()
    query = select(TimelineEntry).where(TimelineEntry.model == MODEL,
                                        TimelineEntry.record_id == record_id)
    if kind:
        query = query.where(TimelineEntry.kind == kind)
    return db.session.scalars(query.order_by(TimelineEntry.id)).all()


def test_the_mixin_registers_the_model_under_its_table_name(app):
    assert record_model(MODEL) is Deal
    assert record_model("core.no_such_model") is None

    class Other(_Base):
        __tablename__ = "core_test_timeline_other"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)

    with pytest.raises(RecordModelError):
        register(MODEL, Other)
    assert record_model(MODEL) is Deal


def test_changing_tracked_fields_writes_who_what_old_and_new(app, deal, make_user):
    anna = make_user("anna")
    with acting_as(app, anna):
        deal.stage = "won"
        deal.amount = Decimal("250.50")
        deal.title = "Acme renewal 2027"  # not tracked
        db.session.commit()
    [entry] = entries(deal.id, "change")
    assert entry.author_id == anna.id
    assert sorted(entry.changes, key=lambda c: c["field"]) == [
        {"field": "amount", "old": "100.00", "new": "250.50"},
        {"field": "stage", "old": "new", "new": "won"},
    ]
    assert {"label": "Stage", "old": "new", "new": "won"} in entry.change_lines()


def test_untracked_changes_and_rolled_back_changes_leave_no_entry(app, deal):
    deal.title = "Renamed"
    db.session.commit()
    deal.stage = "lost"
    db.session.flush()
    db.session.rollback()
    assert entries(deal.id) == []


def test_a_note_is_sanitised_when_posted(app, deal, client, make_user, login):
    anna = make_user("anna")
    login(client, anna)
    page = f"/records/{MODEL}/{deal.id}/timeline"
    body = ('<p onclick="steal()">Call <strong>Monday</strong> '
            '<a href="javascript:alert(1)">x</a><script>alert(1)</script></p>')
    token = csrf_token(client, page)
    response = client.post(f"/records/{MODEL}/{deal.id}/notes",
                           data={"body": body, "kind": "call", "csrf_token": token, "next": page})
    assert response.status_code == 302 and response.location == page
    [note] = entries(deal.id, "call")
    assert note.author_id == anna.id
    assert "<strong>Monday</strong>" in note.body
    for bad in ("<script", "onclick", "javascript:"):
        assert bad not in note.body
    html = client.get(page).get_data(as_text=True)
    assert "<strong>Monday</strong>" in html and "alert(1)</script>" not in html


def test_posting_a_note_needs_the_csrf_token(app, deal, client, make_user, login):
    login(client, make_user("anna"))
    response = client.post(f"/records/{MODEL}/{deal.id}/notes", data={"body": "hello"})
    assert response.status_code == 400
    assert entries(deal.id) == []


def test_mentions_notify_the_named_active_users_only(app, deal, make_user):
    anna, boris = make_user("anna"), make_user("boris")
    make_user("vera", active=False)
    with acting_as(app, anna):
        add_note(MODEL, deal.id, "Ask @Boris and @vera about it, also @anna and @nobody; "
                 "mail x@boris.example", author=anna)
        db.session.commit()
    rows = db.session.scalars(select(Notification)).all()
    assert [(n.user_id, n.read) for n in rows] == [(boris.id, False)]
    assert "Anna mentioned you" in rows[0].text and "Ask @Boris" in rows[0].text
    assert rows[0].link == f"/records/{MODEL}/{deal.id}/timeline"

    add_note(MODEL, deal.id, "@anna: the job noticed it", author=None)  # no request here
    db.session.commit()
    [job] = db.session.scalars(select(Notification).where(Notification.user_id == anna.id))
    assert job.text.startswith("Someone mentioned you") and job.link == rows[0].link


def test_the_hook_shows_newest_first_in_pages(make_app, make_user):
    app = make_app(BIRGA_TIMELINE_PAGE_SIZE=3)
    with app.app_context():
        Deal.__table__.create(db.engine)
        record = Deal(title="Paged")
        db.session.add(record)
        db.session.commit()
        anna = make_user("anna")
        for number in range(1, 8):
            add_note(MODEL, record.id, f"note number {number}", author=anna)
            db.session.commit()
        record_id = record.id
    client = app.test_client()
    client.post("/login", data={"login": "anna", "password": TEST_PASSWORD,
                                "csrf_token": csrf_token(client)})
    page = f"/records/{MODEL}/{record_id}/timeline"

    def numbers(html):
        return [int(n) for n in re.findall(r"note number (\d)", html)]

    first = client.get(page).get_data(as_text=True)
    assert numbers(first) == [7, 6, 5]
    assert "timeline_page=2" in first and "timeline_page=0" not in first
    assert numbers(client.get(page + "?timeline_page=3").get_data(as_text=True)) == [1]


def test_a_sent_mail_lands_on_the_record_timeline(app, deal):
    msg = EmailMessage()
    msg["Subject"] = "Your offer"
    msg["To"] = "client@example.com"
    msg.set_content("Hello <b>there</b>,\nthe offer is attached.")
    mail_sent.send(app, message=msg, recipients=["client@example.com"],
                   record=(MODEL, deal.id))
    mail_sent.send(app, message=msg, recipients=["other@example.com"], record=None)
    [entry] = entries(deal.id, "email")
    assert entry.subject == "Your offer"
    assert "client@example.com" in entry.body
    assert "&lt;b&gt;there&lt;/b&gt;" in entry.body  # plain text stays text


def test_deleting_a_record_removes_its_timeline(app, deal, make_user):
    add_note(MODEL, deal.id, "remember me", author=make_user("anna"))
    db.session.commit()
    record_id = deal.id
    db.session.delete(deal)
    db.session.commit()
    assert entries(record_id) == []


def test_records_outside_the_users_rules_are_404_and_render_nothing(app, deal, client,
                                                                    make_user, login):
    from core.security import Role, register_record_rule, seed_default_roles, set_user_roles

    owner, sam = make_user("owner"), make_user("sam")
    register_record_rule(Deal, "owner_id", app=app)
    seed_default_roles()
    set_user_roles(sam, [db.session.scalar(select(Role.id).where(Role.code == "salesperson"))])
    deal.owner_id = owner.id
    mine = Deal(title="Sam's", owner_id=sam.id)
    db.session.add(mine)
    db.session.commit()
    login(client, sam)
    page = f"/records/{MODEL}/{deal.id}/timeline"
    assert client.get(page).status_code == 404
    token = csrf_token(client, f"/records/{MODEL}/{mine.id}/timeline")
    response = client.post(f"/records/{MODEL}/{deal.id}/notes",
                           data={"body": "sneaky", "csrf_token": token})
    assert response.status_code == 404
    assert entries(deal.id, "note") == []
    assert client.get(f"/records/no.such_model/{deal.id}/timeline").status_code == 404
    with acting_as(app, sam):
        assert can_read(*record_ref(mine)) and not can_read(MODEL, deal.id)
        assert str(render_timeline(MODEL, deal.id)) == ""
        assert "<section" in str(render_timeline(record=mine))


def test_readers_without_write_or_annotate_rights_cannot_add_notes_or_files(app, deal, client,
                                                                           make_user, login):
    reader = make_user("reader", annotate=False)  # sees every record (no rules), writes none
    login(client, reader)
    page = f"/records/{MODEL}/{deal.id}/timeline"
    html = client.get(page).get_data(as_text=True)
    assert "timeline-form" not in html and "attachment-form" not in html
    token = csrf_token(client, page)
    note = client.post(f"/records/{MODEL}/{deal.id}/notes",
                       data={"body": "not mine to write", "csrf_token": token})
    upload = client.post(f"/records/{MODEL}/{deal.id}/attachments",
                         data={"csrf_token": token, "file": (io.BytesIO(b"hello"), "a.txt")})
    assert (note.status_code, upload.status_code) == (403, 403)
    assert entries(deal.id) == []
    grant(reader, ANNOTATE)
    assert "timeline-form" in client.get(page).get_data(as_text=True)
