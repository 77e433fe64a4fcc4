"""The timeline on any record: tracked changes written on flush, sanitised notes, @mentions,
e-mails from the `mail_sent` signal, newest-first pages, and 404 for records one may not read
(SQLite and PostgreSQL)."""
from __future__ import annotations

import io
import re
from datetime import date
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


# -- messages shown in the reader's language ----------------------------------------------
def shown_to(app, user, model, record_id):
    """The timeline as `user` sees it on the page (her locale comes from her profile)."""
    client = app.test_client()
    client.post("/login", data={"login": user.login, "password": TEST_PASSWORD,
                                "csrf_token": csrf_token(client)})
    return client.get(f"/records/{model}/{record_id}/timeline").get_data(as_text=True)


def test_a_system_entry_is_shown_in_each_readers_language(app, deal, make_user):
    from flask_babel import force_locale, lazy_ngettext, lazy_pgettext
    from flask_babel import lazy_gettext as _l

    from core.timeline import day, log_entry, money

    boris = make_user("boris", locale="ru")
    liga = make_user("liga", locale="lv")
    with acting_as(app, boris), force_locale("ru"):  # written by a Russian speaker
        log_entry(MODEL, deal.id, "system",
                  [_l("From: %(sender)s", sender=_l("Note")),
                   lazy_ngettext("%(num)d byte", "%(num)d bytes", 5),
                   lazy_pgettext("timeline entry kind", "Change"),
                   _l("To: %(recipients)s", recipients=money("1234.5", "EUR"))],
                  subject=_l("Today is %(date)s.", date=day(date(2026, 11, 23))), author=boris)
        db.session.commit()
    [entry] = entries(deal.id, "system")
    # Stored text in the installation's language, for search and exports.
    assert entry.subject == "Today is Nov 23, 2026."
    assert "From: Note" in entry.body and "5 bytes" in entry.body
    assert "To: €1,234.50" in entry.body
    assert entry.message["subject"] == {"msgid": "Today is %(date)s.",
                                        "params": {"date": {"$day": "2026-11-23"}}}

    latvian = shown_to(app, liga, MODEL, deal.id)
    assert "Today is %(date)s." not in latvian
    assert "2026. gada 23. nov." in latvian and "No: Piezīme" in latvian
    assert "5 baiti" in latvian and "Izmaiņas" in latvian
    assert "Kam: 1&nbsp;234,50&nbsp;€" in latvian
    assert "Заметка" not in latvian and "нояб." not in latvian

    russian = shown_to(app, boris, MODEL, deal.id)
    assert "23 нояб. 2026\u202fг." in russian and "От: Заметка" in russian
    assert "5 байт" in russian and "Кому: 1&nbsp;234,50&nbsp;€" in russian

    with app.test_request_context(), force_locale("en"):
        assert entry.shown_subject == "Today is Nov 23, 2026."
        assert "To: €1,234.50" in entry.body_html


def test_user_data_in_a_message_stays_escaped(app, deal, make_user):
    from flask_babel import lazy_gettext as _l

    from core.timeline import log_entry

    liga = make_user("liga", locale="lv")
    evil = '<script>alert("x")</script>'
    log_entry(MODEL, deal.id, "system",
              [_l("From: %(sender)s", sender=evil), "a note\n\n<img src=x onerror=alert(1)>"],
              subject=_l("To: %(recipients)s", recipients=evil))
    db.session.commit()
    [entry] = entries(deal.id, "system")
    html = shown_to(app, liga, MODEL, deal.id)
    assert "<script>alert" not in html and "onerror" not in html
    assert "Kam: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html  # the subject
    assert "No: &lt;script&gt;" in html  # the body's message part
    assert "<script>alert" not in entry.body and "onerror" not in entry.body


def test_a_body_keeps_the_users_text_after_the_message(app, deal, make_user):
    from flask_babel import lazy_gettext as _l

    from core.timeline import log_entry

    liga = make_user("liga", locale="lv")
    log_entry(MODEL, deal.id, "system", [_l("From: %(sender)s", sender="Jan"),
                                         "They chose\n\nanother supplier"])
    db.session.commit()
    [entry] = entries(deal.id, "system")
    assert entry.body == "<p>From: Jan</p><p>They chose</p><p>another supplier</p>"
    html = shown_to(app, liga, MODEL, deal.id)
    assert "<p>No: Jan</p><p>They chose</p><p>another supplier</p>" in html


def test_the_users_text_is_stored_once_not_copied_into_the_message(app, deal, make_user):
    from flask_babel import lazy_gettext as _l

    from core.timeline import log_entry

    liga = make_user("liga", locale="lv")
    mail = "Dear team,\n\n" + "we need forty chairs. " * 2000  # an inbound mail's size
    log_entry(MODEL, deal.id, "email", [_l("From: %(sender)s", sender="Jan"), mail])
    db.session.commit()
    [entry] = entries(deal.id, "email")
    assert "forty chairs" not in str(entry.message)
    assert entry.body.count("forty chairs") == 2000
    html = shown_to(app, liga, MODEL, deal.id)
    assert "<p>No: Jan</p><p>Dear team,</p><p>we need forty chairs." in html


