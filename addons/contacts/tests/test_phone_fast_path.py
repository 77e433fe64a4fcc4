"""The shortcut for "+<country code> <digits>" numbers (`services._international_parts`) gives
exactly what `phonenumbers.parse()` gives: on the generated data set's phones written every
way people write them, and on random numbers of every country code, length and leading
digits (national prefixes, Italian leading zeros, too short, too long)."""
from __future__ import annotations

import csv
import random
import re
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from flask import Flask

from addons.contacts import services

GENERATOR = Path("/work/shared/bench/gen_dataset.py")


@pytest.fixture(autouse=True)
def no_default_region():
    """Region None means the installation's default (here LV, as the firm's country gives
    without configuration), for both paths; no database in this app."""
    app = Flask(__name__)
    app.config["BIRGA_PHONE_REGION"] = "LV"
    with app.app_context():
        yield


def reference(raw: str, region: str | None) -> tuple[str | None, str | None]:
    """`normalize_phone_parts()` as it was before the shortcut: always phonenumbers.parse()."""
    if not raw or not raw.strip():
        return None, None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region or services.default_region())
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", text) or None, None
    if phonenumbers.is_possible_number(number):
        return (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                str(number.national_number))
    return re.sub(r"\D", "", text) or None, None


def spellings(number: str) -> list[str]:
    """One "+CC NNNN" number written the ways exports and people write it."""
    code, _space, rest = number[1:].partition(" ")
    digits = code + rest
    chunks = [rest[i:i + 3] for i in range(0, len(rest), 3)]
    return [
        number, "+" + digits, "00" + digits, f"00{code} {rest}",
        f"+{code} ({rest[:3]}) {rest[3:]}", f"+{code}-{'-'.join(chunks)}",
        f"+{code}.{'.'.join(chunks)}", f"+ {code} {' '.join(chunks)}",
        f"  +{code}  {rest}  ", f"+{code} 0{rest}", f"+{code} 8{rest}", f"+{code}{rest[:-2]}",
        f"+{code}{rest}99", f"+({code}) {rest}",
    ]


@pytest.fixture(scope="module")
def generated_phones(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("data")
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), "--contacts", "600"],
                   check=True)
    phones = []
    for name in ("contacts.csv", "companies.csv"):
        with open(out / name, encoding="utf-8") as f:
            phones += [row["phone"] for row in csv.DictReader(f) if row["phone"]]
    return phones


@pytest.mark.parametrize("region", [None, "RU", "LV"])
def test_generated_phones_in_every_format_normalise_as_phonenumbers_does(
        generated_phones, region):
    shortcut = 0
    for phone in generated_phones:
        for text in spellings(phone):
            assert services.normalize_phone_parts(text, region) == reference(text, region), text
            shortcut += services._international_parts(text.strip().replace("00", "+", 1)
                                                      if text.strip().startswith("00")
                                                      else text.strip()) is not None
    # The comparison is of the shortcut, not of two calls of parse(): it takes nearly all.
    assert shortcut > 0.9 * len(generated_phones) * len(spellings("+7 9001234567"))


def test_random_numbers_of_every_country_code_normalise_as_phonenumbers_does():
    rng = random.Random(4)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    leads = ["0", "00", "1", "8", "9", "7", "2", "6", "180020", "0 ", ""]
    checked = 0
    for code in codes:
        for _ in range(40):
            length = rng.randint(0, 16)
            national = rng.choice(leads) + "".join(rng.choice("0123456789")
                                                   for _ in range(length))
            for text in (f"+{code}{national}", f"+{code} {national}", f"00{code}{national}",
                         f"+{code}-{national[:3]}-{national[3:]}".rstrip("-")):
                for region in (None, "US", "IT"):
                    assert services.normalize_phone_parts(text, region) == \
                        reference(text, region), (text, region)
                    checked += 1
    assert checked == len(codes) * 40 * 12


@pytest.mark.parametrize("text", [
    "+", "+0", "+1", "+12", "+123", "+0371 2000 0001", "+800 1234 5678", "+882 1234 5678",
    "+39 06 1234 5678", "+39 00 12", "+39 000", "+44 0 20 7946 0000", "+44 180020 12345",
    "+7 8 916 123 45 67", "+7 (916) 123-45-67)", "+373 0 60 000 001", "+1 1 212 555 0100",
    "+371 2000 0001 ext. 5", "+371 2000 0001#", "+371/2000 0001", "+３７１ ２０００ ０００１",
    "+371 2000 0001 x", "+371 2000 000١", "+998 90 123 45 67; 12345", "+7 916 000-00-00",
    "0037120000001", "00 371 2000 0001", "+" + "9" * 30, "+1 " + "2" * 260,
])
@pytest.mark.parametrize("region", [None, "LV", "RU"])
def test_edge_cases_normalise_as_phonenumbers_does(text, region):
    assert services.normalize_phone_parts(text, region) == reference(text, region)
