"""Admin pages for users, teams and roles, and the public "choose a new password" page.

Every admin page needs `core.admin` and answers 404 to anyone else (signed-in users without it
learn nothing about what exists). Changes that affect who sees what end the affected user's
sessions where it matters (deactivation, password reset).
"""
from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale, lazy_pgettext, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from .audit import audit, audit_changes, audit_subject
from .extensions import db
from .forms import ActionForm
from .mail import MailError, queue_mail
from .models import User
from .security import (
    SCOPE_TITLES,
    SCOPES,
    RecordRule,
    Role,
    Team,
    TeamMember,
    UserRole,
    end_sessions,
    load_reset_token,
    make_reset_token,
    record_rules,
    reset_max_age,
    set_user_roles,
    set_user_teams,
)

bp = Blueprint("security", __name__, url_prefix="/admin/access")
account_bp = Blueprint("account", __name__, url_prefix="/account")

_PATTERN = re.compile(r"^(\*|[a-z0-9_*]+(\.[a-z0-9_*]+)+)$")


@bp.before_request
@login_required
def require_admin() -> None:
    if not current_user.has_permission("core.admin"):
        abort(404)


# -- forms ---------------------------------------------------------------------------------
class CheckboxesField(SelectMultipleField):
    """A list of checkboxes (usable without JavaScript, unlike a multi-select)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class UserForm(FlaskForm):
    login = StringField(_l("Login"), validators=[
        DataRequired(), Length(max=120),
        Regexp(r"^[A-Za-z0-9_.@-]+$", message=_l("Use letters, digits and . _ @ - only."))])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = StringField(_l("E-mail"), validators=[
        Optional(), Length(max=254),
        Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("Enter a valid e-mail address."))])
    roles = CheckboxesField(_l("Roles"), coerce=int)
    teams = CheckboxesField(_l("Teams"), coerce=int)


class TeamForm(FlaskForm):
    name = StringField(lazy_pgettext("team, role or thing", "Name"),
                       validators=[DataRequired(), Length(max=120)])
    manager = SelectField(_l("Manager"), coerce=int)
    members = CheckboxesField(_l("Members"), coerce=int)


class RoleForm(FlaskForm):
    code = StringField(_l("Code"), validators=[
        DataRequired(), Length(max=64),
        Regexp(r"^[a-z][a-z0-9_]*$", message=_l("Lower-case letters, digits and _ only."))])
    name = StringField(lazy_pgettext("team, role or thing", "Name"),
                       validators=[Length(max=200)])
    default_scope = SelectField(_l("Records this role sees"), choices=[])
    permissions = CheckboxesField(_l("Permissions"))
    patterns = TextAreaField(
        _l("Other permissions and wildcards"),
        description=_l("One per line, e.g. contacts.* or *.read; * grants everything."))

    def validate_patterns(self, field: Any) -> None:
        for line in _lines(field.data):
            if not _PATTERN.match(line):
                raise ValidationError(_("Not a permission name or wildcard: %(value)s",
                                        value=line))


class PasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=10,
                                                                                    max=256)])
    confirm = PasswordField(_l("Repeat the new password"), validators=[
        DataRequired(), EqualTo("password", message=_l("The passwords differ."))])


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _role_choices() -> list[tuple[int, str]]:
    return [(r.id, r.display_name) for r in db.session.scalars(select(Role).order_by(Role.code))]


def _team_choices() -> list[tuple[int, str]]:
    return [(t.id, t.name) for t in db.session.scalars(select(Team).order_by(Team.name))]


def _user_choices() -> list[tuple[int, str]]:
    users = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name))
    return [(u.id, u.display_name) for u in users]


def _scope_choices() -> list[tuple[str, str]]:
    return [(s, str(SCOPE_TITLES[s])) for s in SCOPES]


# -- the audit trail of access changes --------------------------------------------------------
def register_audit_subjects() -> None:
    """Who created a user, gave a role, changed a team or edited a role is in the audit log,
    under the same words as the forms."""
    audit_subject("core.user", User, _l("User"), fields={
        "login": _l("Login"), "name": _l("Name"), "email": _l("E-mail"),
        "active": _l("Active"), "roles": _l("Roles"), "teams": _l("Teams")},
        lists={"roles": Role, "teams": Team})
    audit_subject("core.team", Team, _l("Team"), fields={
        "name": lazy_pgettext("team, role or thing", "Name"), "manager_id": _l("Manager"),
        "members": _l("Members")}, lists={"members": User})
    audit_subject("core.role", Role, _l("Role"), fields={
        "code": _l("Code"), "name": lazy_pgettext("team, role or thing", "Name"),
        "default_scope": _l("Records this role sees"), "permissions": _l("Permissions"),
        "rules": _l("Records seen per kind of record")}, values={"default_scope": SCOPE_TITLES})


def _user_state(user: User) -> dict[str, Any]:
    """What the log compares for a user (roles and teams by id, named when read)."""
    return {"login": user.login, "name": user.name, "email": user.email, "active": user.active,
            "roles": sorted(db.session.scalars(
                select(UserRole.role_id).where(UserRole.user_id == user.id))),
            "teams": sorted(db.session.scalars(
                select(TeamMember.team_id).where(TeamMember.user_id == user.id)))}


def _team_state(team: Team) -> dict[str, Any]:
    return {"name": team.name, "manager_id": team.manager_id,
            "members": sorted(db.session.scalars(
                select(TeamMember.user_id).where(TeamMember.team_id == team.id)))}


def _role_state(role: Role) -> dict[str, Any]:
    return {"code": role.code, "name": role.name, "default_scope": role.default_scope,
            "permissions": sorted(role.permissions),
            "rules": sorted(f"{rule.model}: {rule.scope}" for rule in role.rules)}


# -- users ---------------------------------------------------------------------------------
@bp.route("/users")
def users():
    rows = db.session.scalars(select(User).order_by(User.active.desc(), User.login)).all()
    roles = {r.id: r for r in db.session.scalars(select(Role))}
    by_user: dict[int, list[str]] = {}
    for user_id, role_id in db.session.execute(select(UserRole.user_id, UserRole.role_id)):
        by_user.setdefault(user_id, []).append(roles[role_id].display_name)
    return render_template("core/security/users.html", users=rows, roles=by_user,
                           form=ActionForm())


def _user_form(user: User | None) -> UserForm:
    form = UserForm(obj=user)
    form.roles.choices = _role_choices()
    form.teams.choices = _team_choices()
    if user is not None and request.method == "GET":
        form.roles.data = list(db.session.scalars(
            select(UserRole.role_id).where(UserRole.user_id == user.id)))
        form.teams.data = list(db.session.scalars(
            select(TeamMember.team_id).where(TeamMember.user_id == user.id)))
    return form


def _login_taken(login: str, user: User | None) -> bool:
    query = select(User.id).where(func.lower(User.login) == login)
    if user is not None:
        query = query.where(User.id != user.id)
    return db.session.scalar(query) is not None


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = _user_form(None)
    if form.validate_on_submit():
        login = form.login.data.strip().lower()
        if _login_taken(login, None):
            form.login.errors.append(_("This login is taken."))
        else:
            user = User(login=login, name=form.name.data.strip(),
                        email=(form.email.data or "").strip() or None, password_hash="")
            db.session.add(user)
            db.session.flush()
            set_user_roles(user, form.roles.data or [])
            set_user_teams(user, form.teams.data or [])
            audit_changes("core.user", user.id, None, _user_state(user))
            db.session.commit()
            flash(_("User %(name)s created. Send them this link to choose a password.",
                    name=user.display_name), "success")
            return _show_link(user, invitation=True)
    return render_template("core/security/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user_edit(user_id: int):
    user = db.get_or_404(User, user_id)
    form = _user_form(user)
    if form.validate_on_submit():
        login = form.login.data.strip().lower()
        if _login_taken(login, user):
            form.login.errors.append(_("This login is taken."))
        else:
            before = _user_state(user)
            user.login = login
            user.name = form.name.data.strip()
            user.email = (form.email.data or "").strip() or None
            set_user_roles(user, form.roles.data or [])
            set_user_teams(user, form.teams.data or [])
            audit_changes("core.user", user.id, before, _user_state(user))
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("security.users"))
    return render_template("core/security/user_form.html", form=form, user=user)


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
def user_deactivate(user_id: int):
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        if user.id == current_user.id:
            flash(_("You cannot deactivate yourself."), "error")
        else:
            user.active = False
            end_sessions(user)  # also kills "remember me" cookies
            audit_changes("core.user", user.id, {"active": True}, {"active": False})
            db.session.commit()
            flash(_("%(name)s is deactivated; their records and history stay.",
                    name=user.display_name), "success")
    return redirect(url_for("security.users"))


@bp.route("/users/<int:user_id>/activate", methods=["POST"])
def user_activate(user_id: int):
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        if not user.active:
            audit_changes("core.user", user.id, {"active": False}, {"active": True})
        user.active = True
        db.session.commit()
        flash(_("%(name)s is active again.", name=user.display_name), "success")
    return redirect(url_for("security.users"))


@bp.route("/users/<int:user_id>/reset", methods=["POST"])
def user_reset(user_id: int):
    user = db.get_or_404(User, user_id)
    if not user.active:
        flash(_("Activate the user first."), "error")
        return redirect(url_for("security.users"))
    if not ActionForm().validate_on_submit():
        return redirect(url_for("security.users"))
    audit("password_link", model="core.user", record_id=user.id)
    db.session.commit()
    return _show_link(user, invitation=not user.password_hash)


def _show_link(user: User, *, invitation: bool):
    """Show the link to the admin (who may pass it on) and e-mail it when mail is set up."""
    link = url_for("account.reset_password", token=make_reset_token(user), _external=True)
    hours = reset_max_age(invitation) // 3600
    mailed = _mail_link(user, link, hours, invitation)
    return render_template("core/security/reset_link.html", user=user, link=link, hours=hours,
                           mailed=mailed)


def _mail_link(user: User, link: str, hours: int, invitation: bool) -> bool:
    config = current_app.config
    if not user.email or not (config.get("BIRGA_MAIL_FROM") or config.get("MAIL_FROM")):
        return False
    language = user.locale or "en"
    with force_locale(language):
        subject = (_("Your Birga account is ready") if invitation
                   else _("Choose a new Birga password"))
        body = ngettext("Hello %(name)s,\n\nopen this link to choose your password. It works "
                        "once and expires in %(num)d hour:\n\n%(link)s\n\nIf you did not "
                        "expect this message, ignore it.",
                        "Hello %(name)s,\n\nopen this link to choose your password. It works "
                        "once and expires in %(num)d hours:\n\n%(link)s\n\nIf you did not "
                        "expect this message, ignore it.", hours, name=user.display_name,
                        link=link)
    try:
        # The texts are translated already; the templates only place them.
        queue_mail(user.email, {"en": "{{ subject }}"}, {"en": "{{ body }}"},
                   {"subject": subject, "body": body}, language=language, html=False)
    except MailError as exc:
        flash(_("The e-mail could not be sent: %(error)s", error=str(exc)), "error")
        return False
    return True


# -- teams ---------------------------------------------------------------------------------
@bp.route("/teams")
def teams():
    rows = db.session.scalars(select(Team).order_by(Team.name)).all()
    return render_template("core/security/teams.html", teams=rows, form=ActionForm())


def _team_form(team: Team | None) -> TeamForm:
    form = TeamForm(obj=team)
    users = _user_choices()
    form.manager.choices = [(0, _("(nobody)"))] + users
    form.members.choices = users
    if team is not None and request.method == "GET":
        form.manager.data = team.manager_id or 0
        form.members.data = [u.id for u in team.members]
    return form


def _save_team(team: Team, form: TeamForm) -> bool:
    name = form.name.data.strip()
    clash = db.session.scalar(select(Team.id).where(Team.name == name, Team.id != team.id)
                              if team.id else select(Team.id).where(Team.name == name))
    if clash is not None:
        form.name.errors.append(_("A team with this name exists."))
        return False
    before = _team_state(team) if team.id else None
    team.name = name
    team.manager_id = form.manager.data or None
    db.session.add(team)
    db.session.flush()
    db.session.execute(TeamMember.__table__.delete().where(TeamMember.team_id == team.id))
    for user_id in sorted(set(form.members.data or [])):
        db.session.add(TeamMember(team_id=team.id, user_id=user_id))
    audit_changes("core.team", team.id, before, _team_state(team))
    db.session.commit()
    return True


@bp.route("/teams/new", methods=["GET", "POST"])
def team_new():
    form = _team_form(None)
    if form.validate_on_submit() and _save_team(Team(), form):
        flash(_("Team created."), "success")
        return redirect(url_for("security.teams"))
    return render_template("core/security/team_form.html", form=form, team=None)


@bp.route("/teams/<int:team_id>", methods=["GET", "POST"])
def team_edit(team_id: int):
    team = db.get_or_404(Team, team_id)
    form = _team_form(team)
    if form.validate_on_submit() and _save_team(team, form):
        flash(_("Saved."), "success")
        return redirect(url_for("security.teams"))
    return render_template("core/security/team_form.html", form=form, team=team)


@bp.route("/teams/<int:team_id>/delete", methods=["POST"])
def team_delete(team_id: int):
    team = db.get_or_404(Team, team_id)
    if ActionForm().validate_on_submit():
        audit("delete", model="core.team", record_id=team.id, details={"name": team.name})
        db.session.delete(team)
        db.session.commit()
        flash(_("Team deleted."), "success")
    return redirect(url_for("security.teams"))


# -- roles ---------------------------------------------------------------------------------
@bp.route("/roles")
def roles():
    rows = db.session.scalars(select(Role).order_by(Role.code)).all()
    counts = {role_id: n for role_id, n in db.session.execute(
        select(UserRole.role_id, func.count()).group_by(UserRole.role_id))}
    return render_template("core/security/roles.html", roles=rows, counts=counts,
                           scope_titles=SCOPE_TITLES, form=ActionForm())


def _role_form(role: Role | None) -> RoleForm:
    form = RoleForm(obj=role)
    declared = current_app.extensions["birga"].registry.permissions
    form.default_scope.choices = _scope_choices()
    form.permissions.choices = [(n, f"{n} — {p.title}") for n, p in sorted(declared.items())]
    if role is not None and request.method == "GET":
        granted = role.permissions
        form.permissions.data = sorted(granted & set(declared))
        form.patterns.data = "\n".join(sorted(granted - set(declared)))
    return form


def _model_scopes(role: Role | None) -> dict[str, str]:
    """The per-model overrides posted with the form (or stored on the role)."""
    models = record_rules()
    if request.method == "POST":
        posted = {key: request.form.get(f"scope-{key}", "") for key in models}
        return {k: v for k, v in posted.items() if v in SCOPES}
    if role is None:
        return {}
    return {r.model: r.scope for r in role.rules if r.model in models}


def _save_role(role: Role, form: RoleForm, scopes: dict[str, str]) -> bool:
    code = form.code.data.strip()
    clash = select(Role.id).where(Role.code == code)
    if role.id:
        clash = clash.where(Role.id != role.id)
    if db.session.scalar(clash) is not None:
        form.code.errors.append(_("A role with this code exists."))
        return False
    if role.is_default and code != role.code:
        form.code.errors.append(_("The code of a default role cannot change."))
        return False
    before = _role_state(role) if role.id else None
    role.code = code
    role.name = (form.name.data or "").strip()
    role.default_scope = form.default_scope.data
    role.permissions = set(form.permissions.data or []) | set(_lines(form.patterns.data))
    role.rules = [r for r in role.rules if r.model in scopes] if role.id else []
    for rule in role.rules:
        rule.scope = scopes[rule.model]
    have = {r.model for r in role.rules}
    role.rules += [RecordRule(model=m, scope=s) for m, s in sorted(scopes.items())
                   if m not in have]
    db.session.add(role)
    db.session.flush()
    audit_changes("core.role", role.id, before, _role_state(role))
    db.session.commit()
    return True


def _role_page(form: RoleForm, role: Role | None, scopes: dict[str, str]):
    return render_template("core/security/role_form.html", form=form, role=role,
                           models=sorted(record_rules().values(), key=lambda s: s.key),
                           scopes=scopes, scope_choices=_scope_choices())


@bp.route("/roles/new", methods=["GET", "POST"])
def role_new():
    form = _role_form(None)
    scopes = _model_scopes(None)
    if form.validate_on_submit() and _save_role(Role(), form, scopes):
        flash(_("Role created."), "success")
        return redirect(url_for("security.roles"))
    return _role_page(form, None, scopes)


@bp.route("/roles/<int:role_id>", methods=["GET", "POST"])
def role_edit(role_id: int):
    role = db.get_or_404(Role, role_id)
    form = _role_form(role)
    scopes = _model_scopes(role)
    if form.validate_on_submit() and _save_role(role, form, scopes):
        flash(_("Saved."), "success")
        return redirect(url_for("security.roles"))
    return _role_page(form, role, scopes)


@bp.route("/roles/<int:role_id>/delete", methods=["POST"])
def role_delete(role_id: int):
    role = db.get_or_404(Role, role_id)
    if ActionForm().validate_on_submit():
        if role.is_default:
            flash(_("Default roles cannot be deleted; edit them instead."), "error")
        else:
            audit("delete", model="core.role", record_id=role.id,
                  details={"code": role.code, "name": role.name})
            db.session.delete(role)
            db.session.commit()
            flash(_("Role deleted."), "success")
    return redirect(url_for("security.roles"))


# -- choosing a password from a link --------------------------------------------------------
@account_bp.route("/password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """Works once: setting the password changes the hash the token's fingerprint names."""
    user = load_reset_token(token)
    if user is None:
        return render_template("core/security/password_reset.html", form=None), 404
    form = PasswordForm()
    if form.validate_on_submit():
        user.set_password(form.password.data)
        end_sessions(user)  # whoever had the old password is signed out everywhere
        audit("password_set", model="core.user", record_id=user.id, user=user)
        db.session.commit()
        flash(_("Your password is set. Sign in with it."), "success")
        return redirect(url_for("auth.login"))
    return render_template("core/security/password_reset.html", form=form, user=user)
