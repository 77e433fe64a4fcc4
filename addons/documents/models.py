"""Products with dated prices, commercial offers with lines and revisions, document templates.

An offer line copies the price, unit and VAT rate it was made with, so editing a product's
price never changes an offer already sent (seed 004: "never sell at an old price" is a warning
on drafts, not a silent rewrite of what the client received). Totals are stored as `Decimal`
computed by `pricing.compute_totals()` and rounded the way the currency requires.
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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.api import _l, db, utcnow
from core.locking import VersionedMixin
from core.timeline import TimelineMixin

#: Offer states in order; the last three are the order's life (seed 004).
OFFER_STATES = ("draft", "sent", "accepted", "declined", "placed", "paid", "delivered")
STATE_LABELS = {"draft": _l("Draft"), "sent": _l("Sent"), "accepted": _l("Accepted"),
                "declined": _l("Declined"), "placed": _l("Order placed"), "paid": _l("Paid"),
                "delivered": _l("Delivered")}
VAT_CATEGORIES = ("standard", "reduced", "zero")


class Product(db.Model):
    __tablename__ = "documents_product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    #: Name and description per language: {"en": "...", "lv": "...", ...}; `name` is the
    #: source-language fallback used when a language is missing.
    name: Mapped[str] = mapped_column(String(300))
    names: Mapped[dict] = mapped_column(JSON, default=dict)
    descriptions: Mapped[dict] = mapped_column(JSON, default=dict)
    unit: Mapped[str] = mapped_column(String(20), default="pcs")
    vat_category: Mapped[str] = mapped_column(String(10), default="standard")
    track_stock: Mapped[bool] = mapped_column(Boolean, default=False)
    stock: Mapped[Decimal | None] = mapped_column(Numeric(18, 3))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    prices: Mapped[list[ProductPrice]] = relationship(
        lambda: ProductPrice, back_populates="product", cascade="all, delete-orphan",
        order_by=lambda: (ProductPrice.currency, ProductPrice.valid_from))


class ProductPrice(db.Model):
    """A price in one currency from `valid_from` on (until the next row of that currency)."""

    __tablename__ = "documents_product_price"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("documents_product.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    price: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    valid_from: Mapped[date] = mapped_column(Date)

    product: Mapped[Product] = relationship(lambda: Product, back_populates="prices")

    __table_args__ = (
        UniqueConstraint("product_id", "currency", "valid_from"),
        Index("ix_documents_product_price_lookup", "product_id", "currency", "valid_from"),
    )


class Offer(TimelineMixin, VersionedMixin, db.Model):
    """A commercial offer (and, once accepted, the order it becomes)."""

    __tablename__ = "documents_offer"
    __record_label__ = _l("Offer")  # the audit log's name for the model
    # State changes are logged by `offers.py` with their meaning ("Sent to ..."), not here.
    __tracked__ = ("partner_id", "currency", "valid_until", "owner_id")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: `OFFER/2026/0001` from the platform's gap-free sequence, given when first sent (drafts
    #: have none, so abandoned drafts leave no gaps); revisions keep it with `revision` + 1.
    number: Mapped[str | None] = mapped_column(String(40), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    #: The offer this one revises (the previous revision stays readable, frozen).
    previous_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents_offer.id", ondelete="SET NULL"))
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(10), default="draft", index=True,
                                       info={"label": _l("State")})
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("contacts_partner.id", ondelete="RESTRICT"), index=True,
        info={"label": _l("Client")})
    #: A deal of the pipeline addon when it is enabled; a plain integer here so documents
    #: does not depend on pipeline (the bridge code checks that the addon is enabled).
    deal_id: Mapped[int | None] = mapped_column(Integer, index=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"), index=True,
        info={"label": _l("Salesperson")})
    currency: Mapped[str] = mapped_column(String(3), default="EUR",
                                          info={"label": _l("Currency")})
    #: Language of the document (the client's preferred language by default).
    lang: Mapped[str] = mapped_column(String(16), default="en")
    #: Seller's country, for the dated VAT rates (`core.refdata.vat_rate`).
    seller_country: Mapped[str] = mapped_column(String(2), default="LV")
    offer_date: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, info={"label": _l("Valid until")})
    payment_terms: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents_template.id", ondelete="SET NULL"))
    amount_untaxed: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"))
    amount_tax: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"))
    amount_total: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The PDF exactly as sent (a `core.storage` attachment id), shown again byte for byte.
    sent_attachment_id: Mapped[int | None] = mapped_column(Integer)
    #: Public link for the client: revocable (a new nonce kills old links), expiring.
    public_nonce: Mapped[str | None] = mapped_column(String(40))
    public_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)

    lines: Mapped[list[OfferLine]] = relationship(
        lambda: OfferLine, back_populates="offer", cascade="all, delete-orphan",
        order_by=lambda: OfferLine.sequence)


class OfferLine(db.Model):
    __tablename__ = "documents_offer_line"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("documents_offer.id", ondelete="CASCADE"),
                                          index=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents_product.id", ondelete="SET NULL"))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 3), default=Decimal("1"))
    unit: Mapped[str] = mapped_column(String(20), default="pcs")
    unit_price: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    #: The date of the price list row the price came from (to warn when it is outdated).
    price_date: Mapped[date | None] = mapped_column(Date)
    discount: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0"))  # percent
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0"))  # percent
    amount_untaxed: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"))

    offer: Mapped[Offer] = relationship(lambda: Offer, back_populates="lines")


class DocumentTemplate(db.Model):
    """An HTML/CSS template (offer, contract, letter), rendered in a sandbox with plain data."""

    __tablename__ = "documents_template"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="offer")  # offer, contract, letter
    #: What a generic template is filled from: partner, deal or offer.
    subject: Mapped[str] = mapped_column(String(20), default="offer")
    html: Mapped[str] = mapped_column(Text, default="")
    css: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class TemplateVersion(db.Model):
    """Every saved version of a template, so an edit can be reverted."""

    __tablename__ = "documents_template_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("documents_template.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    html: Mapped[str] = mapped_column(Text)
    css: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id",
                                                             ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("template_id", "version"),)
