"""Tax and registration numbers checked per country, with python-stdnum where it can.

Why normalise: duplicate matching and the import's update-by-key compare `Partner.vat` as a
string, so "LV 4000 3245 752", "LV40003245752" and "40003245752" must become one value. We
store the national number without the EU country prefix (a Romanian CUI and its "RO" VAT form
name the same company) and without spaces or punctuation.

python-stdnum covers Latvia (PVN), Romania (CUI/CIF), Moldova (IDNO), Russia (INN, OGRN) and
every other country it has a `vat` module for. Kazakhstan's BIN/IIN are not in it: their
checksum is the published two-pass mod-11 scheme, implemented here. Uzbekistan's STIR has no
public checksum we can rely on, so only its shape (nine digits) is checked.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import stdnum
from flask_babel import gettext as _
from stdnum.exceptions import ValidationError
from stdnum.lv import pvn as lv_pvn
from stdnum.md import idno as md_idno
from stdnum.ro import cf as ro_cf
from stdnum.ru import inn as ru_inn
from stdnum.ru import ogrn as ru_ogrn

__all__ = ["InvalidTaxId", "compact", "problem", "validate", "validate_registration"]

_PUNCTUATION = re.compile(r"[\s.\-/]+")


class InvalidTaxId(ValueError):
    """`str(error)` is a translated message fit for a form field or an import row."""


def compact(value: str | None) -> str:
    """Spaces, dots, dashes and slashes removed, upper case: the fallback normal form."""
    return _PUNCTUATION.sub("", value or "").upper()


def _kz_checksum_ok(digits: str) -> bool:
    """Kazakhstan's IIN/BIN control digit: weights 1..11, then 3..11,1,2 when the first is 10."""
    numbers = [int(c) for c in digits]
    control = sum(n * w for n, w in zip(numbers[:11], range(1, 12), strict=True)) % 11
    if control == 10:
        weights = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
        control = sum(n * w for n, w in zip(numbers[:11], weights, strict=True)) % 11
    return control != 10 and control == numbers[11]


def _kz(value: str) -> str:
    number = compact(value)
    if not re.fullmatch(r"\d{12}", number):
        raise InvalidTaxId(_("A Kazakh BIN or IIN has 12 digits."))
    if not _kz_checksum_ok(number):
        raise InvalidTaxId(_("This BIN or IIN has a wrong control digit; check for a typo."))
    return number


def _uz(value: str) -> str:
    number = compact(value)
    if not re.fullmatch(r"[1-9]\d{8}", number):
        raise InvalidTaxId(_("An Uzbek STIR (TIN) has 9 digits and does not start with 0."))
    return number


def _stdnum(module: object, name: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        try:
            number = module.validate(value)  # type: ignore[attr-defined]
        except ValidationError as exc:
            raise InvalidTaxId(_("This is not a valid %(kind)s: %(reason)s", kind=name,
                                 reason=_reason(exc))) from exc
        return number

    return check


def _reason(exc: ValidationError) -> str:
    from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength

    if isinstance(exc, InvalidChecksum):
        return _("the control digit does not match (a typo?)")
    if isinstance(exc, InvalidLength):
        return _("it has the wrong number of digits")
    if isinstance(exc, InvalidFormat):
        return _("it contains characters that do not belong there")
    return _("it does not follow the country's rules")


def _ro(value: str) -> str:
    number = _stdnum(ro_cf, "CUI/CIF")(value)
    return number[2:] if number.startswith("RO") else number


_VALIDATORS: dict[str, Callable[[str], str]] = {
    "LV": _stdnum(lv_pvn, "PVN"),
    "RO": _ro,
    "MD": _stdnum(md_idno, "IDNO"),
    "KZ": _kz,
    "UZ": _uz,
    "RU": _stdnum(ru_inn, "INN"),
}


def validate(country: str | None, value: str | None) -> str:
    """The normalised tax number of a partner in `country`, or raises `InvalidTaxId`.

    Empty input gives "". A country without a known rule gets the compact form, checked by
    stdnum's `vat` module for that country when there is one.
    """
    if not value or not value.strip():
        return ""
    code = (country or "").upper()
    text = value.strip()
    if code and compact(text).startswith(code) and code in ("LV", "RO"):
        text = compact(text)[len(code):]
    checker = _VALIDATORS.get(code)
    if checker is not None:
        return checker(text)
    module = stdnum.get_cc_module(code.lower(), "vat") if code else None
    if module is not None:
        return _stdnum(module, _("VAT number"))(text)
    return compact(text)


def problem(country: str | None, value: str | None) -> str:
    """Why `validate` refuses `value`, in the current language ("" when it does not): an
    import keeps the number and its warning stores the number, not a sentence in the
    language of whoever ran the job."""
    try:
        validate(country, value)
    except InvalidTaxId as exc:
        return str(exc)
    return ""


def validate_registration(country: str | None, value: str | None) -> str:
    """A registration number normalised; Russia's OGRN/OGRNIP checked, the rest compacted.

    In Latvia, Kazakhstan and Moldova the registration and tax numbers are one number, so a
    second check would add nothing.
    """
    if not value or not value.strip():
        return ""
    if (country or "").upper() == "RU":
        return _stdnum(ru_ogrn, "OGRN")(value.strip())
    return compact(value)
