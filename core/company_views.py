"""Settings → Company details: the administrator edits the seller printed on documents.

Administrators only (`core.admin`; everyone else gets a 404). Saving checks the version the
form was rendered with (`core.locking`), so two administrators cannot overwrite each other,
and writes one audit-log row naming the fields that changed (the logo as yes/no, never its
bytes).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms import ValidationError as FormValidationError
from wtforms.validators import Length, Optional

from .audit import audit_changes, audit_subject
from .company import (
    CONFIG_KEYS,
    LOGO_MAX_BYTES,
    LOGO_MAX_PIXELS,
    SINGLETON_ID,
    CompanyDetails,
    InvalidCompanyValue,
    company_row,
    format_iban,
    logo_data_url,
    normalize_bic,
    normalize_email,
    normalize_iban,
)
from .extensions import db
from .locking import Conflict, save_or_conflict
from .refdata import Country, country_name
from .security import permission_required
from .storage import human_size

bp = Blueprint("company", __name__)

#: The text columns the form edits, in the order they are saved (the logo is handled apart).
TEXT_FIELDS = ("name", "address", "country", "vat", "registration_no", "bank", "iban", "bic",
               "phone", "email", "website")


def _checked(normalize: Any) -> Any:
    """A WTForms inline validator from one of `core.company`'s normalizers."""

    def validator(form: FlaskForm, field: Any) -> None:
        try:
            field.data = normalize(field.data)
        except InvalidCompanyValue as exc:
            raise FormValidationError(str(exc)) from None

    return validator


class CompanyForm(FlaskForm):
    version = HiddenField()
    name = StringField(_l("Legal name"), validators=[Optional(), Length(max=300)])
    address = TextAreaField(_l("Address"), validators=[Optional(), Length(max=1000)])
    country = SelectField(_l("Country"), choices=[], validators=[Optional()])
    vat = StringField(_l("VAT number"), validators=[Optional(), Length(max=40)])
    registration_no = StringField(_l("Registration number"),
                                  validators=[Optional(), Length(max=40)])
    bank = StringField(_l("Bank"), validators=[Optional(), Length(max=200)])
    iban = StringField(_l("IBAN"), validators=[Optional(), Length(max=50),
                                               _checked(normalize_iban)])
    bic = StringField(_l("SWIFT/BIC"), validators=[Optional(), Length(max=20),
                                                   _checked(normalize_bic)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=254),
                                                  _checked(normalize_email)])
    website = StringField(_l("Website"), validators=[Optional(), Length(max=300)])
    logo = FileField(_l("Logo"))
    remove_logo = BooleanField(_l("Remove the logo"))

    #: Set by `validate_logo`: the new logo's data URL, when a file was uploaded.
    logo_url: str | None = None

    def validate_logo(self, field: Any) -> None:
        upload = field.data
        if upload is None or not getattr(upload, "filename", None):
            return
        data = upload.stream.read(LOGO_MAX_BYTES + 1)
        try:
            self.logo_url = logo_data_url(data)
        except InvalidCompanyValue as exc:
            raise FormValidationError(str(exc)) from None

    def values(self) -> dict[str, Any]:
        """The columns to write: stripped text, None for empty."""
        found: dict[str, Any] = {}
        for key in TEXT_FIELDS:
            value = getattr(self, key).data
            if isinstance(value, str):
                value = value.replace("\r\n", "\n").strip() or None
            found[key] = value or None
        if self.remove_logo.data:
            found["logo"] = None
        elif self.logo_url:
            found["logo"] = self.logo_url
        return found


