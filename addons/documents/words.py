"""The total of an offer in words, as commercial offers in our markets print it.

Why our own code: num2words 0.5.14 writes Russian "одна миллион", Romanian "una mie", has no
Kazakh currencies and no Uzbek, and its Latvian currency mode takes integers as cents. We keep
num2words only for English cardinals, where it is right, and spell lv, ru, uz, kk and ro here
with their agreement rules (gender of the currency and of "thousand", plural forms after a
number, Romanian "de"). The main amount is spelled out; the cents are printed as two digits
followed by the sub-unit in the right form ("56 копеек", "01 cents"), as invoices do there.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from num2words import num2words

LANGUAGES = ("en", "lv", "ru", "uz", "kk", "ro")

# --- plural pickers ---------------------------------------------------------------------

def _ru_form(n: int, forms: tuple[str, str, str]) -> str:
    """forms = (1 рубль, 2 рубля, 5 рублей)."""
    if 11 <= n % 100 <= 19:
        return forms[2]
    if n % 10 == 1:
        return forms[0]
    if 2 <= n % 10 <= 4:
        return forms[1]
    return forms[2]


def _lv_form(n: int, forms: tuple[str, str, str]) -> str:
    """forms = (1 cents, 2 centi, 0 centu): Latvian singular after 1, 21, 31 (not 11)."""
    if n == 0:
        return forms[2]
    if n % 10 == 1 and n % 100 != 11:
        return forms[0]
    return forms[1]


def _ro_form(n: int, forms: tuple[str, str]) -> str:
    """forms = (leu, lei); numbers ending in 00 or 20-99 take "de" ("douăzeci de lei")."""
    if n == 1:
        return forms[0]
    if n >= 20 and (n % 100 == 0 or n % 100 >= 20):
        return "de " + forms[1]
    return forms[1]


# --- Russian -----------------------------------------------------------------------------

_RU_ONES = {"m": ["", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь",
                  "девять"],
            "f": ["", "одна", "две", "три", "четыре", "пять", "шесть", "семь", "восемь",
                  "девять"]}
_RU_TEENS = ["десять", "одиннадцать", "двенадцать", "тринадцать", "четырнадцать", "пятнадцать",
             "шестнадцать", "семнадцать", "восемнадцать", "девятнадцать"]
_RU_TENS = ["", "", "двадцать", "тридцать", "сорок", "пятьдесят", "шестьдесят", "семьдесят",
            "восемьдесят", "девяносто"]
_RU_HUNDREDS = ["", "сто", "двести", "триста", "четыреста", "пятьсот", "шестьсот", "семьсот",
                "восемьсот", "девятьсот"]
_RU_SCALES = [(("тысяча", "тысячи", "тысяч"), "f"), (("миллион", "миллиона", "миллионов"), "m"),
              (("миллиард", "миллиарда", "миллиардов"), "m")]


def _below_hundred(n: int, teens: list[str], tens: list[str], ones: list[str]) -> list[str]:
    """0-99 where 10-19 are words of their own (ru, lv); "" stands for a zero digit."""
    return [teens[n - 10]] if 10 <= n <= 19 else [tens[n // 10], ones[n % 10]]


def _ru_triplet(n: int, gender: str) -> list[str]:
    words = [_RU_HUNDREDS[n // 100]] + _below_hundred(n % 100, _RU_TEENS, _RU_TENS,
                                                      _RU_ONES[gender])
    return [w for w in words if w]


def ru_cardinal(n: int, gender: str = "m") -> str:
    return _agreeing_cardinal(n, gender, "ноль", _ru_triplet, _RU_SCALES, _ru_form)


# --- Latvian -----------------------------------------------------------------------------

_LV_ONES = {"m": ["", "viens", "divi", "trīs", "četri", "pieci", "seši", "septiņi", "astoņi",
                  "deviņi"],
            "f": ["", "viena", "divas", "trīs", "četras", "piecas", "sešas", "septiņas",
                  "astoņas", "deviņas"]}
_LV_TEENS = ["desmit", "vienpadsmit", "divpadsmit", "trīspadsmit", "četrpadsmit", "piecpadsmit",
             "sešpadsmit", "septiņpadsmit", "astoņpadsmit", "deviņpadsmit"]
_LV_TENS = ["", "", "divdesmit", "trīsdesmit", "četrdesmit", "piecdesmit", "sešdesmit",
            "septiņdesmit", "astoņdesmit", "deviņdesmit"]
# "tūkstotis", "miljons", "miljards" are masculine.
_LV_SCALES = [(("tūkstotis", "tūkstoši", "tūkstošu"), "m"),
              (("miljons", "miljoni", "miljonu"), "m"),
              (("miljards", "miljardi", "miljardu"), "m")]


def _lv_triplet(n: int, gender: str) -> list[str]:
    h, rest = divmod(n, 100)
    words = (["viens simts"] if h == 1 else [_LV_ONES["m"][h], "simti"]) if h else []
    words += _below_hundred(rest, _LV_TEENS, _LV_TENS, _LV_ONES[gender])
    return [w for w in words if w]


def lv_cardinal(n: int, gender: str = "m") -> str:
    return _agreeing_cardinal(n, gender, "nulle", _lv_triplet, _LV_SCALES, _lv_form)


# --- Kazakh and Uzbek (no gender, no plural after numerals) ------------------------------

_KK = {"ones": ["", "бір", "екі", "үш", "төрт", "бес", "алты", "жеті", "сегіз", "тоғыз"],
       "tens": ["", "он", "жиырма", "отыз", "қырық", "елу", "алпыс", "жетпіс", "сексен",
                "тоқсан"],
       "hundred": "жүз", "scales": ["мың", "миллион", "миллиард"], "zero": "нөл"}
_UZ = {"ones": ["", "bir", "ikki", "uch", "to\u02bbrt", "besh", "olti", "yetti", "sakkiz",
                "to\u02bbqqiz"],
       "tens": ["", "o\u02bbn", "yigirma", "o\u02bbttiz", "qirq", "ellik", "oltmish", "yetmish",
                "sakson", "to\u02bbqson"],
       "hundred": "yuz", "scales": ["ming", "million", "milliard"], "zero": "nol"}


def _turkic_cardinal(n: int, table: dict) -> str:
    def group(g: int, scale: int) -> list[str]:
        h, rest = divmod(g, 100)
        # Financial documents write "бір жүз" / "bir yuz" for one hundred.
        words = [table["ones"][h], table["hundred"]] if h else []
        words += [table["tens"][rest // 10], table["ones"][rest % 10]]
        return words + [table["scales"][scale - 1]] if scale else words

    return _spell_groups(n, table["zero"], group)


def kk_cardinal(n: int, gender: str = "m") -> str:
    return _turkic_cardinal(n, _KK)


def uz_cardinal(n: int, gender: str = "m") -> str:
    return _turkic_cardinal(n, _UZ)


# --- Romanian ----------------------------------------------------------------------------

_RO_ONES = ["", "unu", "doi", "trei", "patru", "cinci", "șase", "șapte", "opt", "nouă"]
_RO_TEENS = ["zece", "unsprezece", "doisprezece", "treisprezece", "paisprezece", "cincisprezece",
             "șaisprezece", "șaptesprezece", "optsprezece", "nouăsprezece"]
_RO_TENS = ["", "", "douăzeci", "treizeci", "patruzeci", "cincizeci", "șaizeci", "șaptezeci",
            "optzeci", "nouăzeci"]
# (singular with its article, plural, gender of the plural agreement)
_RO_SCALES = [("o mie", "mii", "f"), ("un milion", "milioane", "n"),
              ("un miliard", "miliarde", "n")]


def _ro_unit(d: int, gender: str, alone: bool) -> str:
    """1 and 2 agree: un/o (alone), unu/una (in a compound), doi/două; neuter = m in 1, f in 2."""
    if d == 1:
        if alone:
            return "o" if gender == "f" else "un"
        return "una" if gender == "f" else "unu"
    if d == 2:
        return "doi" if gender == "m" else "două"
    return _RO_ONES[d]


def _ro_triplet(n: int, gender: str) -> list[str]:
    words: list[str] = []
    h, rest = divmod(n, 100)
    if h:
        words.append("o sută" if h == 1 else _ro_unit(h, "f", False) + " sute")
    if 10 <= rest <= 19:
        teen = _RO_TEENS[rest - 10]
        if rest == 12 and gender != "m":
            teen = "douăsprezece"
        words.append(teen)
    elif rest >= 20:
        words.append(_RO_TENS[rest // 10])
        if rest % 10:
            words += ["și", _ro_unit(rest % 10, gender, False)]
    elif rest:
        words.append(_ro_unit(rest, gender, alone=(h == 0)))
    return words


def _ro_with_noun(n: int, singular: str, plural: str, gender: str) -> list[str]:
    if n == 1:
        return [singular]
    words = _ro_triplet(n, gender)
    if n % 100 == 0 or n % 100 >= 20:
        words.append("de")
    return words + [plural]


def ro_cardinal(n: int, gender: str = "m") -> str:
    """The number without its noun; with a noun, `amount_in_words` says "un leu" for 1."""
    def group(g: int, scale: int) -> list[str]:
        if scale == 0:
            return _ro_triplet(g, gender)
        return _ro_with_noun(g, *_RO_SCALES[scale - 1])

    return _spell_groups(n, "zero", group)


# --- English -----------------------------------------------------------------------------

def en_cardinal(n: int, gender: str = "m") -> str:
    return num2words(n, lang="en").replace(",", "")


CARDINALS = {"en": en_cardinal, "lv": lv_cardinal, "ru": ru_cardinal, "uz": uz_cardinal,
             "kk": kk_cardinal, "ro": ro_cardinal}

# --- currencies: per language (unit forms, unit gender, sub-unit forms) ------------------
# ru forms: (1, 2, 5); lv: (1, 2, 0); ro: (1, many); en: (1, many); kk/uz: one invariant form.
CURRENCIES: dict[str, dict[str, tuple]] = {
    "ru": {"RUB": (("рубль", "рубля", "рублей"), "m", ("копейка", "копейки", "копеек")),
           "EUR": (("евро", "евро", "евро"), "m", ("цент", "цента", "центов")),
           "USD": (("доллар", "доллара", "долларов"), "m", ("цент", "цента", "центов")),
           "KZT": (("тенге", "тенге", "тенге"), "m", ("тиын", "тиына", "тиынов")),
           "UZS": (("сум", "сума", "сумов"), "m", ("тийин", "тийина", "тийинов")),
           "MDL": (("лей", "лея", "леев"), "m", ("бан", "бана", "банов")),
           "RON": (("лей", "лея", "леев"), "m", ("бан", "бана", "банов"))},
    "lv": {"EUR": (("eiro", "eiro", "eiro"), "m", ("cents", "centi", "centu")),
           "USD": (("dolārs", "dolāri", "dolāru"), "m", ("cents", "centi", "centu")),
           "RUB": (("rublis", "rubļi", "rubļu"), "m", ("kapeika", "kapeikas", "kapeiku")),
           "KZT": (("tenge", "tenge", "tenge"), "m", ("tijins", "tijini", "tijinu")),
           "UZS": (("sums", "sumi", "sumu"), "m", ("tijins", "tijini", "tijinu")),
           "MDL": (("leja", "lejas", "leju"), "f", ("bans", "bani", "banu")),
           "RON": (("leja", "lejas", "leju"), "f", ("bans", "bani", "banu"))},
    "ro": {"MDL": (("un leu", "lei"), "m", ("ban", "bani")),
           "RON": (("un leu", "lei"), "m", ("ban", "bani")),
           "EUR": (("un euro", "euro"), "m", ("cent", "cenți")),
           "USD": (("un dolar", "dolari"), "m", ("cent", "cenți")),
           "RUB": (("o rublă", "ruble"), "f", ("copeică", "copeici")),
           "KZT": (("un tenge", "tenge"), "m", ("tiyn", "tiyni")),
           "UZS": (("un sum", "sumi"), "m", ("tiyin", "tiyini"))},
    "en": {"EUR": (("euro", "euros"), "m", ("cent", "cents")),
           "USD": (("US dollar", "US dollars"), "m", ("cent", "cents")),
           "RUB": (("rouble", "roubles"), "m", ("kopeck", "kopecks")),
           "KZT": (("tenge", "tenge"), "m", ("tiyn", "tiyn")),
           "UZS": (("sum", "sums"), "m", ("tiyin", "tiyins")),
           "MDL": (("leu", "lei"), "m", ("ban", "bani")),
           "RON": (("leu", "lei"), "m", ("ban", "bani"))},
    "kk": {"KZT": ("теңге", "m", "тиын"), "RUB": ("рубль", "m", "тиын"),
           "EUR": ("еуро", "m", "цент"), "USD": ("доллар", "m", "цент"),
           "UZS": ("сом", "m", "тиын"), "MDL": ("лей", "m", "бан"), "RON": ("лей", "m", "бан")},
    "uz": {"UZS": ("so\u02bbm", "m", "tiyin"), "RUB": ("rubl", "m", "tiyin"),
           "EUR": ("yevro", "m", "sent"), "USD": ("dollar", "m", "sent"),
           "KZT": ("tenge", "m", "tiyin"), "MDL": ("ley", "m", "ban"), "RON": ("ley", "m", "ban")},
}


class UnsupportedAmount(ValueError):
    """A language or currency we cannot spell; the caller prints the figures instead."""


def _groups(n: int) -> list[int]:
    """1234567 -> [567, 234, 1]: triplets from the lowest."""
    out = []
    while n:
        n, g = divmod(n, 1000)
        out.append(g)
    return out or [0]


def _spell_groups(n: int, zero: str, group: Callable[[int, int], list[str]]) -> str:
    """`n` in words, `zero` for 0: each non-zero triplet of `n`, highest first, spelled by
    `group(triplet, scale)` (scale 0 for units, 1 for thousands, 2 millions, 3 billions)."""
    if n == 0:
        return zero
    groups = _groups(n)
    return " ".join(word for scale in reversed(range(len(groups))) if groups[scale]
                    for word in group(groups[scale], scale) if word)


def _agreeing_cardinal(n: int, gender: str, zero: str,
                       triplet: Callable[[int, str], list[str]],
                       scales: list[tuple[tuple[str, str, str], str]],
                       form: Callable[[int, tuple[str, str, str]], str]) -> str:
    """Russian and Latvian: the units agree with the counted noun's `gender`; a thousand or a
    million is itself a noun with a gender, counted in its plural `form` ("две тысячи")."""
    def group(g: int, scale: int) -> list[str]:
        if scale == 0:
            return triplet(g, gender)
        nouns, noun_gender = scales[scale - 1]
        return triplet(g, noun_gender) + [form(g, nouns)]

    return _spell_groups(n, zero, group)


def _base_lang(lang: str) -> str:
    return (lang or "en").replace("-", "_").split("_")[0].lower()


def amount_in_words(amount: Decimal | int | float | str, currency: str, lang: str) -> str:
    """`Decimal("1234.56"), "RUB", "ru"` -> "Одна тысяча двести тридцать четыре рубля 56 копеек"."""
    lang = _base_lang(lang)
    currency = currency.upper()
    table = CURRENCIES.get(lang)
    if table is None:
        raise UnsupportedAmount(f"{lang}/{currency}")
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if value < 0:
        raise UnsupportedAmount("negative amount")
    units = int(value)
    cents = int((value - units) * 100)
    cents_text = f"{cents:02d}"
    if currency not in table:
        # A currency whose name we cannot decline: the number in words, then its ISO code
        # and the cents as a fraction ("One thousand GBP 05/100"), as cheques write it,
        # rather than no words at all or a misspelt noun.
        text = f"{CARDINALS[lang](units)} {currency} {cents_text}/100"
        return text[:1].upper() + text[1:]
    unit_forms, gender, sub_forms = table[currency]
    if lang == "ru":
        text = (f"{ru_cardinal(units, gender)} {_ru_form(units, unit_forms)} "
                f"{cents_text} {_ru_form(cents, sub_forms)}")
    elif lang == "lv":
        text = (f"{lv_cardinal(units, gender)} {_lv_form(units, unit_forms)}, "
                f"{cents_text} {_lv_form(cents, sub_forms)}")
    elif lang in ("kk", "uz"):
        text = f"{CARDINALS[lang](units)} {unit_forms} {cents_text} {sub_forms}"
    elif lang == "ro":
        main = (unit_forms[0] if units == 1 else
                " ".join([ro_cardinal(units, gender), _ro_form(units, unit_forms)]))
        sub = (f"{cents_text} {sub_forms[0]}" if cents == 1 else
               f"{cents_text} {_ro_form(cents, sub_forms)}")
        text = f"{main} și {sub}"
    else:
        text = (f"{en_cardinal(units)} {unit_forms[0] if units == 1 else unit_forms[1]} "
                f"and {cents_text} {sub_forms[0] if cents == 1 else sub_forms[1]}")
    return text[:1].upper() + text[1:]
