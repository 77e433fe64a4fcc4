"""The kernel's own tables: users, login throttling, and the enabled-addon state.

The enabled set lives in the database, not in a file, so every app server of a firm agrees on
it; `core_registry.sequence` is bumped on each change and compared by every worker (Odoo's
registry-sequence idea) to rebuild itself without a restart.
"""
from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC everywhere, shown in the user's zone."""
    return datetime.now(UTC)


class User(UserMixin, db.Model):
    __tablename__ = "core_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(256), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Part of the session id: bumping it (deactivation, password reset) ends every session and
    #: "remember me" cookie of the user (see `core.security.end_sessions`).
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    def set_password(self, password: str) -> None:
        """Hash with scrypt (werkzeug's default): memory-hard, no extra dependency."""
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        """`id:session_version`, stored in the session and the remember cookie."""
        return f"{self.id}:{self.session_version or 0}"

    @classmethod
    def from_session_id(cls, session_id: str) -> User | None:
        """The active user a session id names, if its version is still current."""
        ident, _, version = session_id.partition(":")
        if not ident.isdigit() or not version.isdigit():
            return None
        from .security import load_user_with_access

        user = load_user_with_access(int(ident))
        if user is None or not user.active or (user.session_version or 0) != int(version):
            return None
        return user

    def has_permission(self, permission: str | None) -> bool:
        """Admins hold every permission; other users what their roles grant (core.security)."""
        if permission is None or self.is_admin:
            return True
        from .security import has_role_permission

        return has_role_permission(self, permission)

    @property
    def display_name(self) -> str:
        return self.name or self.login


class LoginFailure(db.Model):
    """One failed login; recent rows per login throttle further attempts (shared by workers)."""

    __tablename__ = "core_login_failure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(120), index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class AddonState(db.Model):
    """Whether an addon is enabled for this installation, and the version last migrated."""

    __tablename__ = "core_addon"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[str | None] = mapped_column(String(40))
    demo_loaded: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class RegistrySequence(db.Model):
    """A single row whose number changes whenever the enabled addon set changes."""

    __tablename__ = "core_registry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 server_default=func.now())
