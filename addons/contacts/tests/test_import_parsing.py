"""Reading files as old systems and phones write them: encodings, separators, XLSX, and
vCard 2.1 with QUOTED-PRINTABLE names in UTF-8 and Windows-1251."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from addons.contacts.importing.parsing import (
    ParseError,
    detect_delimiter,
    detect_encoding,
    guess_format,
    read_csv,
    read_table,
    read_vcard,
    read_xlsx,
)

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("data", "expected"), [
    ("Имя,Фамилия\nИван,Петров\n".encode(), "utf-8"),
    ("\ufeffИмя,Фамилия\nИван,Петров\n".encode(), "utf-8-sig"),
    ("Имя;Фамилия\nИван;Петров\n".encode("cp1251"), "cp1251"),
    (b"first,last\nJohn,Smith\n", "utf-8"),
])
def test_encoding_is_detected(data, expected):
    assert detect_encoding(data) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("a,b,c\n1,2,3\n", ","),
    ("a;b;c\n1;2,5;3\n", ";"),
    ("a\tb\tc\n1\t2\t3\n", "\t"),
    ('name;note\n"Smith, John";"a, b, c"\n', ";"),
])
def test_delimiter_is_detected(text, expected):
    assert detect_delimiter(text) == expected


def test_windows_1251_semicolon_csv_is_read_as_cyrillic():
    table = read_csv((DATA / "people_cp1251_semicolon.csv").read_bytes())
    assert (table.encoding, table.delimiter) == ("cp1251", ";")
    assert table.columns[:3] == ["Фамилия", "Имя", "Отчество"]
    assert table.rows[0][:3] == ["Петров", "Иван", "Сергеевич"]
    assert table.rows[0][5] == "ООО «Ромашка»"


def test_encoding_and_separator_can_be_overridden():
    data = "a;b\nĀ;Č\n".encode("cp1257")
    assert read_csv(data).rows[0] != ["Ā", "Č"]  # detection takes it for Windows-1251
    table = read_csv(data, encoding="cp1257", delimiter=";")
    assert table.rows == [["Ā", "Č"]]
    with pytest.raises(ParseError) as raised:
        read_csv("Ā;Č\n".encode("cp1257"), encoding="utf-8")
    assert raised.value.code == "encoding"


def test_xlsx_first_sheet_is_read_with_numbers_and_dates_as_text():
    from datetime import date

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["First name", "Last name", "Phone", "Birthday"])
    sheet.append(["Jānis", "Bērziņš", 37120000001, date(1980, 5, 17)])
    sheet.append([None, None, None, None])
    sheet.append(["Ana", "Țurcanu", "+373 60 000 001", None])
    out = io.BytesIO()
    book.save(out)
    data = out.getvalue()
    assert guess_format("people.xlsx", data) == "xlsx"
    table = read_xlsx(data)
    assert table.columns == ["First name", "Last name", "Phone", "Birthday"]
    assert table.rows == [["Jānis", "Bērziņš", "37120000001", "1980-05-17"],
                          ["Ana", "Țurcanu", "+373 60 000 001", ""]]


def test_vcard_21_quoted_printable_names_in_utf8_and_windows_1251():
    table = read_vcard((DATA / "phone_v21_qp.vcf").read_bytes())
    rows = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
    assert rows[0]["Last name"] == "Петров"
    assert rows[0]["First name"] == "Иван"
    assert rows[0]["Middle name"] == "Сергеевич"
    assert rows[0]["Full name"] == "Иван Сергеевич Петров"  # soft line breaks joined
    assert rows[0]["Organisation"] == "ООО «Ромашка»"
    assert (rows[0]["Phone 1"], rows[0]["Phone 2"]) == ("+79161234567", "8 (495) 123-45-67")
    assert rows[0]["E-mail 1"] == "ivan@example.ru"
    assert (rows[1]["Last name"], rows[1]["First name"]) == ("Смирнова", "Ольга")  # cp1251


def test_vcard_30_with_address_and_several_emails():
    data = (DATA / "contacts_v30.vcf").read_bytes()
    assert guess_format("x.bin", data) == "vcard"
    table = read_table(data, "vcard")
    first = dict(zip(table.columns, table.rows[0], strict=True))
    assert (first["First name"], first["Last name"]) == ("Jānis", "Bērziņš")
    assert (first["City"], first["Postcode"], first["Country"]) == ("Rīga", "LV-1010", "LV")
    assert (first["E-mail 1"], first["E-mail 2"]) == ("janis@koks.lv", "berzins@example.lv")
    assert first["Birthday"] == "1980-05-17"
    second = dict(zip(table.columns, table.rows[1], strict=True))
    assert second["Last name"] == "Țurcanu" and second["E-mail 2"] == ""


def test_unreadable_files_raise_a_parse_error():
    with pytest.raises(ParseError):
        read_xlsx(b"PK\x03\x04 not really a zip")
    with pytest.raises(ParseError) as raised:
        read_csv(b"")
    assert raised.value.code == "empty"
