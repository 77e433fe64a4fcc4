"""Forms of the products and offers pages (Flask-WTF: each carries its CSRF token).

Amounts are text fields parsed with `Decimal` by the services (`offers.to_decimal`), so a
user's "1 234,50" is read exactly, never through a float.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from .models import VAT_CATEGORIES

VAT_CATEGORY_LABELS = {"standard": _l("Standard rate"), "reduced": _l("Reduced rate"),
                       "zero": _l("Zero rate")}
LANGUAGES = [("en", "English"), ("lv", "Latviešu"), ("ru", "Русский"), ("uz", "Oʻzbekcha"),
             ("kk", "Қазақша"), ("ro", "Română")]
CURRENCY = Regexp(r"^[A-Za-z]{3}$", message=_l("A currency is a three-letter ISO code."))
NUMBER = Regexp(r"^-?[\d\s\u00a0]*[.,]?\d*$", message=_l("Enter a number."))


class ProductForm(FlaskForm):
    sku = StringField(_l("SKU"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=300)])
    unit = StringField(_l("Unit"), default="pcs", validators=[DataRequired(), Length(max=20)])
    vat_category = SelectField(_l("VAT category"),
                               choices=[(c, VAT_CATEGORY_LABELS[c]) for c in VAT_CATEGORIES])
    track_stock = BooleanField(_l("Track stock"))
    stock = StringField(_l("Stock on hand"), validators=[Optional(), NUMBER])
    active = BooleanField(_l("Active"), default=True)
    version = HiddenField()


def language_rows(names: dict[str, str] | None,
                  texts: dict[str, str] | None) -> list[tuple[str, str, str, str]]:
    """Per-language name/description inputs are plain request fields `name_<lang>` and
    `description_<lang>`: (code, label, name, description) for each document language."""
    names, texts = names or {}, texts or {}
    return [(code, label, names.get(code, ""), texts.get(code, "")) for code, label in LANGUAGES]


class PriceForm(FlaskForm):
    currency = StringField(_l("Currency"), default="EUR", validators=[DataRequired(), CURRENCY])
    price = StringField(_l("Price"), validators=[DataRequired(), NUMBER])
    valid_from = DateField(_l("Valid from"), validators=[DataRequired()])


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])
    valid_from = DateField(_l("Prices valid from"), validators=[DataRequired()])


def optional_id(value: object) -> int | None:
    """A select's value as a record id; the empty choice (and anything malformed) is None."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


class OfferForm(FlaskForm):
    #: The client: a name typed or picked from suggestions (contacts' `picker`), and its id.
    partner_name = StringField(_l("Client"), validators=[Optional(), Length(max=200)])
    partner_id = HiddenField()
    #: The client's deals when pipeline is enabled (choices set by the view).
    deal_id = SelectField(_l("Deal"), coerce=optional_id, validate_choice=False)
    currency = StringField(_l("Currency"), validators=[DataRequired(), CURRENCY])
    lang = SelectField(_l("Language of the document"), choices=LANGUAGES)
    offer_date = DateField(_l("Offer date"), validators=[DataRequired()])
    valid_until = DateField(_l("Valid until"), validators=[Optional()])
    payment_terms = TextAreaField(_l("Payment terms"), validators=[Optional(),
                                                                   Length(max=2000)])
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=5000)])
    version = HiddenField()


class LineForm(FlaskForm):
    product_id = SelectField(_l("Product"), coerce=str, validate_choice=False)
    description = StringField(_l("Description"), validators=[Optional(), Length(max=2000)])
    quantity = StringField(_l("Quantity"), default="1", validators=[DataRequired(), NUMBER])
    unit = StringField(_l("Unit"), validators=[Optional(), Length(max=20)])
    unit_price = StringField(_l("Price"), validators=[Optional(), NUMBER])
    discount = StringField(_l("Discount %"), default="0", validators=[Optional(), NUMBER])
    vat_rate = StringField(_l("VAT %"), validators=[Optional(), NUMBER])
    version = HiddenField()


class LineEditForm(FlaskForm):
    """A draft's line changed in place on the offer page (its product stays): the values
    of `LineForm` but the product, and the version of the offer the user saw."""

    description = StringField(_l("Description"), validators=[Optional(), Length(max=2000)])
    quantity = StringField(_l("Quantity"), validators=[
        DataRequired(message=_l("Enter the quantity.")), NUMBER])
    unit = StringField(_l("Unit"), validators=[Optional(), Length(max=20)])
    unit_price = StringField(_l("Price"), validators=[Optional(), NUMBER])
    discount = StringField(_l("Discount %"), validators=[Optional(), NUMBER])
    vat_rate = StringField(_l("VAT %"), validators=[Optional(), NUMBER])
    version = HiddenField()


class VersionedActionForm(FlaskForm):
    """A state button or line removal: the CSRF token and the version the user saw."""

    version = HiddenField()
