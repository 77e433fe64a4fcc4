"""The one place that writes partners' derived data: names, phones, e-mails, search, sort keys.

Forms, the import, merge and the API all call these, so a contact created any way is found
and sorted the same way.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import phonenumbers
from flask import current_app
from sqlalchemy import Select, and_, delete, insert, intersect, or_, select

from core.api import company_details, db, visible

from .folding import fold, sort_keys, tokens
from .models import Partner, PartnerEmail, PartnerPhone, SearchToken

#: Where a name's parts go, per firm locale: Russian and Kazakh registers write the surname
#: first ("Петров Иван Сергеевич"); Latvian, Romanian and Uzbek business use first name first.
NAME_ORDER = {
    "ru": ("last_name", "first_name", "middle_name"),
    "kk": ("last_name", "first_name", "middle_name"),
}
DEFAULT_NAME_ORDER = ("first_name", "middle_name", "last_name")
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]{2,}$")


def name_locale() -> str:
    """The firm's convention for writing person names (`BIRGA_NAME_LOCALE`, default `en`)."""
    return current_app.config.get("BIRGA_NAME_LOCALE", "en")


def person_name(first: str | None, last: str | None, middle: str | None = None,
                locale: str | None = None) -> str:
    parts = {"first_name": first, "last_name": last, "middle_name": middle}
    order = NAME_ORDER.get(locale or name_locale(), DEFAULT_NAME_ORDER)
    return " ".join(p.strip() for p in (parts[k] for k in order) if p and p.strip())


def default_region() -> str | None:
    """Region for numbers typed without a country code: `BIRGA_PHONE_REGION` (e.g. `LV`),
    else the firm's own country (Settings → Company details, which falls back to
    `BIRGA_COMPANY_COUNTRY`, LV), so a local number typed at a Riga desk ("29 123 456") is
    stored as +37129123456 rather than as raw digits."""
    region = current_app.config.get("BIRGA_PHONE_REGION") or company_details()["country"]
    return str(region).upper()


def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """E.164 (`+37120000000`) for any way people write a number; None when it is not one.

    Numbers that do not parse as valid are kept as their digits (old systems hold odd
    numbers), so nothing typed is lost; they still match each other exactly.
    """
    return normalize_phone_parts(raw, region)[0]


def normalize_phone_parts(raw: str | None, region: str | None = None
                          ) -> tuple[str | None, str | None]:
    """(`normalize_phone(raw)`, the national number as digits or None), parsing once."""
    if not raw or not raw.strip():
        return None, None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if text[0] == "+":
        fast = _international_parts(text)
        if fast is not None:
            return fast
    try:
        number = phonenumbers.parse(text, region or default_region())
    except phonenumbers.NumberParseException:
        digits = re.sub(r"\D", "", text)
        return digits or None, None
    if phonenumbers.is_possible_number(number):
        return (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                str(number.national_number))
    digits = re.sub(r"\D", "", text)
    return digits or None, None


# `phonenumbers.parse()` spends most of its ~15 µs on what a number written "+<country code>
# <digits>" (ASCII digits, spaces, - ( ) .) does not need: RFC 3966 contexts, extensions,
# vanity letters, IDD prefixes. For those numbers `_international_parts()` runs only the steps
# that depend on the digits, with phonenumbers' own functions and metadata (country code, the
# national prefix a region strips, the possible lengths), in parse()'s order, and gives up
# (None: the caller parses) on anything else. test_phone_fast_path.py compares both on
# numbers of every country code and format.
_INTERNATIONAL_BODY = re.compile(r"[0-9 ().\-]*[0-9]")
_NON_DIGIT = re.compile(r"\D")
_util = phonenumbers.phonenumberutil
_RESULT = phonenumbers.ValidationResult
_POSSIBLE = (_RESULT.IS_POSSIBLE, _RESULT.IS_POSSIBLE_LOCAL_ONLY)


def _country_metadata(code: int) -> phonenumbers.PhoneMetadata | None:
    region = phonenumbers.region_code_for_country_code(code)
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return None  # parse() may skip the prefix rules for these: let it decide
    return phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)


_METADATA: dict[int, phonenumbers.PhoneMetadata | None] = {}
_LENGTH_RESULTS: dict[tuple[int, int], Any] = {}


