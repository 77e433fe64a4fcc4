"""Offer services: create, lines, totals, states, numbers, revisions, stock, the deal bridge.

Every change to an offer goes through these functions (the pages, the demo, colleagues' send
and public-link code), so the rules hold whichever way a change arrives. Callers commit.

- **Numbers** come from the platform's gap-free sequence `documents.offer`
  (`OFFER/%(year)s/`, 4 digits) and are given when an offer is first sent or confirmed, not
  when the draft is created: an abandoned draft therefore never burns a number.
- **States**: draft → sent → accepted | declined; accepted → placed (the order) → paid →
  delivered. Anything else is refused with a translated `OfferError`; every change is a line
  on the offer's timeline.
- **Frozen once sent**: lines copy their price, unit and VAT rate, and only a current draft
  can be edited, so a price change never reaches an offer the client has. Re-issuing a sent
  offer makes a new revision (same number, revision + 1) and freezes the previous one.
  Only a draft can be deleted (`delete_draft`); anything sent is what the client received.
- **Stock**: a line asking more than a tracked product's stock is flagged; confirming the
  order (`placed`) is refused until resolved, and then takes the quantities from stock.
- **Deal bridge** (hooks without a hard dependency): `documents` depends only on `contacts`.
  When the `pipeline` addon is enabled, an accepted offer linked to a deal sets the deal's
  amount and moves it to Won through `addons.pipeline.state.move_deal`, imported lazily inside
  `_feed_deal()` only when `pipeline_enabled()`. A bridge addon depending on both was the
  alternative; it would add a package for two functions, so we chose the lazy import.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core.api import (
    RateNotFound,
    User,
    addon_enabled,
    company_currency,
    db,
    define_sequence,
    format_date,
    log_entry,
    next_number,
    utcnow,
)

from .models import STATE_LABELS, Offer, OfferLine, Product
from .pricing import (
    company_country,
    compute_totals,
    price_on,
    product_vat_rate,
)

MODEL = "documents.offer"
#: Unit codes Birga itself writes (a product's default unit), shown translated; any other unit
#: is the firm's own word and is shown as typed.
UNIT_LABELS = {"pcs": _l("pcs")}
SEQUENCE = "documents.offer"
SEQUENCE_PREFIX = "OFFER/%(year)s/"

#: Allowed state changes (seed 004's order stages come after acceptance).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("sent",),
    "sent": ("accepted", "declined"),
    "accepted": ("placed",),
    "declined": (),
    "placed": ("paid",),
    "paid": ("delivered",),
    "delivered": (),
}
NUMBERED_STATES = ("sent", "accepted", "placed")


class OfferError(ValueError):
    """A refused change, with a translated message for the user."""


class LineError(OfferError):
    """A refused line value; `field` names the line's field it is about (a form shows the
    message under that input)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


# -- helpers -----------------------------------------------------------------------------------
def local_today() -> date:
    """Today in the company's time zone (offer dates, price and VAT look-ups)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(current_app.config.get("BIRGA_DEFAULT_TIMEZONE") or "UTC")
    return datetime.now(zone).date()


def to_decimal(value: Any, *, default: Decimal | None = None) -> Decimal | None:
    """A user's number (`"1 234,50"` or `1234.5`) as `Decimal`; None/`default` when blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, Decimal):
        return value
    text = str(value).replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise OfferError(_("%(value)s is not a number.", value=str(value))) from exc


def state_label(state: str) -> str:
    return str(STATE_LABELS.get(state, state))


def editable(offer: Offer) -> bool:
    """Only the current revision of a draft can change; everything else is frozen."""
    return offer.state == "draft" and offer.is_current


def _require_editable(offer: Offer) -> None:
    if not editable(offer):
        raise OfferError(_("Only a draft can be changed; re-issue the offer as a new revision."))


def unit_label(unit: str | None) -> str:
    """A line's or product's unit as printed, in the current locale ("pcs" is "gab." in lv)."""
    return str(UNIT_LABELS.get(unit or "", unit or ""))


def pipeline_enabled() -> bool:
    return addon_enabled("pipeline")


def display_number(offer: Offer) -> str:
    """`OFFER/2026/0001`, `OFFER/2026/0001-2` for later revisions, or "Draft"."""
    if not offer.number:
        return _("Draft #%(id)s", id=offer.id)
    if offer.revision > 1:
        return _("%(number)s rev. %(revision)s", number=offer.number, revision=offer.revision)
    return offer.number


