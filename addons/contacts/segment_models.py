"""Tables of the segments feature: the ABC settings and named (static or dynamic) segments.

Kept apart from `models.py` because segments are their own feature with their own owner; the
partner's own ABC class lives on `Partner.segment` (one column, so lists filter on it cheaply).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.api import _l, db, utcnow

SEGMENT_KINDS = ("static", "dynamic")
SEGMENT_KIND_LABELS = {"static": _l("Static (chosen contacts)"),
                       "dynamic": _l("Dynamic (a saved filter)")}


class SegmentSettings(db.Model):
    """How the ABC classes are cut (one row; `segments.settings()` creates it on first use).

    Shares are percentages of the period's total revenue: A is the top `a_share`, B the next
    `b_share`, C the rest. The period is the last `period_days` days unless an admin pinned
    `period_start`/`period_end`.
    """

    __tablename__ = "contacts_segment_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    a_share: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("80"),
                                             info={"label": _l("Class A share (%)")})
    b_share: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("15"),
                                             info={"label": _l("Class B share (%)")})
    period_days: Mapped[int] = mapped_column(Integer, default=365,
                                             info={"label": _l("Period (days)")})
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: {"A": n, "B": n, "C": n, "none": n, "start": iso, "end": iso, "total": "123.45"}
    last_result: Mapped[dict | None] = mapped_column(JSON)


class Segment(db.Model):
    """A named group of contacts other addons target (offers, coupons, mailings).

    Static: the members are rows of `contacts_segment_member`. Dynamic: `query` is a list
    filter (the list page's query arguments, as a saved filter stores them), evaluated whenever
    the members are asked for, so membership follows the data.
    """

    __tablename__ = "contacts_segment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True, info={"label": _l("Name")})
    kind: Mapped[str] = mapped_column(String(10), default="static", info={"label": _l("Type")})
    query: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SegmentMember(db.Model):
    __tablename__ = "contacts_segment_member"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_segment.id", ondelete="CASCADE"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="CASCADE"), primary_key=True, index=True)
