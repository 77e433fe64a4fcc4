"""Optimistic locking: of two people editing one record, the second save is refused with a
conflict naming what changed, and nothing is silently overwritten (SQLite and PostgreSQL)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from core.api import ConflictError, VersionedMixin, save_or_conflict, save_or_raise
from core.extensions import db


class _Base(DeclarativeBase):
    # Own metadata: this test-only table never joins core's models or migrations.
    metadata = MetaData()


class Note(VersionedMixin, _Base):
    __tablename__ = "core_test_versioned_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100), info={"label": "Title"})
    body: Mapped[str] = mapped_column(String(500), default="")


@pytest.fixture
def note_id(app) -> Iterator[int]:
    _Base.metadata.create_all(db.engine)
    with Session(db.engine) as s:
        note = Note(title="Call Acme", body="About the offer")
        s.add(note)
        s.commit()
        note_id = note.id
    yield note_id
    _Base.metadata.drop_all(db.engine)


def _current(note_id: int) -> Note:
    with Session(db.engine) as s:
        return s.scalars(select(Note).where(Note.id == note_id)).one()


def test_version_starts_at_one_and_counts_updates(note_id):
    with Session(db.engine) as s:
        note = s.get(Note, note_id)
        assert note.version == 1
        assert save_or_conflict(note, 1, {"body": "Offer sent"}) is None
        s.commit()
        assert note.version == 2
    assert _current(note_id).body == "Offer sent"


def test_second_of_two_concurrent_edits_gets_conflict_naming_the_changed_field(note_id):
    first, second = Session(db.engine), Session(db.engine)
    try:
        mine, theirs = first.get(Note, note_id), second.get(Note, note_id)
        assert mine.version == theirs.version == 1

        assert save_or_conflict(mine, 1, {"title": "Call Acme on Monday"}) is None
        first.commit()

        # `theirs` still holds version 1 in memory: the UPDATE itself finds the row moved on.
        conflict = save_or_conflict(theirs, 1, {"title": "Call Acme today",
                                                "body": "About the offer"})
        assert conflict is not None
        assert conflict.fields == ["title"]
        assert conflict.changed == {"title": ("Call Acme", "Call Acme on Monday")}
        assert conflict.changes[0].yours == "Call Acme today"
        assert (conflict.submitted_version, conflict.current_version) == (1, 2)
        assert "Title: Call Acme → Call Acme on Monday" in conflict.message
        assert "Someone else saved this record" in conflict.message
    finally:
        first.close()
        second.close()
    stored = _current(note_id)
    assert (stored.title, stored.version) == ("Call Acme on Monday", 2)


def test_stale_form_version_is_refused_before_writing(note_id):
    with Session(db.engine) as s:
        note = s.get(Note, note_id)
        assert save_or_conflict(note, 1, {"body": "Met them"}) is None
        s.commit()
    # A form rendered at version 1 is posted after the record reached version 2.
    with Session(db.engine) as s:
        note = s.get(Note, note_id)
        conflict = save_or_conflict(note, "1", {"body": "Called them"},
                                    original={"title": "Call Acme", "body": "About the offer"})
        assert conflict is not None
        assert conflict.changed == {"body": ("About the offer", "Met them")}
        assert not s.dirty
    assert _current(note_id).body == "Met them"


def test_without_original_values_conflict_lists_what_would_be_overwritten(note_id):
    with Session(db.engine) as s:
        note = s.get(Note, note_id)
        save_or_conflict(note, 1, {"title": "Visit Acme"})
        s.commit()
    with Session(db.engine) as s:
        note = s.get(Note, note_id)
        conflict = save_or_conflict(note, 1, {"title": "Email Acme", "body": "About the offer"})
        assert conflict.fields == ["title"]
        assert conflict.changes[0].known_old is False
        assert "Title: now Visit Acme" in conflict.message


def test_save_or_raise_raises_conflict_error_with_message(note_id):
    first, second = Session(db.engine), Session(db.engine)
    try:
        mine, theirs = first.get(Note, note_id), second.get(Note, note_id)
        save_or_raise(mine, 1, {"body": "v2"})
        first.commit()
        with pytest.raises(ConflictError) as info:
            save_or_raise(theirs, 1, {"title": "Other"})
        assert info.value.changes[0].field == "body"
        assert str(info.value) == info.value.conflict.message
    finally:
        first.close()
        second.close()


def test_record_deleted_meanwhile_is_a_conflict(note_id):
    first, second = Session(db.engine), Session(db.engine)
    try:
        theirs = second.get(Note, note_id)
        first.delete(first.get(Note, note_id))
        first.commit()
        conflict = save_or_conflict(theirs, 1, {"title": "Too late"})
        assert conflict.deleted
        assert "deleted" in conflict.message
    finally:
        first.close()
        second.close()


def test_plain_orm_update_of_stale_copy_raises_stale_data_error(note_id):
    first, second = Session(db.engine), Session(db.engine)
    try:
        mine, theirs = first.get(Note, note_id), second.get(Note, note_id)
        mine.title = "A"
        first.commit()
        theirs.title = "B"
        with pytest.raises(StaleDataError):
            second.flush()
        second.rollback()
    finally:
        first.close()
        second.close()
    assert _current(note_id).title == "A"


def test_conflict_message_is_translated(app, note_id, monkeypatch):
    import core.locking as locking

    first, second = Session(db.engine), Session(db.engine)
    try:
        mine, theirs = first.get(Note, note_id), second.get(Note, note_id)
        save_or_conflict(mine, 1, {"title": "New"})
        first.commit()
        conflict = save_or_conflict(theirs, 1, {"title": "Mine"})
        monkeypatch.setattr(locking, "_", lambda s, **kw: "«" + (s % kw) + "»")
        assert conflict.message.startswith("«Someone else saved")
        assert "«Title: Call Acme → New»" in conflict.message
    finally:
        first.close()
        second.close()


def test_unknown_field_is_rejected(note_id):
    with Session(db.engine) as s:
        note = s.get(Note, note_id)
        with pytest.raises(ValueError, match="version"):
            save_or_conflict(note, 1, {"version": 7})
