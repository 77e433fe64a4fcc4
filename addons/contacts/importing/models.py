"""Tables of the import: the uploaded file and its run state, what a run changed (so it can be
reverted), the rows it rejected, and mappings people saved for their next file.

The uploaded file lives in the database, not on a disk: the worker that runs a long import
may be another machine than the web server that received it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from core.api import db, utcnow

#: new: uploaded, being mapped; queued/running: a run is on its way (`dry_run` says which);
#: checked: a dry run finished; done: imported; failed: nothing was written; reverted.
IMPORT_STATES = ("new", "queued", "running", "checked", "done", "failed", "reverted")


class ImportBatch(db.Model):
    """One uploaded file and the state of its (dry or real) run."""

    __tablename__ = "contacts_import"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"),
                                                index=True)
    filename: Mapped[str] = mapped_column(String(255))
    #: csv, xlsx or vcard.
    format: Mapped[str] = mapped_column(String(8))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    #: CSV reading options (detected, or chosen on the page).
    encoding: Mapped[str | None] = mapped_column(String(20))
    delimiter: Mapped[str | None] = mapped_column(String(2))
    columns: Mapped[list] = mapped_column(JSON, default=list)
    #: The first rows, for the mapping screen (the file is not parsed again per page view).
    sample: Mapped[list] = mapped_column(JSON, default=list)
    #: {column index (str): field key}, e.g. {"0": "external_id", "1": "first_name"}.
    mapping: Mapped[dict] = mapped_column(JSON, default=dict)
    #: kind (person/company), match_key, skip_duplicates, strict.
    options: Mapped[dict] = mapped_column(JSON, default=dict)

    state: Mapped[str] = mapped_column(String(10), default="new", index=True)
    dry_run: Mapped[bool] = mapped_column(default=False)
    #: reading, matching, writing: what the progress counter counts.
    phase: Mapped[str | None] = mapped_column(String(10))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    #: Counts by outcome and a preview of the first rows' outcomes (the dry run's table).
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    #: Why a run failed as a whole: {"code": ..., "params": {...}}, translated on display.
    failure: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportRecord(db.Model):
    """What a finished import changed: a range of partner ids it created, or one partner it
    updated with the values it had before (the revert puts them back)."""

    __tablename__ = "contacts_import_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_import.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(8))  # create / update
    first_id: Mapped[int] = mapped_column(Integer)
    last_id: Mapped[int] = mapped_column(Integer)
    #: update: {"fields": {...}, "phones": [[number, kind], ...], "emails": [...],
    #: "custom": {field_id: [text, number, date, bool] | None}}.
    previous: Mapped[dict | None] = mapped_column(JSON)


class ImportRowError(db.Model):
    """A row the last run rejected: its values and why (a message code, translated on
    display and in the downloadable CSV, in the reader's language)."""

    __tablename__ = "contacts_import_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_import.id", ondelete="CASCADE"), index=True)
    row_no: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    values: Mapped[list] = mapped_column(JSON, default=list)


class ImportMapping(db.Model):
    """A mapping saved by name: column headers to fields, plus the options."""

    __tablename__ = "contacts_import_mapping"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                                index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: {column header: field key}
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
