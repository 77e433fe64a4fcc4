"""The total in words reads as a native would write it on an offer, in every language."""
from __future__ import annotations

from decimal import Decimal

import pytest

from addons.documents.words import UnsupportedAmount, amount_in_words

CASES = [
    # Russian: gender of "тысяча" and of the currency, three plural forms.
    ("ru", "RUB", "1", "Один рубль 00 копеек"),
    ("ru", "RUB", "2", "Два рубля 00 копеек"),
    ("ru", "RUB", "5", "Пять рублей 00 копеек"),
    ("ru", "RUB", "11", "Одиннадцать рублей 00 копеек"),
    ("ru", "RUB", "21", "Двадцать один рубль 00 копеек"),
    ("ru", "RUB", "101", "Сто один рубль 00 копеек"),
    ("ru", "RUB", "1000", "Одна тысяча рублей 00 копеек"),
    ("ru", "RUB", "2000", "Две тысячи рублей 00 копеек"),
    ("ru", "RUB", "1000000", "Один миллион рублей 00 копеек"),
    ("ru", "RUB", "1234.21", "Одна тысяча двести тридцать четыре рубля 21 копейка"),
    ("ru", "RUB", "5.02", "Пять рублей 02 копейки"),
    ("ru", "KZT", "21", "Двадцать один тенге 00 тиынов"),
    ("ru", "EUR", "1000000.05", "Один миллион евро 05 центов"),
    ("ru", "UZS", "2", "Два сума 00 тийинов"),
    # Romanian: o/un, două, "de" after 20+, una de mii.
    ("ro", "MDL", "1", "Un leu și 00 bani"),
    ("ro", "MDL", "2", "Doi lei și 00 bani"),
    ("ro", "MDL", "5", "Cinci lei și 00 bani"),
    ("ro", "RON", "11", "Unsprezece lei și 00 bani"),
    ("ro", "RON", "21", "Douăzeci și unu de lei și 00 bani"),
    ("ro", "RON", "101", "O sută unu lei și 00 bani"),
    ("ro", "MDL", "1000", "O mie de lei și 00 bani"),
    ("ro", "MDL", "2000", "Două mii de lei și 00 bani"),
    ("ro", "MDL", "21000", "Douăzeci și una de mii de lei și 00 bani"),
    ("ro", "MDL", "1000000", "Un milion de lei și 00 bani"),
    ("ro", "MDL", "2000000", "Două milioane de lei și 00 bani"),
    ("ro", "MDL", "12.01", "Doisprezece lei și 01 ban"),
    ("ro", "RON", "3.25", "Trei lei și 25 de bani"),
    ("ro", "EUR", "12", "Doisprezece euro și 00 cenți"),
    # Latvian: singular after 1 and 21 but not 11; genitive plural after zero.
    ("lv", "EUR", "1", "Viens eiro, 00 centu"),
    ("lv", "EUR", "2", "Divi eiro, 00 centu"),
    ("lv", "EUR", "5", "Pieci eiro, 00 centu"),
    ("lv", "EUR", "11", "Vienpadsmit eiro, 00 centu"),
    ("lv", "EUR", "21.21", "Divdesmit viens eiro, 21 cents"),
    ("lv", "EUR", "101.11", "Viens simts viens eiro, 11 centi"),
    ("lv", "EUR", "1000", "Viens tūkstotis eiro, 00 centu"),
    ("lv", "EUR", "2000", "Divi tūkstoši eiro, 00 centu"),
    ("lv", "EUR", "1000000.56", "Viens miljons eiro, 56 centi"),
    ("lv", "RUB", "21", "Divdesmit viens rublis, 00 kapeiku"),
    # Kazakh: no plural after a number, "бір мың".
    ("kk", "KZT", "1", "Бір теңге 00 тиын"),
    ("kk", "KZT", "2", "Екі теңге 00 тиын"),
    ("kk", "KZT", "5", "Бес теңге 00 тиын"),
    ("kk", "KZT", "11", "Он бір теңге 00 тиын"),
    ("kk", "KZT", "21", "Жиырма бір теңге 00 тиын"),
    ("kk", "KZT", "101", "Бір жүз бір теңге 00 тиын"),
    ("kk", "KZT", "1000", "Бір мың теңге 00 тиын"),
    ("kk", "KZT", "1000000.45", "Бір миллион теңге 45 тиын"),
    ("kk", "KZT", "1234.56", "Бір мың екі жүз отыз төрт теңге 56 тиын"),
    ("kk", "EUR", "40", "Қырық еуро 00 цент"),
    # Uzbek (Latin) with U+02BB in oʻ/gʻ.
    ("uz", "UZS", "1", "Bir so\u02bbm 00 tiyin"),
    ("uz", "UZS", "2", "Ikki so\u02bbm 00 tiyin"),
    ("uz", "UZS", "5", "Besh so\u02bbm 00 tiyin"),
    ("uz", "UZS", "11", "O\u02bbn bir so\u02bbm 00 tiyin"),
    ("uz", "UZS", "21", "Yigirma bir so\u02bbm 00 tiyin"),
    ("uz", "UZS", "101", "Bir yuz bir so\u02bbm 00 tiyin"),
    ("uz", "UZS", "1000", "Bir ming so\u02bbm 00 tiyin"),
    ("uz", "UZS", "1000000.5", "Bir million so\u02bbm 50 tiyin"),
    ("uz", "UZS", "94", "To\u02bbqson to\u02bbrt so\u02bbm 00 tiyin"),
    # English.
    ("en", "EUR", "1", "One euro and 00 cents"),
    ("en", "EUR", "2", "Two euros and 00 cents"),
    ("en", "EUR", "5", "Five euros and 00 cents"),
    ("en", "EUR", "11", "Eleven euros and 00 cents"),
    ("en", "EUR", "21", "Twenty-one euros and 00 cents"),
    ("en", "EUR", "101", "One hundred and one euros and 00 cents"),
    ("en", "EUR", "1000", "One thousand euros and 00 cents"),
    ("en", "USD", "1000000.01", "One million US dollars and 01 cent"),
    ("en", "RUB", "2.50", "Two roubles and 50 kopecks"),
]


