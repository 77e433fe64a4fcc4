"""Deal counts and sums kept per (pipeline, active, stage, currency, owner, team) by triggers.

Why: a board shows every column's count and total per currency under the record rules. Read
from the deals, that is a scan of every deal of the pipeline on each board request (50k deals:
~12 ms on SQLite, ~30 ms on PostgreSQL, more than all the rest of the page), so a busy board's
requests queue behind it and the slowest wait hundreds of milliseconds. Here the database keeps
those counts itself: triggers on `pipeline_deal` add and subtract each inserted, deleted or
changed deal, whoever writes it (the ORM, a Core bulk insert, an import, a migration), in the
writer's own transaction; a board then sums a few hundred rows, however many deals there are.

Owner and team are stored as 0 for "nobody" so the key has no NULL (a unique key treats NULLs
as distinct); amounts as integer cents (`pipeline_deal.amount` is NUMERIC(18,2)), so adding and
subtracting never drifts as floats would on SQLite.

`KEPT` / `KEPT_COLUMNS` name the deal columns this table keeps, as expressions over it, so the
board writes its record rule (`core.api.rule_clause_on`) and its filters over them; a filter on
anything else (a tag, a title search, "no next activity") cannot be answered here and the
board counts the deals themselves.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    event,
    func,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from core.api import db

from .models import Deal

__all__ = ["KEPT", "KEPT_COLUMNS", "DealTotal", "create_triggers", "drop_triggers", "refill"]


class DealTotal(db.Model):
    """How many deals, and their amount in cents, share one key. Written by triggers only."""

    __tablename__ = "pipeline_deal_total"

    pipeline_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    active: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    stage_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    #: The deal's owner, 0 for nobody.
    owner_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The deal's team, 0 for none.
    team_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    deals: Mapped[int] = mapped_column(Integer, default=0)
    cents: Mapped[int] = mapped_column(BigInteger, default=0)


KEY = "pipeline_id, active, stage_id, currency, owner_key, team_key"
#: The deal columns a total depends on: an UPDATE touching none of them leaves the totals be.
WATCHED = ("pipeline_id", "active", "stage_id", "currency", "owner_id", "team_id", "amount")


def _cents(row: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"(coalesce({row}.amount, 0) * 100)::bigint"
    return f"CAST(round(coalesce({row}.amount, 0) * 100) AS INTEGER)"


def _values(row: str, sign: str, dialect: str) -> str:
    return (f"{row}.pipeline_id, {row}.active, {row}.stage_id, {row}.currency, "
            f"coalesce({row}.owner_id, 0), coalesce({row}.team_id, 0), {sign}1, "
            f"{sign}{_cents(row, dialect)}")


def _add(row: str, sign: str, dialect: str) -> str:
    """Upsert `row`'s deal into its total; a total down to no deal is removed."""
    # Every piece is a constant of this module (row is NEW or OLD): no outside text.
    upsert = (f"INSERT INTO pipeline_deal_total ({KEY}, deals, cents) "  # noqa: S608
              f"VALUES ({_values(row, sign, dialect)}) ON CONFLICT ({KEY}) DO UPDATE SET "
              "deals = pipeline_deal_total.deals + excluded.deals, "
              "cents = pipeline_deal_total.cents + excluded.cents;")
    if sign == "+":
        return upsert
    return upsert + (  # noqa: S608
        f" DELETE FROM pipeline_deal_total WHERE pipeline_id = {row}.pipeline_id AND "  # noqa: S608
        f"active = {row}.active AND stage_id = {row}.stage_id AND currency = {row}.currency "
        f"AND owner_key = coalesce({row}.owner_id, 0) AND team_key = coalesce({row}.team_id, 0) "
        "AND deals = 0;")


def _changed(dialect: str) -> str:
    op = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {op} NEW.{c}" for c in WATCHED)


