"""The public web form: a plain HTML snippet a firm pastes into its site, and its endpoint.

Why it is built this way:

- **No CSRF token, by design**: the form lives on the firm's site, which cannot get one of
  our session tokens. The endpoint is `csrf.exempt` and instead accepts posts only from the
  pipeline's `form_origins` (the browser's `Origin` header, else the `Referer`'s origin), and
  from this installation itself (the preview on the settings page). No login, no cookies read.
- **Spam**: a honeypot field hidden from people (bots fill every input; a filled honeypot gets
  the normal thank-you and no lead, so a bot learns nothing) and fixed-window rate limits per
  IP address and per form. The counters must hold across workers and hosts: Redis when
  `BIRGA_REDIS_URL` is set, else an atomic upsert in `pipeline_rate_counter`.
- **Language**: the snippet carries a hidden `lang` (the language it was generated in); without
  it the visitor's Accept-Language decides. The lead records that language and the thank-you
  (an HTML page, or JSON for `fetch` posts) is written in it.
- **CORS**: the answer to a cross-origin `fetch` carries `Access-Control-Allow-Origin` only for
  an allowed origin; preflights from anywhere else are refused.

Settings: `BIRGA_PIPELINE_FORM_LIMIT_IP` ("5/600": five posts per IP per ten minutes) and
`BIRGA_PIPELINE_FORM_LIMIT_FORM` ("200/3600" per form), `BIRGA_REDIS_URL`.
"""
from __future__ import annotations

import hashlib
import logging
import random
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import delete, select, update

from core.activities import now
from core.api import db
from core.extensions import csrf
from core.i18n import LANGUAGES
from core.security import get_or_404, permission_required

from .lead_models import RateCounter
from .leads import create_lead, setting
from .models import Pipeline
from .views import bp

log = logging.getLogger(__name__)

__all__ = ["HONEYPOT", "allowed_origin", "hit", "normalize_origin", "public_form",
           "visitor_language"]

#: The hidden field people never see and bots fill.
HONEYPOT = "homepage"
#: Fields the form posts that have a column on the lead; others go to the payload.
FIELDS = ("name", "email", "phone", "company", "subject", "message", "lang", "country")
_MAX_EXTRA_FIELDS = 20


# -- origins ---------------------------------------------------------------------------------
def normalize_origin(value: str | None) -> str | None:
    """`scheme://host[:port]` in lower case, default ports dropped; None if not a web origin."""
    if not value or value.strip().lower() == "null":
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port and port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


