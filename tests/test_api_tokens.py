"""Personal API tokens: a program calls the JSON views marked `@token_api` as a user, with
the user's permissions; nothing else opens to a token, and a browser still needs its CSRF
token on those views."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import jsonify, request
from flask_login import current_user
from sqlalchemy import select

from core.api import permission_required, token_api
from core.api_tokens import ApiToken, issue_api_token
from core.extensions import db
from core.models import utcnow
from core.testing import csrf_token


@pytest.fixture
def api_app(make_app):
    """A kernel app with two token views: `/t/whoami` (GET/POST) and `/t/admin` (admins)."""
    app = make_app([])

    @token_api
    def whoami():
        return jsonify(user=current_user.login, posted=request.get_json(silent=True))

    @token_api
    @permission_required("core.admin")
    def admin_only():
        return jsonify(ok=True)

    app.add_url_rule("/t/whoami", "t_whoami", whoami, methods=["GET", "POST"])
    app.add_url_rule("/t/admin", "t_admin", admin_only)
    with app.app_context():
        yield app


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_a_token_calls_token_views_as_its_user_without_csrf_or_cookies(api_app, make_user):
    anna = make_user("anna")
    _row, secret = issue_api_token(anna, "shop")
    db.session.commit()
    program = api_app.test_client()
    response = program.post("/t/whoami", json={"a": 1}, headers=bearer(secret))
    assert response.status_code == 200
    assert response.get_json() == {"user": "anna", "posted": {"a": 1}}
    assert "Set-Cookie" not in response.headers
    assert program.get("/t/whoami", headers=bearer(secret)).get_json()["user"] == "anna"


def test_only_a_hash_of_the_token_is_stored(api_app, make_user):
    anna = make_user("anna")
    row, secret = issue_api_token(anna, "shop")
    db.session.commit()
    assert secret.startswith("birga_") and len(secret) > 40
    stored = db.session.execute(select(ApiToken.__table__)).one()._asdict()
    assert secret not in repr(stored)
    assert row.hint == secret[:10]


def test_a_token_does_not_open_the_web_pages(api_app, make_user):
    anna = make_user("anna")
    _row, secret = issue_api_token(anna, "shop")
    db.session.commit()
    response = api_app.test_client().get("/", headers=bearer(secret))
    assert response.status_code == 302 and "/login" in response.location


@pytest.mark.parametrize("case", ["wrong", "revoked", "expired", "deactivated", "no token"])
def test_a_call_without_a_live_token_is_401_in_json(api_app, make_user, case):
    anna = make_user("anna")
    row, secret = issue_api_token(anna, "shop")
    if case == "wrong":
        secret = secret[:-3] + "xyz"
    elif case == "revoked":
        row.revoked_at = utcnow()
    elif case == "expired":
        row.expires_at = utcnow() - timedelta(minutes=1)
    elif case == "deactivated":
        anna.active = False
    db.session.commit()
    headers = {} if case == "no token" else bearer(secret)
    response = api_app.test_client().post("/t/whoami", json={}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["ok"] is False
    assert body["code"] == ("unauthorized" if case == "no token" else "invalid_token")


def test_permissions_still_apply_and_answer_in_json(api_app, make_user):
    anna = make_user("anna")
    boss = make_user("boss", is_admin=True)
    _row, anna_secret = issue_api_token(anna, "shop")
    _row, boss_secret = issue_api_token(boss, "ops")
    db.session.commit()
    program = api_app.test_client()
    refused = program.get("/t/admin", headers=bearer(anna_secret))
    assert refused.status_code == 404 and refused.get_json()["code"] == "404"
    assert program.get("/t/admin", headers=bearer(boss_secret)).status_code == 200


def test_a_signed_in_browser_still_needs_the_csrf_token(api_app, make_user, login):
    anna = make_user("anna")
    browser = api_app.test_client()
    login(browser, anna)
    refused = browser.post("/t/whoami", json={})
    assert refused.status_code == 400 and refused.get_json()["code"] == "csrf"
    token = csrf_token(browser, "/")
    allowed = browser.post("/t/whoami", json={}, headers={"X-CSRFToken": token})
    assert allowed.status_code == 200 and allowed.get_json()["user"] == "anna"


def test_the_last_use_is_recorded(api_app, make_user):
    anna = make_user("anna")
    row, secret = issue_api_token(anna, "shop")
    db.session.commit()
    assert row.last_used_at is None
    api_app.test_client().get("/t/whoami", headers=bearer(secret))
    db.session.expire_all()
    assert db.session.get(ApiToken, row.id).last_used_at is not None


def test_the_page_shows_a_new_token_once_and_revokes_it(api_app, make_user, login):
    anna = make_user("anna")
    browser = api_app.test_client()
    login(browser, anna)
    page = browser.get("/account/api-tokens/").get_data(as_text=True)
    assert "No tokens yet." in page
    made = browser.post("/account/api-tokens/", data={
        "csrf_token": csrf_token(browser, "/account/api-tokens/"), "name": "Web shop",
        "lifetime": "30"}).get_data(as_text=True)
    secret = re.search(r'id="token-secret"[^>]*value="(birga_[^"]+)"', made).group(1)
    program = api_app.test_client()
    assert program.get("/t/whoami", headers=bearer(secret)).status_code == 200
    again = browser.get("/account/api-tokens/").get_data(as_text=True)
    assert "Web shop" in again and secret not in again and secret[:10] in again
    row = db.session.scalar(select(ApiToken))
    assert row.expires_at is not None
    browser.post(f"/account/api-tokens/{row.id}/revoke",
                 data={"csrf_token": csrf_token(browser, "/account/api-tokens/")})
    assert program.get("/t/whoami", headers=bearer(secret)).status_code == 401
    after = browser.get("/account/api-tokens/").get_data(as_text=True)
    assert "The token “Web shop” no longer works." in after
    assert f'id="token-{row.id}"' not in after


def test_nobody_revokes_someone_elses_token(api_app, make_user, login):
    anna = make_user("anna")
    olga = make_user("olga")
    row, secret = issue_api_token(anna, "shop")
    db.session.commit()
    browser = api_app.test_client()
    login(browser, olga)
    response = browser.post(f"/account/api-tokens/{row.id}/revoke",
                            data={"csrf_token": csrf_token(browser, "/account/api-tokens/")})
    assert response.status_code == 404
    assert api_app.test_client().get("/t/whoami", headers=bearer(secret)).status_code == 200
