"""Reading rows for pages without the ORM's per-statement machinery.

`db.session.execute()` runs every statement through the ORM (compile state, events,
autoflush, loading): about a third of a small query's cost in Python. A list page that only
shows columns gains from running its selects on the session's own connection: same
transaction, same isolation, plain result rows.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Result

from .extensions import db


def read(statement: Executable, parameters: Mapping[str, Any] | None = None) -> Result:
    """Run a select of columns (not entities) on the session's connection.

    Pending ORM changes are not flushed first: use it to read for display, not right after
    writing in the same request (then use `db.session.execute`).
    """
    return db.session.connection().execute(statement, parameters)
