"""Tax numbers are checked by each country's rule and stored in one normal form."""
from __future__ import annotations

import pytest

from addons.contacts.taxids import InvalidTaxId, validate, validate_registration

pytestmark = pytest.mark.addons("contacts")


@pytest.mark.parametrize(("country", "typed", "stored"), [
    ("LV", "LV 4000 3245 752", "40003245752"),
    ("LV", "40003245752", "40003245752"),
    ("RO", "RO 185 472 90", "18547290"),
    ("RO", "18547290", "18547290"),
    ("MD", "1008600038413", "1008600038413"),
    ("KZ", "971 240 001 315", "971240001315"),     # a BIN
    ("KZ", "940140000385", "940140000385"),
    ("UZ", "201 234 567", "201234567"),
    ("RU", "7707083893", "7707083893"),            # a company INN
    ("RU", "500100732259", "500100732259"),        # a person's INN
    ("EE", "EE 100 931 558", "100931558"),         # any country stdnum knows
    ("", "abc-123 x", "ABC123X"),                  # no country: compacted only
    ("LV", "  ", ""),
])
def test_valid_numbers_are_normalised(app, country, typed, stored):
    assert validate(country, typed) == stored


@pytest.mark.parametrize(("country", "typed"), [
    ("LV", "LV40003245753"),     # wrong control digit
    ("RO", "18547291"),
    ("MD", "1008600038412"),
    ("KZ", "971240001316"),
    ("KZ", "97124000131"),       # 11 digits
    ("UZ", "012345678"),
    ("UZ", "20123456"),
    ("RU", "7707083894"),
    ("RU", "77070838"),
])
def test_invalid_numbers_are_refused_with_a_message(app, country, typed):
    with pytest.raises(InvalidTaxId) as error:
        validate(country, typed)
    assert str(error.value).strip()


def test_russian_registration_number_is_checked(app):
    assert validate_registration("RU", "1027700132195") == "1027700132195"
    with pytest.raises(InvalidTaxId):
        validate_registration("RU", "1027700132196")
    assert validate_registration("LV", "4000 324 5752") == "40003245752"
