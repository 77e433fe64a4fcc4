"""Kernel helpers for fast pages give the same answers as the slow paths they replace."""
from __future__ import annotations

from flask import render_template_string, url_for
from flask_babel import force_locale, gettext

from core.i18n import current_translations
from core.testing import csrf_token
from core.web import url_pattern


def test_url_pattern_builds_the_same_links_as_url_for(app):
    with app.test_request_context("/"):
        link = url_pattern("security.user_edit", "user_id")
        for user_id in (1, 7, 987654321, 2**40):
            assert link(user_id) == url_for("security.user_edit", user_id=user_id)


def test_url_pattern_keeps_the_script_root(app):
    with app.test_request_context("/", base_url="http://example.test/crm/"):
        link = url_pattern("security.user_edit", "user_id")(5)
        assert link == url_for("security.user_edit", user_id=5)
        assert link.startswith("/crm/admin/access/")


def test_templates_url_for_remembers_links_per_values_and_script_root(app):
    """The templates' `url_for` keeps what it built (once the app serves); each answer is
    still Flask's own for these values, this script root and host."""
    app.test_client().get("/healthz")  # the app serves: its URL map is fixed
    remembered = app.jinja_env.globals["url_for"]
    calls = [("security.user_edit", {"user_id": 5}), ("security.user_edit", {"user_id": 6}),
             ("security.user_edit", {"user_id": "7"}), ("static", {"filename": "birga.css"}),
             ("web.index", {}), ("web.index", {"page": 2}), ("web.index", {"_anchor": "x"}),
             ("web.index", {"_external": True}), ("web.index", {"tags": ["a", "b"]})]
    for base in ("http://example.test/", "http://example.test/crm/", "http://other.test/crm/",
                 "https://example.test/"):
        for _ in range(2):  # the second time from what was kept
            with app.test_request_context("/", base_url=base):
                for endpoint, values in calls:
                    assert remembered(endpoint, **values) == url_for(endpoint, **values)
    with app.test_request_context("/", base_url="http://example.test/crm/"):
        assert render_template_string("{{ url_for('web.index') }}") == "/crm/"


def test_a_sessions_csrf_token_is_signed_once_and_still_checks(app, make_user, login,
                                                                monkeypatch):
    """Without a time limit a session's signed token is kept by the worker: later pages hand
    out the same one (signing costs every page ~20 µs), it still passes the form check, and
    another session gets its own."""
    from itertools import count

    from itsdangerous.timed import TimestampSigner

    clock = count(1_800_000_000)  # every signature a second later than the one before
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: next(clock))
    user = make_user("sam")
    first, second = app.test_client(), app.test_client()
    login(first, user)
    login(second, user)
    token = csrf_token(first, "/")
    assert csrf_token(first, "/") == token
    assert csrf_token(second, "/") != token
    assert first.post("/logout", data={"csrf_token": token}).status_code == 302
    assert first.post("/logout", data={"csrf_token": token + "x"}).status_code == 400


def test_with_a_csrf_time_limit_every_page_signs_anew(make_app, make_user, login,
                                                      monkeypatch):
    from itertools import count

    from itsdangerous.timed import TimestampSigner

    clock = count(1_800_000_000)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: next(clock))
    app = make_app(WTF_CSRF_TIME_LIMIT=3600)
    with app.app_context():
        client = app.test_client()
        login(client, make_user("sam"))
        assert csrf_token(client, "/") != csrf_token(client, "/")


def test_template_gettext_follows_force_locale_within_one_request(app):
    template = "{{ _('Sign out') }}"
    with app.test_request_context("/"):
        with force_locale("ru"):
            russian = render_template_string(template)
            assert current_translations() is current_translations()  # cached per locale
        with force_locale("lv"):
            latvian = render_template_string(template)
            assert gettext("Sign out") == latvian
        english = render_template_string(template)
    assert (russian, latvian, english) == ("Выйти", "Atteikties", "Sign out")


def test_template_gettext_is_always_a_format_string_with_escaped_variables(app):
    with app.test_request_context("/"):
        rendered = render_template_string(
            "{{ _('Sign out') }}|{{ _('100%% sure') }}|{{ _('Hi %(name)s', name='<b>') }}|"
            "{{ ngettext('%(num)d item', '%(num)d items', 3) }}")
        plain = app.jinja_env.from_string("{% autoescape false %}{{ _('Hi %(name)s', "
                                          "name='<b>') }}{% endautoescape %}").render()
    assert rendered == "Sign out|100% sure|Hi &lt;b&gt;|3 items"
    assert plain == "Hi <b>"
