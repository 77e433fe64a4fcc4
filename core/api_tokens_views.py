"""The "API tokens" page: each user makes, sees and revokes their own tokens.

The secret is shown once, on the page that answers the POST that made it (never stored,
never put in a URL, a flash message or a log).
"""
from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from .api_tokens import ApiToken, active_tokens, issue_api_token, revoke_api_token
from .audit import audit, audit_subject
from .extensions import db
from .forms import ActionForm
from .models import utcnow

bp = Blueprint("api_tokens", __name__, url_prefix="/account/api-tokens")

#: Lifetimes offered, in days ("0" never ends: for a server that must not stop one morning).
LIFETIMES = ("30", "90", "365", "0")


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)],
                       description=_l("Where the token is used, e.g. “web shop” or “call "
                                      "centre”."))
    lifetime = SelectField(_l("Valid for"), default="90", choices=[
        ("30", _l("30 days")), ("90", _l("90 days")), ("365", _l("1 year")),
        ("0", _l("No end date"))])


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    form = TokenForm()
    secret = None
    if form.validate_on_submit():
        token, secret = issue_api_token(current_user, form.name.data,
                                        days=int(form.lifetime.data) or None)
        audit("create", model="core.api_token", record_id=token.id,
              details={"name": token.name})
        db.session.commit()
        form = TokenForm(formdata=None)
    return render_template("core/account/api_tokens.html", form=form, secret=secret,
                           tokens=active_tokens(current_user), now=utcnow(),
                           revoke_form=ActionForm())


@bp.route("/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    revoke_api_token(token)
    audit("update", model="core.api_token", record_id=token.id,
          details={"revoked": [False, True]})
    db.session.commit()
    flash(_("The token “%(name)s” no longer works.", name=token.name), "success")
    return redirect(url_for(".index"))


def init_app(app: Flask) -> None:
    registry = app.extensions["birga"].registry
    app.register_blueprint(bp)
    audit_subject("core.api_token", ApiToken, _l("API token"), fields={
        "name": _l("Name"), "revoked": _l("Revoked")})
    registry.add_menu("settings.api_tokens", _l("API tokens"), "api_tokens.index",
                      parent="settings", sequence=90)