def number_formatter() -> Callable[[Any], str]:
    """`display_number` for a list of offers (or rows with `id`, `number`, `revision`): the
    two translated patterns are looked up once instead of once per row."""
    draft, revised = _("Draft #%(id)s"), _("%(number)s rev. %(revision)s")

    def number(offer: Any) -> str:
        if not offer.number:
            return draft % {"id": offer.id}
        if offer.revision > 1:
            return revised % {"number": offer.number, "revision": offer.revision}
        return offer.number

    return number


# -- creating and editing ----------------------------------------------------------------------
def create_offer(partner: Any, *, user: User | None = None, currency: str | None = None,
                 lang: str | None = None, deal_id: int | None = None,
                 offer_date: date | None = None, valid_until: date | None = None,
                 payment_terms: str | None = None, notes: str | None = None,
                 seller_country: str | None = None) -> Offer:
    """A draft offer for `partner` (person or company), in the client's language by default."""
    day = offer_date or local_today()
    if valid_until is not None and valid_until < day:
        raise OfferError(_("The offer cannot expire before its date."))
    offer = Offer(partner_id=partner.id, owner_id=user.id if user else None,
                  currency=(currency or company_currency()).upper(),
                  lang=lang or getattr(partner, "lang", None) or "en",
                  seller_country=(seller_country or company_country()).upper(),
                  offer_date=day, valid_until=valid_until, payment_terms=payment_terms,
                  notes=notes, deal_id=deal_id, state="draft", revision=1, is_current=True,
                  amount_untaxed=Decimal(0), amount_tax=Decimal(0), amount_total=Decimal(0))
    db.session.add(offer)
    db.session.flush()
    log_entry(MODEL, offer.id, "system", subject=_l("Offer created"), author=user)
    return offer


def add_line(offer: Offer, *, product: Product | None = None, description: str | None = None,
             quantity: Any = 1, unit: str | None = None, unit_price: Any = None,
             discount: Any = 0, vat_rate: Any = None) -> OfferLine:
    """A product line (price valid on the offer's date and the product's dated VAT rate,
    unless given) or a free-text line (description, price and VAT rate required)."""
    _require_editable(offer)
    values = _line_values(offer, product, description=description, quantity=quantity,
                          unit=unit, unit_price=unit_price, discount=discount,
                          vat_rate=vat_rate)
    sequence = max((line.sequence for line in offer.lines), default=0) + 10
    line = OfferLine(product_id=product.id if product else None, sequence=sequence, **values)
    offer.lines.append(line)
    recompute(offer)
    return line


def _number(value: Any, field: str, *, default: Decimal | None = None) -> Decimal | None:
    try:
        return to_decimal(value, default=default)
    except OfferError as exc:
        raise LineError(str(exc), field) from exc


def _line_values(offer: Offer, product: Product | None, *, description: str | None,
                 quantity: Any, unit: str | None, unit_price: Any, discount: Any,
                 vat_rate: Any) -> dict[str, Any]:
    """A line's checked values, as `add_line` and `update_line` store them: a product line
    without a price takes the price list's price on the offer's date (and its date, for the
    outdated-price warning), without a VAT rate the product's rate on that date; a free-text
    line needs a description and a price (its VAT rate defaults to the standard rate).
    `LineError` names the field of a refused value; `RateNotFound` when no VAT rate is
    recorded for the date."""
    qty = _number(quantity, "quantity", default=Decimal(1))
    disc = _number(discount, "discount", default=Decimal(0))
    if qty is None or qty <= 0:
        raise LineError(_("The quantity must be greater than zero."), "quantity")
    if disc is None or not Decimal(0) <= disc <= Decimal(100):
        raise LineError(_("A discount is a percentage from 0 to 100."), "discount")
    price = _number(unit_price, "unit_price")
    rate = _number(vat_rate, "vat_rate")
    price_date = None
    if product is not None:
        if price is None:
            row = price_on(product, offer.currency, offer.offer_date)
            if row is None:
                # The date is not last: "2 мар. 2026 г." before a full stop reads "г..".
                raise LineError(_("On %(date)s, %(product)s has no price in %(currency)s.",
                                  product=product.name, currency=offer.currency,
                                  date=format_date(offer.offer_date)), "unit_price")
            price, price_date = Decimal(row.price), row.valid_from
        if rate is None:
            rate = product_vat_rate(product, offer.seller_country, offer.offer_date)
        description = (description or "").strip() or product_name(product, offer.lang)
        unit = unit or product.unit
    else:
        description = (description or "").strip()
        if not description:
            raise LineError(_("A line without a product needs a description."), "description")
        if price is None:
            raise LineError(_("Enter the line's price."), "unit_price")
        if rate is None:
            rate = product_vat_rate(Product(vat_category="standard"), offer.seller_country,
                                    offer.offer_date)
    if price < 0:
        raise LineError(_("A price cannot be negative."), "unit_price")
    if not Decimal(0) <= rate <= Decimal(100):
        raise LineError(_("A VAT rate is a percentage between 0 and 100."), "vat_rate")
    return {"description": description, "quantity": qty, "unit": (unit or "").strip(),
            "unit_price": price, "price_date": price_date, "discount": disc, "vat_rate": rate}


