"""Access by position: roles, teams, record rules and the one gateway every record query uses.

Why one gateway: IDOR (reading someone else's record by changing an id in the address) is the most
common CRM vulnerability. When every view, export, PDF and JSON endpoint fetches records through
`scoped()` / `visible()` / `get_or_404()`, a rule is written once and a record outside it is a 404
everywhere, never a 403 that would reveal it exists.

- Permissions are declared by addons (`addon.permission("contacts.read", ...)`); a role grants a set
  of names or wildcard patterns (`contacts.*`, `*.read`, `*`). `User.is_admin` holds every one.
- A record rule says, per model and role, whether the role sees its own records, its teams'
  records or all of them. A model takes part by `register_record_rule(Model, owner_attr=...)` from
  the addon's `init_app`; each role's scope for it lives in `core_record_rule` (editable by
  admins), falling back to the role's default scope.
- A user's access (patterns, scopes) is read once per request and cached in `flask.g`; any commit
  forgets it, so a change made in this request is seen by the next check.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache, lru_cache, wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, has_app_context
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import (
    ForeignKey,
    Integer,
    Select,
    String,
    UniqueConstraint,
    and_,
    bindparam,
    event,
    false,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .addons import AddonError
from .cache import generation_column, remember_generation, shared_cache
from .extensions import db
from .models import User
from .reading import read

__all__ = [
    "DEFAULT_ROLES", "SCOPES", "RecordRule", "RecordRuleSpec", "Role", "RolePermission",
    "Team", "TeamMember", "UserRole", "assign_roles", "end_sessions", "get_or_404", "grants",
    "init_app", "load_reset_token", "make_reset_token", "permission_required", "record_rules",
    "register_record_rule", "scope_for", "scoped", "seed_default_roles", "set_user_roles",
    "set_user_teams", "user_permissions", "visible",
]

#: Narrowest to widest; a user with several roles gets the widest scope among them.
SCOPES = ("own", "team", "all")
_RANK = {"none": 0, "own": 1, "team": 2, "all": 3}
SCOPE_TITLES = {"own": _l("Own records"), "team": _l("Team's records"),
                "all": _l("All records")}

M = TypeVar("M")


# -- tables --------------------------------------------------------------------------------
class Team(db.Model):
    """A sales (or support) team: its manager and members share the "team" scope."""

    __tablename__ = "core_team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"), index=True)

    manager: Mapped[User | None] = relationship(foreign_keys=[manager_id])
    members: Mapped[list[User]] = relationship(
        secondary="core_team_member", order_by="User.name", viewonly=True)


class TeamMember(db.Model):
    __tablename__ = "core_team_member"

    team_id: Mapped[int] = mapped_column(ForeignKey("core_team.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


class Role(db.Model):
    """A set of permissions plus how far the holder sees records by default."""

    __tablename__ = "core_role"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    #: Empty for a seeded role: its translated default title is shown instead.
    name: Mapped[str] = mapped_column(String(200), default="")
    default_scope: Mapped[str] = mapped_column(String(8), default="own")

    grants: Mapped[list[RolePermission]] = relationship(
        cascade="all, delete-orphan", order_by="RolePermission.permission")
    rules: Mapped[list[RecordRule]] = relationship(cascade="all, delete-orphan")

    @property
    def permissions(self) -> set[str]:
        return {grant.permission for grant in self.grants}

    @permissions.setter
    def permissions(self, names: set[str] | list[str]) -> None:
        wanted = set(names)
        self.grants = [x for x in self.grants if x.permission in wanted] + [
            RolePermission(permission=n) for n in sorted(wanted - self.permissions)]

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        default = DEFAULT_ROLES.get(self.code)
        return str(default.title) if default else self.code

    @property
    def is_default(self) -> bool:
        return self.code in DEFAULT_ROLES


class RolePermission(db.Model):
    """One permission name or wildcard pattern a role grants."""

    __tablename__ = "core_role_permission"

    role_id: Mapped[int] = mapped_column(ForeignKey("core_role.id", ondelete="CASCADE"),
                                         primary_key=True)
    permission: Mapped[str] = mapped_column(String(120), primary_key=True)


class UserRole(db.Model):
    __tablename__ = "core_user_role"

    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                         primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("core_role.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


class RecordRule(db.Model):
    """How far one role sees the records of one model (overrides the role's default scope)."""

    __tablename__ = "core_record_rule"
    __table_args__ = (UniqueConstraint("model", "role_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(120))
    role_id: Mapped[int] = mapped_column(ForeignKey("core_role.id", ondelete="CASCADE"),
                                         index=True)
    scope: Mapped[str] = mapped_column(String(8))


# -- default roles -------------------------------------------------------------------------
@dataclass(frozen=True)
class DefaultRole:
    title: Any
    permissions: tuple[str, ...]
    scope: str


#: Permission names follow `<addon>.<action>` (read, write, delete, export, manage).
DEFAULT_ROLES: dict[str, DefaultRole] = {
    "administrator": DefaultRole(_l("Administrator"), ("*",), "all"),
    "sales_manager": DefaultRole(
        _l("Sales manager"),
        ("*.read", "*.write", "*.delete", "*.export", "*.import", "*.manage", "*.reports"),
        "team"),
    # Reports follow the record rules: a salesperson's show only their own figures.
    "salesperson": DefaultRole(_l("Salesperson"), ("*.read", "*.write", "*.reports"), "own"),
    "support_agent": DefaultRole(_l("Support agent"),
                                 ("*.read", "support.*", "activities.*", "records.annotate"),
                                 "all"),
    "auditor": DefaultRole(_l("Read-only auditor"), ("*.read", "*.export", "*.reports"), "all"),
}


def seed_default_roles() -> list[str]:
    """Create the default roles that are missing; never touches roles an admin edited.

    Idempotent: `birga init` calls it on every run. Returns the codes it created.
    """
    existing = set(db.session.scalars(select(Role.code)))
    created = []
    for code, default in DEFAULT_ROLES.items():
        if code in existing:
            continue
        role = Role(code=code, name="", default_scope=default.scope)
        role.permissions = set(default.permissions)
        db.session.add(role)
        created.append(code)
    db.session.commit()
    return created


def set_user_roles(user: User, role_ids: list[int] | set[int]) -> None:
    """Replace the user's roles (the caller commits)."""
    db.session.execute(UserRole.__table__.delete().where(UserRole.user_id == user.id))
    for role_id in sorted(set(role_ids)):
        db.session.add(UserRole(user_id=user.id, role_id=role_id))


def assign_roles(user: User, *codes: str) -> None:
    """Give `user` the roles with these codes (seeding the defaults first) and commit.

    A convenience for tests and demo data: `assign_roles(user, "salesperson")`.
    """
    seed_default_roles()
    roles = db.session.scalars(select(Role).where(Role.code.in_(codes))).all()
    missing = set(codes) - {r.code for r in roles}
    if missing:
        raise LookupError(f"No role with the code(s): {', '.join(sorted(missing))}")
    have = set(db.session.scalars(_role_ids_query(user.id)))
    for role in roles:
        if role.id not in have:
            db.session.add(UserRole(user_id=user.id, role_id=role.id))
    db.session.commit()


def set_user_teams(user: User, team_ids: list[int] | set[int]) -> None:
    """Replace the teams the user is a member of (the caller commits)."""
    db.session.execute(TeamMember.__table__.delete().where(TeamMember.user_id == user.id))
    for team_id in sorted(set(team_ids)):
        db.session.add(TeamMember(user_id=user.id, team_id=team_id))


# -- permissions ---------------------------------------------------------------------------
@dataclass
class _Access:
    """One user's access, read once per request (`_load_access`: one query)."""

    loaded: bool = False
    patterns: frozenset[str] = frozenset()
    role_scopes: dict[int, str] = field(default_factory=dict)  # role id -> default scope
    rules: dict[str, dict[int, str]] = field(default_factory=dict)  # model -> role -> scope
    model_scopes: dict[str, str] = field(default_factory=dict)
    answers: dict[str, bool] = field(default_factory=dict)  # permission -> granted


@cache
def _access_query() -> Any:
    """Built once: the statement is the same for every user (the id is bound)."""
    roles = select(UserRole.role_id).where(
        UserRole.user_id == bindparam("user_id")).scalar_subquery()
    return union_all(
        select(literal("p").label("kind"), RolePermission.permission.label("name"),
               RolePermission.role_id.label("role_id"), null().label("scope"))
        .where(RolePermission.role_id.in_(roles)),
        select(literal("r"), null(), Role.id, Role.default_scope).where(Role.id.in_(roles)),
        select(literal("m"), RecordRule.model, RecordRule.role_id, RecordRule.scope)
        .where(RecordRule.role_id.in_(roles)),
    )


def _load_access(user: User) -> _Access:
    """Permissions, roles' default scopes and record rules of the user's roles: every page
    checks a permission and most read a scoped model. Read in one query, then kept by the
    worker until roles, permissions or rules change (`core.cache`)."""
    access = _access(user)
    if not access.loaded:
        _fill_access(access, _access_rows(user.id))
    return access


@shared_cache(UserRole, RolePermission, Role, RecordRule)
def _access_rows(user_id: int) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(row) for row in read(_access_query(), {"user_id": user_id}))


def _fill_access(access: _Access, rows: Any) -> None:
    """`access` from the rows of `_access_query` (kind, name, role id, scope)."""
    patterns: set[str] = set()
    for kind, name, role_id, scope in rows:
        if kind == "p":
            patterns.add(name)
        elif kind == "r":
            access.role_scopes[role_id] = scope
        elif kind == "m":
            access.rules.setdefault(name, {})[role_id] = scope
    access.patterns = frozenset(patterns)
    access.loaded = True


@cache
def _user_query() -> Select:
    return select(User, generation_column()).where(User.id == bindparam("user_id"))


def load_user_with_access(user_id: int) -> User | None:
    """The user `user_id`, with the cache generation (`core.cache`) in the same query: the
    user's access then comes from the worker's cache, and so do the other rarely changed
    rows a page reads (custom fields, users for filters...)."""
    row = db.session.execute(_user_query(), {"user_id": user_id}).first()
    if row is None:
        return None
    user, generation = row
    remember_generation(generation)
    if has_app_context():
        _load_access(user)
    return user


def _access(user: User) -> _Access:
    if not has_app_context():
        return _Access()
    cache = g.setdefault("_birga_access", {})
    return cache.setdefault(user.id, _Access())


@event.listens_for(Session, "after_commit")
def _forget_access(session: Session) -> None:
    """Roles, teams or rules may have changed: the next check reads them again."""
    if has_app_context():
        g.pop("_birga_access", None)


def _role_ids_query(user_id: int) -> Select:
    return select(UserRole.role_id).where(UserRole.user_id == user_id)


def user_permissions(user: User) -> frozenset[str]:
    """The names and patterns the user's roles grant (one query, cached for the request)."""
    return _load_access(user).patterns


def grants(patterns: frozenset[str] | set[str], permission: str) -> bool:
    """Whether one of `patterns` (`contacts.read`, `contacts.*`, `*`) covers `permission`."""
    return permission in patterns or any(fnmatchcase(permission, p) for p in patterns
                                         if "*" in p)


def has_role_permission(user: User, permission: str) -> bool:
    """The non-admin half of `User.has_permission`."""
    if not getattr(user, "active", False) or user.id is None:
        return False
    answers = _load_access(user).answers  # a page asks for the same few permissions often
    if permission not in answers:
        answers[permission] = grants(user_permissions(user), permission)
    return answers[permission]


def permission_required(permission: str):  # noqa: ANN201 - a decorator factory
    """View decorator: signed in and holding `permission`, else 404 (existence stays hidden)."""

    def decorator(view):  # noqa: ANN001, ANN202
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if not current_user.has_permission(permission):
                abort(404)
            return view(*args, **kwargs)

        return wrapped

    return decorator


# -- record rules --------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordRuleSpec:
    """How to tell whose a record is: its owner column and, optionally, its team column."""

    model: type
    key: str
    owner_attr: str
    team_attr: str | None
    title: Any
    where: Callable[[Any], Any] | None = None


def _state(app: Flask | None = None) -> dict[str, RecordRuleSpec]:
    app = app or current_app
    return app.extensions.setdefault("birga_record_rules", {})


def register_record_rule(model: type, owner_attr: str = "owner_id", team_attr: str | None = None,
                         *, title: Any = None, where: Callable[[Any], Any] | None = None,
                         app: Flask | None = None) -> RecordRuleSpec:
    """Put `model` under record rules (call from the addon's `init_app(app, addon)`, passing app).

    `owner_attr` names the column holding the owning user's id; `team_attr`, if given, a column
    holding a team id (a record assigned to a team is visible to that team's members).
    `where(user)`, if given, is the addon's own rule: a SQL condition every non-admin user's
    queries must also meet (e.g. `lambda user: Deal.archived.is_(False)`).
    """
    for attr in filter(None, (owner_attr, team_attr)):
        if not hasattr(model, attr):
            raise AddonError(f"Record rule for '{model.__name__}': it has no attribute "
                             f"'{attr}'.", fix="name the column that holds the owner's id.")
    key = model.__tablename__
    spec = RecordRuleSpec(model, key, owner_attr, team_attr, title or model.__name__, where)
    _state(app)[key] = spec
    return spec


def record_rules(app: Flask | None = None) -> dict[str, RecordRuleSpec]:
    """Every model under record rules in this app, by table name."""
    return dict(_state(app))


def scope_for(user: Any, model_key: str) -> str:
    """`all`, `team`, `own` or `none` for `user` on the model stored under `model_key`."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "none"
    if not user.active:
        return "none"
    if user.is_admin:
        return "all"
    access = _load_access(user)
    if model_key not in access.model_scopes:
        # A role's rule for the model replaces its default scope; the widest scope wins.
        scopes = {**access.role_scopes, **access.rules.get(model_key, {})}
        access.model_scopes[model_key] = max(scopes.values(), key=_RANK.__getitem__,
                                             default="none")
    return access.model_scopes[model_key]


@lru_cache(maxsize=4096)
def _team_ids(user_id: int) -> Select:
    """The teams a user manages or belongs to (a subquery, never a Python list). Built once
    per user: statements are immutable, and a scoped page needs it for every query."""
    return select(Team.id).where(or_(
        Team.manager_id == user_id,
        Team.id.in_(select(TeamMember.team_id).where(TeamMember.user_id == user_id))))


@lru_cache(maxsize=4096)
def _teammates(user_id: int) -> Select:
    teams = _team_ids(user_id)
    return select(TeamMember.user_id).where(TeamMember.team_id.in_(teams)).union(
        select(Team.manager_id).where(Team.id.in_(teams), Team.manager_id.is_not(None)))


def _entity(stmt: Select) -> type:
    entity = stmt.column_descriptions[0].get("entity")
    if entity is None:
        raise TypeError("scoped() needs a select of a mapped model, e.g. select(Deal).")
    return entity


def rule_clause(model: type, user: Any = None) -> Any:
    """The WHERE clause keeping only the rows of `model` the user may see; None: no filter."""
    return _rule(model, user, None)


def rule_clause_on(model: type, columns: Mapping[str, Any], user: Any = None) -> Any:
    """`model`'s rule written over `columns` ({"owner_id": ..., "team_id": ...}, by the rule's
    attribute names) instead of the model's own: for a table that keeps rows of `model`
    grouped by owner and team (counts, sums), so that it shows a user what the rule lets her
    see. Raises LookupError when the rule reads more than those columns (a `where` of its
    own, or an attribute missing from `columns`)."""
    return _rule(model, user, columns)


def _rule(model: type, user: Any, columns: Mapping[str, Any] | None) -> Any:
    user = _user(user)
    if user is None or not getattr(user, "is_authenticated", False):
        return false()
    spec = _state().get(model.__tablename__)
    if spec is None:
        return None  # not under record rules (reference data, settings): permissions decide
    scope = scope_for(user, spec.key)
    if scope == "none":
        return false()
    extra = None
    if spec.where is not None and not user.is_admin:
        if columns is not None:
            raise LookupError(f"the record rule of {spec.key} has a condition of its own")
        extra = spec.where(user)
    if scope == "all":
        return extra

    def column(attr: str) -> Any:
        return getattr(model, attr) if columns is None else columns[attr]

    team = column(spec.team_attr) if spec.team_attr and scope != "own" else None
    clause = _mine(column(spec.owner_attr), team, user.id, scope)
    return clause if extra is None else and_(clause, extra)


@lru_cache(maxsize=4096)
def _mine(owner: Any, team: Any, user_id: int, scope: str) -> Any:
    """The own/team condition, built once per column, user and scope: the same object on
    every request lets a page keep the statements it builds on it (their SQL cache keys are
    computed once, see `pipeline.board`); team membership stays a subquery, read at run time."""
    if scope == "own":
        return owner == user_id
    mine = [owner == user_id, owner.in_(_teammates(user_id))]
    if team is not None:
        mine.append(team.in_(_team_ids(user_id)))
    return or_(*mine)


def _user(user: Any) -> Any:
    if user is not None:
        return user
    return current_user._get_current_object() if has_app_context() else None


def scoped(stmt: Select, user: Any = None, *, model: type | None = None) -> Select:
    """`stmt` (a `select(Model)`) narrowed to the records `user` (default: current) may see.

    One query: team membership is a subquery, so no list of ids is built in Python. Pass
    `model` when the statement's first column is not the model's (`select(func.count())`).
    """
    model = model or _entity(stmt)
    clause = rule_clause(model, user)
    return stmt if clause is None else stmt.where(clause)


def visible(model: type[M], user: Any = None) -> Select:
    """`select(model)` narrowed to what the user may see: the usual start of a list view."""
    return scoped(select(model), user)


def get_or_404(model: type[M], ident: Any, user: Any = None) -> M:
    """The record if it exists *and* the user may see it; 404 otherwise (never 403)."""
    pk = model.__mapper__.primary_key[0]
    record = db.session.scalar(scoped(select(model).where(pk == ident), user))
    if record is None:
        abort(404)
    return record


# -- sessions and password reset -----------------------------------------------------------
def end_sessions(user: User) -> None:
    """Invalidate every session and "remember me" cookie of the user (the caller commits).

    The session and the remember cookie both carry `User.get_id()`, which embeds the version;
    the user loader refuses a mismatch.
    """
    user.session_version = (user.session_version or 0) + 1


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _fingerprint(user: User) -> str:
    """Changes with the password (a link works once) and with the session version (a
    deactivation kills the links handed out before it)."""
    state = f"{user.password_hash or ''}:{user.session_version or 0}"
    return hashlib.sha256(state.encode()).hexdigest()[:20]


_RESET_SALT = "birga.password-reset"


def make_reset_token(user: User) -> str:
    """A signed link token: the user, and a fingerprint of the current password hash."""
    return _serializer(_RESET_SALT).dumps({"u": user.id, "h": _fingerprint(user)})


def reset_max_age(invitation: bool = False) -> int:
    cfg = current_app.config
    hours = cfg.get("BIRGA_INVITE_HOURS", 72) if invitation else cfg.get(
        "BIRGA_PASSWORD_RESET_HOURS", 24)
    return int(float(hours) * 3600)


def load_reset_token(token: str) -> User | None:
    """The user a still-valid, unused token belongs to; None if forged, used or expired.

    A user who never had a password (an invitation) gets the longer invitation lifetime.
    """
    serializer = _serializer(_RESET_SALT)
    try:
        data = serializer.loads(token, max_age=reset_max_age(invitation=True))
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    user = db.session.get(User, data["u"])
    if user is None or not user.active or data.get("h") != _fingerprint(user):
        return None
    if user.password_hash:  # a reset, not an invitation: the shorter lifetime applies
        try:
            serializer.loads(token, max_age=reset_max_age())
        except SignatureExpired:
            return None
    return user


# -- wiring --------------------------------------------------------------------------------
def init_app(app: Flask) -> None:
    """Register the admin pages, their menu entries and the password-reset page."""
    from . import security_views

    _state(app)
    registry = app.extensions["birga"].registry
    security_views.register_audit_subjects()
    app.register_blueprint(security_views.bp)
    app.register_blueprint(security_views.account_bp)
    for sequence, (name, title) in enumerate([
            ("users", _l("Users")), ("teams", _l("Teams")), ("roles", _l("Roles"))]):
        registry.add_menu(f"settings.{name}", title, f"security.{name}", parent="settings",
                          sequence=20 + sequence, permission="core.admin")
