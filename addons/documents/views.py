"""Web pages of the documents addon: products, offers; one blueprint for the whole addon.

Colleagues' modules add routes to `bp` (`from .views import bp`) and are imported at the
bottom of this file.

Every offer is read through `core.security` (`visible`, `get_or_404`), so another
salesperson's offer is a 404 on every page and button. Every change goes through `offers`
(the services), so the pages cannot bypass the state machine, the stock check or the freeze
of sent offers. Writes carry the version of the offer the user saw (optimistic locking): a
stale form is refused with a message, never applied over someone else's change.

Template hooks this addon offers (colleagues contribute with `addon.hook(name, ...)`):
- `documents.offer.actions` (offer): buttons next to the state buttons ("PDF", "Send");
- `documents.offer.sidebar` (offer): panels in the offer page's side column ("Public link").
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm.exc import StaleDataError

from addons.contacts import picker
from addons.contacts.models import Partner
from core.api import (
    RateNotFound,
    company_currency,
    db,
    formatters,
    get_or_404,
    permission_required,
    read,
    scoped,
    visible,
)

from . import offers as svc
from .forms import (
    LANGUAGES,
    VAT_CATEGORY_LABELS,
    ImportForm,
    LineEditForm,
    LineForm,
    OfferForm,
    PriceForm,
    ProductForm,
    language_rows,
    optional_id,
)
from .models import STATE_LABELS, Offer, OfferLine, Product, ProductPrice
from .pricing import company_country
from .products_import import import_products
from .rows import offer_rows, product_rows

bp = Blueprint("documents", __name__, static_folder="static")

PAGE_SIZE = 50


def _today() -> date:
    return svc.local_today()


def _stale() -> Any:
    flash(_("Someone else changed this offer meanwhile; nothing was overwritten. Reload the "
            "page and try again."), "error")


def _version_ok(offer: Offer) -> bool:
    """The form's version is the offer's current one (else a flashed conflict)."""
    try:
        submitted = int(request.form.get("version", ""))
    except ValueError:
        submitted = -1
    if submitted != offer.version:
        _stale()
        return False
    return True


def _commit_or_conflict() -> bool:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        _stale()
        return False
    return True


# -- list pages --------------------------------------------------------------------------------
# The list pages' statements are built once per process, with bound parameters for what varies:
# SQLAlchemy then reuses their cache key and compiled form (building and keying a fresh
# statement of this size each request cost more than running it). They select only the shown
# columns, count the matching rows for the pager in the same query, and run on the session's
# connection (`read`: for display, without the ORM's machinery).
@cache
def _products_statement(search: bool) -> Select:
    like = bindparam("like")
    conditions = [or_(Product.sku.ilike(like), Product.name.ilike(like))] if search else []
    # A count subquery rather than a window: SQLite buffers every row for `count() over ()`
    # (four times the cost of the whole query here), and the count reads the index only.
    matching = select(func.count(Product.id)).where(*conditions).scalar_subquery()
    shown = (select(Product.id, Product.sku, Product.name, Product.unit, Product.track_stock,
                    Product.stock, Product.active, matching.label("matching"))
             .where(*conditions)
             .order_by(Product.sku).limit(bindparam("limit")).offset(bindparam("offset"))
             .subquery("shown"))
    price = (select(ProductPrice.price)  # today's price: the latest row on or before today
             .where(ProductPrice.product_id == shown.c.id,
                    ProductPrice.currency == bindparam("currency"),
                    ProductPrice.valid_from <= bindparam("today"))
             .order_by(ProductPrice.valid_from.desc()).limit(1).scalar_subquery())
    return select(shown, price.label("price")).order_by(shown.c.sku)


@cache
def _offers_order() -> Select:
    """A page of offer ids in list order, and how many match. The record rule's clause (per
    user) is added to this small statement; the rows are then read by id with a prebuilt one."""
    return (select(Offer.id, func.count().over().label("matching"))
            .order_by(Offer.created_at.desc(), Offer.id.desc()))


@cache
def _offers_rows() -> Select:
    return (select(Offer.id, Offer.number, Offer.revision, Offer.offer_date, Offer.valid_until,
                   Offer.state, Offer.amount_total, Offer.currency,
                   Partner.name.label("client"))
            .outerjoin(Partner, Partner.id == Offer.partner_id)
            .where(Offer.id.in_(bindparam("ids", expanding=True))))


def _total(rows: list[Any], page: int, count: Callable[[], Select]) -> int:
    """How many rows match: the count a page's rows carry; a query only when the page is past
    the end (and so has no rows to carry it)."""
    if rows:
        return int(rows[0].matching)
    return 0 if page == 1 else int(read(count()).scalar() or 0)


def _pages(total: int) -> int:
    return max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)


# -- products ----------------------------------------------------------------------------------
@bp.route("/products")
@permission_required("documents.read")
def products():
    """The catalogue with today's prices and stock: every reader (salespeople quote from it);
    creating and importing stay with `documents.manage`."""
    query = (request.args.get("q") or "").strip()
    page = max(request.args.get("page", 1, type=int), 1)
    currency = company_currency()
    like = f"%{query}%"
    rows = read(_products_statement(bool(query)), {
        "like": like, "limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE,
        "currency": currency, "today": _today()}).all()
    total = _total(rows, page, lambda: select(func.count(Product.id)).where(
        *([or_(Product.sku.ilike(like), Product.name.ilike(like))] if query else [])))
    return render_template("documents/products.html",
                           rows=product_rows(rows, currency, formatters()), currency=currency,
                           query=query, page=page, total=total, pages=_pages(total),
                           can_manage=current_user.has_permission("documents.manage"))


def _language_values(prefix: str) -> dict[str, str]:
    values = {}
    for key, value in request.form.items():
        if key.startswith(prefix) and value.strip():
            values[key[len(prefix):][:16]] = value.strip()
    return values


@bp.route("/products/new", methods=["GET", "POST"])
@bp.route("/products/<int:product_id>", methods=["GET", "POST"])
@permission_required("documents.read")
def product_form(product_id: int | None = None):
    """The product's form for managers; a read-only card (names, prices) for other readers."""
    if not current_user.has_permission("documents.manage"):
        if product_id is None or request.method != "GET":
            abort(404)
        return render_template("documents/product_view.html",
                               product=db.get_or_404(Product, product_id),
                               languages=dict(LANGUAGES),
                               vat_labels=VAT_CATEGORY_LABELS, country=company_country(),
                               unit_label=svc.unit_label)
    product = db.get_or_404(Product, product_id) if product_id else None
    form = ProductForm(obj=product)
    if request.method == "GET" and product is not None:
        form.stock.data = "" if product.stock is None else str(product.stock)
    if form.validate_on_submit():
        duplicate = db.session.scalar(select(Product.id).where(
            Product.sku == form.sku.data.strip(), Product.id != (product_id or 0)))
        if duplicate:
            form.sku.errors.append(_("Another product has this SKU."))
        else:
            if product is None:
                product = Product()
                db.session.add(product)
            product.sku, product.name = form.sku.data.strip(), form.name.data.strip()
            product.unit, product.vat_category = form.unit.data.strip(), form.vat_category.data
            product.track_stock, product.active = form.track_stock.data, form.active.data
            product.stock = svc.to_decimal(form.stock.data)
            product.names = _language_values("name_")
            product.descriptions = _language_values("description_")
            db.session.commit()
            flash(_("Product saved."), "success")
            return redirect(url_for(".product_form", product_id=product.id))
    rows = language_rows(product.names if product else None,
                         product.descriptions if product else None)
    price_form = PriceForm(formdata=None, currency=company_currency(), valid_from=_today())
    return render_template("documents/product_form.html", form=form, product=product,
                           name_rows=rows, price_form=price_form,
                           country=company_country())