def update_line(offer: Offer, line: OfferLine, *, description: str | None = None,
                quantity: Any = 1, unit: str | None = None, unit_price: Any = None,
                discount: Any = 0, vat_rate: Any = None) -> OfferLine:
    """Change a draft's line in place, checked as `add_line` checks a new one (its product
    stays; an empty price or VAT rate takes the price list's and the product's again). A
    price kept as it was keeps its price-list date; a price typed anew is the user's own, as
    in `add_line`, and is neither warned about nor re-priced later. Totals are recomputed and
    the offer's version moves on even when they stay the same (a description), so a form
    opened on the older offer is refused rather than applied over this change."""
    _require_editable(offer)
    if line.offer_id != offer.id:
        raise OfferError(_("That line belongs to another offer."))
    product = db.session.get(Product, line.product_id) if line.product_id else None
    values = _line_values(offer, product, description=description, quantity=quantity,
                          unit=unit, unit_price=unit_price, discount=discount,
                          vat_rate=vat_rate)
    if values["price_date"] is None and line.price_date is not None \
            and values["unit_price"] == Decimal(line.unit_price):
        values["price_date"] = line.price_date  # the same price-list price, left as it was
    for key, value in values.items():
        setattr(line, key, value)
    recompute(offer)
    offer.updated_at = utcnow()  # an UPDATE of the offer row, so its version moves on
    return line


def remove_line(offer: Offer, line: OfferLine) -> None:
    _require_editable(offer)
    if line.offer_id != offer.id:
        raise OfferError(_("That line belongs to another offer."))
    offer.lines.remove(line)
    recompute(offer)


def refresh_price(offer: Offer, line: OfferLine, today: date | None = None) -> None:
    """Take today's price-list price for a draft's product line (the user's answer to the
    outdated-price warning; never done silently)."""
    _require_editable(offer)
    if line.product_id is None:
        return
    product = db.session.get(Product, line.product_id)
    row = price_on(product, offer.currency, max(today or local_today(), offer.offer_date))
    if row is None:
        raise OfferError(_("%(product)s has no price in %(currency)s.", product=product.name,
                           currency=offer.currency))
    line.unit_price, line.price_date = Decimal(row.price), row.valid_from
    recompute(offer)


def update_offer(offer: Offer, **changes: Any) -> None:
    """Header fields of a draft (currency, language, dates, terms, notes, deal)."""
    _require_editable(offer)
    allowed = {"currency", "lang", "valid_until", "payment_terms", "notes", "deal_id",
               "offer_date", "partner_id"}
    before = (offer.currency, offer.offer_date)
    for key, value in changes.items():
        if key not in allowed:
            raise ValueError(f"Not an editable offer field: {key}")
        setattr(offer, key, value)
    if offer.valid_until is not None and offer.valid_until < offer.offer_date:
        raise OfferError(_("The offer cannot expire before its date."))
    if (offer.currency, offer.offer_date) != before:
        _reprice(offer, *before)
    recompute(offer)


def _reprice(offer: Offer, old_currency: str, old_date: date) -> None:
    """After the draft's currency or date changed: lines priced from the price list take the
    price valid on the new date in the new currency (refused, naming the product, where there
    is none), and product lines whose VAT rate was the product's rate on the old date take
    the rate in force on the new one. Prices and rates typed by hand stay as typed."""
    for line in offer.lines:
        if line.product_id is None:
            continue
        product = db.session.get(Product, line.product_id)
        if line.price_date is not None:
            row = price_on(product, offer.currency, offer.offer_date)
            if row is None:
                raise OfferError(_("On %(date)s, %(product)s has no price in %(currency)s.",
                                   product=product.name, currency=offer.currency,
                                   date=format_date(offer.offer_date)))
            line.unit_price, line.price_date = Decimal(row.price), row.valid_from
        if offer.offer_date != old_date:
            try:
                was = product_vat_rate(product, offer.seller_country, old_date)
            except RateNotFound:
                continue
            if Decimal(line.vat_rate) == was:
                try:
                    line.vat_rate = product_vat_rate(product, offer.seller_country,
                                                     offer.offer_date)
                except RateNotFound as exc:
                    raise OfferError(str(exc)) from exc


