"""Reads without a transaction on PostgreSQL: GET pages in autocommit, writes in one
transaction (core.read_requests)."""
from __future__ import annotations

from core.extensions import db


def _app_reporting_autocommit(make_app, **config):
    """An app with a GET and a POST route that say whether their connection autocommits."""
    app = make_app([], **config)

    def state() -> str:
        dbapi = db.session.connection().connection.dbapi_connection
        return "autocommit" if getattr(dbapi, "autocommit", False) else "transaction"

    app.add_url_rule("/probe", "probe", state, methods=["GET", "POST"])
    return app


def test_a_get_reads_in_autocommit_on_postgresql_and_a_post_in_one_transaction(make_app):
    app = _app_reporting_autocommit(make_app)
    client = app.test_client()
    with app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
    # SQLite keeps its own (local) transactions: nothing to save there.
    assert client.get("/probe").get_data(as_text=True) == (
        "autocommit" if postgres else "transaction")
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.post("/probe").get_data(as_text=True) == "transaction"
    # The pool hands the next request a connection back in its normal mode.
    assert client.post("/probe").get_data(as_text=True) == "transaction"


def test_reads_keep_their_transaction_when_switched_off(make_app):
    app = _app_reporting_autocommit(make_app, BIRGA_READ_AUTOCOMMIT=False)
    assert app.test_client().get("/probe").get_data(as_text=True) == "transaction"


def test_a_get_marked_reads_in_transaction_keeps_its_transaction(make_app):
    """For a streamed export: PostgreSQL opens a server-side cursor only in a transaction."""
    from core.api import reads_in_transaction

    app = make_app([])

    @reads_in_transaction
    def streamed() -> str:
        with db.session.connection().execution_options(yield_per=2).exec_driver_sql(
                "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3") as result:
            return ",".join(str(row[0]) for row in result)

    app.add_url_rule("/streamed", "streamed", streamed)
    assert app.test_client().get("/streamed").get_data(as_text=True) == "1,2,3"