@bp.route("/products/<int:product_id>/prices", methods=["POST"])
@permission_required("documents.manage")
def product_price(product_id: int):
    """A new dated price (or a correction of the row with the same currency and date)."""
    product = db.get_or_404(Product, product_id)
    form = PriceForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for(".product_form", product_id=product.id))
    try:
        price = svc.to_decimal(form.price.data)
    except svc.OfferError as exc:
        flash(str(exc), "error")
        return redirect(url_for(".product_form", product_id=product.id))
    if price is None or price < 0:
        flash(_("A price cannot be negative."), "error")
        return redirect(url_for(".product_form", product_id=product.id))
    currency = form.currency.data.upper()
    row = db.session.scalar(select(ProductPrice).where(
        ProductPrice.product_id == product.id, ProductPrice.currency == currency,
        ProductPrice.valid_from == form.valid_from.data))
    if row is None:
        db.session.add(ProductPrice(product_id=product.id, currency=currency, price=price,
                                    valid_from=form.valid_from.data))
    else:
        row.price = price
    db.session.commit()
    flash(_("Price saved."), "success")
    return redirect(url_for(".product_form", product_id=product.id))


@bp.route("/products/import", methods=["GET", "POST"])
@permission_required("documents.manage")
def product_import():
    form = ImportForm()
    result = None
    if request.method == "GET":
        form.valid_from.data = _today()
    if form.validate_on_submit():
        raw = form.file.data.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            flash(_("The file is not UTF-8 text."), "error")
        else:
            result = import_products(text, valid_from=form.valid_from.data,
                                     country=company_country())
            db.session.commit()
            flash(ngettext("%(num)d product created, %(updated)s updated.",
                           "%(num)d products created, %(updated)s updated.",
                           result.created, updated=result.updated), "success")
    return render_template("documents/product_import.html", form=form, result=result)