def recompute(offer: Offer) -> Any:
    """Store each line's net and the offer's totals (see `pricing` for the rounding rule)."""
    totals = compute_totals(offer.lines, offer.currency)
    for line, net in zip(offer.lines, totals.line_nets, strict=True):
        line.amount_untaxed = net
    offer.amount_untaxed, offer.amount_tax = totals.untaxed, totals.tax
    offer.amount_total = totals.total
    return totals


def totals_of(offer: Offer) -> Any:
    """The per-VAT-rate breakdown for display (computed, never stored twice)."""
    return compute_totals(offer.lines, offer.currency)


def product_name(product: Product, lang: str | None) -> str:
    names = product.names or {}
    return names.get(lang or "") or names.get((lang or "")[:2]) or product.name


def product_description(product: Product, lang: str | None) -> str:
    texts = product.descriptions or {}
    return texts.get(lang or "") or texts.get((lang or "")[:2]) or texts.get("en") or ""


# -- warnings ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PriceWarning:
    line: OfferLine
    current_price: Decimal
    current_from: date


@dataclass(frozen=True)
class StockIssue:
    product: Product
    requested: Decimal
    available: Decimal


def outdated_prices(offer: Offer, today: date | None = None) -> list[PriceWarning]:
    """Draft lines whose price comes from an older price-list row than today's price
    ("never sell at an old price": a warning, never a silent change)."""
    if offer.state != "draft":
        return []
    day = today or local_today()
    found = []
    for line in offer.lines:
        if line.product_id is None or line.price_date is None:
            continue
        product = db.session.get(Product, line.product_id)
        row = price_on(product, offer.currency, max(day, offer.offer_date))
        if row is not None and row.valid_from > line.price_date:
            found.append(PriceWarning(line, Decimal(row.price), row.valid_from))
    return found


def stock_issues(offer: Offer) -> list[StockIssue]:
    """Tracked products whose lines (summed) ask more than the stock on hand."""
    wanted: dict[int, Decimal] = {}
    for line in offer.lines:
        if line.product_id is not None:
            wanted[line.product_id] = wanted.get(line.product_id, Decimal(0)) + line.quantity
    issues = []
    for product_id, quantity in wanted.items():
        product = db.session.get(Product, product_id)
        if product is None or not product.track_stock:
            continue
        available = Decimal(product.stock or 0)
        if quantity > available:
            issues.append(StockIssue(product, quantity, available))
    return issues


def flagged_line_ids(offer: Offer) -> set[int]:
    short = {issue.product.id for issue in stock_issues(offer)}
    return {line.id for line in offer.lines if line.product_id in short}


# -- states ------------------------------------------------------------------------------------
def allowed_states(offer: Offer) -> tuple[str, ...]:
    return TRANSITIONS.get(offer.state, ()) if offer.is_current else ()


def assign_number(offer: Offer) -> str:
    """Give the offer its gap-free number (kept by later revisions) unless it has one."""
    if not offer.number:
        define_sequence(SEQUENCE, SEQUENCE_PREFIX, padding=4, name="Offers")
        offer.number = next_number(SEQUENCE, when=offer.offer_date)
    return offer.number


def change_state(offer: Offer, new_state: str, *, user: User | None = None) -> Offer:
    """Move the offer to `new_state` or raise `OfferError` (the caller commits)."""
    old = offer.state
    if new_state not in allowed_states(offer):
        raise OfferError(_("An offer cannot go from %(old)s to %(new)s.",
                           old=state_label(old), new=state_label(new_state)))
    if new_state == "sent" and not offer.lines:
        raise OfferError(_("Add at least one line before sending the offer."))
    if new_state == "placed":
        issues = stock_issues(offer)
        if issues:
            raise OfferError(_("Not enough stock for %(products)s: the order cannot be "
                               "confirmed until the quantities are resolved.",
                               products=", ".join(i.product.name for i in issues)))
        _take_stock(offer)
    if new_state in NUMBERED_STATES:
        assign_number(offer)
    if new_state == "sent" and offer.sent_at is None:
        offer.sent_at = utcnow()
    offer.state = new_state
    db.session.flush()
    log_entry(MODEL, offer.id, "system", author=user,
              subject=_l("State: %(old)s → %(new)s", old=STATE_LABELS.get(old, old),
                         new=STATE_LABELS.get(new_state, new_state)))
    if new_state == "accepted":
        feed_deal(offer, user=user)
    return offer


