"""How many partners share an owner, active flag, kind and status, kept by triggers.

Why: the contacts list shows its total on every page. Counted from the partners, that is a
walk of every index entry of the list (a salesperson's 6,000 contacts: 0.2 ms inside SQLite,
0.5 ms inside PostgreSQL, a tenth of the page). Here the database keeps those counts itself,
as `pipeline.totals` does for the board: triggers on `contacts_partner` add and subtract each
inserted, deleted or changed partner, whoever writes it (the ORM, Core, an import's COPY, a
merge, a revert, a migration), in the writer's own transaction; the list then sums a few rows.

The owner is stored as 0 for "nobody" so the key has no NULL (a unique key treats NULLs as
distinct). On PostgreSQL inserts and deletes are counted per statement (transition tables: an
import's COPY of 20k rows upserts a few dozen totals once, not a row trigger per partner);
updates per row, and only when one of the kept columns is in the UPDATE.

A filter these four columns cannot answer (a search, a tag, a city, a segment, ...) or a record
rule with a condition of its own is counted from the partners (`listing.statements`).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Integer, String, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from core.api import db

from .models import Partner

__all__ = ["KEPT", "PartnerTotal", "create_triggers", "drop_triggers", "refill"]


class PartnerTotal(db.Model):
    """How many partners share one key. Written by triggers only."""

    __tablename__ = "contacts_partner_total"

    #: The partners' owner, 0 for nobody; first, so one salesperson's totals are one range.
    owner_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    active: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    status: Mapped[str] = mapped_column(String(12), primary_key=True)
    partners: Mapped[int] = mapped_column(Integer, default=0)


KEY = "owner_key, active, kind, status"
#: The partner columns a total depends on: an UPDATE touching none of them leaves them be.
WATCHED = ("owner_id", "active", "kind", "status")


def _key_of(row: str) -> str:
    return f"coalesce({row}.owner_id, 0), {row}.active, {row}.kind, {row}.status"


def _upsert(values: str) -> str:
    # Every piece is a constant of this module: no outside text.
    return (f"INSERT INTO contacts_partner_total ({KEY}, partners) {values} "  # noqa: S608
            f"ON CONFLICT ({KEY}) DO UPDATE SET "
            "partners = contacts_partner_total.partners + excluded.partners;")


def _drop_empty(where: str) -> str:
    return f"DELETE FROM contacts_partner_total WHERE {where} AND partners = 0;"  # noqa: S608


def _row_matches(row: str) -> str:
    return (f"owner_key = coalesce({row}.owner_id, 0) AND active = {row}.active "
            f"AND kind = {row}.kind AND status = {row}.status")


def _changed(dialect: str) -> str:
    op = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {op} NEW.{c}" for c in WATCHED)


def _sqlite_triggers() -> list[str]:
    add = _upsert(f"VALUES ({_key_of('NEW')}, 1)")
    remove = _upsert(f"VALUES ({_key_of('OLD')}, -1)") + " " + _drop_empty(_row_matches("OLD"))
    return [
        "CREATE TRIGGER contacts_partner_total_insert AFTER INSERT ON contacts_partner "
        f"BEGIN {add} END",
        "CREATE TRIGGER contacts_partner_total_delete AFTER DELETE ON contacts_partner "
        f"BEGIN {remove} END",
        f"CREATE TRIGGER contacts_partner_total_update AFTER UPDATE OF {', '.join(WATCHED)} "
        f"ON contacts_partner WHEN {_changed('sqlite')} BEGIN {remove} {add} END",
    ]


def _grouped(rows: str, sign: str) -> str:
    """The upsert of a statement's rows (`rows`, a transition table) counted per key, in key
    order: two statements lock the totals they share in the same order (no deadlock)."""
    return _upsert(f"SELECT {_key_of('r')}, {sign}count(*) FROM {rows} r "  # noqa: S608
                   "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4")


def _postgresql_triggers() -> list[str]:
    old_key = f"ROW({_key_of('OLD')})"
    new_key = old_key.replace("OLD.", "NEW.")
    add = _upsert(f"VALUES ({_key_of('NEW')}, 1)")
    remove = _upsert(f"VALUES ({_key_of('OLD')}, -1)") + " " + _drop_empty(_row_matches("OLD"))
    return [
        f"""
