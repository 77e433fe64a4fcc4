"""Columns to fields: the catalogue of importable fields, the first guess from the header, and
turning one row of text into checked partner values (or a translatable error).

A row's errors are a code and parameters, not text: a long import runs in a worker with no
reader's language, so messages are translated when someone reads them (`message()`).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import select

from core.api import db

from ..folding import fold
from ..models import STATUSES, CustomField, Partner
from ..services import default_region, normalize_email, normalize_phone_parts
from ..taxids import problem

#: Field key -> label. Several columns may map to `phone` or `email` (all are kept, the first
#: is the primary); `company_*` link a person to a company created or matched by the import.
FIELDS: dict[str, Any] = {
    "external_id": _l("External id"),
    "kind": _l("Type (person or company)"),
    "name": _l("Name (full name or company name)"),
    "first_name": _l("First name"),
    "last_name": _l("Last name"),
    "middle_name": _l("Middle name"),
    "job_title": _l("Job title"),
    "phone": _l("Phone"),
    "email": _l("E-mail"),
    "website": _l("Website"),
    "street": _l("Street"),
    "city": _l("City"),
    "postcode": _l("Postcode"),
    "region": _l("Region"),
    "country": _l("Country"),
    "lang": _l("Preferred language"),
    "birthday": _l("Birthday"),
    "vat": _l("Tax number"),
    "registration_no": _l("Registration number"),
    "status": _l("Status"),
    "source": _l("Source"),
    "owner": _l("Salesperson (login or e-mail)"),
    "created_at": _l("Created on"),
    "company_name": _l("Company name"),
    "company_vat": _l("Company tax number"),
    "company_external_id": _l("Company external id"),
}
MULTI_FIELDS = ("phone", "email")
#: Keys an import can match existing records on (to update them instead of duplicating).
MATCH_KEYS: dict[str, Any] = {
    "email": _l("E-mail"), "phone": _l("Phone"), "vat": _l("Tax number"),
    "external_id": _l("External id"),
}
CUSTOM_PREFIX = "custom:"

#: Folded header words -> field, in the languages we serve and the usual export spellings.
_SYNONYMS = {
    "external_id": ["id", "external id", "external_id", "code", "kod", "код", "identifikators"],
    "kind": ["type", "kind", "тип", "veids", "tip"],
    "name": ["name", "full name", "fn", "название", "наименование", "фио", "nosaukums",
             "denumire", "nomi", "atauy"],
    "first_name": ["first name", "first_name", "given name", "имя", "vards", "prenume", "ism",
                   "аты", "aty"],
    "last_name": ["last name", "last_name", "surname", "family name", "фамилия", "uzvards",
                  "nume", "familiya", "тегі", "tegi"],
    "middle_name": ["middle name", "middle_name", "отчество", "patronymic",
                    "otchestvo", "әкесінің аты"],
    "job_title": ["job title", "job_title", "title", "position", "должность", "amats",
                  "functie", "lavozim"],
    "phone": ["phone", "phone 1", "phone 2", "phone 3", "mobile", "telephone", "tel",
              "телефон", "talrunis", "telefon", "мобильный"],
    "email": ["email", "e-mail", "e-mail 1", "e-mail 2", "mail", "почта", "epasts",
              "электронная почта", "e pasts"],
    "website": ["website", "web", "url", "сайт", "majaslapa", "sayt"],
    "street": ["street", "address", "адрес", "улица", "iela", "adrese", "strada", "adresa",
               "manzil"],
    "city": ["city", "город", "pilseta", "oras", "shahar", "qala"],
    "postcode": ["postcode", "zip", "postal code", "индекс", "pasta indekss", "cod postal"],
    "region": ["region", "регион", "область", "novads", "judet", "viloyat"],
    "country": ["country", "country code", "страна", "valsts", "tara", "mamlakat", "el"],
    "lang": ["language", "lang", "язык", "valoda", "limba", "til"],
    "birthday": ["birthday", "birth date", "date of birth", "дата рождения", "dzimsanas datums",
                 "data nasterii", "tugilgan sana"],
    "vat": ["vat", "vat_no", "vat no", "tax number", "tax id", "инн", "бин", "иин", "pvn",
            "pvn numurs", "cui", "idno", "stir", "inn"],
    "registration_no": ["registration number", "reg no", "registration_no", "огрн",
                        "registracijas numurs", "cod fiscal"],
    "status": ["status", "статус", "statuss"],
    "source": ["source", "channel", "источник", "avots", "sursa", "manba"],
    "owner": ["owner", "salesperson", "manager", "responsible", "ответственный", "менеджер",
              "atbildigais"],
    "created_at": ["created", "created_at", "created at", "date created", "дата создания"],
    "company_name": ["company", "company name", "company_name", "organisation",
                     "organization", "организация", "компания", "uznemums", "companie",
                     "kompaniya", "org"],
    "company_vat": ["company vat", "company tax number", "инн организации"],
    "company_external_id": ["company_id", "company id", "company external id"],
}


def field_choices(kind: str = "person") -> list[tuple[str, str]]:
    """(key, label) for the mapping screen's selects: built-in fields, then custom fields."""
    choices = [(key, str(label)) for key, label in FIELDS.items()]
    for custom in db.session.scalars(select(CustomField).where(
            CustomField.active.is_(True)).order_by(CustomField.sequence, CustomField.id)):
        if custom.applies_to in ("both", kind):
            choices.append((CUSTOM_PREFIX + custom.code, custom_label(custom)))
    return choices