def _take_stock(offer: Offer) -> None:
    for line in offer.lines:
        product = db.session.get(Product, line.product_id) if line.product_id else None
        if product is not None and product.track_stock:
            product.stock = Decimal(product.stock or 0) - line.quantity


# -- revisions ---------------------------------------------------------------------------------
def revise(offer: Offer, *, user: User | None = None) -> Offer:
    """Re-issue a sent (or declined) offer: a new draft revision with the same number and
    copied lines; the previous revision stays readable and frozen."""
    if not offer.is_current or offer.state not in ("sent", "declined"):
        raise OfferError(_("Only the current revision of a sent or declined offer can be "
                           "re-issued."))
    new = Offer(number=offer.number, revision=offer.revision + 1, previous_id=offer.id,
                is_current=True, state="draft", partner_id=offer.partner_id,
                deal_id=offer.deal_id, owner_id=offer.owner_id, currency=offer.currency,
                lang=offer.lang, seller_country=offer.seller_country, offer_date=local_today(),
                valid_until=offer.valid_until, payment_terms=offer.payment_terms,
                notes=offer.notes, template_id=offer.template_id)
    if new.valid_until is not None and new.valid_until < new.offer_date:
        new.valid_until = None
    for line in offer.lines:
        new.lines.append(OfferLine(
            sequence=line.sequence, product_id=line.product_id, description=line.description,
            quantity=line.quantity, unit=line.unit, unit_price=line.unit_price,
            price_date=line.price_date, discount=line.discount, vat_rate=line.vat_rate))
    offer.is_current = False
    db.session.add(new)
    recompute(new)
    db.session.flush()
    log_entry(MODEL, offer.id, "system", author=user,
              subject=_l("Re-issued as revision %(revision)s", revision=new.revision))
    log_entry(MODEL, new.id, "system", author=user,
              subject=_l("Revision %(revision)s of %(number)s", revision=new.revision,
                         number=new.number or ""))
    return new


def delete_draft(offer: Offer, *, user: User | None = None) -> Offer | None:
    """Delete a draft: its lines with it, and (the kernel's listeners, in the same flush) its
    timeline, files and activities; the audit log keeps a copy. An offer that left draft is
    a record of what the client received and is refused. The number sequence is left alone:
    a draft has no number of its own (a revision shares its predecessor's). A draft revision
    gives the current mark back to the revision it re-issued, which is returned (else None);
    that revision's timeline says so. The caller commits."""
    if offer.state != "draft":
        raise OfferError(_("Only a draft can be deleted: this offer was sent and is kept as "
                           "the record of what the client received."))
    if not offer.is_current:
        raise OfferError(_("Only the current revision of a draft can be deleted."))
    previous = db.session.get(Offer, offer.previous_id) if offer.previous_id else None
    if previous is not None and previous.number == offer.number:
        previous.is_current = True
        log_entry(MODEL, previous.id, "system", author=user,
                  subject=_l("The draft of revision %(revision)s was deleted; this revision "
                             "is current again", revision=offer.revision))
    else:
        previous = None
    db.session.delete(offer)
    return previous


def revisions(offer: Offer) -> list[Offer]:
    """Every revision of the offer's number, oldest first (drafts without number: itself)."""
    if not offer.number:
        return [offer]
    return list(db.session.scalars(select(Offer).where(Offer.number == offer.number)
                                      .order_by(Offer.revision)))


# -- the deal bridge ---------------------------------------------------------------------------
def feed_deal(offer: Offer, *, user: User | None = None) -> bool:
    """Accepted offer → the deal's amount (untaxed, in the offer's currency) and stage Won.

    Does nothing without the pipeline addon, a deal, or when the deal is already lost.
    Returns True when the deal was updated.
    """
    if offer.deal_id is None or not pipeline_enabled():
        return False
    from addons.pipeline.models import Deal, Stage  # lazy: pipeline is optional
    from addons.pipeline.state import move_deal

    deal = db.session.get(Deal, offer.deal_id)
    if deal is None or deal.lost_at is not None:
        return False
    if not offer.amount_untaxed and not deal.amount:
        # A free offer says nothing of what the deal is worth, and Won needs an amount: the
        # salesperson wins it with one (the board asks), the client's answer is kept.
        return False
    won = db.session.scalar(select(Stage).where(Stage.pipeline_id == deal.pipeline_id,
                                                Stage.kind == "won")
                            .order_by(Stage.sequence).limit(1))
    if won is None:
        return False
    deal.currency = offer.currency
    move_deal(deal, won, user=user, via="api", amount=offer.amount_untaxed)
    return True