def _sqlite_triggers() -> list[str]:
    return [
        "CREATE TRIGGER pipeline_deal_total_insert AFTER INSERT ON pipeline_deal "
        f"BEGIN {_add('NEW', '+', 'sqlite')} END",
        "CREATE TRIGGER pipeline_deal_total_delete AFTER DELETE ON pipeline_deal "
        f"BEGIN {_add('OLD', '-', 'sqlite')} END",
        f"CREATE TRIGGER pipeline_deal_total_update AFTER UPDATE OF {', '.join(WATCHED)} "
        f"ON pipeline_deal WHEN {_changed('sqlite')} "
        f"BEGIN {_add('OLD', '-', 'sqlite')} {_add('NEW', '+', 'sqlite')} END",
    ]


def _postgresql_triggers() -> list[str]:
    # An update subtracts from one total and adds to another: done in key order, so two moves
    # in opposite directions lock the two rows in the same order (no deadlock between them).
    old_key = ("ROW(OLD.pipeline_id, OLD.active, OLD.stage_id, OLD.currency, "
               "coalesce(OLD.owner_id, 0), coalesce(OLD.team_id, 0))")
    new_key = old_key.replace("OLD.", "NEW.")
    function = f"""
CREATE OR REPLACE FUNCTION pipeline_deal_total_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_add('NEW', '+', 'postgresql')}
  ELSIF TG_OP = 'DELETE' THEN
    {_add('OLD', '-', 'postgresql')}
  ELSIF {_changed('postgresql')} THEN
    IF {old_key} < {new_key} THEN
      {_add('OLD', '-', 'postgresql')}
      {_add('NEW', '+', 'postgresql')}
    ELSE
      {_add('NEW', '+', 'postgresql')}
      {_add('OLD', '-', 'postgresql')}
    END IF;
  END IF;
  RETURN NULL;
END $$"""
    return [
        function,
        "CREATE TRIGGER pipeline_deal_total_change AFTER INSERT OR DELETE OR UPDATE OF "
        f"{', '.join(WATCHED)} ON pipeline_deal FOR EACH ROW "
        "EXECUTE FUNCTION pipeline_deal_total_apply()",
    ]


def create_triggers(conn: Connection) -> None:
    """The triggers on `pipeline_deal` (both tables must exist)."""
    statements = (_postgresql_triggers() if conn.dialect.name == "postgresql"
                  else _sqlite_triggers())
    for statement in statements:
        conn.exec_driver_sql(statement)


def drop_triggers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS pipeline_deal_total_change ON pipeline_deal")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS pipeline_deal_total_apply()")
    else:
        for name in ("insert", "delete", "update"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS pipeline_deal_total_{name}")


def refill(conn: Connection) -> None:
    """Rebuild every total from the deals (after creating the table on existing data)."""
    cents = _cents("pipeline_deal", conn.dialect.name)
    conn.execute(text("DELETE FROM pipeline_deal_total"))
    conn.execute(text(
        f"INSERT INTO pipeline_deal_total ({KEY}, deals, cents) "  # noqa: S608 - constants
        "SELECT pipeline_id, active, stage_id, currency, coalesce(owner_id, 0), "
        f"coalesce(team_id, 0), count(*), sum({cents}) FROM pipeline_deal "
        "GROUP BY pipeline_id, active, stage_id, currency, coalesce(owner_id, 0), "
        "coalesce(team_id, 0)"))


def _after_create(target: Any, conn: Connection, **kw: Any) -> None:
    create_triggers(conn)


# Schemas made from the models (tests, benchmarks, `create_schema`) get the triggers too; the
# totals table is created after the deals, whose table the triggers are on.
event.listen(DealTotal.__table__, "after_create", _after_create)
DealTotal.__table__.add_is_dependent_on(Deal.__table__)


#: The deal columns the totals keep, by the deal's attribute names, as expressions over the
#: totals (owner and team back to NULL for nobody, so `owner_id IS NULL` means the same).
KEPT: dict[str, Any] = {
    "pipeline_id": DealTotal.__table__.c.pipeline_id,
    "active": DealTotal.__table__.c.active,
    "stage_id": DealTotal.__table__.c.stage_id,
    "currency": DealTotal.__table__.c.currency,
    "owner_id": func.nullif(DealTotal.__table__.c.owner_key, 0),
    "team_id": func.nullif(DealTotal.__table__.c.team_key, 0),
}
#: The same as attributes (`KEPT_COLUMNS.owner_id`), where code reads `Deal.owner_id`.
KEPT_COLUMNS = SimpleNamespace(**KEPT)