def custom_label(custom: CustomField) -> str:
    from flask_babel import get_locale

    labels = custom.labels or {}
    locale = str(get_locale() or "en")
    return labels.get(locale) or labels.get("en") or custom.code


def guess_mapping(columns: list[str], custom: dict[str, str] | None = None, *,
                  kind: str = "person") -> dict[str, str]:
    """A first mapping from the header (the user corrects it on the page)."""
    lookup: dict[str, str] = {}
    for key, words in _SYNONYMS.items():
        for word in words:
            lookup.setdefault(fold(word), key)
    for key, label in FIELDS.items():  # headers of our own export, in any language
        lookup.setdefault(fold(str(label)), key)
        lookup.setdefault(fold(key), key)
    if kind == "company":  # a sheet of companies: their name is the record's name
        for word in _SYNONYMS["company_name"]:
            lookup[fold(word)] = "name"
    for name, code in (custom or {}).items():  # a custom field's code or any of its labels
        lookup[fold(name)] = CUSTOM_PREFIX + code
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(columns):
        key = lookup.get(fold(header)) or lookup.get(fold(re.sub(r"\s*\d+$", "", header)))
        if key and (key in MULTI_FIELDS or key not in taken):
            mapping[str(index)] = key
            taken.add(key)
    return mapping


# -- messages ------------------------------------------------------------------------------
_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "name_missing": lambda p: _("A name is needed: a full name, a first or a last name."),
    "email_invalid": lambda p: _("%(value)s is not an e-mail address.", **p),
    "date_invalid": lambda p: _("%(value)s is not a date (%(field)s).", **p),
    "number_invalid": lambda p: _("%(value)s is not a number (%(field)s).", **p),
    "bool_invalid": lambda p: _("%(value)s is not yes or no (%(field)s).", **p),
    "choice_invalid": lambda p: _("%(value)s is not one of the choices of %(field)s.", **p),
    "country_invalid": lambda p: _("%(value)s is neither a country name nor a two-letter "
                                   "country code.", **p),
    "status_invalid": lambda p: _("%(value)s is not a status (lead, prospect, client, "
                                  "inactive).", **p),
    "kind_invalid": lambda p: _("%(value)s is neither a person nor a company.", **p),
    "too_long": lambda p: ngettext("%(field)s is longer than %(max)s character.",
                                   "%(field)s is longer than %(max)s characters.", p["max"], **p),
    "owner_unknown": lambda p: _("There is no user %(value)s.", **p),
    "company_unknown": lambda p: _("There is no company with the external id %(value)s.",
                                   **p),
    "key_ambiguous": lambda p: _("%(value)s matches several existing contacts.", **p),
    "key_not_visible": lambda p: _("%(value)s belongs to a contact you may not see; the row "
                                   "was not imported.", **p),
    "key_repeated": lambda p: _("Row %(row)s already has the same %(key)s.", **p),
    # The reason is worked out again in the reader's language (results stored before kept
    # it as text: `detail`).
    "vat_unchecked": lambda p: _("The tax number is kept as written: %(detail)s",
                                 detail=p.get("detail") or problem(p.get("country"),
                                                                   p.get("value"))),
    "interrupted": lambda p: _("The import stopped before it finished; nothing was saved."),
    "failed": lambda p: _("The import failed and saved nothing: %(detail)s", **p),
    "strict": lambda p: _("Some rows have errors, and the import was set to save nothing "
                          "then."),
    "encoding": lambda p: _("The file cannot be read as %(encoding)s.", **p),
    "empty": lambda p: _("The file has no rows."),
    "csv": lambda p: _("The file is not a readable CSV file: %(detail)s", **p),
    "xlsx": lambda p: _("The file is not a readable XLSX workbook."),
    "vcard": lambda p: _("The file is not a readable vCard file."),
}