def _international_parts(text: str) -> tuple[str | None, str | None] | None:
    """`normalize_phone_parts()` of "+..." text without `phonenumbers.parse()`, or None."""
    body = text[1:]
    if len(text) > 250 or not _INTERNATIONAL_BODY.fullmatch(body):
        return None
    digits = _NON_DIGIT.sub("", body)
    if len(digits) < 4 or digits[0] == "0":
        return None
    code = 0
    for size in (1, 2, 3):  # phonenumberutil._extract_country_code
        if int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            code = int(digits[:size])
            break
    if not code:
        return None
    metadata = _METADATA.get(code, False)
    if metadata is False:
        metadata = _METADATA[code] = _country_metadata(code)
    if metadata is None:
        return None
    national = digits[len(str(code)):]
    if len(national) < 2:
        return None
    _carrier, stripped, _done = _util._maybe_strip_national_prefix_carrier_code(
        national, metadata)
    if stripped != national and _length_result(code, metadata, stripped) not in (
            _RESULT.TOO_SHORT, _RESULT.IS_POSSIBLE_LOCAL_ONLY, _RESULT.INVALID_LENGTH):
        national = stripped
    if not 2 <= len(national) <= 17 or int(national) == 0:
        return None
    if _length_result(code, metadata, national) in _POSSIBLE:
        return f"+{code}{national}", str(int(national))
    return digits, None


def _length_result(code: int, metadata: phonenumbers.PhoneMetadata, national: str) -> Any:
    """phonenumberutil._test_number_length(): it only looks at the length; cached."""
    key = (code, len(national))
    found = _LENGTH_RESULTS.get(key)
    if found is None:
        found = _LENGTH_RESULTS[key] = _util._test_number_length(national, metadata)
    return found


def display_phone(e164: str | None, region: str | None = None) -> str:
    """National format for numbers of the firm's own region, international for the others.

    Only a configured `BIRGA_PHONE_REGION` counts as "own" here: the firm's country is a
    default for reading numbers typed without a code, not a reason to change how every stored
    number is shown."""
    if not e164 or not e164.startswith("+"):
        return e164 or ""
    return _formatted_phone(e164, region or current_app.config.get("BIRGA_PHONE_REGION"))


def phone_formatter(region: str | None = None) -> Callable[[str | None], str]:
    """`display_phone` with the firm's region looked up once, for a page of rows."""
    own = region or current_app.config.get("BIRGA_PHONE_REGION")

    def formatted(e164: str | None) -> str:
        if not e164 or not e164.startswith("+"):
            return e164 or ""
        return _formatted_phone(e164, own)

    return formatted


@lru_cache(maxsize=65536)
def _formatted_phone(e164: str, own: str | None) -> str:
    """Parsing and formatting cost ~40 µs a number: a list page shows 50 of them per request
    and the same numbers again on the next one, so the answers are kept (a few MiB at most)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    if own and phonenumbers.region_code_for_number(number) == own:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def normalize_email(raw: str | None) -> str | None:
    """Trimmed, domain in lower case (IDNA-checked); None for an empty value.

    Raises ValueError for text that is not an address, so callers report it per field/row.
    """
    if not raw or not raw.strip():
        return None
    text = raw.strip().strip("<>").strip()
    if not _EMAIL.match(text):
        raise ValueError(text)
    local, _at, domain = text.rpartition("@")
    lowered = _idna_domain(domain)
    if lowered is None:
        raise ValueError(text)
    return f"{local}@{lowered}"


@lru_cache(maxsize=4096)
def _idna_domain(domain: str) -> str | None:
    """The domain in lower case, or None when IDNA cannot encode it (an import meets the
    same few domains thousands of times)."""
    try:
        domain.encode("idna")
    except UnicodeError:
        return None
    return domain.lower()


def set_phones(partner: Partner, numbers: Iterable[tuple[str, str] | str]) -> None:
    """Replace the partner's phones; the first is the primary copied onto the partner."""
    partner.phones.clear()
    seen: set[str] = set()
    # The contact's own country, when known, reads its local numbers better than the firm's.
    region = (partner.country or "").strip().upper() or None
    for seq, item in enumerate(numbers):
        raw, kind = (item, "mobile") if isinstance(item, str) else item
        number = normalize_phone(raw, region)
        if number and number not in seen:
            seen.add(number)
            partner.phones.append(PartnerPhone(number=number, kind=kind, sequence=seq))
    partner.phone = partner.phones[0].number if partner.phones else None


def set_emails(partner: Partner, addresses: Iterable[tuple[str, str] | str]) -> None:
    """Replace the partner's e-mails (already validated with `normalize_email`)."""
    partner.emails.clear()
    seen: set[str] = set()
    for seq, item in enumerate(addresses):
        raw, kind = (item, "work") if isinstance(item, str) else item
        email = normalize_email(raw)
        if email and email.lower() not in seen:
            seen.add(email.lower())
            partner.emails.append(PartnerEmail(email=email, email_key=email.lower(), kind=kind,
                                               sequence=seq))
    partner.email = partner.emails[0].email if partner.emails else None


