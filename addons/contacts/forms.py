"""Forms of the contacts pages (Flask-WTF, so each carries its CSRF token).

The partner form is built per request: its custom fields, owners and tags come from the
database. Phones and e-mails are validated by the same functions the services store them
with, so what the form accepts is what the database holds.
"""
from __future__ import annotations

from typing import Any

import phonenumbers
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from core.api import User, db, read, shared_cache
from core.i18n import LANGUAGES

from . import services, taxids
from .models import STATUS_LABELS, STATUSES, CustomField, Tag

PHONE_KINDS = [("mobile", _l("Mobile")), ("work", _l("Work")), ("home", _l("Home")),
               ("fax", _l("Fax"))]
EMAIL_KINDS = [("work", _l("Work")), ("home", _l("Home")), ("other", _l("Other"))]


def _valid_phone(form: Form, field: Any) -> None:
    raw = (field.data or "").strip()
    if not raw:
        return
    text = "+" + raw[2:] if raw.startswith("00") else raw
    try:
        number = phonenumbers.parse(text, services.default_region())
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(_("This is not a phone number. Write it with the country code, "
                                "e.g. +371 2000 0000.")) from exc
    if not phonenumbers.is_possible_number(number):
        raise ValidationError(_("This number has too few or too many digits for its "
                                "country."))


def _valid_email(form: Form, field: Any) -> None:
    try:
        services.normalize_email(field.data)
    except ValueError as exc:
        raise ValidationError(_("This is not an e-mail address.")) from exc


class PhoneEntry(Form):
    number = StringField(_l("Phone"), validators=[Optional(), Length(max=40), _valid_phone])
    kind = SelectField(_l("Kind"), choices=PHONE_KINDS, default="mobile")


class EmailEntry(Form):
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=254), _valid_email])
    kind = SelectField(_l("Kind"), choices=EMAIL_KINDS, default="work")


def country_choices() -> list[tuple[str, str]]:
    """Countries from `core.refdata` when loaded, else every CLDR territory; in the reader's
    language and alphabet."""
    from flask_babel import get_locale

    from core.api import Country, country_name

    from .folding import sort_key

    codes = list(db.session.scalars(select(Country.code).where(Country.active.is_(True))))
    if not codes:
        locale = get_locale()
        codes = [c for c in (locale.territories if locale else {}) if len(c) == 2
                 and c.isalpha() and c not in ("ZZ", "EU", "EZ", "UN", "QO", "XA", "XB")]
    lang = str(get_locale() or "en").split("_")[0]
    named = [(code, country_name(code)) for code in codes]
    named.sort(key=lambda item: sort_key(item[1], lang))
    return [("", "—"), *named]


@shared_cache(User)
def _active_users() -> tuple[tuple[int, str], ...]:
    rows = read(select(User.id, User.name, User.login)
                .where(User.active.is_(True)).order_by(User.name))
    return tuple((uid, name or login) for uid, name, login in rows)


def owner_choices() -> list[tuple[int | str, str]]:
    """"—" and the active users by name (read once per worker until a user changes)."""
    return [("", "—"), *_active_users()]


def tag_choices() -> list[tuple[int, str]]:
    return [(t.id, t.name) for t in db.session.scalars(select(Tag).order_by(Tag.name))]


def _optional_int(value: Any) -> int | None:
    if value in (None, "", "None"):
        return None
    return int(value)


