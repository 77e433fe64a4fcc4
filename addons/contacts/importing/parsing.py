"""Reading an uploaded file into a header and rows of text, whatever wrote it.

Old systems export in many shapes: UTF-8 (with or without a BOM) or Windows-1251 CSV from
Russian-language Excel and 1C, `,` `;` or tab separated; XLSX; vCards from phones, where
version 2.1 writes non-ASCII names QUOTED-PRINTABLE with a CHARSET (and vobject cannot read
those soft line breaks). Everything here ends as `Table(columns, rows)` of strings, so the
mapping never cares where a value came from.
"""
from __future__ import annotations

import contextlib
import csv
import gc
import io
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

FORMATS = ("csv", "xlsx", "vcard")
DELIMITERS = {",": ",", ";": ";", "\t": "tab"}
#: Encodings offered on the page; detection picks among the first three.
ENCODINGS = ("utf-8", "utf-8-sig", "cp1251", "cp1257", "cp1250", "iso-8859-1", "cp866")


class ParseError(ValueError):
    """The file cannot be read in the chosen format (the message code is for the page)."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None


def guess_format(filename: str, data: bytes) -> str:
    name = filename.lower()
    if name.endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04":
        return "xlsx"
    if name.endswith((".vcf", ".vcard")) or data.lstrip()[:11].upper() == b"BEGIN:VCARD":
        return "vcard"
    return "csv"


# -- CSV -----------------------------------------------------------------------------------
def detect_encoding(data: bytes) -> str:
    """UTF-8 with a BOM, UTF-8, or else Windows-1251 (what Russian-language Excel and 1C
    write; it decodes any byte, so it is the fallback)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by a sample's end is still UTF-8.
        if exc.start < len(data) - 3:
            return "cp1251"
    return "utf-8"


