"""Activity reminders: the morning digest per user in the user's language and time zone, the
supervisor digest of team members' overdue "tails", and idempotency (running the periodic job
twice, inline or on the real queue, never sends twice). Mails are read back from a real SMTP
server on loopback (aiosmtpd)."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import pytz
from babel.dates import format_datetime
from huey.signals import SIGNAL_COMPLETE
from sqlalchemy import func, select

from core.activities import DIGEST_JOB, Activity, ActivityType, schedule_activity, send_reminders
from core.extensions import db
from core.i18n import merge_catalogs
from core.jobs import JobRun, get_jobs, running_consumer
from core.security import Team, set_user_teams
from core.timeline import Notification

from .test_mail import html_part

MONDAY_MORNING = "2026-11-23T08:00:00+00:00"  # Riga 10:00, Tashkent 13:00


@pytest.fixture
def mail_app(fx_app, smtp_inbox):
    app = fx_app(["fx_records"], **smtp_inbox.config(), BIRGA_FAKE_NOW=MONDAY_MORNING,
                 BIRGA_BASE_URL="https://crm.example")
    with app.app_context():
        yield app


@pytest.fixture
def people(mail_app, make_user):
    users = {
        "anna": make_user("anna", email="anna@example.lv", locale="en",
                          timezone="Europe/Riga"),
        "vera": make_user("vera", email="vera@example.uz", locale="ru",
                          timezone="Asia/Tashkent"),
        "boss": make_user("boss", email="boss@example.lv", locale="en",
                          timezone="Europe/Riga"),
        "idle": make_user("idle", email="idle@example.lv"),
    }
    team = Team(name="Sales", manager_id=users["boss"].id)
    db.session.add(team)
    db.session.flush()
    for login in ("anna", "vera"):
        set_user_teams(users[login], [team.id])
    db.session.commit()
    return users


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add(user, due, summary, code="call", done=False):
    from core.activities import activity_types

    activity_types()
    kind = db.session.scalar(select(ActivityType.id).where(ActivityType.code == code))
    activity = schedule_activity(type_id=kind, summary=summary, due_at=at(due), assignee=user,
                                 creator=user)
    if done:
        activity.done_at = at(due)
    db.session.commit()
    return activity


def by_recipient(inbox):
    return {d.rcpt_tos[0]: d.message for d in inbox.deliveries}


@pytest.fixture
def agenda(people):
    add(people["anna"], "2026-11-20T09:00:00", "Overdue call to Acme")
    add(people["anna"], "2026-11-23T13:00:00", "Meeting with Baltic Oil", "meeting")
    add(people["anna"], "2026-11-24T09:00:00", "Tomorrow task", "task")
    add(people["anna"], "2026-11-19T09:00:00", "Already finished", done=True)
    add(people["vera"], "2026-11-23T10:00:00", "Звонок в Ташкент")
    return people


def test_each_user_gets_a_digest_of_overdue_and_todays_activities(mail_app, agenda, smtp_inbox):
    result = send_reminders()
    assert result == {"digests": 2, "supervisor": 1}
    mails = by_recipient(smtp_inbox)
    assert set(mails) == {"anna@example.lv", "vera@example.uz", "boss@example.lv"}
    anna = mails["anna@example.lv"]
    assert anna["Subject"] == "Your activities: 1 overdue, 1 today"
    html = html_part(anna)
    overdue, today = html.split("<h3>Today</h3>")
    assert "Overdue call to Acme" in overdue and "Meeting with Baltic Oil" in today
    assert "Tomorrow task" not in html and "Already finished" not in html
    assert "https://crm.example/activities/" in html
    # Shown in her zone: 13:00 UTC is 15:00 in Riga.
    riga = format_datetime(at("2026-11-23T13:00:00"), "short", tzinfo=pytz.timezone(
        "Europe/Riga"), locale="en")
    assert riga in html


def test_the_digest_speaks_the_users_language_and_zone(mail_app, agenda, smtp_inbox):
    send_reminders()
    vera = by_recipient(smtp_inbox)["vera@example.uz"]
    russian = merge_catalogs(mail_app.extensions["birga.i18n"].directories, "ru")
    assert vera["Content-Language"] == "ru"
    html = html_part(vera)
    assert "Звонок в Ташкент" in html
    assert f"<h3>{russian.gettext('Today')}</h3>" in html
    tashkent = format_datetime(at("2026-11-23T10:00:00"), "short",
                               tzinfo=pytz.timezone("Asia/Tashkent"), locale="ru")
    assert tashkent in html  # 15:00, Russian date order


def test_running_the_job_twice_never_sends_twice(mail_app, agenda, smtp_inbox):
    huey = get_jobs(mail_app).huey
    finished = []  # Huey keeps no result of a periodic job; its completion signal tells

    def count(signal, task, *args, **kwargs):
        finished.append(task.name)

    huey.signal(SIGNAL_COMPLETE)(count)
    try:
        send_reminders.delay()  # queued twice, run by two workers of a real consumer
        send_reminders.delay()
        with running_consumer(mail_app, workers=2):
            deadline = time.monotonic() + 30
            while len(finished) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        huey.disconnect_signal(count, SIGNAL_COMPLETE)
    assert len(finished) == 2
    assert send_reminders() == {"digests": 0, "supervisor": 0}
    assert sorted(d.rcpt_tos[0] for d in smtp_inbox.deliveries) == [
        "anna@example.lv", "boss@example.lv", "vera@example.uz"]
    anna = agenda["anna"]
    [note] = db.session.scalars(select(Notification).where(Notification.user_id == anna.id))
    assert note.link == "/activities/" and "1 overdue" in note.text
    assert db.session.scalar(select(func.count(JobRun.id)).where(JobRun.job == DIGEST_JOB)) == 3


def test_the_next_day_brings_a_new_digest(mail_app, agenda, smtp_inbox):
    send_reminders()
    mail_app.config["BIRGA_FAKE_NOW"] = "2026-11-24T08:00:00+00:00"
    assert send_reminders()["digests"] == 2
    latest = [d.message for d in smtp_inbox.deliveries if d.rcpt_tos == ["anna@example.lv"]][-1]
    assert latest["Subject"] == "Your activities: 2 overdue, 1 today"
    assert "Tomorrow task" in html_part(latest)


def test_nobody_gets_a_digest_before_their_own_morning(mail_app, agenda, smtp_inbox):
    mail_app.config["BIRGA_FAKE_NOW"] = "2026-11-23T03:00:00+00:00"  # Riga 05:00, Tashkent 08:00
    assert send_reminders() == {"digests": 1, "supervisor": 0}
    assert list(by_recipient(smtp_inbox)) == ["vera@example.uz"]
    mail_app.config["BIRGA_FAKE_NOW"] = "2026-11-23T05:30:00+00:00"  # Riga 07:30
    assert send_reminders() == {"digests": 1, "supervisor": 1}
    assert set(by_recipient(smtp_inbox)) == {"vera@example.uz", "anna@example.lv",
                                        "boss@example.lv"}


def test_the_manager_gets_each_members_overdue_tails(mail_app, agenda, smtp_inbox):
    add(agenda["vera"], "2026-11-21T06:00:00", "Просроченная встреча", "meeting")
    add(agenda["boss"], "2026-11-20T09:00:00", "Boss's own overdue")
    send_reminders()
    supervisor = by_recipient(smtp_inbox)["boss@example.lv"]
    assert supervisor["Subject"] == "Overdue activities in your team"
    html = html_part(supervisor)
    anna_part, vera_part = html.split("<h3>Vera</h3>")
    assert "<h3>Anna</h3>" in anna_part and "Overdue call to Acme" in anna_part
    assert "Просроченная встреча" in vera_part
    for not_a_tail in ("Meeting with Baltic Oil", "Звонок в Ташкент", "Tomorrow task",
                       "own overdue"):
        assert not_a_tail not in html
    send_reminders()
    assert sum(d.rcpt_tos == ["boss@example.lv"] for d in smtp_inbox.deliveries) == 2  # his + team


def test_a_failing_mail_server_is_retried_on_the_next_run(mail_app, agenda, smtp_inbox):
    mail_app.config["BIRGA_MAIL_PORT"] = 1  # nothing listens there
    assert send_reminders() == {"digests": 0, "supervisor": 0}
    assert db.session.scalar(select(func.count(Notification.id))) == 0
    mail_app.config["BIRGA_MAIL_PORT"] = smtp_inbox.port
    assert send_reminders() == {"digests": 2, "supervisor": 1}


def test_the_reminders_are_a_periodic_job_of_every_app(mail_app):
    jobs = get_jobs(mail_app)
    assert DIGEST_JOB in jobs.registered()
    assert DIGEST_JOB in jobs.periodic_due(at("2026-11-23T07:15:00"))
    assert DIGEST_JOB not in jobs.periodic_due(at("2026-11-23T07:16:00"))
    assert db.session.scalar(select(func.count(Activity.id))) == 0