class PartnerFormBase(FlaskForm):
    """Fields shared by people and companies; the custom fields are added per request."""

    kind = HiddenField(default="person")
    version = HiddenField()
    create_anyway = BooleanField(_l("Create it anyway: it is not one of these"))

    name = StringField(_l("Company name"), validators=[Optional(), Length(max=300)])
    first_name = StringField(_l("First name"), validators=[Optional(), Length(max=100)])
    middle_name = StringField(_l("Middle name or patronymic"),
                              validators=[Optional(), Length(max=100)])
    last_name = StringField(_l("Last name"), validators=[Optional(), Length(max=100)])
    company = StringField(_l("Company"), validators=[Optional(), Length(max=300)],
                          description=_l("The name of an existing company."))
    job_title = StringField(_l("Job title"), validators=[Optional(), Length(max=200)])

    phones = FieldList(FormField(PhoneEntry), min_entries=2, max_entries=10)
    emails = FieldList(FormField(EmailEntry), min_entries=2, max_entries=10)
    website = StringField(_l("Website"), validators=[Optional(), Length(max=300)])

    street = StringField(_l("Street"), validators=[Optional(), Length(max=300)])
    city = StringField(_l("City"), validators=[Optional(), Length(max=120)])
    postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=20)])
    region = StringField(_l("Region"), validators=[Optional(), Length(max=120)])
    country = SelectField(_l("Country"), choices=[], validate_choice=False)
    lang = SelectField(_l("Preferred language"), choices=[("", "—"), *LANGUAGES.items()],
                       default="", validators=[Optional()])
    birthday = DateField(_l("Birthday"), validators=[Optional()])

    vat = StringField(_l("Tax number"), validators=[Optional(), Length(max=40)])
    registration_no = StringField(_l("Registration number"),
                                  validators=[Optional(), Length(max=40)])

    status = SelectField(_l("Status"), choices=[(s, STATUS_LABELS[s]) for s in STATUSES],
                         default="lead")
    source = StringField(_l("Source"), validators=[Optional(), Length(max=60)],
                         description=_l("Where the contact came from: website, referral, "
                                        "exhibition…"))
    owner_id = SelectField(_l("Salesperson"), coerce=_optional_int, choices=[],
                           validate_choice=False)
    tags = SelectMultipleField(_l("Tags"), coerce=int, choices=[], validate_choice=False)
    new_tags = StringField(_l("New tags"), validators=[Optional(), Length(max=300)],
                           description=_l("Separated by commas."))

    #: Filled by `partner_form()`: (field, form attribute name) of the custom fields.
    custom: list[tuple[CustomField, str]] = []

    def validate(self, extra_validators: Any = None) -> bool:
        """Field checks, then the name rule (an `Optional()` field skips inline checks)."""
        valid = super().validate(extra_validators)
        if self.kind.data == "company":
            if not (self.name.data or "").strip():
                self.name.errors = [*self.name.errors, _("A company needs a name.")]
                valid = False
        elif not any((f.data or "").strip() for f in (self.first_name, self.last_name)):
            self.last_name.errors = [*self.last_name.errors,
                                     _("A person needs a first or a last name.")]
            valid = False
        return valid

    def validate_vat(self, field: Any) -> None:
        try:
            field.data = taxids.validate(self.country.data, field.data) or None
        except taxids.InvalidTaxId as exc:
            raise ValidationError(str(exc)) from exc

    def validate_registration_no(self, field: Any) -> None:
        try:
            field.data = taxids.validate_registration(self.country.data, field.data) or None
        except taxids.InvalidTaxId as exc:
            raise ValidationError(str(exc)) from exc

    # -- what the form holds, in the shapes the services take -----------------------------
    def phone_list(self) -> list[tuple[str, str]]:
        return [(e.form.number.data.strip(), e.form.kind.data) for e in self.phones
                if (e.form.number.data or "").strip()]

    def email_list(self) -> list[tuple[str, str]]:
        return [(e.form.email.data.strip(), e.form.kind.data) for e in self.emails
                if (e.form.email.data or "").strip()]

    def new_tag_names(self) -> list[str]:
        return [t.strip()[:80] for t in (self.new_tags.data or "").split(",") if t.strip()]