def request_origin() -> str | None:
    """Where the post came from: `Origin`, else the origin of the `Referer`."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return normalize_origin(origin)
    return normalize_origin(request.headers.get("Referer"))


def allowed_origin(pipeline: Pipeline, origin: str | None) -> bool:
    if origin is None:
        return False
    allowed = {normalize_origin(o) for o in (pipeline.form_origins or [])}
    allowed.add(normalize_origin(request.host_url))
    return origin in allowed


# -- rate limits ---------------------------------------------------------------------------
def _limit(name: str, default: str) -> tuple[int, int]:
    """("5/600") -> (5 hits, 600 seconds)."""
    text = str(setting(name, default))
    try:
        count, _sep, seconds = text.partition("/")
        return max(int(count), 0), max(int(seconds or 60), 1)
    except ValueError:
        count, _sep, seconds = default.partition("/")
        return int(count), int(seconds)


def _redis() -> Any:
    url = setting("REDIS_URL")
    if not url:
        return None
    client = current_app.extensions.get("pipeline.redis")
    if client is None:
        import redis

        client = redis.Redis.from_url(str(url), socket_timeout=2)
        current_app.extensions["pipeline.redis"] = client
    return client


def _namespace() -> str:
    """Keeps installations sharing one Redis apart while every worker of one installation
    (same secret key, same database) counts on the same keys."""
    config = current_app.config
    options = (config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}).get("connect_args", {})
    source = f"{config.get('SECRET_KEY')}|{config.get('SQLALCHEMY_DATABASE_URI')}|{options}"
    return "birga:pipeline:rate:" + hashlib.sha256(source.encode()).hexdigest()[:16]


def _db_hit(key: str, window: int, seconds: int) -> int:
    table = RateCounter.__table__
    expires = now() + timedelta(seconds=2 * seconds)
    dialect = db.session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).values(key=key, bucket=window, hits=1, expires_at=expires)
        stmt = stmt.on_conflict_do_update(index_elements=["key", "bucket"],
                                          set_={"hits": table.c.hits + 1})
        hits = db.session.execute(stmt.returning(table.c.hits)).scalar_one()
    else:  # another engine: update, then insert the first hit
        where = (table.c.key == key) & (table.c.bucket == window)
        if db.session.execute(update(table).where(where).values(hits=table.c.hits + 1)
                              ).rowcount == 0:
            db.session.execute(table.insert().values(key=key, bucket=window, hits=1,
                                                     expires_at=expires))
        hits = db.session.scalar(select(table.c.hits).where(where))
    if random.random() < 0.02:  # now and then, forget windows long gone
        db.session.execute(delete(table).where(table.c.expires_at < now()))
    db.session.commit()  # counted even if the post is refused afterwards
    return int(hits)


def hit(key: str, limit: int, seconds: int) -> bool:
    """Count one hit for `key` in the current window; False when it is over `limit`."""
    window = int(now().timestamp()) // seconds
    client = _redis()
    if client is not None:
        name = f"{_namespace()}:{key}:{window}"
        pipe = client.pipeline()
        pipe.incr(name)
        pipe.expire(name, 2 * seconds)
        hits = int(pipe.execute()[0])
    else:
        hits = _db_hit(key[:200], window, seconds)
    return hits <= limit


# -- the endpoint ----------------------------------------------------------------------------
def visitor_language(value: str | None) -> str:
    """The form's `lang` when we speak it, else the browser's Accept-Language, else English."""
    if value:
        code = value.strip().replace("-", "_")
        for candidate in (code, code.split("_")[0].lower()):
            if candidate in LANGUAGES:
                return candidate
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def _wants_json() -> bool:
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def _cors(response: Response, origin: str | None) -> Response:
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


def _answer(status: int, message: str, *, ok: bool, lang: str, origin: str | None,
            errors: dict[str, str] | None = None) -> Response:
    if _wants_json():
        body: dict[str, Any] = {"ok": ok, "message": message, "lang": lang}
        if errors:
            body["errors"] = errors
        response = jsonify(body)
    else:
        back = request.headers.get("Referer") if origin else None
        response = current_app.make_response(render_template(
            "pipeline/form_result.html", ok=ok, message=message, errors=errors or {},
            back=back, lang=lang))
    response.status_code = status
    return _cors(response, origin)


def _data() -> dict[str, str]:
    source = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(source, dict) and not hasattr(source, "items"):
        return {}
    data: dict[str, str] = {}
    for key, value in list(source.items())[:len(FIELDS) + _MAX_EXTRA_FIELDS + 2]:
        if isinstance(value, str | int | float):
            data[str(key)[:60]] = str(value)[:5000]
    return data


def _errors(data: dict[str, str]) -> dict[str, str]:
    from addons.contacts.services import normalize_email

    errors: dict[str, str] = {}
    email, phone = data.get("email", "").strip(), data.get("phone", "").strip()
    if not email and not phone:
        errors["email"] = _("Leave an e-mail address or a phone number so we can answer.")
    if email:
        try:
            normalize_email(email)
        except ValueError:
            errors["email"] = _("This is not an e-mail address.")
    if phone and sum(ch.isdigit() for ch in phone) < 5:
        errors["phone"] = _("This is not a phone number.")
    return errors


@bp.route("/form/<form_key>", methods=["POST", "OPTIONS"])
@csrf.exempt
def public_form(form_key: str) -> Response:
    """Create a lead from a post of the embedded form; see the module docstring."""
    pipeline = db.session.scalar(select(Pipeline).where(Pipeline.form_key == form_key,
                                                        Pipeline.active.is_(True)))
    if pipeline is None:
        abort(404)
    origin = request_origin()
    data = _data() if request.method == "POST" else {}
    lang = visitor_language(data.get("lang"))
    with force_locale(lang):
        if not allowed_origin(pipeline, origin):
            log.info("web form %s: refused a post from %r", form_key, origin)
            return _answer(403, _("This form may not be sent from this site."), ok=False,
                           lang=lang, origin=None)
        if request.method == "OPTIONS":
            return _cors(current_app.make_response(("", 204)), origin)
        ip_limit, ip_seconds = _limit("PIPELINE_FORM_LIMIT_IP", "5/600")
        form_limit, form_seconds = _limit("PIPELINE_FORM_LIMIT_FORM", "200/3600")
        address = request.remote_addr or "unknown"
        if not hit(f"ip:{address}", ip_limit, ip_seconds) or \
                not hit(f"form:{pipeline.id}", form_limit, form_seconds):
            return _answer(429, _("Too many requests were sent from here. Please try again "
                                  "later."), ok=False, lang=lang, origin=origin)
        thanks = _("Thank you! We received your request and will contact you soon.")
        if data.get(HONEYPOT, "").strip():
            log.info("web form %s: honeypot filled from %s", form_key, address)
            return _answer(200, thanks, ok=True, lang=lang, origin=origin)
        errors = _errors(data)
        if errors:
            return _answer(400, _("Please correct the form."), ok=False, lang=lang,
                           origin=origin, errors=errors)
        extra = {k: v for k, v in data.items() if k not in FIELDS and k != HONEYPOT}
        create_lead(channel="web", pipeline=pipeline, name=data.get("name"),
                    email=data.get("email"), phone=data.get("phone"),
                    company_name=data.get("company"), subject=data.get("subject"),
                    message=data.get("message"), lang=lang,
                    country=(data.get("country") or "").upper()[:2] or None,
                    payload={"fields": extra, "origin": origin, "ip": address,
                             "user_agent": request.user_agent.string[:300]})
        db.session.commit()
        return _answer(201 if _wants_json() else 200, thanks, ok=True, lang=lang,
                       origin=origin)


# -- the settings page with the snippet --------------------------------------------------------
def snippet(pipeline: Pipeline, lang: str) -> str:
    """The HTML a firm pastes into its site, labelled in `lang`."""
    with force_locale(lang):
        return render_template("pipeline/form_snippet.html", pipeline=pipeline, lang=lang,
                               honeypot=HONEYPOT,
                               action=url_for("pipeline.public_form", form_key=pipeline.form_key,
                                              _external=True))


@bp.route("/pipelines/<int:pipeline_id>/webform", methods=["GET", "POST"])
@permission_required("pipeline.manage")
def webform_settings(pipeline_id: int):
    """Allowed origins, the form key, and the snippet to copy in each language."""
    from .state import pipeline_label

    pipeline = get_or_404(Pipeline, pipeline_id)
    if request.method == "POST":
        from core.forms import ActionForm

        if not ActionForm().validate_on_submit():
            abort(400)
        if request.form.get("action") == "new_key" or not pipeline.form_key:
            pipeline.form_key = secrets.token_urlsafe(18)
        origins, bad = [], []
        for line in request.form.get("origins", "").split():
            origin = normalize_origin(line)
            (origins if origin else bad).append(origin or line)
        if bad:
            flash(_("Not a web address: %(values)s", values=", ".join(bad)), "error")
        else:
            pipeline.form_origins = sorted(set(origins))
            db.session.commit()
            flash(_("Web form settings saved."), "success")
            return redirect(url_for("pipeline.webform_settings", pipeline_id=pipeline.id))
    lang = request.args.get("lang") or (current_user.locale or "en")
    lang = lang if lang in LANGUAGES else "en"
    code = snippet(pipeline, lang) if pipeline.form_key else ""
    return render_template("pipeline/form_settings.html", pipeline=pipeline, code=code,
                           lang=lang, languages=LANGUAGES, title=pipeline_label(pipeline))