def country_choices(current: str | None) -> list[tuple[str, str]]:
    """Active countries of the reference data (every CLDR territory when none are loaded),
    named and sorted in the reader's language; the saved country is always offered."""
    codes = set(db.session.scalars(select(Country.code).where(Country.active.is_(True))))
    locale = get_locale()
    if not codes and locale is not None:
        codes = {c for c in locale.territories if len(c) == 2 and c.isalpha()
                 and c not in ("ZZ", "EU", "EZ", "UN", "QO", "XA", "XB")}
    if current:
        codes.add(current)
    named = [(code, country_name(code)) for code in codes]
    named.sort(key=lambda item: _sort_key(item[1], str(locale or "en")))
    return [("", "—"), *named]


def _sort_key(text: str, locale: str) -> Any:
    """The reader's alphabet (ICU, bundled by pyicu-wheels); case-folded text without it."""
    try:
        import icu
    except ImportError:  # pragma: no cover - a dependency
        return text.casefold()
    collator = icu.Collator.createInstance(icu.Locale(locale))
    return collator.getSortKey(text)


def _defaults() -> dict[str, str]:
    """What an empty field prints: the configured `BIRGA_COMPANY_*` value (placeholders)."""
    config = current_app.config
    return {key: str(config.get(setting) or default) for key, (setting, default)
            in CONFIG_KEYS.items()}


def _version(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return -1  # no row has it: a conflict, never a 500


def _without_logo(conflict: Conflict) -> Conflict:
    """A data URL is no text to show an administrator: the logo is left out of the list."""
    return Conflict(conflict.model, conflict.submitted_version, conflict.current_version,
                    [c for c in conflict.changes if c.field != "logo"])


def _audit_value(key: str, value: Any) -> Any:
    return bool(value) if key == "logo" else value


def _render(form: CompanyForm, row: CompanyDetails | None, **extra: Any) -> str:
    form.logo.description = _("PNG or JPEG, at most %(size)s and %(pixels)d pixels on a side.",
                              size=human_size(LOGO_MAX_BYTES), pixels=LOGO_MAX_PIXELS)
    return render_template("core/company.html", form=form, row=row, defaults=_defaults(),
                           **extra)


@bp.route("/admin/company", methods=["GET", "POST"])
@permission_required("core.admin")
def edit():
    row = company_row()
    if request.method == "GET":
        form = CompanyForm(obj=row)
        form.version.data = str(row.version) if row is not None else "0"
        if row is not None and row.iban:
            form.iban.data = format_iban(row.iban)
    else:
        form = CompanyForm()
    form.country.choices = country_choices(row.country if row is not None else None)
    if not form.validate_on_submit():
        return _render(form, row)
    values = form.values()
    submitted = _version(form.version.data)
    conflict: Conflict | None = None
    if row is None:
        old: dict[str, Any] = {}
        row = CompanyDetails(id=SINGLETON_ID, **values)
        db.session.add(row)
        try:
            db.session.flush()
        except IntegrityError:  # another administrator saved the first version meanwhile
            db.session.rollback()
            conflict = Conflict(CompanyDetails.__name__, submitted, SINGLETON_ID)
    else:
        old = {key: getattr(row, key) for key in values}
        conflict = save_or_conflict(row, submitted, values)
    if conflict is not None:
        db.session.rollback()
        current = company_row()
        form.version.data = str(current.version) if current is not None else "0"
        return _render(form, current, conflict=_without_logo(conflict))
    audit_changes("core.company", row.id,
                  {key: _audit_value(key, value) for key, value in old.items()} if old else None,
                  {key: _audit_value(key, value) for key, value in values.items()})
    db.session.commit()
    flash(_("Company details saved."), "success")
    return redirect(url_for("company.edit"))


def init_app(app: Flask) -> None:
    """The page and its entry under Settings (administrators only)."""
    registry = app.extensions["birga"].registry
    app.register_blueprint(bp)
    audit_subject("core.company", CompanyDetails, _l("Company details"),
                  fields={"logo": _l("Logo")})
    registry.add_menu("settings.company", _l("Company details"), "company.edit",
                      parent="settings", sequence=5, permission="core.admin")


__all__ = ["CompanyForm", "bp", "country_choices", "init_app"]
