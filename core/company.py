"""The firm's own details: the seller printed on offers, contracts and letters.

An administrator edits them on Settings → Company details; they live in one row of
`core_company`. The `BIRGA_COMPANY_*` configuration keys stay the defaults: a field left empty
on the page (or no row at all, as on an installation that never opened the page) prints the
configured value, so existing configurations keep working after the upgrade.

`company_details()` is what documents read: one small query per call (one call per PDF). The
validators here (IBAN, BIC, e-mail, logo) are shared by the admin form and by code that sets
the details directly, so what the page accepts is what the row holds.
"""
from __future__ import annotations

import base64
import io
import re
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .locking import VersionedMixin

__all__ = ["CONFIG_KEYS", "LOGO_MAX_BYTES", "LOGO_MAX_PIXELS", "CompanyDetails",
           "InvalidCompanyValue", "company_details", "company_row", "format_iban", "logo_data_url",
           "normalize_bic", "normalize_email", "normalize_iban", "save_details"]

#: The only row's primary key: a second row can never be inserted by two admins at once.
SINGLETON_ID = 1
#: An uploaded logo is at most this large (it is stored in the row and read for every PDF).
LOGO_MAX_BYTES = 1024 * 1024
#: ... and at most this many pixels wide and high (a small PNG can decode to gigabytes).
LOGO_MAX_PIXELS = 4000
_LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": ("image/png", "PNG"), b"\xff\xd8\xff": ("image/jpeg", "JPEG")}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: Field -> (configuration key, default when neither the row nor the config has a value).
CONFIG_KEYS: dict[str, tuple[str, str]] = {
    "name": ("BIRGA_COMPANY_NAME", "Birga"),
    "address": ("BIRGA_COMPANY_ADDRESS", ""),
    "vat": ("BIRGA_COMPANY_VAT", ""),
    "registration_no": ("BIRGA_COMPANY_REGISTRATION_NO", ""),
    "bank": ("BIRGA_COMPANY_BANK", ""),
    "phone": ("BIRGA_COMPANY_PHONE", ""),
    "email": ("BIRGA_COMPANY_EMAIL", ""),
    "country": ("BIRGA_COMPANY_COUNTRY", "LV"),
    #: A `data:` URL (what the page stores) or a URL the documents' PDF fetcher serves.
    "logo": ("BIRGA_COMPANY_LOGO", ""),
    "iban": ("BIRGA_COMPANY_IBAN", ""),
    "bic": ("BIRGA_COMPANY_BIC", ""),
    "website": ("BIRGA_COMPANY_WEBSITE", ""),
}


class CompanyDetails(VersionedMixin, db.Model):
    """The one row of the firm's details; empty columns fall back to the configuration."""

    __tablename__ = "core_company"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(300), info={"label": _l("Legal name")})
    address: Mapped[str | None] = mapped_column(Text, info={"label": _l("Address")})
    country: Mapped[str | None] = mapped_column(String(2), info={"label": _l("Country")})
    vat: Mapped[str | None] = mapped_column(String(40), info={"label": _l("VAT number")})
    registration_no: Mapped[str | None] = mapped_column(
        String(40), info={"label": _l("Registration number")})
    bank: Mapped[str | None] = mapped_column(String(200), info={"label": _l("Bank")})
    iban: Mapped[str | None] = mapped_column(String(34), info={"label": _l("IBAN")})
    bic: Mapped[str | None] = mapped_column(String(11), info={"label": _l("SWIFT/BIC")})
    phone: Mapped[str | None] = mapped_column(String(40), info={"label": _l("Phone")})
    email: Mapped[str | None] = mapped_column(String(254), info={"label": _l("E-mail")})
    website: Mapped[str | None] = mapped_column(String(300), info={"label": _l("Website")})
    #: A `data:image/png;base64,...` or `data:image/jpeg;base64,...` URL (see `logo_data_url`).
    logo: Mapped[str | None] = mapped_column(Text, info={"label": _l("Logo")})


def company_row() -> CompanyDetails | None:
    """The row, or None before an administrator first saved the page."""
    return db.session.get(CompanyDetails, SINGLETON_ID)


