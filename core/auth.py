"""Login, logout and the interface language switch."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext, refresh
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select

from .audit import audit
from .extensions import db, login_manager
from .forms import LoginForm
from .i18n import LANGUAGES
from .models import LoginFailure, User, utcnow

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return User.from_session_id(user_id)  # refuses inactive users and ended sessions


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after login is a phishing tool."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("web.index")


def recent_failures(login: str) -> int:
    minutes = current_app.config["BIRGA_LOGIN_LOCK_MINUTES"]
    since = utcnow() - timedelta(minutes=minutes)
    return db.session.scalar(select(func.count(LoginFailure.id)).where(
        LoginFailure.login == login, LoginFailure.at >= since)) or 0


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("web.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        name = form.login.data.strip().lower()
        limit = current_app.config["BIRGA_LOGIN_MAX_FAILURES"]
        if recent_failures(name) >= limit:
            minutes = current_app.config["BIRGA_LOGIN_LOCK_MINUTES"]
            flash(ngettext("Too many failed attempts. Try again in %(num)d minute.",
                           "Too many failed attempts. Try again in %(num)d minutes.", minutes),
                  "error")
            return render_template("core/login.html", form=form), 429
        user = db.session.scalar(select(User).where(func.lower(User.login) == name))
        if user is not None and user.active and user.check_password(form.password.data):
            db.session.execute(LoginFailure.__table__.delete().where(LoginFailure.login == name))
            audit("login", user=user)
            db.session.commit()
            chosen = session.get("locale")
            session.clear()  # a fresh session on login: no fixation
            login_user(user, remember=form.remember.data)
            if not user.locale and chosen in LANGUAGES:
                user.locale = chosen  # the language picked on the login page sticks
                db.session.commit()
            return redirect(_safe_next(form.next.data))
        db.session.add(LoginFailure(login=name, remote_addr=request.remote_addr))
        audit("login_failed", login=name)
        db.session.commit()
        flash(_("Wrong login or password."), "error")
    return render_template("core/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/locale", methods=["POST"])
def set_locale():
    """Remember the chosen language: on the user when signed in, else in the session."""
    code = request.form.get("locale", "")
    if code in LANGUAGES:
        session["locale"] = code
        if current_user.is_authenticated:
            current_user.locale = code
            db.session.commit()
        refresh()
    return redirect(_safe_next(request.form.get("next")))
