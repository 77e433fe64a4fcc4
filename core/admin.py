"""The Addons page: what is discovered, what is enabled, and switching addons on and off."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from .addons import AddonError, AddonInUse
from .forms import ActionForm
from .i18n import manifest_text
from .manage import disable_addon, enable_addon

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def require_admin():
    if not current_user.has_permission("core.admin"):
        abort(404)


@bp.route("/addons")
def addons():
    state = current_app.extensions["birga"]
    enabled = {a.name for a in state.addons}
    rows = []
    for addon in sorted(state.available.values(), key=lambda a: a.name):
        dependents = sorted(a.name for a in state.available.values() if addon.name in a.depends)
        rows.append({"addon": addon, "enabled": addon.name in enabled,
                     "dependents": dependents, "title": manifest_text(addon, "name"),
                     "summary": manifest_text(addon, "summary")})
    return render_template("core/addons.html", rows=rows, form=ActionForm())


@bp.route("/addons/<name>/enable", methods=["POST"])
def enable(name: str):
    if name not in current_app.extensions["birga"].available:
        abort(404)
    try:
        added = enable_addon(current_app, name)
    except AddonError as exc:
        flash(_("The addon could not be enabled: %(error)s", error=str(exc)), "error")
    else:
        flash(_("Enabled: %(names)s.", names=", ".join(added) or name), "success")
    return redirect(url_for("admin.addons"))


@bp.route("/addons/<name>/disable", methods=["POST"])
def disable(name: str):
    if name not in current_app.extensions["birga"].available:
        abort(404)
    try:
        disable_addon(current_app, name)
    except AddonInUse as exc:
        flash(_("%(name)s cannot be disabled while these enabled addons depend on it: "
                "%(names)s.", name=name, names=", ".join(exc.dependents)), "error")
    else:
        flash(_("Disabled: %(name)s.", name=name), "success")
    return redirect(url_for("admin.addons"))
