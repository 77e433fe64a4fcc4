"""The public web form: leads in the visitor's language, thanks in it, and spam refused
(honeypot, rate limits shared by every worker, foreign origins) on SQLite and PostgreSQL."""
from __future__ import annotations

import re
import uuid
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, select

from addons.pipeline.lead_models import RateCounter
from addons.pipeline.models import Lead, Pipeline
from addons.pipeline.state import seed_defaults
from addons.pipeline.webform import HONEYPOT
from core.api import assign_roles, db

SITE = "https://www.firm.example"
THANKS = "Thank you! We received your request and will contact you soon."
#: Test catalogues in the instance folder (instance translations override the shipped ones),
#: so the language checks do not depend on the state of the project's catalogues.
CATALOGUES = {
    "ru": {THANKS: "Спасибо! Мы получили вашу заявку и скоро свяжемся с вами.",
           "Please correct the form.": "Пожалуйста, исправьте форму.",
           "Leave an e-mail address or a phone number so we can answer.":
               "Оставьте e-mail или телефон, чтобы мы могли ответить.",
           "Your name": "Ваше имя"},
    "lv": {THANKS: "Paldies! Mēs saņēmām jūsu pieprasījumu un drīz sazināsimies."},
}


def write_catalogues(app) -> None:
    for lang, messages in CATALOGUES.items():
        folder = Path(app.instance_path) / "translations" / lang / "LC_MESSAGES"
        folder.mkdir(parents=True, exist_ok=True)
        lines = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', ""]
        for msgid, msgstr in messages.items():
            lines += [f'msgid "{msgid}"', f'msgstr "{msgstr}"', ""]
        (folder / "messages.po").write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture
def form_app(make_app):
    def factory(**config):
        config.setdefault("BIRGA_FAKE_NOW", "2026-11-23T10:00:00+00:00")
        app = make_app(["pipeline"], **config)
        write_catalogues(app)
        with app.app_context():
            pipeline = seed_defaults()
            pipeline.form_key = "k-" + uuid.uuid4().hex[:10]
            pipeline.form_origins = [SITE + "/"]
            db.session.commit()
        return app

    return factory


@pytest.fixture
def app(form_app):
    application = form_app()
    with application.app_context():
        yield application


def form_url() -> str:
    key = db.session.scalar(select(Pipeline.form_key))
    return f"/pipeline/form/{key}"


def post(client, data=None, *, origin: str | None = SITE, ip: str = "192.0.2.1", **kwargs):
    headers = kwargs.pop("headers", {})
    if origin is not None:
        headers.setdefault("Origin", origin)
    return client.post(form_url(), data=data, headers=headers,
                       environ_base={"REMOTE_ADDR": ip}, **kwargs)


def leads() -> list[Lead]:
    db.session.expire_all()
    return db.session.scalars(select(Lead).order_by(Lead.id)).all()


# -- language -----------------------------------------------------------------------------
def test_a_post_creates_a_lead_in_the_forms_language_and_thanks_in_it(app, client):
    response = post(client, {"name": "Иван Петров", "email": "ivan@example.ru",
                             "phone": "+7 701 123 45 67", "company": "ТОО Ромашка",
                             "message": "Нужна консультация", "lang": "ru"},
                    headers={"Accept-Language": "lv"})

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert CATALOGUES["ru"][THANKS] in html
    assert '<html lang="ru">' in html
    [lead] = leads()
    assert (lead.channel, lead.status, lead.lang) == ("web", "new", "ru")
    assert (lead.name, lead.email, lead.phone) == ("Иван Петров", "ivan@example.ru",
                                                   "+77011234567")
    assert lead.company_name == "ТОО Ромашка"
    assert lead.payload["origin"] == SITE
    assert response.headers["Access-Control-Allow-Origin"] == SITE


def test_a_fetch_post_without_lang_uses_accept_language_and_gets_json(app, client):
    response = post(client, json={"email": "janis@example.lv", "message": "Sveiki"},
                    headers={"Accept-Language": "lv-LV,lv;q=0.9,en;q=0.5",
                             "Accept": "application/json"})

    assert response.status_code == 201
    assert response.json == {"ok": True, "lang": "lv", "message": CATALOGUES["lv"][THANKS]}
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert "Origin" in response.headers["Vary"]
    [lead] = leads()
    assert lead.lang == "lv"


def test_a_form_without_email_or_phone_is_refused_in_the_visitors_language(app, client):
    response = post(client, {"name": "Иван", "lang": "ru"},
                    headers={"Accept": "application/json"})

    assert response.status_code == 400
    assert response.json["message"] == "Пожалуйста, исправьте форму."
    assert response.json["errors"] == {
        "email": "Оставьте e-mail или телефон, чтобы мы могли ответить."}
    assert leads() == []


# -- origins ------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "http://www.firm.example"},  # another scheme is another origin
    {"Origin": "null"},
    {"Referer": "https://evil.example/contact"},
    {},  # neither header: cannot tell where it came from
])
def test_a_post_from_a_site_not_allowed_is_refused_without_cors_headers(app, client, headers):
    response = post(client, {"email": "a@example.com"}, origin=None, headers=headers)

    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert leads() == []


def test_the_referer_stands_in_for_a_missing_origin_header(app, client):
    response = post(client, {"email": "a@example.com"}, origin=None,
                    headers={"Referer": "https://WWW.firm.example:443/contact?x=1"})

    assert response.status_code == 200
    assert len(leads()) == 1


