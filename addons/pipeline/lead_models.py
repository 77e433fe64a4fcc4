"""Tables of the lead channels: rate-limit counters of the public web form.

Why counters in the database: a firm runs several gunicorn workers (and hosts), so a counter in
process memory would let a spammer through N times the limit. One row per (key, window) is
incremented with an atomic upsert; when `BIRGA_REDIS_URL` is set the counters live in Redis
instead and this table stays empty.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.api import db


class RateCounter(db.Model):
    """How many hits `key` (an IP address or a form) had in one fixed time window."""

    __tablename__ = "pipeline_rate_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: The window number: seconds since the epoch divided by the window length.
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    #: When the row may be deleted (old windows are purged now and then).
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
