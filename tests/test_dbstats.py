"""Planner statistics (core.dbstats): refreshed where data changes in bulk, on both engines."""
from __future__ import annotations

from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import text

from core.cli import main
from core.dbstats import refresh_all, refresh_statistics
from core.extensions import db
from core.models import User


def analysed_row_count(table: str) -> int | None:
    """The row count the planner believes `table` has, None when it was never analysed."""
    if db.engine.dialect.name == "sqlite":
        exists = db.session.execute(text(
            "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'")).first()
        if exists is None:
            return None
        stat = db.session.execute(text(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = :t ORDER BY idx IS NULL, idx LIMIT 1"),
            {"t": table}).scalar()
        return None if stat is None else int(stat.split()[0])
    # PostgreSQL 14+: reltuples is -1 until the table is vacuumed or analysed.
    tuples = db.session.execute(text(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}).scalar()
    return None if tuples is None or tuples < 0 else int(tuples)


def add_users(count: int) -> None:
    db.session.execute(User.__table__.insert(), [
        {"login": f"u{i}", "name": f"User {i}", "password_hash": "", "is_admin": False,
         "active": True, "session_version": 1} for i in range(count)])
    db.session.commit()


def test_refreshing_a_table_gives_the_planner_its_row_count(app):
    add_users(30)
    assert analysed_row_count("core_user") is None
    refresh_statistics(tables=["core_user"])
    db.session.rollback()  # a fresh snapshot on PostgreSQL
    assert analysed_row_count("core_user") == 30


def test_the_nightly_job_refreshes_every_table_on_sqlite_only(app):
    add_users(12)
    engine = refresh_all()
    db.session.rollback()
    assert engine == db.engine.dialect.name
    if engine == "sqlite":
        assert analysed_row_count("core_user") == 12
    else:  # autovacuum's work on PostgreSQL
        assert analysed_row_count("core_user") is None


def test_birga_init_leaves_the_database_analysed(make_app, monkeypatch):
    app = make_app([], migrate=False)
    with app.app_context():
        db.drop_all()
    monkeypatch.setenv("BIRGA_ADMIN_PASSWORD", "s3cret-pass")
    result = CliRunner().invoke(main, ["init"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert analysed_row_count("core_user") == 1  # the administrator


def test_the_refresh_is_a_nightly_job_of_every_worker(app):
    from datetime import datetime

    from core.jobs import get_jobs

    jobs = get_jobs(app)
    assert "core.dbstats.refresh_all" in jobs.periodic_due(datetime(2026, 1, 5, 3, 41))
    assert "core.dbstats.refresh_all" not in jobs.periodic_due(datetime(2026, 1, 5, 4, 41))
