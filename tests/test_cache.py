"""Per-worker caches of rarely changed rows, ended everywhere by the cache generation
(core.cache)."""
from __future__ import annotations

from sqlalchemy import select

from core.api import User, db, invalidate_shared_cache, read, shared_cache
from core.cache import CacheGeneration
from core.testing import statements

calls: list[int] = []


@shared_cache(User)
def logins() -> tuple[str, ...]:
    calls.append(1)
    return tuple(read(select(User.login).order_by(User.login)).scalars())


def _serving_logins(app):
    """`app` with GET /logins (the cached lookup) and POST /add/<login> (adds a user, then
    answers the lookup in the same request)."""
    app.config["WTF_CSRF_ENABLED"] = False

    def show() -> str:
        return ",".join(logins())

    def add(login: str) -> str:
        db.session.add(User(login=login))
        db.session.flush()
        answer = ",".join(logins())
        db.session.commit()
        return answer

    app.add_url_rule("/logins", "logins", show)
    app.add_url_rule("/add/<login>", "add", add, methods=["POST"])
    return app


def _second_worker(make_app, app):
    """Another app (a second worker) on the same database."""
    return make_app([], database_uri=app.config["SQLALCHEMY_DATABASE_URI"],
                    SQLALCHEMY_ENGINE_OPTIONS=app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))


def _add_user(app, login: str) -> None:
    with app.app_context():
        db.session.add(User(login=login))
        db.session.commit()


def _generation(app) -> int:
    with app.app_context():
        return db.session.scalar(select(CacheGeneration.generation))


def test_a_cached_lookup_is_read_once_per_worker_until_another_worker_changes_its_rows(
        make_app):
    first = _serving_logins(make_app([]))
    _add_user(first, "anna")
    client = first.test_client()
    assert client.get("/logins").get_data(as_text=True) == "anna"
    calls.clear()
    with first.app_context(), statements() as seen:
        assert client.get("/logins").get_data(as_text=True) == "anna"
    assert calls == []  # served from the worker's memory
    assert not any("core_user.login" in s for s in seen)

    _add_user(_second_worker(make_app, first), "boris")
    assert client.get("/logins").get_data(as_text=True) == "anna,boris"
    assert calls == [1]


def test_a_table_statement_through_the_session_ends_the_cached_rows(make_app):
    first = _serving_logins(make_app([]))
    _add_user(first, "anna")
    client = first.test_client()
    assert client.get("/logins").get_data(as_text=True) == "anna"
    with _second_worker(make_app, first).app_context():
        db.session.execute(User.__table__.update().values(login="anete"))
        db.session.commit()
    assert client.get("/logins").get_data(as_text=True) == "anete"


def test_a_rolled_back_change_leaves_the_generation_alone(make_app):
    app = make_app([])
    before = _generation(app)
    with app.app_context():
        db.session.add(User(login="ghost"))
        db.session.flush()
        assert db.session.scalar(select(CacheGeneration.generation)) == before + 1
        db.session.rollback()
    assert _generation(app) == before


def test_an_unrelated_change_keeps_the_cache(make_app):
    from core.models import LoginFailure

    app = make_app([])
    before = _generation(app)
    with app.app_context():
        db.session.add(LoginFailure(login="someone"))
        db.session.commit()
    assert _generation(app) == before


def test_a_request_that_changes_a_watched_model_reads_fresh_rows_for_the_rest_of_it(
        make_app):
    app = _serving_logins(make_app([]))
    client = app.test_client()
    assert client.get("/logins").get_data(as_text=True) == ""
    assert client.post("/add/vera").get_data(as_text=True) == "vera"
    assert client.get("/logins").get_data(as_text=True) == "vera"


def test_writers_without_the_orm_end_the_cache_by_calling_invalidate(make_app):
    app = _serving_logins(make_app([]))
    client = app.test_client()
    assert client.get("/logins").get_data(as_text=True) == ""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(User.__table__.insert().values(login="raw", active=True, is_admin=False))
    assert client.get("/logins").get_data(as_text=True) == ""  # the cache cannot know
    with app.app_context():
        invalidate_shared_cache()
        db.session.commit()
    assert client.get("/logins").get_data(as_text=True) == "raw"


def test_nothing_is_cached_outside_a_request(make_app):
    app = make_app([])
    with app.app_context():
        assert logins() == ()
        with db.engine.begin() as conn:
            conn.execute(User.__table__.insert().values(login="cli", active=True,
                                                        is_admin=False))
        assert logins() == ("cli",)


def test_each_app_keeps_its_own_entries(make_app):
    """Two apps on two databases in one process (tests, a reloaded worker) share nothing."""
    one, two = _serving_logins(make_app([])), _serving_logins(make_app([]))
    _add_user(one, "only-in-one")
    assert one.test_client().get("/logins").get_data(as_text=True) == "only-in-one"
    assert two.test_client().get("/logins").get_data(as_text=True) == ""
