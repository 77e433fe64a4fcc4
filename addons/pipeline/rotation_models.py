"""The owner history of deals moved by rotation or by a manager (reclaim, reassign).

Why a table of its own: a deal reassigned because it went stale must get a fresh period with its
new owner, or the next run would find it stale again at once (its last activity is still old).
The stale rules read the latest move from here. It is also the record a manager audits: who
took which deal from whom, when, and why (the deal's timeline says the same in words).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.api import db, utcnow

#: Why an owner changed: the stale rule that fired, or a manager's decision.
MOVE_REASONS = ("no_activity", "no_next_step", "manual")


class OwnerMove(db.Model):
    """One change of a deal's owner made by rotation: to the pool (`to_user_id` None) or to
    a salesperson."""

    __tablename__ = "pipeline_owner_move"
    __table_args__ = (Index("ix_pipeline_owner_move_deal_at", "deal_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("pipeline_deal.id", ondelete="CASCADE"))
    from_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))
    to_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(20), default="manual")
    #: Who did it; None for the periodic job.
    by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
