"""The kernel's web layer: blueprints, Jinja globals, error pages and security headers."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError, generate_csrf
from markupsafe import Markup

from .extensions import login_manager
from .forms import ActionForm
from .html import option_tags
from .i18n import LANGUAGES
from .models import utcnow
from .registry import Registry

bp = Blueprint("web", __name__)


@bp.route("/")
@login_required
def index():
    return render_template("core/index.html")


@bp.route("/healthz")
def healthz():
    return {"status": "ok"}


@bp.route("/favicon.ico")
def favicon():
    """Browsers and tools ask for /favicon.ico whatever the page links: answer with the icon
    `base.html` links rather than a 404 in every first page's console."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)


def hook(name: str, **ctx: Any) -> Markup:
    """`{{ hook("contacts.card.sidebar", partner=p) }}`: every contribution, in sequence."""
    return current_app.extensions["birga"].registry.render_hook(name, **ctx)


#: Stands in for a row's id while the URL is built once; an int converter accepts it as is.
_ID_MARKER = 987654321


def url_pattern(endpoint: str, key: str, **values: Any) -> Callable[[Any], str]:
    """`url_for` once, then a string join per row: `card = url_pattern("x.card", "id")`,
    `card(7)`. Building a URL costs Werkzeug ~15 µs; a list links every row, often twice.
    For routes whose `key` part is an int (or any value the converter writes unchanged)."""
    built = url_for(endpoint, **{key: _ID_MARKER}, **values)
    head, found, tail = built.partition(str(_ID_MARKER))
    if not found:  # the converter changed the value: build each URL the slow way
        return lambda value: url_for(endpoint, **{key: value}, **values)
    return lambda value: f"{head}{value}{tail}"


#: URLs a worker's templates keep, at most (a bound, not a policy: pages link few).
URL_MEMO_SIZE = 4096


def _remembered_url_for(app: Flask) -> Callable[..., str]:
    """Templates' `url_for`, remembering each URL it built: building one costs Werkzeug
    ~8 µs and a page's layout and actions build a dozen, the same on every request. Kept
    per endpoint, values (str or int, by type), script root, host and scheme, once the app
    serves (its URL map is then fixed); anything else (`_external`, `_anchor`, a relative
    endpoint, other values, an app with URL defaults) is built each time."""
    build = app.url_for
    built: dict[tuple[Any, ...], str] = {}

    def url_for(endpoint: str, /, **values: Any) -> str:
        if (not app._got_first_request or endpoint[:1] == "." or app.url_default_functions
                or not has_request_context()):
            return build(endpoint, **values)
        key: list[Any] = [endpoint]
        for name, value in values.items():
            kind = type(value)
            if name[:1] == "_" or (kind is not str and kind is not int):
                return build(endpoint, **values)
            key += (name, kind, value)
        environ = request.environ
        key += (environ.get("SCRIPT_NAME"), environ.get("HTTP_HOST"),
                environ.get("wsgi.url_scheme"))
        ident = tuple(key)
        url = built.get(ident)
        if url is None:
            url = build(endpoint, **values)
            if len(built) >= URL_MEMO_SIZE:
                built.clear()
            built[ident] = url
        return url

    return url_for


def _globals() -> dict[str, Any]:
    registry = current_app.extensions["birga"].registry
    locale = str(get_locale() or "en")
    return {
        "hook": hook,
        "main_menu": (lambda: registry.menu_for(current_user)),
        "main_nav": (lambda: registry.menu_html(current_user, locale, request.script_root)),
        "languages": LANGUAGES,
        "current_locale": locale,
        "action_form": ActionForm,
        "now_utc": utcnow,
        "url_pattern": url_pattern,
        "csrf_token": current_app.extensions["birga.csrf_token"],
    }


#: Signed CSRF tokens a worker keeps per app, at most (a bound, not a policy).
CSRF_MEMO_SIZE = 4096


def _csrf_token_of_request(app: Flask, field_name: str) -> Callable[[], str]:
    """Flask-WTF's `csrf_token()` for templates, signed once per request: a page with five
    forms called `generate_csrf` five times, and each call read its settings through the
    app proxy before finding the token it had kept in `g` (under the field's name).

    While tokens do not expire (`WTF_CSRF_TIME_LIMIT` None, Birga's default), a session's
    token is signed once per worker, not once per page (~20 µs): the form check then reads
    no time from the signature, only that it is the app's and names the session's token, so
    a signature made earlier checks exactly as a fresh one. With a time limit, every page
    signs anew, as Flask-WTF does."""
    signed: dict[str, str] = {}

    def csrf_token() -> str:
        request_g = g._get_current_object()
        token = getattr(request_g, field_name, None)
        if token is not None:
            return token
        lasting = app.config.get("WTF_CSRF_TIME_LIMIT") is None
        if lasting:
            token = signed.get(session.get(field_name))  # type: ignore[arg-type]
            if token is not None:
                setattr(request_g, field_name, token)
                return token
        token = generate_csrf()
        raw = session.get(field_name)
        if lasting and isinstance(raw, str):
            if len(signed) >= CSRF_MEMO_SIZE:
                signed.clear()
            signed[raw] = token
        return token

    return csrf_token


def _error(code: int, title: Any, message: Any):
    return render_template("core/error.html", code=code, title=title, message=message), code


def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'")
    return response


def init_app(app: Flask, registry: Registry) -> None:
    from . import (
        activities_views,
        admin,
        api_tokens,
        api_tokens_views,
        auth,
        company_views,
        security,
    )

    app.register_blueprint(bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.context_processor(_globals)
    app.jinja_env.globals["option_tags"] = option_tags
    app.jinja_env.globals["url_for"] = _remembered_url_for(app)
    # In `_globals` (a context processor run after Flask-WTF's, whose `csrf_token` it
    # replaces in every template's context) and as a global for macros.
    app.extensions["birga.csrf_token"] = app.jinja_env.globals["csrf_token"] = \
        _csrf_token_of_request(app, app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    app.after_request(_security_headers)

    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in to open this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    registry.add_permission("core.admin", _l("Administer the installation"))
    registry.add_permission("records.annotate",
                            _l("Add notes and files to any record one may see"))
    registry.add_menu("home", _l("Dashboard"), "web.index", sequence=0)
    registry.add_menu("settings", _l("Settings"), None, sequence=1000)
    registry.add_menu("settings.addons", _l("Addons"), "admin.addons", parent="settings",
                      sequence=10, permission="core.admin")

    security.init_app(app)  # users, teams, roles pages under the settings menu
    activities_views.init_app(app)  # "My activities", calendar, the record.activities hook
    company_views.init_app(app)  # Settings → Company details (the seller on documents)
    api_tokens.init_app(app)  # `Authorization: Bearer birga_…` for views marked @token_api
    api_tokens_views.init_app(app)  # Settings → API tokens (each user's own)

    app.register_error_handler(404, lambda e: _error(
        404, _l("Page not found"), _l("The page does not exist or you may not open it.")))
    app.register_error_handler(405, lambda e: _error(
        405, _l("Not allowed"), _l("This address does not accept that kind of request.")))
    app.register_error_handler(413, lambda e: _error(
        413, _l("Too large"), _l("The upload is larger than this installation accepts.")))
    app.register_error_handler(CSRFError, lambda e: _error(
        400, _l("Form expired"),
        _l("The form was open too long or came from another site. Reload the page and try "
           "again.")))
    app.register_error_handler(500, lambda e: _error(
        500, _l("Something went wrong"),
        _l("The error was logged. Try again, or tell your administrator.")))

