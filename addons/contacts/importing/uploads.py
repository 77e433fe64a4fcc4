"""Turning an upload into an import batch: detect the format, read the header, guess (or
reapply a saved) mapping. Shared by the page, the tests and the benchmark, so every file
comes in through the same door."""
from __future__ import annotations

from sqlalchemy import select

from core.api import db

from ..models import CustomField
from .mapping import guess_mapping
from .models import ImportBatch, ImportMapping
from .parsing import guess_format, read_table

SAMPLE_ROWS = 3


def create_batch(data: bytes, filename: str, *, user_id: int | None,
                 kind: str = "person", encoding: str | None = None,
                 delimiter: str | None = None, fmt: str | None = None,
                 saved: ImportMapping | None = None) -> ImportBatch:
    """A new batch with the file read once (raises `ParseError` for an unreadable file);
    the caller commits."""
    fmt = fmt or guess_format(filename, data)
    table = read_table(data, fmt, encoding=encoding, delimiter=delimiter)
    options = {"kind": kind, "match_key": "", "skip_duplicates": False, "strict": False}
    if saved is not None:
        options.update(saved.options or {})
    batch = ImportBatch(filename=filename[:255], format=fmt, content=data, user_id=user_id,
                        encoding=table.encoding, delimiter=table.delimiter,
                        columns=table.columns, sample=table.rows[:SAMPLE_ROWS],
                        total_rows=len(table.rows), options=options)
    batch.mapping = mapping_for(table.columns, kind=options["kind"], saved=saved)
    db.session.add(batch)
    return batch


def mapping_for(columns: list[str], *, kind: str,
                saved: ImportMapping | None = None) -> dict[str, str]:
    """The saved mapping's fields for the columns it knows by header, else a guess."""
    if saved is not None:
        by_header = saved.fields or {}
        return {str(i): by_header[c] for i, c in enumerate(columns) if by_header.get(c)}
    names: dict[str, str] = {}
    for field in db.session.scalars(select(CustomField).where(CustomField.active.is_(True))):
        for label in (field.labels or {}).values():
            if label:
                names.setdefault(label, field.code)
        names[field.code] = field.code
    return guess_mapping(columns, names, kind=kind)


def reread(batch: ImportBatch, *, encoding: str | None, delimiter: str | None) -> None:
    """Read the file again with other CSV options (the page's override)."""
    table = read_table(batch.content, batch.format, encoding=encoding, delimiter=delimiter)
    if table.columns != batch.columns:
        batch.mapping = mapping_for(table.columns, kind=(batch.options or {}).get("kind",
                                                                                  "person"))
    batch.columns, batch.total_rows = table.columns, len(table.rows)
    batch.sample = table.rows[:SAMPLE_ROWS]
    batch.encoding, batch.delimiter = table.encoding, table.delimiter
    batch.state, batch.result, batch.failure = "new", {}, None
