"""People and companies (one table, as Odoo's res.partner), their phones, e-mails, tags and
admin-defined custom fields, plus the search and sort columns that make lists fast.

Denormalised on purpose, for list pages that stay one query: the primary phone and e-mail,
the company's name, the folded search text and one ICU sort key per interface language live on
the partner row; `contacts_phone`, `contacts_email` and `contacts_search_token` hold every value
for duplicate matching and indexed prefix search. `services.refresh_search()` keeps them in
step; every write path (forms, import, merge, API) goes through the services module.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.api import _l, db, utcnow
from core.locking import VersionedMixin
from core.timeline import TimelineMixin

KINDS = ("person", "company")
STATUSES = ("lead", "prospect", "client", "inactive")
STATUS_LABELS = {"lead": _l("Lead"), "prospect": _l("Prospect"), "client": _l("Client"),
                 "inactive": _l("Inactive")}
SEGMENTS = ("A", "B", "C")
CUSTOM_FIELD_KINDS = ("text", "number", "date", "choice", "bool")


class Partner(TimelineMixin, VersionedMixin, db.Model):
    """A person or a company (`kind`); a person may belong to a company."""

    __tablename__ = "contacts_partner"
    __record_label__ = _l("Contact")  # the audit log's name for the model
    __tracked__ = ("name", "status", "owner_id", "company_id", "email", "phone", "segment")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default="person",
                                      info={"label": _l("Type")})
    #: Display name: the company's name, or the person's name in the firm's format.
    name: Mapped[str] = mapped_column(String(300), info={"label": _l("Name")})
    first_name: Mapped[str | None] = mapped_column(String(100),
                                                   info={"label": _l("First name")})
    last_name: Mapped[str | None] = mapped_column(String(100), info={"label": _l("Last name")})
    middle_name: Mapped[str | None] = mapped_column(String(100),
                                                    info={"label": _l("Middle name")})
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="SET NULL"), index=True,
        info={"label": _l("Company")})
    company_name: Mapped[str | None] = mapped_column(String(300))  # denormalised for lists
    job_title: Mapped[str | None] = mapped_column(String(200), info={"label": _l("Job title")})

    #: Primary phone in E.164 and primary e-mail, copied from the child tables for lists.
    phone: Mapped[str | None] = mapped_column(String(20), info={"label": _l("Phone")})
    email: Mapped[str | None] = mapped_column(String(254), info={"label": _l("E-mail")})
    website: Mapped[str | None] = mapped_column(String(300), info={"label": _l("Website")})

    street: Mapped[str | None] = mapped_column(String(300), info={"label": _l("Street")})
    city: Mapped[str | None] = mapped_column(String(120), info={"label": _l("City")})
    postcode: Mapped[str | None] = mapped_column(String(20), info={"label": _l("Postcode")})
    region: Mapped[str | None] = mapped_column(String(120), info={"label": _l("Region")})
    country: Mapped[str | None] = mapped_column(String(2), info={"label": _l("Country")})

    lang: Mapped[str | None] = mapped_column(String(16),
                                             info={"label": _l("Preferred language")})
    birthday: Mapped[date | None] = mapped_column(Date, info={"label": _l("Birthday")})
    #: Tax number (VAT/INN/BIN/IIN/STIR/IDNO/CUI), normalised (no spaces, upper case).
    vat: Mapped[str | None] = mapped_column(String(40), index=True,
                                            info={"label": _l("Tax number")})
    registration_no: Mapped[str | None] = mapped_column(
        String(40), info={"label": _l("Registration number")})

    status: Mapped[str] = mapped_column(String(12), default="lead", index=True,
                                        info={"label": _l("Status")})
    source: Mapped[str | None] = mapped_column(String(60), info={"label": _l("Source")})
    #: Indexed by `ix_contacts_partner_owner_contact` (first column) and the sort indexes.
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"), info={"label": _l("Salesperson")})
    #: ABC class by revenue, recomputed by a periodic job (None: no revenue in the period).
    segment: Mapped[str | None] = mapped_column(String(1), index=True,
                                                info={"label": _l("Segment")})
    #: The key of the record in the system it was imported from (demo data: "demo:...").
    external_id: Mapped[str | None] = mapped_column(String(100), index=True,
                                                    info={"label": _l("External ID")})
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True,
                                         info={"label": _l("Active")})

    #: Search and sort columns maintained by `services.refresh_search()`.
    search_text: Mapped[str] = mapped_column(Text, default="")
    sort_en: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    sort_lv: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    sort_ru: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    sort_uz: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    sort_kk: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    sort_ro: Mapped[bytes] = mapped_column(LargeBinary, default=b"")

    #: Activity counters kept by the services (seed 004: status and number of meetings).
    last_contact_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))

    company: Mapped[Partner | None] = relationship(lambda: Partner, remote_side=[id],
                                                   back_populates="people")
    people: Mapped[list[Partner]] = relationship(lambda: Partner, back_populates="company")
    # Classes are named by object, never by a bare string: every addon shares one declarative
    # registry, and another addon may well have its own `Tag`.
    phones: Mapped[list[PartnerPhone]] = relationship(
        lambda: PartnerPhone, back_populates="partner", cascade="all, delete-orphan",
        order_by=lambda: PartnerPhone.sequence)
    emails: Mapped[list[PartnerEmail]] = relationship(
        lambda: PartnerEmail, back_populates="partner", cascade="all, delete-orphan",
        order_by=lambda: PartnerEmail.sequence)
    tags: Mapped[list[Tag]] = relationship(lambda: Tag, secondary="contacts_partner_tag",
                                           order_by=lambda: Tag.name)

    # The list's default order per interface language, for everyone (active, key) and for a
    # salesperson whose record rule filters on the owner (owner, active, key): both are index
    # range scans, so page 2,000 costs what page 1 does.
    __table_args__ = tuple(
        Index(f"ix_contacts_partner_active_sort_{lang}", "active", f"sort_{lang}", "id")
        for lang in ("en", "lv", "ru", "uz", "kk", "ro")
    ) + tuple(
        Index(f"ix_contacts_partner_owner_sort_{lang}", "owner_id", "active", f"sort_{lang}", "id")
        for lang in ("en", "lv", "ru", "uz", "kk", "ro")
    ) + (
        # A salesperson's own clients by last contact and birthday, from the index alone: the
        # home page's "no contact for N days" count and birthdays (and any owner lookup). The
        # id rides along (SQLite's indexes hold the rowid anyway; PostgreSQL needs INCLUDE)
        # so the birthdays' ids come from an index-only scan.
        Index("ix_contacts_partner_owner_contact", "owner_id", "active", "last_contact_at",
              "birthday", postgresql_include=["id"]),
    )

    @property
    def is_company(self) -> bool:
        return self.kind == "company"


class PartnerPhone(db.Model):
    __tablename__ = "contacts_phone"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="CASCADE"), index=True)
    #: E.164 (`+37120000000`) when it parses, else the digits as typed.
    number: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(12), default="mobile")  # mobile, work, home, fax
    sequence: Mapped[int] = mapped_column(Integer, default=0)

    partner: Mapped[Partner] = relationship(lambda: Partner, back_populates="phones")


class PartnerEmail(db.Model):
    __tablename__ = "contacts_email"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="CASCADE"), index=True)
    #: Normalised: trimmed, domain lowercased (local parts are case-sensitive in theory only;
    #: matching uses `email_key`, all lowercase).
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), index=True)
    kind: Mapped[str] = mapped_column(String(12), default="work")
    sequence: Mapped[int] = mapped_column(Integer, default=0)

    partner: Mapped[Partner] = relationship(lambda: Partner, back_populates="emails")


class SearchToken(db.Model):
    """Folded words of a partner's names, company, e-mails, phone digits and tax number.

    A prefix search is an index range scan (`token >= 'berz' AND token < 'berz~'`) on both
    engines, where `LIKE '%...%'` over 100k rows would scan them all.
    """

    __tablename__ = "contacts_search_token"

    partner_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_contacts_search_token_token", "token", "partner_id"),)


class Tag(db.Model):
    __tablename__ = "contacts_tag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    color: Mapped[str | None] = mapped_column(String(16))


class PartnerTag(db.Model):
    __tablename__ = "contacts_partner_tag"

    partner_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("contacts_tag.id", ondelete="CASCADE"),
                                        primary_key=True, index=True)


class CustomField(db.Model):
    """A field an admin adds without code (seed 002: fields to collect extra client data)."""

    __tablename__ = "contacts_custom_field"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    #: Label per language: {"en": "Fleet size", "lv": "Autoparka lielums", ...}.
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    kind: Mapped[str] = mapped_column(String(10), default="text")
    #: For `choice`: [{"value": "retail", "labels": {"en": "Retail", ...}}, ...]
    choices: Mapped[list] = mapped_column(JSON, default=list)
    applies_to: Mapped[str] = mapped_column(String(10), default="both")  # person/company/both
    sequence: Mapped[int] = mapped_column(Integer, default=100)
    show_in_list: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CustomValue(db.Model):
    """One custom field's value for one partner, in the typed column the field's kind uses."""

    __tablename__ = "contacts_custom_value"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="CASCADE"), index=True)
    field_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_custom_field.id", ondelete="CASCADE"))
    value_text: Mapped[str | None] = mapped_column(String(500))
    #: `value_text` folded (script, case and diacritics away, `folding.fold`) for the list's
    #: "contains" filter: SQLite's `lower()` folds ASCII only, and nobody types "Būve" exactly.
    #: Set whenever `value_text` is (an attribute event below; the import's bulk rows set it).
    value_key: Mapped[str | None] = mapped_column(String(500))
    value_number: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    value_date: Mapped[date | None] = mapped_column(Date)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (
        UniqueConstraint("partner_id", "field_id"),
        Index("ix_contacts_custom_value_field_text", "field_id", "value_text"),
        Index("ix_contacts_custom_value_field_number", "field_id", "value_number"),
        Index("ix_contacts_custom_value_field_date", "field_id", "value_date"),
    )


@event.listens_for(CustomValue.value_text, "set")
def _fold_value_text(target: CustomValue, value: str | None, _old: Any, _initiator: Any) -> None:
    target.value_key = value_key(value)


def value_key(text: str | None) -> str | None:
    """What `CustomValue.value_key` holds for `text`."""
    from .folding import fold

    return (fold(text)[:500] or None) if text else None


class SavedFilter(db.Model):
    """A user's named list filter (the query string of the list page)."""

    __tablename__ = "contacts_saved_filter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(120))
    query: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

# Named segments, and the partner totals table with its triggers (see totals.py).
from . import segment_models, totals  # noqa: E402,F401
from .importing import models as _import_models  # noqa: E402,F401