def company_details() -> dict[str, str]:
    """The seller as plain strings for documents: the row's values, each empty one replaced
    by its `BIRGA_COMPANY_*` setting. Keys: name, address, vat, registration_no, bank, phone,
    email, country, logo, iban, bic, website. The IBAN is grouped in fours for print."""
    columns = [getattr(CompanyDetails, key) for key in CONFIG_KEYS]
    found = db.session.execute(select(*columns).where(CompanyDetails.id == SINGLETON_ID)).first()
    stored = dict(zip(CONFIG_KEYS, found, strict=True)) if found is not None else {}
    config = current_app.config
    details = {}
    for key, (setting, default) in CONFIG_KEYS.items():
        value = stored.get(key)
        if value is None or not str(value).strip():
            value = config.get(setting) or default
        details[key] = str(value)
    if details["iban"]:
        details["iban"] = format_iban(details["iban"])
    details["country"] = details["country"].upper()
    return details


# -- validation ----------------------------------------------------------------------------
class InvalidCompanyValue(ValueError):
    """A value the details may not hold; `str(error)` is the translated reason."""


def format_iban(value: str) -> str:
    """An IBAN grouped in fours, as banks print it (`LV80 BANK 0000 4351 9500 1`)."""
    compact = re.sub(r"\s+", "", value).upper()
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def _validated(value: str | None, validate: Any, reason: Any) -> str | None:
    """`validate(text)` (a python-stdnum validator: the compact form, or ValidationError) of
    the trimmed value; None when empty; `reason` (lazy text) when refused."""
    from stdnum.exceptions import ValidationError

    text = (value or "").strip()
    if not text:
        return None
    try:
        return validate(text)
    except ValidationError:
        raise InvalidCompanyValue(str(reason)) from None


def normalize_iban(value: str | None) -> str | None:
    """The IBAN without spaces, upper case, after checking its length and check digits
    (python-stdnum); None when empty."""
    from stdnum import iban

    return _validated(value, iban.validate, _l(
        "This is not a valid IBAN: check the country code, the length and the check digits."))


def normalize_bic(value: str | None) -> str | None:
    """The SWIFT/BIC code, upper case, 8 or 11 characters; None when empty."""
    from stdnum import bic

    return _validated(value, bic.validate, _l(
        "This is not a valid SWIFT/BIC code: 8 or 11 letters and digits."))


def normalize_email(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > 254 or not _EMAIL.match(text):
        raise InvalidCompanyValue(_("Enter a valid e-mail address."))
    return text


def logo_data_url(data: bytes) -> str:
    """A PNG or JPEG upload as a `data:` URL (the PDF fetcher reads those in memory and
    fetches nothing else). Refused: other types, more than `LOGO_MAX_BYTES`, images that do
    not decode or are larger than `LOGO_MAX_PIXELS` on a side."""
    from .storage import human_size

    if len(data) > LOGO_MAX_BYTES:
        raise InvalidCompanyValue(_("The logo may be at most %(size)s.",
                                    size=human_size(LOGO_MAX_BYTES)))
    kind = next((found for magic, found in _LOGO_TYPES.items() if data.startswith(magic)), None)
    if kind is None:
        raise InvalidCompanyValue(_("The logo must be a PNG or JPEG image."))
    mime, pil_format = kind
    _check_image(data, pil_format)
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _check_image(data: bytes, pil_format: str) -> None:
    """Pillow (installed with WeasyPrint) reads the header and checks the file's structure."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - WeasyPrint depends on Pillow
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            found = image.format
            image.verify()
    except Exception:  # noqa: BLE001 - any decoder error means "not an image we print"
        raise InvalidCompanyValue(_("The logo must be a PNG or JPEG image.")) from None
    if found != pil_format:
        raise InvalidCompanyValue(_("The logo must be a PNG or JPEG image."))
    if width > LOGO_MAX_PIXELS or height > LOGO_MAX_PIXELS:
        raise InvalidCompanyValue(_("The logo may be at most %(pixels)d pixels wide and high.",
                                    pixels=LOGO_MAX_PIXELS))


def save_details(values: dict[str, Any]) -> CompanyDetails:
    """Create or update the row with already validated `values` (no version check: for
    scripts and tests; the page goes through `core.locking.save_or_conflict`). The caller
    commits."""
    row = company_row()
    if row is None:
        row = CompanyDetails(id=SINGLETON_ID)
        db.session.add(row)
    for key, value in values.items():
        if key not in CONFIG_KEYS:
            raise ValueError(f"Not a company detail: {key}")
        setattr(row, key, value)
    db.session.flush()
    return row