def test_an_old_entry_without_a_message_shows_its_stored_text(app, deal, make_user):
    from sqlalchemy import insert

    liga = make_user("liga", locale="lv")
    db.session.execute(insert(TimelineEntry.__table__).values(
        model=MODEL, record_id=deal.id, kind="system", subject="Этап: Новая → Выиграно",
        body="<p>Выиграно: 10 €</p><script>x()</script>"))
    db.session.commit()
    [entry] = entries(deal.id, "system")
    assert entry.message is None
    html = shown_to(app, liga, MODEL, deal.id)
    assert "Этап: Новая → Выиграно" in html and "<p>Выиграно: 10 €</p>" in html
    assert "<script>x()" not in html


def test_a_message_a_catalogue_cannot_render_falls_back_to_the_stored_text(app, deal):
    from flask_babel import force_locale

    from core.timeline import log_entry

    entry = log_entry(MODEL, deal.id, "system", "", subject="Stage: New")
    entry.message = {"subject": {"msgid": "Stage: %(stage)s", "params": {"renamed": 1}}}
    db.session.commit()
    with app.test_request_context(), force_locale("lv"):
        assert entries(deal.id, "system")[0].shown_subject == "Stage: New"


def test_plain_strings_are_user_data_and_need_no_message(app, deal, make_user):
    from core.timeline import log_entry

    log_entry(MODEL, deal.id, "email", "Hello", subject="Re: your offer")
    db.session.commit()
    [entry] = entries(deal.id, "email")
    assert entry.message is None and entry.subject == "Re: your offer"
    assert entry.body == "<p>Hello</p>"


def test_a_long_subject_is_cut_to_the_column(app, deal):
    from flask_babel import lazy_gettext as _l

    from core.timeline import log_entry

    log_entry(MODEL, deal.id, "system", subject=_l("From: %(sender)s", sender="x" * 400))
    db.session.commit()
    [entry] = entries(deal.id, "system")
    assert len(entry.subject) == 300 and entry.message["subject"]["params"]["sender"] == "x" * 400


def test_the_messages_migration_adds_and_removes_the_column(make_app):
    from sqlalchemy import inspect as inspect_db

    from core import migrate

    app = make_app(migrate=True)
    with app.app_context():
        columns = {c["name"] for c in inspect_db(db.engine).get_columns("core_timeline_entry")}
        assert "message" in columns
        assert migrate.diff(app, "core") == []
        migrate.downgrade(app, "core", "9b3e5c7d1a20")
        columns = {c["name"] for c in inspect_db(db.engine).get_columns("core_timeline_entry")}
        assert "message" not in columns
        migrate.upgrade(app, ["core"])
        columns = {c["name"] for c in inspect_db(db.engine).get_columns("core_timeline_entry")}
        assert "message" in columns


def test_messages_keep_nested_plurals_contexts_and_firm_labels(app):
    from flask_babel import force_locale, lazy_ngettext, lazy_pgettext
    from flask_babel import lazy_gettext as _l

    from core.messages import encode, localized, render

    message = _l("From: %(sender)s", sender=lazy_ngettext(
        "%(num)d byte", "%(num)d bytes", num=2))
    spec = encode(message)
    assert spec == {"msgid": "From: %(sender)s", "params": {"sender": {"$msg": {
        "msgid": "%(num)d byte", "plural": "%(num)d bytes", "n": 2}}}}
    labelled = encode(_l("To: %(recipients)s", recipients=localized(
        {"lv": "Mūsu posms"}, lazy_pgettext("timeline entry kind", "Change"))))
    with app.test_request_context():
        with force_locale("lv"):
            assert render(spec) == "No: 2 baiti"
            assert render(labelled) == "Kam: Mūsu posms"
        with force_locale("ru"):
            assert render(spec) == "От: 2 байта"
            assert render(labelled).startswith("Кому: ") and "Mūsu" not in render(labelled)
        with force_locale("en"):
            assert render(labelled) == "To: Change"


def test_a_record_is_checked_once_per_request_and_again_after_a_flush(app, deal, make_user):
    """A card asks for its record once per panel (timeline, activities, files)."""
    from core.security import Role, register_record_rule, seed_default_roles, set_user_roles
    from core.testing import statements

    sam = make_user("sam")
    register_record_rule(Deal, "owner_id", app=app)
    seed_default_roles()
    set_user_roles(sam, [db.session.scalar(select(Role.id).where(Role.code == "salesperson"))])
    deal.owner_id = sam.id
    db.session.commit()
    deal_id = deal.id
    with acting_as(app, sam):
        with statements() as seen:
            assert can_read(MODEL, deal_id) and can_read(MODEL, deal_id)
        assert len([s for s in seen if "test_timeline_deal" in s]) == 1
        deal.owner_id = None  # someone else's now; the flush forgets the answer
        db.session.flush()
        assert not can_read(MODEL, deal_id)