def message(code: str, params: dict[str, Any] | None = None) -> str:
    """The translated text of an error code, in the current reader's language."""
    render = _MESSAGES.get(code)
    params = dict(params or {})
    if "field" in params and params["field"] in FIELDS:
        params["field"] = str(FIELDS[params["field"]])
    if "key" in params and params["key"] in MATCH_KEYS:
        params["key"] = str(MATCH_KEYS[params["key"]])
    return render(params) if render else code


@lru_cache(maxsize=1)
def country_names() -> dict[str, str]:
    """Folded country names in English and the staff's languages -> ISO 3166 code: old
    systems and phones' vCards write "Latvia", "Latvija" or "Россия", not "LV"."""
    from babel import Locale

    names: dict[str, str] = {}
    for language in ("en", "lv", "ru", "uz", "kk", "ro"):
        for code, name in Locale.parse(language).territories.items():
            if len(code) == 2 and code.isalpha():
                names.setdefault(fold(name), code)
    return names


class RowError(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


# -- converting values ---------------------------------------------------------------------
_PHONE_SPLIT = re.compile(r"[,;]\s*|\s*/\s*")
_PHONE_SEPARATORS = re.compile(r"[,;/]")
_EMAIL_SPLIT = re.compile(r"[,;\s]+")
#: First characters a spreadsheet reads as a formula; exports prefix them with "'".
_NEUTRALISED = ("=", "+", "-", "@", "\t", "\r")
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%d.%m.%y", "%Y%m%d", "%d-%m-%Y",
                 "%Y/%m/%d")
_TRUE = {"1", "yes", "y", "true", "x", "da", "ja", "ha", "ia", "iya", "+", "on"}
_FALSE = {"0", "no", "n", "false", "net", "ne", "nu", "yoq", "zhok", "-", "off", ""}
_KIND_WORDS = {"person": {"person", "individual", "contact", "fizicheskoe litso", "persona",
                          "fiziska persona", "persoana", "shaxs", "kontakt", "chelovek"},
               "company": {"company", "organisation", "organization", "kompaniia", "kompaniya",
                           "organizatsiia", "uznemums", "companie", "firma", "tashkilot",
                           "iuridicheskoe litso", "legal entity"}}


