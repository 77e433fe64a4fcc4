"""How the timeline and the audit log show a changed value: the names people call rows by, and
empty or yes/no values written the same in every language. One place, so both read alike."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table

__all__ = ["LABEL_COLUMNS", "label_columns", "shown_value"]

#: Columns that name a row for people, most telling first ("Proposal", not stage 3).
LABEL_COLUMNS = ("name", "title", "display_name", "login", "code")


def label_columns(table: Table) -> list[Column]:
    """`table`'s columns from `LABEL_COLUMNS` (empty: the table has no name for its rows)."""
    return [table.c[name] for name in LABEL_COLUMNS if name in table.c]


def shown_value(value: Any) -> str:
    """A changed value as text: "—" for nothing, ✓/✗ for yes/no (language-neutral, unlike a
    bare "no" msgid), anything else as its text."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return str(value)