def detect_delimiter(text: str) -> str:
    """The one of `,` `;` tab that splits the first lines into the most, equal, columns."""
    sample = text[:20000].splitlines()[:20]
    if len(sample) > 1 and len(text) > 20000:
        sample = sample[:-1]  # the last line of a cut sample may be partial
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        counts = [len(r) for r in csv.reader(sample, delimiter=delimiter) if r]
        if not counts:
            continue
        width = counts[0]
        score = (sum(1 for c in counts if c == width and c > 1), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def read_csv(data: bytes, encoding: str | None = None, delimiter: str | None = None) -> Table:
    encoding = encoding or detect_encoding(data)
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ParseError("encoding", encoding=encoding) from exc
    text = text.removeprefix("\ufeff")
    delimiter = delimiter or detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header:
            raise ParseError("empty")
        # A row of blank cells is skipped: its joined text is blank too (one strip per row).
        rows = [row for row in reader if "".join(row).strip()]
    except csv.Error as exc:
        raise ParseError("csv", detail=str(exc)) from exc
    return Table([h.strip() for h in header], rows, encoding, delimiter)


# -- XLSX ----------------------------------------------------------------------------------
def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else \
            value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers and ids typed as numbers
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip()


def read_xlsx(data: bytes) -> Table:
    """The first sheet, first row as header; openpyxl's read-only mode streams big files."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zipfile, XML and openpyxl errors alike
        raise ParseError("xlsx") from exc
    try:
        rows_iter = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows_iter, None)
        if not header:
            raise ParseError("empty")
        columns = [_cell_text(h) for h in header]
        while columns and not columns[-1]:
            columns.pop()
        rows = []
        for values in rows_iter:
            row = [_cell_text(v) for v in values[:len(columns)]]
            if any(row):
                rows.append(row)
        return Table(columns, rows)
    finally:
        book.close()


# -- vCard ---------------------------------------------------------------------------------
VCARD_COLUMNS = ["Full name", "First name", "Last name", "Middle name", "Organisation",
                 "Job title", "Street", "City", "Postcode", "Region", "Country", "Birthday",
                 "Website", "Note"]
_QP = re.compile(rb"(?i)(?:^|;)(?:ENCODING=)?QUOTED-PRINTABLE(?:;|$)")
_CHARSET = re.compile(rb"(?i)CHARSET=([\w-]+)")
_DROP_PARAM = re.compile(rb"(?i)^(ENCODING=|CHARSET=|QUOTED-PRINTABLE$)")


def decode_vcard(data: bytes) -> str:
    """vCard text with 2.1's QUOTED-PRINTABLE values decoded in their CHARSET (soft line
    breaks joined), so vobject reads 2.1 and 3.0 alike."""
    base = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else detect_encoding(data)
    lines = re.split(rb"\r\n|\n|\r", data)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        head, sep, value = line.partition(b":")
        if sep and _QP.search(head):
            while value.endswith(b"=") and i < len(lines):
                value = value[:-1] + lines[i]
                i += 1
            match = _CHARSET.search(head)
            charset = match.group(1).decode("ascii") if match else base
            try:
                text = quopri.decodestring(value).decode(charset, "replace")
            except LookupError:
                text = quopri.decodestring(value).decode(base, "replace")
            text = text.replace("\r\n", "\\n").replace("\n", "\\n")
            params = [p for p in head.split(b";") if not _DROP_PARAM.match(p)]
            out.append(b";".join(params).decode(base, "replace") + ":" + text)
        else:
            out.append(line.decode(base, "replace"))
    return "\n".join(out).removeprefix("\ufeff")


def read_vcard(data: bytes) -> Table:
    """One row per card: the fixed columns above, then as many phone and e-mail columns as
    the card with the most of them needs."""
    import vobject

    text = decode_vcard(data)
    cards: list[tuple[dict[str, str], list[str], list[str]]] = []
    try:
        for card in vobject.readComponents(text, ignoreUnreadable=True):
            if card.name.upper() != "VCARD":
                continue
            values: dict[str, str] = {}
            phones: list[str] = []
            emails: list[str] = []
            for line in card.getChildren():
                name = line.name.upper()
                value = line.value
                if name == "FN":
                    values["Full name"] = str(value).strip()
                elif name == "N":
                    values["Last name"] = _join(value.family)
                    values["First name"] = _join(value.given)
                    values["Middle name"] = _join(value.additional)
                elif name == "ORG":
                    values["Organisation"] = _join(value if isinstance(value, list)
                                                   else [value], "; ")
                elif name == "TITLE":
                    values["Job title"] = str(value).strip()
                elif name == "TEL":
                    phones.append(str(value).strip())
                elif name == "EMAIL":
                    emails.append(str(value).strip())
                elif name == "ADR" and "Street" not in values:
                    values.update({"Street": _join(value.street), "City": _join(value.city),
                                   "Postcode": _join(value.code),
                                   "Region": _join(value.region),
                                   "Country": _join(value.country)})
                elif name == "BDAY":
                    values["Birthday"] = str(value).strip()
                elif name == "URL":
                    values["Website"] = str(value).strip()
                elif name == "NOTE":
                    values["Note"] = str(value).strip()
            cards.append((values, phones, emails))
    except Exception as exc:  # noqa: BLE001 - vobject raises many kinds
        raise ParseError("vcard") from exc
    if not cards:
        raise ParseError("empty")
    n_phones = max(len(c[1]) for c in cards)
    n_emails = max(len(c[2]) for c in cards)
    columns = VCARD_COLUMNS + [f"Phone {i + 1}" for i in range(n_phones)] + [
        f"E-mail {i + 1}" for i in range(n_emails)]
    rows = []
    for values, phones, emails in cards:
        rows.append([values.get(c, "") for c in VCARD_COLUMNS]
                    + phones + [""] * (n_phones - len(phones))
                    + emails + [""] * (n_emails - len(emails)))
    return Table(columns, rows)


def _join(value: object, separator: str = " ") -> str:
    if isinstance(value, list | tuple):
        return separator.join(str(v).strip() for v in value if v and str(v).strip())
    return str(value or "").strip()


@contextlib.contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector off meanwhile (as it was afterwards). Reading and
    importing a big file makes hundreds of thousands of small objects and no cycles: the
    collector would rescan them all again and again (a third of parsing 100k rows) for
    nothing; reference counting still frees everything."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def read_table(data: bytes, fmt: str, *, encoding: str | None = None,
               delimiter: str | None = None) -> Table:
    """The file's header and rows; raises `ParseError` for an unreadable file."""
    with without_cyclic_gc():
        if fmt == "xlsx":
            return read_xlsx(data)
        if fmt == "vcard":
            return read_vcard(data)
        return read_csv(data, encoding, delimiter)


def iter_rows(table: Table) -> Iterator[tuple[int, list[str]]]:
    """(row number as a spreadsheet shows it, cells padded to the header's width)."""
    width = len(table.columns)
    for index, row in enumerate(table.rows):
        if len(row) < width:
            row = row + [""] * (width - len(row))
        yield index + 2, row
