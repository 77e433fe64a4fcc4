"""Personal API tokens: how a script or another system (a web shop, a call centre, glue code)
calls Birga's JSON endpoints as one of its users.

- The client sends `Authorization: Bearer birga_<secret>`. Only a SHA-256 hash of the token
  is stored, as for the calendar feed: the secret has 256 random bits, so a slow password
  hash would buy nothing, and a leaked database leaks no working token.
- A token acts as its user, with the user's permissions and record rules, and ends with the
  user (deactivation), its expiry date or its revocation.
- It opens only views marked `@token_api`, never the web pages: a leaked token cannot change
  the user's password, enable addons or read pages that were not made for machines.
- A token-authenticated request carries no cookie a browser could be tricked into sending,
  so the CSRF check does not apply to it. The same views still check CSRF for a signed-in
  browser (the board calls them too).
- Errors of these views are JSON (`{"ok": false, "error": ...}`) in the user's language, not
  HTML pages or a redirect to the login form.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from flask import Flask, current_app, g, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import DateTime, ForeignKey, Integer, String, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.exceptions import HTTPException

from .activities import as_utc
from .extensions import csrf, db, login_manager
from .models import User, utcnow

__all__ = ["TOKEN_PREFIX", "ApiToken", "active_tokens", "authenticate", "current_api_token",
           "issue_api_token", "revoke_api_token", "token_api"]

log = logging.getLogger(__name__)

#: Every token starts with it: secret scanners (and people) recognise a leaked one, and the
#: request loader ignores other bearer tokens (the PBX endpoint has its own).
TOKEN_PREFIX = "birga_"  # noqa: S105 - a public marker, not a secret
#: How stale `last_used_at` may be before a request writes it again (one write per token and
#: interval, not one per call).
TOUCH_EVERY = timedelta(minutes=5)
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


class ApiToken(db.Model):
    """One personal token: its hash, a name its owner recognises, and its life."""

    __tablename__ = "core_api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, shown in the list so its owner can tell which one
    #: a script holds (too few to help a guess).
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None
                                            or as_utc(self.expires_at) > now)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_api_token(user: User, name: str, *, days: int | None = 90) -> tuple[ApiToken, str]:
    """A new token for `user` (the caller commits). The secret is returned once, never
    stored: show it to the user now."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(user_id=user.id, name=name.strip()[:100], token_hash=_hash(secret),
                   hint=secret[:len(TOKEN_PREFIX) + 4], created_at=now,
                   expires_at=now + timedelta(days=days) if days else None)
    db.session.add(row)
    db.session.flush()
    return row, secret


def revoke_api_token(token: ApiToken) -> None:
    """Stop `token` working at once (the caller commits); the row stays for the record."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()


def active_tokens(user: User) -> list[ApiToken]:
    """`user`'s tokens that were not revoked, newest first (expired ones included, marked)."""
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def authenticate(secret: str) -> tuple[User, ApiToken] | None:
    """The active user a live token names, and the token; None for anything else."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(secret)))
    now = utcnow()
    if token is None or not token.is_live(now):
        return None
    from .security import load_user_with_access

    user = load_user_with_access(token.user_id)
    if user is None or not user.active:
        return None
    if token.last_used_at is None or as_utc(token.last_used_at) < now - TOUCH_EVERY:
        _touch(token.id, now)
    return user, token


def _touch(token_id: int, now: datetime) -> None:
    """Record the use on a connection of its own: a GET commits nothing, and the view's
    transaction must not carry (or lose) this write."""
    try:
        with db.engine.begin() as conn:
            conn.execute(update(ApiToken).where(ApiToken.id == token_id)
                         .values(last_used_at=now))
    except SQLAlchemyError:  # a busy SQLite file: the date is a convenience, the call is not
        log.warning("could not record the use of API token %s", token_id, exc_info=True)


def _bearer() -> str | None:
    scheme, _sep, secret = request.headers.get("Authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def _is_token_view() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "birga_token_api", False))


def _load_user_from_request(_request: Any) -> User | None:
    """Flask-Login's request loader: a bearer token, for `@token_api` views only."""
    secret = _bearer()
    if secret is None or not _is_token_view():
        return None
    found = authenticate(secret)
    if found is None:
        return None
    user, token = found
    g.birga_api_token = token
    return user


def current_api_token() -> ApiToken | None:
    """The token this request's user came from; None for a browser session."""
    return g.get("birga_api_token")


def _error(status: int, message: str, code: str) -> Any:
    response = jsonify({"ok": False, "error": message, "code": code})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="birga"'
    return response


_MESSAGES: dict[int, Callable[[], str]] = {
    400: lambda: _("The request is not valid."),
    403: lambda: _("You may not do this."),
    404: lambda: _("Not found, or you may not see it."),
    405: lambda: _("This address does not accept that kind of request."),
    413: lambda: _("The request is larger than this installation accepts."),
}


def token_api(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a JSON view as open to API tokens (apply it above `@route`'s other decorators,
    i.e. right under `@bp.route`).

    Signed-in browsers still need a CSRF token on unsafe methods; an unauthenticated call
    gets 401 and errors (404 for a record one may not see...) come back as JSON.
    """
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            if _bearer() is not None:
                return _error(401, _("The API token is unknown, revoked or expired."),
                              "invalid_token")
            return _error(401, _("Sign in or send an API token."), "unauthorized")
        try:
            if (current_api_token() is None
                    and request.method in current_app.config.get("WTF_CSRF_METHODS", UNSAFE)
                    and current_app.config.get("WTF_CSRF_ENABLED", True)):
                csrf.protect()
            return view(*args, **kwargs)
        except HTTPException as error:
            if error.code is None or error.code < 400:
                raise
            message = _MESSAGES.get(error.code)
            return _error(error.code, message() if message else str(error.name),
                          "csrf" if isinstance(error, CSRFError) else str(error.code))

    wrapped.birga_token_api = True  # type: ignore[attr-defined]
    return csrf.exempt(wrapped)


def init_app(app: Flask) -> None:
    login_manager.request_loader(_load_user_from_request)
