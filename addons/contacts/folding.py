"""Search folding and locale sort keys, the same on SQLite and PostgreSQL.

SQLite's `lower()`/`LIKE` fold ASCII only and its `ORDER BY` sorts by code point (Ā after Z,
all Cyrillic after Latin). So we store, per contact, a folded search text and search tokens
(ICU transliteration to ASCII: "Bērziņš" -> "berzins", "Петров" -> "petrov", "Gʻulomov" ->
"gulomov") and one ICU sort key per interface language, each an indexed column. Queries are
folded the same way, so "berzins", "Berziņš" and "берзиньш" all meet the same tokens.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache

import icu

from core.i18n import LANGUAGES

_local = threading.local()
#: Kazakh letters people often type as their Russian neighbours ("Касымова" for "Қасымова"):
#: folded to those before transliteration, so both spellings meet.
_KAZAKH = str.maketrans("әғқңөұүһіӘҒҚҢӨҰҮҺІ", "агкноуухиАГКНОУУХИ")
_NON_WORD = re.compile(r"[^a-z0-9@.+]+")
_SPACES = re.compile(r"\s+")


def _transliterator() -> icu.Transliterator:
    # ICU transliterators are not thread-safe: one per thread.
    tr = getattr(_local, "tr", None)
    if tr is None:
        tr = icu.Transliterator.createInstance("Any-Latin; Latin-ASCII; Lower")
        _local.tr = tr
    return tr


@lru_cache(maxsize=65536)
def fold(text: str | None) -> str:
    """Lowercase ASCII words: script, case, diacritics and apostrophes (oʻ, gʻ) folded away."""
    if not text:
        return ""
    ascii_text = _transliterator().transliterate(text.translate(_KAZAKH))
    ascii_text = ascii_text.replace("'", "").replace("`", "")
    return _SPACES.sub(" ", _NON_WORD.sub(" ", ascii_text)).strip()


def tokens(*parts: str | None) -> set[str]:
    """Distinct folded words of `parts`, for the prefix-searchable token index."""
    found: set[str] = set()
    for part in parts:
        for word in fold(part).split(" "):
            if word:
                found.add(word[:64])
    return found


def _collator(locale: str) -> icu.Collator:
    cache = getattr(_local, "collators", None)
    if cache is None:
        cache = _local.collators = {}
    if locale not in cache:
        collator = icu.Collator.createInstance(icu.Locale(locale))
        collator.setStrength(icu.Collator.TERTIARY)
        cache[locale] = collator
    return cache[locale]


def sort_key(text: str | None, locale: str) -> bytes:
    """ICU sort key of `text` in `locale`'s alphabet: byte order equals the locale's order."""
    return bytes(_collator(locale).getSortKey(text or ""))


def sort_keys(text: str | None) -> dict[str, bytes]:
    """One key per interface language, keyed `sort_<lang>` as the Partner columns are."""
    return {f"sort_{lang}": sort_key(text, lang) for lang in LANGUAGES}