# -- offers ------------------------------------------------------------------------------------
@bp.route("/offers")
@permission_required("documents.read")
def offers():
    state = request.args.get("state") or ""
    owner = "me" if request.args.get("owner") == "me" else ""
    expiring = request.args.get("expiring", type=int)
    expiring = expiring if expiring and 0 < expiring <= MAX_EXPIRING_DAYS else None
    conditions = offer_conditions(state=state, owner=owner, expiring=expiring)
    page = max(request.args.get("page", 1, type=int), 1)
    # The ids of the page among the offers the record rule lets the user see, then their rows.
    order = read(scoped(_offers_order().where(*conditions), model=Offer)
                 .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    found = {row.id: row for row in read(_offers_rows(), {"ids": [o.id for o in order]})} \
        if order else {}
    rows = [found[o.id] for o in order if o.id in found]  # (unless deleted in between)
    total = _total(order, page, lambda: scoped(select(func.count(Offer.id)).where(*conditions),
                                               model=Offer))
    state_names = {code: str(label) for code, label in STATE_LABELS.items()}
    extra = {k: v for k, v in (("owner", owner), ("expiring", expiring)) if v}
    empty = _("No offers match these filters.") if state or extra else _("No offers yet.")
    return render_template("documents/offers.html", state=state, states=state_names,
                           rows=offer_rows(rows, svc.number_formatter(), formatters(),
                                           state_names, empty),
                           page=page, total=total, pages=_pages(total), extra=extra,
                           extra_query="".join(f"&{k}={v}" for k, v in extra.items()))


#: The longest "validity ends within N days" the offer list accepts (`?expiring=N`).
MAX_EXPIRING_DAYS = 366


def offer_conditions(*, state: str = "", owner: str = "", expiring: int | None = None,
                     user: Any = None, today: date | None = None) -> list[Any]:
    """The offer list's filters as WHERE conditions (the record rule is added by `scoped`):
    a state, `owner="me"` (the user's own offers) and `expiring` (valid until today or one of
    the next N days). The dashboard counts with the same conditions it links to."""
    conditions: list[Any] = [Offer.is_current.is_(True)]
    if state in STATE_LABELS:
        conditions.append(Offer.state == state)
    if owner == "me":
        conditions.append(Offer.owner_id == (user or current_user).id)
    if expiring:
        start = today or _today()
        conditions.append(Offer.valid_until.between(start, start + timedelta(days=expiring)))
    return conditions


def _deal_or_404(deal_id: int | None) -> int | None:
    """A deal the user may see (only when pipeline is enabled), else 404; None stays None."""
    if not deal_id:
        return None
    if not svc.pipeline_enabled():
        abort(404)
    from addons.pipeline.models import Deal  # lazy: pipeline is optional

    return get_or_404(Deal, deal_id).id


@bp.route("/offers/new", methods=["GET", "POST"])
@permission_required("documents.write")
def offer_new():
    form = OfferForm()
    if request.method == "GET":
        partner = picker.visible_partner(request.args.get("partner_id", type=int))
        _show_client(form, partner)
        form.deal_id.data = request.args.get("deal_id", type=int)
        form.currency.data = company_currency()
        form.offer_date.data = _today()
        form.lang.data = _document_lang(partner, dict(form.lang.choices))
    valid = form.validate_on_submit()  # first: validation resets the fields' errors
    client = _resolve_client(form) if request.method == "POST" else None
    if valid and client is not None:
        try:
            offer = svc.create_offer(
                client, user=current_user, currency=form.currency.data,
                lang=form.lang.data, deal_id=_deal_or_404(form.deal_id.data),
                offer_date=form.offer_date.data, valid_until=form.valid_until.data,
                payment_terms=form.payment_terms.data or None, notes=form.notes.data or None)
        except svc.OfferError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            return redirect(url_for(".offer", offer_id=offer.id))
    return _offer_form(form, None, client)


def _document_lang(partner: Partner | None, choices: dict[str, Any]) -> str:
    """A new offer's language: the client's preferred one, else the user's interface language
    (a Latvian salesperson writes to a client without a preference in Latvian)."""
    for wanted in (partner.lang if partner else None, str(get_locale() or "")):
        code = (wanted or "").replace("-", "_").split("_")[0].lower()
        if code in choices:
            return code
    return "en"


def _show_client(form: OfferForm, partner: Partner | None) -> None:
    form.partner_id.data = str(partner.id) if partner is not None else ""
    form.partner_name.data = partner.name if partner is not None else ""


def _resolve_client(form: OfferForm, offer: Offer | None = None) -> Partner | None:
    """The client the posted name and id mean (`contacts.picker`: contacts outside the user's
    record rules are "not found"); None with the field's error set when there is none."""
    typed = request.form.get("partner_name") if "partner_name" in request.form else None
    result = picker.resolve(typed, request.form.get("partner_id"), None,
                            current_id=offer.partner_id if offer is not None else None)
    form.client_choices = result.candidates
    if result.partner is None:
        form.partner_name.errors = [*form.partner_name.errors,
                                    result.error or _("Choose the client.")]
        form.partner_id.data = ""
        return None
    form.partner_id.data = str(result.partner.id)
    return result.partner


def _deal_choices(client: Partner | None, current: int | None) -> list[tuple[int | str, str]]:
    """The deals an offer for `client` may belong to: the client's (and its company's) deals
    the user may see, newest first, and the offer's present deal. Empty without pipeline."""
    if not svc.pipeline_enabled():
        return []
    from addons.pipeline.models import Deal  # lazy: pipeline is optional

    wanted = [Deal.id == current] if current else []
    if client is not None:
        wanted += [Deal.partner_id == client.id, Deal.company_id == client.id]
        if client.company_id:
            wanted.append(Deal.company_id == client.company_id)
    rows = db.session.execute(visible(Deal).with_only_columns(Deal.id, Deal.title)
                              .where(or_(*wanted)).order_by(Deal.id.desc()).limit(50)
                              ) if wanted else []
    return [("", "—"), *((deal_id, title) for deal_id, title in rows)]


def _offer_form(form: OfferForm, offer: Offer | None, client: Partner | None):
    """The offer form page; `client` (resolved or the offer's) chooses the deals offered."""
    if client is None and form.partner_id.data:
        client = picker.visible_partner(optional_id(form.partner_id.data))
    form.deal_id.choices = _deal_choices(client, form.deal_id.data)
    return render_template("documents/offer_form.html", form=form, offer=offer,
                           client_choices=getattr(form, "client_choices", None))


@bp.route("/offers/<int:offer_id>/edit", methods=["GET", "POST"])
@permission_required("documents.write")
def offer_edit(offer_id: int):
    offer = get_or_404(Offer, offer_id)
    if not svc.editable(offer):
        flash(_("Only a draft can be changed; re-issue the offer as a new revision."), "error")
        return redirect(url_for(".offer", offer_id=offer.id))
    form = OfferForm(obj=offer)
    if request.method == "GET":
        # A client outside the user's rules keeps its id but shows no name.
        shown = picker.visible_partner(offer.partner_id)
        form.partner_id.data = str(offer.partner_id)
        form.partner_name.data = shown.name if shown is not None else ""
    valid = form.validate_on_submit()  # first: validation resets the fields' errors
    client = _resolve_client(form, offer) if request.method == "POST" else None
    if valid and client is not None:
        if _version_ok(offer):
            try:
                svc.update_offer(offer, partner_id=client.id,
                                 currency=form.currency.data.upper(), lang=form.lang.data,
                                 offer_date=form.offer_date.data,
                                 valid_until=form.valid_until.data,
                                 payment_terms=form.payment_terms.data or None,
                                 notes=form.notes.data or None,
                                 deal_id=_deal_or_404(form.deal_id.data))
            except svc.OfferError as exc:
                db.session.rollback()
                flash(str(exc), "error")
            else:
                if _commit_or_conflict():
                    flash(_("Offer saved."), "success")
                return redirect(url_for(".offer", offer_id=offer_id))
    form.version.data = offer.version
    return _offer_form(form, offer, client)


def _line_form(offer: Offer, *, posted: bool = True) -> LineForm:
    """The add-line form; `posted=False` for the page, which never shows another form's post
    in it (an edited row's values share its field names)."""
    form = LineForm() if posted else LineForm(formdata=None)
    products = db.session.scalars(select(Product).where(Product.active.is_(True))
                                  .order_by(Product.sku).limit(1000))
    form.product_id.choices = [("", _("Free text"))] + [
        (str(p.id), f"{p.sku} · {svc.product_name(p, offer.lang)}") for p in products]
    form.version.data = offer.version
    return form


@bp.route("/offers/<int:offer_id>")
@permission_required("documents.read")
def offer(offer_id: int):
    return _offer_page(get_or_404(Offer, offer_id))


def _offer_page(offer: Offer, *, line_edit: LineEditForm | None = None,
                editing: int | None = None) -> str:
    """The offer page; with `editing` (a line id) and its form, that line's row is a form."""
    partner = db.session.get(Partner, offer.partner_id)
    warnings = svc.outdated_prices(offer)
    issues = svc.stock_issues(offer)
    history = [o for o in svc.revisions(offer) if o.id == offer.id
               or db.session.scalar(visible(Offer).where(Offer.id == o.id)) is not None]
    can_write = current_user.has_permission("documents.write")
    return render_template(
        "documents/offer.html", offer=offer, partner=partner, totals=svc.totals_of(offer),
        warnings=warnings, issues=issues, flagged=svc.flagged_line_ids(offer),
        next_states=svc.allowed_states(offer), state_label=svc.state_label,
        editable=svc.editable(offer),
        line_form=_line_form(offer, posted=False) if svc.editable(offer) else None,
        revisions=history, number=svc.display_number, can_write=can_write,
        can_delete=can_write and svc.editable(offer),
        can_revise=offer.is_current and offer.state in ("sent", "declined"),
        editing=editing if line_edit is not None else None, line_edit=line_edit,
        model=svc.MODEL, languages=dict(LANGUAGES), unit_label=svc.unit_label)


def _to_offer(offer_id: int) -> Any:
    return redirect(url_for(".offer", offer_id=offer_id))


def _act_on_offer(offer_id: int, act: Callable[[Offer], Any],
                  errors: tuple[type[Exception], ...] = (svc.OfferError,)) -> tuple[bool, Any]:
    """The shape of every button on an offer: load the offer (404 if unseen), refuse a stale
    form, run `act(offer)` and commit. Returns (done, what `act` returned); not done when the
    form was stale, `act` raised one of `errors` (rolled back, its message flashed) or another
    user's commit came first (flashed): the caller then only redirects."""
    offer = get_or_404(Offer, offer_id)
    if not _version_ok(offer):
        return False, None
    try:
        result = act(offer)
    except errors as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return False, None
    return _commit_or_conflict(), result


@bp.route("/offers/<int:offer_id>/lines", methods=["POST"])
@permission_required("documents.write")
def offer_line_add(offer_id: int):
    def add(offer: Offer) -> None:
        form = _line_form(offer)
        if not form.validate_on_submit():
            for errors in form.errors.values():
                for error in errors:
                    flash(error, "error")
            return  # nothing changed: the commit that follows is empty
        product = None
        if form.product_id.data:
            product = db.session.get(Product, int(form.product_id.data)) \
                if form.product_id.data.isdigit() else None
            if product is None:
                abort(404)
        svc.add_line(offer, product=product, description=form.description.data,
                     quantity=form.quantity.data, unit=form.unit.data or None,
                     unit_price=form.unit_price.data, discount=form.discount.data,
                     vat_rate=form.vat_rate.data)

    _act_on_offer(offer_id, add, errors=(svc.OfferError, RateNotFound))
    return _to_offer(offer_id)


def _line_of(offer: Offer, line_id: int) -> OfferLine:
    line = db.session.get(OfferLine, line_id)
    if line is None or line.offer_id != offer.id:
        abort(404)
    return line


@bp.route("/offers/<int:offer_id>/lines/<int:line_id>/delete", methods=["POST"])
@permission_required("documents.write")
def offer_line_delete(offer_id: int, line_id: int):
    _act_on_offer(offer_id, lambda offer: svc.remove_line(offer, _line_of(offer, line_id)))
    return _to_offer(offer_id)


def _plain_number(value: Any) -> str:
    """A stored amount as the edit form shows it: `3` for 3.000, `19.99` for 19.9900."""
    return "" if value is None else format(Decimal(value).normalize(), "f")


@bp.route("/offers/<int:offer_id>/lines/<int:line_id>/edit", methods=["GET", "POST"])
@permission_required("documents.write")
def offer_line_edit(offer_id: int, line_id: int):
    """A draft's line edited in place: the offer page with that row as a form. A refused
    value shows the page again with what the user typed and the reason under the field; a
    stale form (the offer changed since the page was opened) is not applied, and shows the
    typed values again on the current offer, to be saved again after a look."""
    offer = get_or_404(Offer, offer_id)
    line = db.session.get(OfferLine, line_id)
    if line is None or line.offer_id != offer.id:
        flash(_("That line is no longer on this offer; someone removed it meanwhile."),
              "error")
        return _to_offer(offer.id)
    if not svc.editable(offer):
        flash(_("Only a draft can be changed; re-issue the offer as a new revision."), "error")
        return _to_offer(offer.id)
    if request.method == "GET":
        form = LineEditForm(formdata=None, description=line.description,
                            quantity=_plain_number(line.quantity), unit=line.unit,
                            unit_price=_plain_number(line.unit_price),
                            discount=_plain_number(line.discount),
                            vat_rate=_plain_number(line.vat_rate))
        form.version.data = offer.version
        return _offer_page(offer, line_edit=form, editing=line.id)
    form = LineEditForm()
    if form.validate_on_submit() and _version_ok(offer):
        try:
            svc.update_line(offer, line, description=form.description.data,
                            quantity=form.quantity.data, unit=form.unit.data,
                            unit_price=form.unit_price.data, discount=form.discount.data,
                            vat_rate=form.vat_rate.data)
        except svc.LineError as exc:
            db.session.rollback()
            getattr(form, exc.field).errors.append(str(exc))
        except RateNotFound as exc:  # an empty VAT rate, and none recorded for the date
            db.session.rollback()
            form.vat_rate.errors.append(str(exc))
        except svc.OfferError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            if _commit_or_conflict():
                flash(_("Line saved."), "success")
                return redirect(url_for(".offer", offer_id=offer.id, _anchor=f"line-{line.id}"))
        offer = get_or_404(Offer, offer_id)  # as it is now, after a rollback
    if not svc.editable(offer) or db.session.get(OfferLine, line_id) is None:
        return _to_offer(offer_id)  # sent or the line removed meanwhile: nothing to edit
    if any(field.errors for field in form):
        flash(_("The line was not saved: correct the values shown in its row."), "error")
    form.version.data = offer.version  # typed values kept; the next save applies them
    return _offer_page(offer, line_edit=form, editing=line_id)


@bp.route("/offers/<int:offer_id>/lines/<int:line_id>/price", methods=["POST"])
@permission_required("documents.write")
def offer_line_price(offer_id: int, line_id: int):
    _act_on_offer(offer_id, lambda offer: svc.refresh_price(offer, _line_of(offer, line_id)))
    return _to_offer(offer_id)


@bp.route("/offers/<int:offer_id>/state/<state>", methods=["POST"])
@permission_required("documents.write")
def offer_state(offer_id: int, state: str):
    from .sending import SendError, freeze_pdf

    def change(offer: Offer) -> None:
        svc.change_state(offer, state, user=current_user)
        if state == "sent":  # handed over or mailed from elsewhere: keep what they got
            freeze_pdf(offer, user=current_user)

    done, _result = _act_on_offer(offer_id, change, errors=(svc.OfferError, SendError))
    if done:
        flash(_("Offer is now: %(state)s", state=svc.state_label(state)), "success")
    return _to_offer(offer_id)


@bp.route("/offers/<int:offer_id>/delete", methods=["POST"])
@permission_required("documents.write")
def offer_delete(offer_id: int):
    """Delete a draft. The offer page's button posts here and gets a confirmation page (so it
    works without JavaScript); that page posts `confirmed=yes`. Offers that left draft are
    refused with the reason (`offers.delete_draft`)."""
    offer = get_or_404(Offer, offer_id)
    if not svc.editable(offer):  # refused with its reason, whatever the form's version
        try:
            svc.delete_draft(offer)
        except svc.OfferError as exc:
            flash(str(exc), "error")
        return _to_offer(offer_id)
    if request.form.get("confirmed") != "yes":
        if not _version_ok(offer):
            return _to_offer(offer_id)
        from core.storage import attachments_for

        return render_template("documents/offer_delete.html", offer=offer,
                               partner=db.session.get(Partner, offer.partner_id),
                               number=svc.display_number,
                               files=len(attachments_for(svc.MODEL, offer.id)))
    label = svc.display_number(offer)
    done, current = _act_on_offer(offer_id,
                                  lambda offer: svc.delete_draft(offer, user=current_user))
    if not done:
        return _to_offer(offer_id) if db.session.get(Offer, offer_id) is not None \
            else redirect(url_for(".offers"))
    flash(_("%(offer)s was deleted.", offer=label), "success")
    if current is not None:
        return _to_offer(current.id)
    return redirect(url_for(".offers"))


@bp.route("/offers/<int:offer_id>/revise", methods=["POST"])
@permission_required("documents.write")
def offer_revise(offer_id: int):
    done, new = _act_on_offer(offer_id, lambda offer: svc.revise(offer, user=current_user))
    if not done:
        return _to_offer(offer_id)
    flash(_("Revision %(revision)s created.", revision=new.revision), "success")
    return _to_offer(new.id)


# -- panels on other addons' pages (template hooks) ---------------------------------------------
def render_partner_offers(partner: Any = None, **_ctx: Any) -> Markup:
    """`contacts.card.sidebar`: the client's current offers the user may see."""
    if partner is None or not current_user.is_authenticated \
            or not current_user.has_permission("documents.read"):
        return Markup("")
    rows = list(db.session.scalars(
        visible(Offer).where(Offer.partner_id == partner.id, Offer.is_current.is_(True))
        .order_by(Offer.id.desc()).limit(11)))
    return Markup(render_template(  # noqa: S704 - an autoescaped template we own
        "documents/offer_partner_panel.html", partner=partner, offers=rows[:10],
        more=len(rows) > 10, number=svc.display_number, state_label=svc.state_label,
        can_write=current_user.has_permission("documents.write")))


def render_deal_offers(deal: Any = None, **_ctx: Any) -> Markup:
    """`pipeline.deal.main` (registered only with pipeline enabled): the deal's offers."""
    if deal is None or not current_user.is_authenticated \
            or not current_user.has_permission("documents.read"):
        return Markup("")
    rows = list(db.session.scalars(
        visible(Offer).where(Offer.deal_id == deal.id, Offer.is_current.is_(True))
        .order_by(Offer.id.desc())))
    return Markup(render_template(  # noqa: S704 - an autoescaped template we own
        "documents/offer_deal_panel.html", deal=deal, offers=rows, number=svc.display_number,
        state_label=svc.state_label,
        can_write=current_user.has_permission("documents.write")))


from . import file_views  # noqa: E402,F401,I001
from . import public  # noqa: E402,F401,I001
from . import sending  # noqa: E402,F401,I001
from . import template_views  # noqa: E402,F401,I001