def test_a_preflight_gets_cors_headers_only_for_an_allowed_origin(app, client):
    allowed = client.options(form_url(), headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST"})
    refused = client.options(form_url(), headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == SITE
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_an_unknown_form_key_is_not_found(app, client):
    response = client.post("/pipeline/form/nope", data={"email": "a@example.com"},
                           headers={"Origin": SITE})
    assert response.status_code == 404


# -- spam ---------------------------------------------------------------------------------
def test_a_filled_honeypot_gets_the_usual_thanks_and_no_lead(app, client):
    response = post(client, {"email": "bot@spam.example", HONEYPOT: "http://spam.example",
                             "lang": "ru"})

    assert response.status_code == 200
    assert CATALOGUES["ru"][THANKS] in response.get_data(as_text=True)
    assert leads() == []


def test_the_rate_limit_per_ip_refuses_posts_over_the_limit(form_app):
    app = form_app(BIRGA_PIPELINE_FORM_LIMIT_IP="2/3600")
    client = app.test_client()
    with app.app_context():
        codes = [post(client, {"email": f"v{i}@example.com"}).status_code for i in range(3)]
        other_ip = post(client, {"email": "x@example.com"}, ip="198.51.100.7")

        assert codes == [200, 200, 429]
        assert other_ip.status_code == 200
        assert len(leads()) == 3


def test_the_rate_limit_per_form_holds_across_addresses(form_app):
    app = form_app(BIRGA_PIPELINE_FORM_LIMIT_FORM="3/3600")
    client = app.test_client()
    with app.app_context():
        codes = [post(client, {"email": f"v{i}@example.com"}, ip=f"192.0.2.{i + 10}",
                      headers={"Accept": "application/json"}).status_code for i in range(4)]

        assert codes == [201, 201, 201, 429]
        assert len(leads()) == 3


def test_the_counter_is_shared_by_another_worker_on_the_same_database(form_app, make_app):
    first = form_app(BIRGA_PIPELINE_FORM_LIMIT_IP="2/3600")
    second = make_app(["pipeline"], database_uri=first.config["SQLALCHEMY_DATABASE_URI"],
                      SQLALCHEMY_ENGINE_OPTIONS=first.config["SQLALCHEMY_ENGINE_OPTIONS"],
                      BIRGA_PIPELINE_FORM_LIMIT_IP="2/3600",
                      BIRGA_FAKE_NOW=first.config["BIRGA_FAKE_NOW"])
    with first.app_context():
        url = form_url()
    codes = []
    for worker in (first, second, second):
        codes.append(worker.test_client().post(
            url, data={"email": "a@example.com"}, headers={"Origin": SITE},
            environ_base={"REMOTE_ADDR": "192.0.2.99"}).status_code)

    assert codes == [200, 200, 429]
    with first.app_context():
        assert len(leads()) == 2


def test_the_counters_live_in_redis_when_it_is_configured(form_app):
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    app = form_app(BIRGA_PIPELINE_FORM_LIMIT_IP="1/3600", BIRGA_REDIS_URL=url,
                   SECRET_KEY=uuid.uuid4().hex)
    client = app.test_client()
    with app.app_context():
        codes = [post(client, {"email": f"v{i}@example.com"}).status_code for i in range(2)]

        assert codes == [200, 429]
        assert db.session.scalar(select(func.count()).select_from(RateCounter)) == 0


# -- the snippet --------------------------------------------------------------------------
def test_a_manager_gets_a_snippet_that_posts_a_lead(app, client, make_user, login):
    manager = make_user("mara")
    assign_roles(manager, "sales_manager")
    login(client, manager)
    pipeline_id = db.session.scalar(select(Pipeline.id))

    page = client.get(f"/pipeline/pipelines/{pipeline_id}/webform?lang=ru")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    snippet = unescape(re.search(r'<textarea id="snippet"[^>]*>(.*?)</textarea>', html,
                                 re.S).group(1))
    assert "http://localhost" + form_url() in snippet
    assert f'name="{HONEYPOT}"' in snippet
    assert "Ваше имя" in snippet
    assert 'name="lang" value="ru"' in snippet
    names = set(re.findall(r'name="(\w+)"', snippet))
    assert {"name", "email", "phone", "company", "message", "lang", HONEYPOT} <= names
    fields = {n: "" for n in names} | {"email": "guest@example.com", "lang": "ru"}
    assert post(client, fields).status_code == 200
    [lead] = leads()
    assert lead.lang == "ru"


def test_saving_the_settings_keeps_only_web_origins(app, client, make_user, login):
    manager = make_user("mara")
    assign_roles(manager, "sales_manager")
    login(client, manager)
    pipeline_id = db.session.scalar(select(Pipeline.id))
    url = f"/pipeline/pipelines/{pipeline_id}/webform"
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get(url).get_data(as_text=True)).group(1)

    client.post(url, data={"csrf_token": token, "origins": "https://A.example/\nftp://x"})
    db.session.expire_all()
    assert db.session.get(Pipeline, pipeline_id).form_origins == [SITE + "/"]

    client.post(url, data={"csrf_token": token,
                           "origins": "https://A.example/\nhttps://b.example:8443"})
    db.session.expire_all()
    assert db.session.get(Pipeline, pipeline_id).form_origins == [
        "https://a.example", "https://b.example:8443"]


def test_a_salesperson_cannot_open_the_form_settings(app, client, make_user, login):
    seller = make_user("sam")
    assign_roles(seller, "salesperson")
    login(client, seller)
    pipeline_id = db.session.scalar(select(Pipeline.id))

    assert client.get(f"/pipeline/pipelines/{pipeline_id}/webform").status_code == 404