def refresh_names(partner: Partner) -> None:
    """Display name and company name from the parts (people) and the company link."""
    if partner.kind == "person":
        built = person_name(partner.first_name, partner.last_name, partner.middle_name)
        partner.name = built or partner.name or ""
        partner.company_name = partner.company.name if partner.company is not None else None
    else:
        partner.company_name = None


#: More searchable text per partner, from other modules (custom field values): callables
#: `partner -> iterable of text`, folded into tokens like the names.
TOKEN_SOURCES: list[Callable[[Partner], Iterable[str | None]]] = []


_VAT_PREFIXED = re.compile(r"^([a-z]{2})(\d[0-9a-z]{3,})$")


def bare_vat(word: str | None) -> str | None:
    """A folded tax number's digits without its country prefix ("lv40003245752" ->
    "40003245752"), or None. Forms store LV and RO numbers bare and an import without a
    country keeps the prefix, so both spellings are indexed and searched."""
    found = _VAT_PREFIXED.match(word or "")
    return found.group(2) if found else None


def search_tokens(partner: Partner) -> set[str]:
    phones = [p.number for p in partner.phones] or [partner.phone]
    emails = [e.email for e in partner.emails] or [partner.email]
    found = tokens(partner.name, partner.first_name, partner.last_name, partner.middle_name,
                   partner.company_name, partner.vat, partner.registration_no, partner.city,
                   bare_vat(fold(partner.vat or "").replace(" ", "")), *emails)
    for number in phones:
        if number:
            digits = re.sub(r"\D", "", number)
            found.add(digits)
            # Local dialling forms people type: without the country code, last 7+ digits.
            if len(digits) > 7:
                found.add(digits[-7:])
            try:
                parsed = phonenumbers.parse(number if number.startswith("+") else "+" + digits)
                found.add(str(parsed.national_number))
            except phonenumbers.NumberParseException:
                pass
    for email in emails:
        if email:
            found.add(fold(email.split("@")[0]).replace(" ", ""))
    for source in TOKEN_SOURCES:
        found |= tokens(*source(partner))
    return {t for t in found if t}


def indexed_tokens(found: Iterable[str]) -> list[str]:
    """The tokens a partner gets a row for, sorted: without those that only begin another
    of its tokens. Every search is a prefix search, so the longer token finds the partner
    for them too; it saves about one row in twelve (an e-mail's local part begins the
    address), which a big import pays for in index entries and, on PostgreSQL, in a foreign
    key check per row."""
    ordered = sorted(found)
    # Sorted, a token that begins any other one begins the very next one.
    return [token for token, following in zip(ordered, [*ordered[1:], ""], strict=True)
            if not following.startswith(token)]


def refresh_search(partner: Partner) -> None:
    """Recompute the folded search text, sort keys and tokens of one partner (flushes)."""
    refresh_names(partner)
    found = indexed_tokens(search_tokens(partner))
    partner.search_text = " ".join(found)
    for column, key in sort_keys(partner.name).items():
        setattr(partner, column, key)
    if partner.id is None:
        db.session.add(partner)
        db.session.flush()
    db.session.execute(delete(SearchToken).where(SearchToken.partner_id == partner.id))
    if found:
        db.session.execute(insert(SearchToken), [
            {"partner_id": partner.id, "token": t} for t in found])


def refresh_people_of(company: Partner) -> int:
    """After a company's name changed: its people's company name (shown in the list) and
    search tokens (a search for the new name finds them) follow. Returns how many."""
    from sqlalchemy import select

    people = db.session.scalars(select(Partner).where(Partner.company_id == company.id)).all()
    for person in people:
        person.company = company
        refresh_search(person)
    return len(people)


def _prefix(word: str):
    from sqlalchemy import exists, select

    return exists(select(SearchToken.partner_id).where(
        SearchToken.partner_id == Partner.id,
        SearchToken.token >= word,
        SearchToken.token < word + "\x7f",
    ))


def query_terms(query: str) -> tuple[list[str], list[str]]:
    """(phone forms, words) of a search query; one of them is empty.

    A query that is mostly digits is a phone number typed any way: its full digits, without a
    national trunk prefix (0 in most of Europe, 8 in RU/KZ), and normalised with the firm's
    region. Anything else is up to six folded words.
    """
    compact = re.sub(r"[\s()+\-.]", "", query)
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 5 and len(digits) == len(compact):
        forms = {digits}
        if digits[0] in "08":
            forms.add(digits[1:])
        normalized = normalize_phone(query)
        if normalized:
            forms.add(re.sub(r"\D", "", normalized))
        return sorted(forms), []
    return [], [w for w in fold(query).split(" ") if w][:6]


