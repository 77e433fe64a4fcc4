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

#: Rows are read by name or position only, never keyed by the statement's Column objects.
#: So, as the ORM does for its own selects, skip adapting a cached statement's result map to
#: the new statement's columns: that rebuilt and re-hashed the whole key map on every run
#: (about 7 % of the contacts list page). An option SQLAlchemy does not know is ignored.
_OPTIONS = {"_result_disable_adapt_to_context": True}


def read(statement: Executable, parameters: Mapping[str, Any] | None = None) -> Result:
    """Run a select of columns (not entities) on the session's connection.

    Pending ORM changes are not flushed first: use it to read for display, not right after
    writing in the same request (then use `db.session.execute`). Read the rows' values by
    name (`row.total`) or position, not with the statement's columns as keys.
    """
    return db.session.connection().execute(statement, parameters, execution_options=_OPTIONS)