def parse_date(text: str, key: str) -> date:
    value = text.strip()
    if len(value) == 10 and value[4] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    if "T" in value or " " in value:
        value = re.split(r"[T ]", value, maxsplit=1)[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise RowError("date_invalid", value=text, field=key)


def parse_datetime(text: str, key: str) -> datetime:
    from datetime import UTC

    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        day = parse_date(value, key)
        moment = datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_number(text: str, key: str) -> Decimal:
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    if "," in value and "." not in value:
        value = value.replace(",", ".")
    try:
        return Decimal(value.replace(",", ""))
    except InvalidOperation:
        raise RowError("number_invalid", value=text, field=key) from None


def parse_bool(text: str, key: str) -> bool:
    value = fold(text)
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError("bool_invalid", value=text, field=key)


def normalize_vat(text: str) -> str | None:
    value = re.sub(r"[\s.\-/]", "", text).upper()
    return value or None


#: Fields `RowMapper._plain()` checks or converts; any other is stored as written.
_SPECIAL = frozenset(("kind", "birthday", "created_at", "country", "status", "vat", "lang",
                      "owner", "company_name", "company_vat", "company_external_id"))
#: Column lengths of the partner table, for a translated error instead of a database one.
_LENGTHS = {c.key: c.type.length for c in Partner.__table__.columns
            if getattr(c.type, "length", None)}


@dataclass(slots=True)
class Candidate:
    """One row, checked: the partner's own values and what links it to others."""

    row_no: int
    kind: str
    values: dict[str, Any] = field(default_factory=dict)
    phones: list[str] = field(default_factory=list)  # E.164 (or digits), de-duplicated
    #: E.164 -> national number (from the one parse), for the search tokens.
    nationals: dict[str, str | None] = field(default_factory=dict)
    emails: list[str] = field(default_factory=list)  # normalised, de-duplicated
    custom: dict[int, tuple[str | None, Decimal | None, date | None, bool | None]] = field(
        default_factory=dict)
    owner: str | None = None
    company_name: str | None = None
    company_vat: str | None = None
    company_external_id: str | None = None


def _birthday(cand: Candidate, key: str, raw: str) -> None:
    cand.values[key] = parse_date(raw, key)


def _created_at(cand: Candidate, key: str, raw: str) -> None:
    cand.values[key] = parse_datetime(raw, key)


def _lang(cand: Candidate, key: str, raw: str) -> None:
    cand.values[key] = raw.lower()[:16]


def _owner(cand: Candidate, key: str, raw: str) -> None:
    cand.owner = raw


def _company_name(cand: Candidate, key: str, raw: str) -> None:
    cand.company_name = raw


def _company_external_id(cand: Candidate, key: str, raw: str) -> None:
    cand.company_external_id = raw


#: The fields of `RowMapper._plain()` that need no more than one line, called directly.
_DIRECT: dict[str, Callable[[Candidate, str, str], None]] = {
    "birthday": _birthday, "created_at": _created_at, "lang": _lang, "owner": _owner,
    "company_name": _company_name, "company_external_id": _company_external_id}


class RowMapper:
    """Turns rows into `Candidate`s for one mapping; built once per run (the custom fields,
    the mapping's plan per column and the default phone region are worked out once, not per
    row; a row's own country, when mapped, reads its local phone numbers)."""

    def __init__(self, mapping: dict[str, str], *, kind: str,
                 custom_fields: dict[str, CustomField] | None = None,
                 region: str | None = None) -> None:
        self.default_kind = kind
        self.plan: list[tuple[int, str]] = sorted(
            (int(index), key) for index, key in mapping.items() if key)
        self.custom_fields = custom_fields or {}
        self.region = region or default_region()
        #: (column, field, handler): None stores the text as it is, the common case.
        self.steps: list[tuple[int, str, Callable[[Candidate, str, str], None] | None]] = []
        for index, key in self.plan:
            if key == "phone":
                step: Callable[[Candidate, str, str], None] | None = self._phones
            elif key == "email":
                step = self._emails
            elif key.startswith(CUSTOM_PREFIX):
                step = self._custom_step
            elif key in _SPECIAL:
                step = _DIRECT.get(key, self._plain)
            else:
                step = None
            self.steps.append((index, key, step))
        # The country first: a row's local phone numbers are read in its own country.
        self.steps.sort(key=lambda item: item[1] != "country")

    def convert(self, row_no: int, row: list[str]) -> Candidate:
        values: dict[str, Any] = {}
        cand = Candidate(row_no, self.default_kind, values=values)
        width = len(row)
        for index, key, step in self.steps:
            if index >= width:
                continue
            raw = row[index]
            if not raw:
                continue
            raw = raw.strip()
            if not raw:
                continue
            if raw[0] == "'" and raw[1:2] in _NEUTRALISED:
                raw = raw[1:]  # our own export's guard against formula injection
            if step is None:
                values[key] = raw
            else:
                step(cand, key, raw)
        if cand.kind == "person":
            if not (values.get("first_name") or values.get("last_name") or values.get("name")):
                raise RowError("name_missing")
        elif not values.get("name"):
            # A company row's name may sit in the "company name" column.
            if cand.company_name:
                values["name"] = cand.company_name
                cand.company_name = None
            else:
                raise RowError("name_missing")
        if cand.kind == "company":
            for key in ("first_name", "last_name", "middle_name"):
                values.pop(key, None)
        for key, value in values.items():
            limit = _LENGTHS.get(key)
            if limit and type(value) is str and len(value) > limit:
                raise RowError("too_long", field=key, max=limit)
        return cand

    def _phones(self, cand: Candidate, key: str, raw: str) -> None:
        phones = cand.phones
        parts = _PHONE_SPLIT.split(raw) if _PHONE_SEPARATORS.search(raw) else (raw,)
        for part in parts:
            number, national = normalize_phone_parts(
                part, cand.values.get("country") or self.region)
            if number and number not in phones:
                phones.append(number)
                cand.nationals[number] = national

    def _emails(self, cand: Candidate, key: str, raw: str) -> None:
        emails = cand.emails
        for part in _EMAIL_SPLIT.split(raw):
            if not part:
                continue
            try:
                email = normalize_email(part)
            except ValueError:
                raise RowError("email_invalid", value=part) from None
            if email and email not in emails:
                emails.append(email)

    def _custom_step(self, cand: Candidate, key: str, raw: str) -> None:
        self._custom(cand, key[len(CUSTOM_PREFIX):], raw)

    def _plain(self, cand: Candidate, key: str, raw: str) -> None:
        values = cand.values
        if key == "kind":
            word = fold(raw)
            for kind, words in _KIND_WORDS.items():
                if word in words or word == kind:
                    cand.kind = kind
                    return
            raise RowError("kind_invalid", value=raw)
        if key == "birthday":
            values["birthday"] = parse_date(raw, key)
        elif key == "created_at":
            values["created_at"] = parse_datetime(raw, key)
        elif key == "country":
            code = raw.strip().upper()
            if not re.fullmatch(r"[A-Z]{2}", code):
                code = country_names().get(fold(raw), "")
            if not code:
                raise RowError("country_invalid", value=raw)
            values["country"] = code
        elif key == "status":
            word = fold(raw)
            if word not in STATUSES:
                from ..models import STATUS_LABELS

                labels = {fold(str(label)): code for code, label in STATUS_LABELS.items()}
                if word not in labels:
                    raise RowError("status_invalid", value=raw)
                word = labels[word]
            values["status"] = word
        elif key == "vat":
            values["vat"] = normalize_vat(raw)
        elif key == "lang":
            values["lang"] = raw.lower()[:16]
        elif key == "owner":
            cand.owner = raw
        elif key == "company_name":
            cand.company_name = raw
        elif key == "company_vat":
            cand.company_vat = normalize_vat(raw)
        elif key == "company_external_id":
            cand.company_external_id = raw
        else:
            values[key] = raw

    def _custom(self, cand: Candidate, code: str, raw: str) -> None:
        custom = self.custom_fields.get(code)
        if custom is None:
            return
        label = custom.code
        if custom.kind == "number":
            cand.custom[custom.id] = (None, parse_number(raw, label), None, None)
        elif custom.kind == "date":
            cand.custom[custom.id] = (None, None, parse_date(raw, label), None)
        elif custom.kind == "bool":
            cand.custom[custom.id] = (None, None, None, parse_bool(raw, label))
        elif custom.kind == "choice":
            wanted = fold(raw)
            for choice in custom.choices or []:
                names = [choice.get("value", "")] + list((choice.get("labels") or {}).values())
                if any(fold(str(n)) == wanted for n in names):
                    cand.custom[custom.id] = (choice.get("value"), None, None, None)
                    return
            raise RowError("choice_invalid", value=raw, field=label)
        else:
            cand.custom[custom.id] = (raw[:500], None, None, None)