def search_condition(query: str):
    """A SQL condition: partners having a token that starts with every folded query word.

    A query that is mostly digits is a phone number typed any way (`+371 2000 0001`,
    `8 (916) 123-45-67`, `20000001`): it matches the full international digits, the national
    number, or the number normalised with the firm's region.
    """
    from sqlalchemy import and_, or_

    phone_forms, words = query_terms(query)
    if phone_forms:
        return or_(*(_prefix(c) for c in phone_forms))
    return and_(*(or_(_prefix(w), _prefix(bare)) if (bare := bare_vat(w)) else _prefix(w)
                  for w in words)) if words else None


def _token_range(word: str):
    return and_(SearchToken.token >= word, SearchToken.token < word + "\x7f")


def visible_like(text: str, kind: str | None = None) -> Select:
    """`select(Partner)`: active people or companies (`kind`; both when None) the current
    user may see whose words start like those of `text` (folded). Published for other addons
    (the deal form's client picker) as well as this addon's company lookup."""
    query = visible(Partner).where(Partner.active.is_(True))
    if kind is not None:
        query = query.where(Partner.kind == kind)
    ids = search_ids(text)
    return query if ids is None else query.where(Partner.id.in_(ids))


def search_ids(query: str):
    """The partners `search_condition(query)` finds, as a subquery of ids for
    `Partner.id.in_(...)`, or None for an empty query.

    A correlated EXISTS makes a sorted list test its rows one by one until the page is full,
    which for a rare name means every row; an id subquery lets the database start from the
    token index (the list page uses this). Several words intersect; a phone's forms unite.
    """
    phone_forms, words = query_terms(query)
    if phone_forms:
        return select(SearchToken.partner_id).where(
            or_(*(_token_range(c) for c in phone_forms)))
    words = sorted(set(words), key=len, reverse=True)
    if not words:
        return None
    selects = [select(SearchToken.partner_id).where(
        or_(_token_range(w), _token_range(bare)) if (bare := bare_vat(w)) else _token_range(w))
        for w in words]
    return selects[0] if len(selects) == 1 else intersect(*selects)


# -- bulk variants (the import) ------------------------------------------------------------
# The same results as `normalize_phone()` and `search_tokens()` for 100k rows at a time:
# each phone is parsed once (its national number kept for the tokens instead of parsing the
# E.164 form again), and ASCII text is folded without ICU (for ASCII, ICU's
# "Any-Latin; Latin-ASCII; Lower" is plain lower-casing). The import's tests compare both
# paths on the same contacts.
_FOLD_NON_WORD = re.compile(r"[^a-z0-9@.+]+")


def fold_fast(text: str | None) -> str:
    """`fold()`, with a shortcut for ASCII text (unique values such as e-mails miss the
    `fold()` cache every time)."""
    if not text:
        return ""
    if text.isascii():
        lowered = text.lower().replace("'", "").replace("`", "")
        return " ".join(_FOLD_NON_WORD.sub(" ", lowered).split())
    return fold(text)


@lru_cache(maxsize=131072)
def _text_words(text: str) -> frozenset[str]:
    """The token words of one text; names, cities and company names repeat across a file."""
    return frozenset(word[:64] for word in fold_fast(text).split(" ") if word)


def bulk_search_tokens(texts: Iterable[str | None], phones: Iterable[tuple[str, str | None]],
                       emails: Iterable[str]) -> set[str]:
    """`search_tokens()` from plain values: `texts` are the name parts, company name, tax and
    registration numbers, city (and custom field texts); `phones` are (normalised, national
    number) pairs from `normalize_phone_parts()`."""
    found: set[str] = set()
    for part in texts:
        if part:
            found |= _text_words(part)
    for email in emails:
        if email:
            found.update(word[:64] for word in fold_fast(email).split(" "))
            found.add(fold_fast(email.split("@")[0]).replace(" ", ""))
    for number, national in phones:
        if number:
            # An E.164 number is "+" and ASCII digits; anything else kept its digits only.
            digits = number[1:] if number[0] == "+" else _NON_DIGIT.sub("", number)
            found.add(digits)
            if len(digits) > 7:
                found.add(digits[-7:])
            if national is None and not number.startswith("+"):
                try:
                    national = str(phonenumbers.parse("+" + digits).national_number)
                except phonenumbers.NumberParseException:
                    national = None
            if national:
                found.add(national)
    found.discard("")
    return found