def partner_form(custom_fields: list[CustomField], *, extra_rows: int = 1,
                 **kwargs: Any) -> PartnerFormBase:
    """A partner form with the custom fields as `cf<id>`; choices loaded now."""
    from .custom_fields import form_field

    attrs: dict[str, Any] = {}
    for field in custom_fields:
        attrs[f"cf{field.id}"] = form_field(field)
    form_class = type("PartnerForm", (PartnerFormBase,), attrs)
    form_class.custom = [(f, f"cf{f.id}") for f in custom_fields]
    form = form_class(**kwargs)
    form.country.choices = country_choices()
    form.owner_id.choices = owner_choices()
    form.tags.choices = tag_choices()
    for rows in (form.phones, form.emails):
        filled = sum(1 for e in rows if any((v.data or "") for v in e.form
                                             if v.name.endswith(("number", "email"))))
        while len(rows) < min(rows.max_entries, max(rows.min_entries, filled + extra_rows)):
            rows.append_entry()
    return form


class BulkForm(FlaskForm):
    """An action on the rows ticked in the list; ids come from the `ids` checkboxes."""

    action = SelectField(_l("With the selected"), choices=[
        ("owner", _l("Assign to salesperson")), ("tag", _l("Add tag")),
        ("status", _l("Change status")), ("segment", _l("Add to segment")),
        ("merge", _l("Merge")), ("delete", _l("Delete"))])
    owner_id = SelectField(_l("Salesperson"), coerce=_optional_int, choices=[],
                           validate_choice=False)
    tag = StringField(_l("Tag"), validators=[Optional(), Length(max=80)])
    segment_id = SelectField(_l("Segment"), coerce=_optional_int, choices=[],
                             validate_choice=False)
    #: Only the chosen action's parameter matters; the view checks it.
    status = SelectField(_l("Status"), choices=[(s, STATUS_LABELS[s]) for s in STATUSES],
                         validate_choice=False)
    next = HiddenField()


class SavedFilterForm(FlaskForm):
    name = StringField(_l("Save this filter as"), validators=[DataRequired(), Length(max=120)])
    query = HiddenField()


def custom_field_form(field: CustomField | None) -> FlaskForm:
    """The admin form for one custom field: a label and an options list per language."""
    from .custom_fields import APPLIES_LABELS, KIND_LABELS

    attrs: dict[str, Any] = {
        "code": StringField(_l("Code"), validators=[Optional(), Length(max=40)],
                            description=_l("Used by import and export columns; made from the "
                                           "English label when empty.")),
        "kind": SelectField(_l("Kind"), choices=list(KIND_LABELS.items())),
        "applies_to": SelectField(_l("For"), choices=list(APPLIES_LABELS.items())),
        "sequence": IntegerField(_l("Order"), default=100,
                                 validators=[Optional(), NumberRange(min=0, max=10000)]),
        "show_in_list": BooleanField(_l("Show as a column in the list")),
        "active": BooleanField(_l("Active"), default=True),
    }
    for code, language in LANGUAGES.items():
        attrs[f"label_{code}"] = StringField(
            _l("Label (%(language)s)", language=language),
            validators=[DataRequired()] if code == "en" else [Optional(), Length(max=120)])
        attrs[f"choices_{code}"] = TextAreaField(
            _l("Options (%(language)s), one per line", language=language),
            validators=[Optional()])
    form_class = type("CustomFieldForm", (FlaskForm,), attrs)
    data: dict[str, Any] = {}
    if field is not None:
        data = {"code": field.code, "kind": field.kind, "applies_to": field.applies_to,
                "sequence": field.sequence, "show_in_list": field.show_in_list,
                "active": field.active}
        for code in LANGUAGES:
            data[f"label_{code}"] = (field.labels or {}).get(code, "")
            data[f"choices_{code}"] = "\n".join(
                (c.get("labels") or {}).get(code, "") for c in field.choices or [])
    form = form_class(data=data) if field is not None else form_class()
    if field is not None:
        form.kind.render_kw = {"disabled": True}
        form.kind.data = field.kind
    return form