CREATE OR REPLACE FUNCTION contacts_partner_total_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_grouped('new_rows', '')}
  RETURN NULL;
END $$""",
        f"""
CREATE OR REPLACE FUNCTION contacts_partner_total_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  {_grouped('old_rows', '-')}
  DELETE FROM contacts_partner_total WHERE partners = 0
    AND ({KEY}) IN (SELECT {_key_of('r')} FROM old_rows r);
  RETURN NULL;
END $$""",  # noqa: S608 - constants of this module
        # An update subtracts from one total and adds to another: done in key order, so two
        # changes in opposite directions lock the two rows in the same order.
        f"""
CREATE OR REPLACE FUNCTION contacts_partner_total_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF {_changed('postgresql')} THEN
    IF {old_key} < {new_key} THEN
      {remove}
      {add}
    ELSE
      {add}
      {remove}
    END IF;
  END IF;
  RETURN NULL;
END $$""",
        "CREATE TRIGGER contacts_partner_total_insert AFTER INSERT ON contacts_partner "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION contacts_partner_total_inserted()",
        "CREATE TRIGGER contacts_partner_total_delete AFTER DELETE ON contacts_partner "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION contacts_partner_total_deleted()",
        f"CREATE TRIGGER contacts_partner_total_update AFTER UPDATE OF {', '.join(WATCHED)} "
        "ON contacts_partner FOR EACH ROW EXECUTE FUNCTION contacts_partner_total_updated()",
    ]


def create_triggers(conn: Connection) -> None:
    """The triggers on `contacts_partner` (both tables must exist)."""
    statements = (_postgresql_triggers() if conn.dialect.name == "postgresql"
                  else _sqlite_triggers())
    for statement in statements:
        conn.exec_driver_sql(statement)


def drop_triggers(conn: Connection) -> None:
    for name in ("insert", "delete", "update"):
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"DROP TRIGGER IF EXISTS contacts_partner_total_{name} ON contacts_partner")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS contacts_partner_total_{name}")
    if conn.dialect.name == "postgresql":
        for name in ("inserted", "deleted", "updated"):
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS contacts_partner_total_{name}()")


def refill(conn: Connection) -> None:
    """Rebuild every total from the partners (after creating the table on existing data)."""
    conn.execute(text("DELETE FROM contacts_partner_total"))
    conn.execute(text(
        f"INSERT INTO contacts_partner_total ({KEY}, partners) "  # noqa: S608 - constants
        "SELECT coalesce(owner_id, 0), active, kind, status, count(*) FROM contacts_partner "
        "GROUP BY coalesce(owner_id, 0), active, kind, status"))


def _after_create(target: Any, conn: Connection, **kw: Any) -> None:
    create_triggers(conn)


# Schemas made from the models (tests, benchmarks, `create_schema`) get the triggers too; the
# totals table is created after the partners, whose table the triggers are on.
event.listen(PartnerTotal.__table__, "after_create", _after_create)
PartnerTotal.__table__.add_is_dependent_on(Partner.__table__)

_TOTALS = PartnerTotal.__table__.c
#: The partner columns the totals keep, by the partner's attribute names, as columns of the
#: totals. The owner is the stored key: 0 (nobody) never equals a user's id, so a record
#: rule's `owner_id = :user` or `owner_id IN (teammates)` reads the same over it (and uses
#: the key's index); "nobody" is `owner_key = 0` there.
KEPT: dict[str, Any] = {"owner_id": _TOTALS.owner_key, "active": _TOTALS.active,
                        "kind": _TOTALS.kind, "status": _TOTALS.status}