@pytest.mark.parametrize(("lang", "currency", "amount", "expected"), CASES)
def test_amount_reads_as_a_native_would_write_it(lang, currency, amount, expected):
    assert amount_in_words(Decimal(amount), currency, lang) == expected


def test_language_with_region_uses_the_base_language():
    assert amount_in_words(Decimal("21"), "RUB", "ru_RU").startswith("Двадцать один рубль")


def test_amount_is_rounded_half_up_to_cents():
    assert amount_in_words(Decimal("1.005"), "EUR", "en") == "One euro and 01 cent"


@pytest.mark.parametrize(("lang", "expected"), [
    ("en", "One thousand two hundred and thirty-four GBP 05/100"),
    ("ru", "Одна тысяча двести тридцать четыре GBP 05/100"),
    ("lv", "Viens tūkstotis divi simti trīsdesmit četri GBP 05/100"),
    ("ro", "O mie două sute treizeci și patru GBP 05/100"),
    ("kk", "Бір мың екі жүз отыз төрт GBP 05/100"),
    ("uz", "Bir ming ikki yuz oʻttiz toʻrt GBP 05/100"),
])
def test_a_currency_without_declined_names_reads_as_number_code_and_cents(lang, expected):
    assert amount_in_words(Decimal("1234.05"), "gbp", lang) == expected


def test_an_unknown_language_is_refused_rather_than_misspelled():
    with pytest.raises(UnsupportedAmount):
        amount_in_words(Decimal("1"), "EUR", "de")
    with pytest.raises(UnsupportedAmount):
        amount_in_words(Decimal("-1"), "GBP", "en")
