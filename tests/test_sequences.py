"""Document numbers: gap-free, per year, and distinct under concurrent requests (each request in
its own thread, session and connection) on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest

from core.api import UnknownSequence, define_sequence, next_number
from core.extensions import db
from core.sequences import SequenceCounter, format_document_number


@pytest.fixture
def offer(app):
    define_sequence("offer", "OFFER/%(year)s/", padding=4, name="Offers")
    db.session.commit()
    return "offer"


def _allocate_concurrently(app, code: str, count: int, *, rollback=lambda i: False,
                           when: date | None = None) -> tuple[list[str], list[BaseException]]:
    """`count` threads, each in its own app context (so its own session and connection), start
    together, allocate one number and commit (or roll back when `rollback(i)`)."""
    start = threading.Barrier(count)
    kept: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def request(i: int) -> None:
        try:
            with app.app_context():
                start.wait()
                number = next_number(code, when=when)
                if rollback(i):
                    db.session.rollback()
                    return
                db.session.commit()
                with lock:
                    kept.append(number)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return kept, errors


def test_fifty_concurrent_requests_get_fifty_consecutive_numbers(app, offer):
    kept, errors = _allocate_concurrently(app, offer, 50, when=date(2026, 3, 1))
    assert errors == []
    assert sorted(kept) == [f"OFFER/2026/{n:04d}" for n in range(1, 51)]


def test_concurrent_rollbacks_leave_no_gap(app, offer):
    kept, errors = _allocate_concurrently(app, offer, 30, rollback=lambda i: i % 3 == 0,
                                          when=date(2026, 3, 1))
    assert errors == []
    assert sorted(kept) == [f"OFFER/2026/{n:04d}" for n in range(1, 21)]
    assert next_number(offer, when=date(2026, 3, 1)) == "OFFER/2026/0021"


def test_rolled_back_number_is_handed_out_again(app, offer):
    assert next_number(offer, when=date(2026, 5, 4)) == "OFFER/2026/0001"
    db.session.commit()
    assert next_number(offer, when=date(2026, 5, 4)) == "OFFER/2026/0002"
    db.session.rollback()  # the document failed to save
    assert next_number(offer, when=date(2026, 5, 4)) == "OFFER/2026/0002"
    db.session.commit()
    assert next_number(offer, when=date(2026, 5, 4)) == "OFFER/2026/0003"


def test_counter_restarts_each_year(app, offer):
    assert next_number(offer, when=date(2025, 12, 31)) == "OFFER/2025/0001"
    assert next_number(offer, when=date(2025, 12, 31)) == "OFFER/2025/0002"
    assert next_number(offer, when=date(2026, 1, 1)) == "OFFER/2026/0001"
    assert next_number(offer, when=date(2025, 6, 1)) == "OFFER/2025/0003"
    db.session.commit()
    years = {c.year: c.last_value for c in db.session.scalars(db.select(SequenceCounter))}
    assert years == {2025: 3, 2026: 1}


def test_year_of_an_aware_moment_is_taken_in_the_company_time_zone(make_app):
    app = make_app(BIRGA_DEFAULT_TIMEZONE="Asia/Tashkent")
    with app.app_context():
        define_sequence("inv", "INV-%(y)s-", padding=3)
        # 20:00 UTC on 31 Dec is already 1 Jan in Tashkent (UTC+5).
        assert next_number("inv", when=datetime(2025, 12, 31, 20, 0, tzinfo=UTC)) == "INV-26-001"


def test_non_yearly_sequence_never_restarts(app):
    define_sequence("contract", "C", padding=5, yearly=False)
    assert next_number("contract", when=date(2025, 1, 1)) == "C00001"
    assert next_number("contract", when=date(2026, 1, 1)) == "C00002"


def test_define_sequence_is_idempotent_and_keeps_admin_changes(app, offer):
    from core.api import NumberSequence

    seq = db.session.scalars(db.select(NumberSequence).where(NumberSequence.code == offer)).one()
    seq.prefix = "OF-%(year)s-"
    db.session.commit()
    again = define_sequence(offer, "OFFER/%(year)s/")
    assert again.id == seq.id and again.prefix == "OF-%(year)s-"
    assert next_number(offer, when=date(2026, 2, 2)) == "OF-2026-0001"


def test_unknown_code_raises_and_allocates_nothing(app, offer):
    with pytest.raises(UnknownSequence):
        next_number("nope")
    assert db.session.scalars(db.select(SequenceCounter)).all() == []


@pytest.mark.parametrize("prefix", ["OFFER/%d/", "X%(month)s", "%s"])
def test_prefix_with_unknown_placeholder_is_refused(app, prefix):
    with pytest.raises(ValueError):
        define_sequence("bad", prefix)


def test_format_document_number_pads_and_fills_the_year():
    assert format_document_number("OFFER/%(year)s/", 4, 2026, 12) == "OFFER/2026/0012"
    assert format_document_number("%(y)s%%", 2, 2009, 123) == "09%123"
