"""Pipelines with ordered stages, deals moving through them, leads from every channel, calls.

Won and Lost are real stages (`kind`), so a board, a report and the state machine all read
one column. Every stage change goes through `state.move_deal()` and leaves a `StageChange`
row: funnel conversion and sales-cycle reports are plain queries over that history.
Denormalised for the board: `next_activity_at` and `last_activity_at` are kept on the deal by
the activity listeners, so a column of 50 cards is one query.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.api import _l, db, utcnow
from core.locking import VersionedMixin
from core.timeline import TimelineMixin

STAGE_KINDS = ("open", "won", "lost")
CHANNELS = ("web", "email", "phone", "manual", "api")
CHANNEL_LABELS = {"web": _l("Web form"), "email": _l("E-mail"), "phone": _l("Phone call"),
                  "manual": _l("Manual"), "api": _l("API")}
LEAD_STATUSES = ("new", "converted", "dismissed")


class Pipeline(db.Model):
    """A sales funnel a firm configures: its stages, team, public form and inbound address."""

    __tablename__ = "pipeline_pipeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    sequence: Mapped[int] = mapped_column(Integer, default=10)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("core_team.id", ondelete="SET NULL"))
    #: Public web form key (the embeddable form posts to /pipeline/form/<key>).
    form_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: Origins allowed to post the public form (["https://firm.example"]).
    form_origins: Mapped[list] = mapped_column(JSON, default=list)
    #: Inbound e-mail address whose mail becomes leads of this pipeline.
    inbound_address: Mapped[str | None] = mapped_column(String(254), unique=True)
    #: Stale-deal rotation: no activity for N days / no next step for M days (None: off).
    stale_no_activity_days: Mapped[int | None] = mapped_column(Integer)
    stale_no_next_step_days: Mapped[int | None] = mapped_column(Integer)
    #: Assignment: "round_robin" among the team, or "territory" (rules in AssignmentRule).
    assignment: Mapped[str] = mapped_column(String(20), default="round_robin")
    last_assigned_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))

    stages: Mapped[list[Stage]] = relationship(
        lambda: Stage, back_populates="pipeline", order_by=lambda: Stage.sequence,
        cascade="all, delete-orphan")


class Stage(db.Model):
    __tablename__ = "pipeline_stage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_pipeline.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: Optional names per language: {"lv": "Piedāvājums", "ru": "Предложение", ...}.
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    sequence: Mapped[int] = mapped_column(Integer, default=10)
    probability: Mapped[int] = mapped_column(Integer, default=10)  # percent, 0..100
    color: Mapped[str | None] = mapped_column(String(16))
    folded: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(8), default="open")  # open / won / lost

    pipeline: Mapped[Pipeline] = relationship(lambda: Pipeline, back_populates="stages")


class LostReason(db.Model):
    """Why a deal was lost (seed 001: "a reason for every refusal"); editable list."""

    __tablename__ = "pipeline_lost_reason"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    sequence: Mapped[int] = mapped_column(Integer, default=10)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Tag(db.Model):
    __tablename__ = "pipeline_tag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    color: Mapped[str | None] = mapped_column(String(16))


class DealTag(db.Model):
    __tablename__ = "pipeline_deal_tag"

    deal_id: Mapped[int] = mapped_column(ForeignKey("pipeline_deal.id", ondelete="CASCADE"),
                                         primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("pipeline_tag.id", ondelete="CASCADE"),
                                        primary_key=True, index=True)


class Deal(TimelineMixin, VersionedMixin, db.Model):
    __tablename__ = "pipeline_deal"
    __record_label__ = _l("Deal")  # the audit log's name for the model
    # Stage moves (and their lost reason) are logged by the state machine in words.
    __tracked__ = ("title", "amount", "currency", "owner_id", "expected_close", "partner_id",
                   "company_id")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300), info={"label": _l("Title")})
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_pipeline.id", ondelete="RESTRICT"), info={"label": _l("Pipeline")})
    stage_id: Mapped[int] = mapped_column(ForeignKey("pipeline_stage.id", ondelete="RESTRICT"),
                                          info={"label": _l("Stage")})
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="SET NULL"), index=True,
        info={"label": _l("Contact")})
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="SET NULL"), index=True,
        info={"label": _l("Company")})
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"),
                                            info={"label": _l("Amount")})
    currency: Mapped[str] = mapped_column(String(3), default="EUR",
                                          info={"label": _l("Currency")})
    #: None: the stage's probability applies.
    probability: Mapped[int | None] = mapped_column(Integer, info={"label": _l("Probability")})
    expected_close: Mapped[date | None] = mapped_column(Date, index=True,
                                                        info={"label": _l("Expected close")})
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"), index=True,
        info={"label": _l("Salesperson")})
    team_id: Mapped[int | None] = mapped_column(ForeignKey("core_team.id", ondelete="SET NULL"),
                                                index=True)
    source: Mapped[str | None] = mapped_column(String(20), info={"label": _l("Source")})
    lost_reason_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_lost_reason.id", ondelete="RESTRICT"),
        info={"label": _l("Lost reason")})
    lost_note: Mapped[str | None] = mapped_column(Text)
    won_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lost_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stage_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Kept by activity listeners: the next planned activity and the last contact.
    next_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Marked by the rotation rules; cleared when someone acts on the deal.
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Order inside a board column (drag and drop).
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)

    pipeline: Mapped[Pipeline] = relationship(lambda: Pipeline)
    stage: Mapped[Stage] = relationship(lambda: Stage)
    lost_reason: Mapped[LostReason | None] = relationship(lambda: LostReason)
    tags: Mapped[list[Tag]] = relationship(lambda: Tag, secondary="pipeline_deal_tag",
                                           order_by=lambda: Tag.name)

    __table_args__ = (
        Index("ix_pipeline_deal_board", "pipeline_id", "active", "stage_id", "sequence", "id"),
        # A salesperson's deals; the columns after `active` let the home page's "My pipeline"
        # (open deals, total and weighted amount per currency, no next activity) read the
        # index alone.
        Index("ix_pipeline_deal_owner_active", "owner_id", "active", "stage_id", "currency",
              "amount", "probability", "next_activity_at"),
        # Covers the board's totals (count and sum per stage and currency, record rules on
        # owner/team) so that GROUP BY reads the index only: 3-7x faster over 50k deals. The
        # rule's columns come before `amount`: SQLite reads them first for every entry, and
        # the totals of a manager's board take a quarter less time that way.
        Index("ix_pipeline_deal_totals", "pipeline_id", "active", "stage_id", "currency",
              "owner_id", "team_id", "amount"),
    )

    @property
    def effective_probability(self) -> int:
        return self.probability if self.probability is not None else self.stage.probability


class StageChange(db.Model):
    """One move of a deal between stages (who, when, from, to): reports read this history."""

    __tablename__ = "pipeline_stage_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("pipeline_deal.id", ondelete="CASCADE"),
                                         index=True)
    from_stage_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_stage.id", ondelete="SET NULL"))
    to_stage_id: Mapped[int] = mapped_column(ForeignKey("pipeline_stage.id", ondelete="CASCADE"),
                                             index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(String(10), default="form")  # board, form, import, api, job
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Lead(TimelineMixin, db.Model):
    """An incoming request from any channel, before it becomes a deal."""

    __tablename__ = "pipeline_lead"
    __record_label__ = _l("Lead")  # the audit log's name for the model

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), default="manual", index=True)
    status: Mapped[str] = mapped_column(String(10), default="new", index=True)
    pipeline_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_pipeline.id", ondelete="SET NULL"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    company_name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))  # E.164 when it parses
    subject: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(16))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"), index=True)
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="SET NULL"))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_deal.id",
                                                           ondelete="SET NULL"))
    #: What the channel delivered (form fields, mail headers, PBX payload), for the record.
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 index=True)


class Call(db.Model):
    """A call from the PBX or a call-log import, matched to a contact by normalised phone."""

    __tablename__ = "pipeline_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    direction: Mapped[str] = mapped_column(String(8), default="in")  # in / out
    status: Mapped[str] = mapped_column(String(10), default="answered")  # answered / missed
    from_number: Mapped[str | None] = mapped_column(String(32), index=True)
    to_number: Mapped[str | None] = mapped_column(String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"),
                                                index=True)
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="SET NULL"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_lead.id",
                                                           ondelete="SET NULL"))


class AssignmentRule(db.Model):
    """Territory/language routing: leads matching `country`/`lang` go to `team` or `user`."""

    __tablename__ = "pipeline_assignment_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_pipeline.id", ondelete="CASCADE"), index=True)
    sequence: Mapped[int] = mapped_column(Integer, default=10)
    country: Mapped[str | None] = mapped_column(String(2))
    lang: Mapped[str | None] = mapped_column(String(16))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("core_team.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"))


class Capacity(db.Model):
    """How many live deals a salesperson may hold (seed 001), e.g. 150."""

    __tablename__ = "pipeline_capacity"

    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                         primary_key=True)
    live_deals: Mapped[int] = mapped_column(Integer, default=150)


# The deal totals table and its triggers (see totals.py).
from . import lead_models, totals  # noqa: E402,F401
from .rotation_models import OwnerMove  # noqa: E402,F401
