"""Sign-in, throttling, cookies, CSRF and the interface language."""
from __future__ import annotations

from core.extensions import db
from core.models import User
from core.testing import TEST_PASSWORD, csrf_token


def fresh(user):
    """The user as the database has it now (requests run in their own sessions)."""
    db.session.expire_all()
    return db.session.get(User, user.id)


def attempt(client, login, password):
    return client.post("/login", data={"login": login, "password": password,
                                       "csrf_token": csrf_token(client)})


def test_pages_need_sign_in_and_redirect_back_after_it(client, make_user):
    make_user("anna")
    response = client.get("/admin/addons")
    assert response.status_code == 302 and "/login?next=" in response.location
    token = csrf_token(client)
    response = client.post("/login", data={"login": "ANNA", "password": TEST_PASSWORD,
                                           "csrf_token": token, "next": "/admin/addons"})
    assert response.status_code == 302 and response.location == "/admin/addons"


def test_next_never_leaves_the_site(client, make_user):
    make_user("anna")
    response = client.post("/login", data={"login": "anna", "password": TEST_PASSWORD,
                                           "csrf_token": csrf_token(client),
                                           "next": "//evil.example/phish"})
    assert response.location == "/"


def test_wrong_password_is_refused_with_a_message(client, make_user):
    make_user("anna")
    response = attempt(client, "anna", "nope")
    assert response.status_code == 200
    assert "Wrong login or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_repeated_failures_lock_the_login_even_with_the_right_password(app, client, make_user):
    make_user("anna")
    for _ in range(app.config["BIRGA_LOGIN_MAX_FAILURES"]):
        attempt(client, "anna", "wrong")
    response = attempt(client, "anna", TEST_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_rejected(client, make_user):
    make_user("anna")
    response = client.post("/login", data={"login": "anna", "password": TEST_PASSWORD})
    assert response.status_code == 400  # CSRFProtect refuses it before the view runs
    assert "Form expired" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_passwords_are_stored_as_scrypt_hashes(app, make_user):
    user = make_user("anna")
    assert user.password_hash.startswith("scrypt:")
    assert TEST_PASSWORD not in user.password_hash
    assert user.check_password(TEST_PASSWORD) and not user.check_password("x")


def test_deactivated_user_is_signed_out_and_cannot_sign_in(client, make_user, login):
    user = make_user("anna")
    login(client, user)
    assert client.get("/").status_code == 200
    user.active = False
    db.session.commit()
    assert client.get("/").status_code == 302
    assert attempt(client, "anna", TEST_PASSWORD).status_code == 200
    assert client.get("/").status_code == 302


def test_logout_is_a_post_with_csrf(client, make_user, login):
    login(client, make_user("anna"))
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    assert client.get("/").status_code == 302


def test_session_cookie_is_httponly_samesite_and_secure_by_default(make_app, make_user):
    app = make_app([], SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    with app.app_context():
        make_user("anna")
    response = client.get("/login", base_url="https://localhost")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    from core import _default_config  # the defaults without test overrides are secure too

    defaults = _default_config(app)
    assert defaults["SESSION_COOKIE_SECURE"] and defaults["REMEMBER_COOKIE_SECURE"]


def test_browser_language_decides_before_sign_in(client):
    html = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(True)
    assert '<html lang="ru">' in html
    html = client.get("/login", headers={"Accept-Language": "de-DE"}).get_data(True)
    assert '<html lang="en">' in html


def test_language_chosen_on_the_login_page_is_remembered_for_the_user(client, make_user):
    user = make_user("anna")
    client.post("/locale", data={"locale": "kk", "next": "/login",
                                 "csrf_token": csrf_token(client)})
    assert '<html lang="kk">' in client.get("/login").get_data(True)
    attempt(client, "anna", TEST_PASSWORD)
    assert fresh(user).locale == "kk"
    client.post("/locale", data={"locale": "lv", "csrf_token": csrf_token(client, "/")})
    assert fresh(user).locale == "lv"
    other = client.application.test_client()  # a new browser: the user's setting wins
    attempt(other, "anna", TEST_PASSWORD)
    assert '<html lang="lv">' in other.get("/", headers={"Accept-Language": "ro"}).get_data(True)


def test_unknown_language_is_ignored(client):
    client.post("/locale", data={"locale": "xx", "csrf_token": csrf_token(client)})
    assert '<html lang="en">' in client.get("/login").get_data(True)


def test_security_headers(client):
    response = client.get("/login")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]


def test_missing_page_is_a_translated_404(client):
    response = client.get("/no/such/page", headers={"Accept-Language": "lv"})
    assert response.status_code == 404
    assert "404" in response.get_data(True)
