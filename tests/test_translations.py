"""Translation catalogues are complete, current, and merged correctly at run time.

Why each check exists: an empty or fuzzy entry silently shows English to a Latvian or Kazakh user;
a Plural-Forms header that disagrees with CLDR picks the wrong word form ("5 минуты"); a
placeholder typo in a translation raises KeyError only when that language renders the page; a
`.po` behind its `.pot` hides new strings; and Flask-Babel 4.0.0 mixes up plural rules when
catalogues come from several directories (flask-babel#241), which is why the kernel merges them
itself (`core/i18n.py`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, unescape, write_po
from flask_babel import get_locale, gettext, ngettext

from core import PROJECT_ROOT
from core.addons import discover
from core.i18n import DOMAIN, MANIFEST_CONTEXT, TRANSLATED
from core.i18n_tools import extract
from core.testing import TEST_PASSWORD, csrf_token

PROBE_ADDONS = Path(__file__).parent / "fixtures" / "i18n_addon" / "addons"
SKIP_DIRS = {".venv", "venv", ".git", "node_modules", "__pycache__", ".pytest_cache",
             ".ruff_cache", "instance", "build", "dist"}
#: a named placeholder, or `%%` (a literal percent sign, matched so it is never half a token)
FORMAT_TOKEN_RE = re.compile(r"%%|%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]")
#: Letters a native typist would not use: Romanian ș ț take a comma below (U+0219, U+021B), not
#: the Turkish cedilla; Uzbek Latin oʻ gʻ take the modifier letter ʻ (U+02BB), not an apostrophe.
WRONG_LETTERS = {
    "ro": (re.compile("[\u015e\u015f\u0162\u0163]"), "cedilla ş/ţ instead of comma-below ș/ț"),
    "uz": (re.compile("[OoGg]['\u2018\u2019`]"), "apostrophe in oʻ/gʻ instead of ʻ (U+02BB)"),
}
UPDATE_HINT = "the catalogue is out of date: run `birga i18n update` and translate what is new"


# --- finding the catalogues -------------------------------------------------------------------

def _walk() -> Iterator[tuple[Path, list[str]]]:
    for dirpath, dirnames, filenames in os.walk(PROJECT_ROOT):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        yield Path(dirpath), filenames


def translation_folders() -> list[Path]:
    """Every `translations` folder of the repository: core, addons, scaffold, fixtures."""
    folders = set()
    for path, filenames in _walk():
        if path.name == "translations" and f"{DOMAIN}.pot" in filenames:
            folders.add(path)
        if (path.name == "LC_MESSAGES" and f"{DOMAIN}.po" in filenames
                and path.parent.parent.name == "translations"):
            folders.add(path.parent.parent)
    return sorted(folders)


def po_files() -> list[Path]:
    return sorted(po for folder in translation_folders()
                  for po in folder.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def _rel(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


# --- the checks (functions returning problems, so a test can prove they catch each kind) ------

def raw_header(po: Path) -> dict[str, str]:
    """The header as written in the file, not as Babel fills it in from the locale's defaults
    (Babel's `read_po` would mask a missing Plural-Forms line with CLDR's value)."""
    lines = po.read_text(encoding="utf-8").splitlines()
    start = lines.index('msgid ""') + 1
    if not lines[start].startswith("msgstr"):
        return {}
    parts = [lines[start][len("msgstr"):].strip()]
    for line in lines[start + 1:]:
        if not line.startswith('"'):
            break
        parts.append(line)
    text = "".join(unescape(p) for p in parts)
    header = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            header[key.strip().lower()] = value.strip()
    return header


def header_problems(po: Path) -> list[str]:
    lang = po.parent.parent.name
    header = raw_header(po)
    problems = []
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    if catalog.fuzzy:
        problems.append("the header is marked fuzzy")
    if header.get("language") != lang:
        problems.append(f"Language header is {header.get('language')!r}, expected {lang!r}")
    if "charset=utf-8" not in header.get("content-type", "").lower().replace(" ", ""):
        problems.append(f"Content-Type is {header.get('content-type')!r}, expected utf-8")
    plural = get_plural(Locale.parse(lang))
    found = header.get("plural-forms", "")
    match = re.fullmatch(r"nplurals=(\d+);\s*plural=(.+?);?", found)
    if match is None:
        problems.append(f"Plural-Forms header missing or malformed: {found!r}")
    else:
        if int(match.group(1)) != plural.num_plurals:
            problems.append(f"nplurals={match.group(1)}, CLDR (Babel) says {plural.num_plurals}")
        if match.group(2).replace(" ", "") != plural.plural_expr.replace(" ", ""):
            problems.append(f"plural={match.group(2)}, CLDR (Babel) says {plural.plural_expr}")
    return problems


def _forms(message: Message) -> list[str]:
    string = message.string
    return list(string) if isinstance(string, tuple | list) else [string]


def _placeholders(text: str) -> set[str]:
    return {m.group(0) for m in FORMAT_TOKEN_RE.finditer(text)} - {"%%"}


def entry_problems(po: Path) -> list[str]:
    """Empty, fuzzy, wrongly counted plural forms and placeholders differing from the msgid."""
    lang = po.parent.parent.name
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    expected_forms = get_plural(Locale.parse(lang)).num_plurals
    problems = []
    for message in catalog:
        if not message.id:
            continue
        label = repr(message.id[0] if message.pluralizable else message.id)
        if message.fuzzy:
            problems.append(f"{label} is fuzzy")
        forms = _forms(message)
        if message.pluralizable and len(forms) != expected_forms:
            problems.append(f"{label} has {len(forms)} plural forms, {lang} needs "
                            f"{expected_forms}")
        if not all(forms):
            problems.append(f"{label} has an empty translation")
        # Every plural form must show the number: in lv, ru and ro the "one" form serves
        # 21 and 31 too, so the union of both English forms is what each form must carry.
        ids = message.id if message.pluralizable else (message.id,)
        wanted = set().union(*(_placeholders(i) for i in ids))
        wrong = WRONG_LETTERS.get(lang)
        if wrong and any(wrong[0].search(form) for form in forms):
            problems.append(f"{label} has {wrong[1]}")
        for index, form in enumerate(forms):
            if form and _placeholders(form) != wanted:
                problems.append(f"{label} form {index} has placeholders "
                                f"{sorted(_placeholders(form))}, the msgid has {sorted(wanted)}")
    return problems


def _keys(catalog: Catalog) -> set[tuple[str | None, str, str | None]]:
    keys = set()
    for message in catalog:
        if not message.id:
            continue
        if message.pluralizable:
            keys.add((message.context, message.id[0], message.id[1]))
        else:
            keys.add((message.context, message.id, None))
    return keys


def freshness_problems(po: Path) -> list[str]:
    """Msgids the folder's `.pot` has and the `.po` lacks (or keeps after they left the code)."""
    pot = po.parent.parent.parent / f"{DOMAIN}.pot"
    if not pot.is_file():
        return []
    with pot.open("rb") as fh:
        template = _keys(read_po(fh))
    with po.open("rb") as fh:
        have = _keys(read_po(fh, locale=po.parent.parent.name))
    problems = [f"missing {key[1]!r}: {UPDATE_HINT}" for key in sorted(template - have, key=str)]
    problems += [f"stale {key[1]!r} is no longer in the code: {UPDATE_HINT}"
                 for key in sorted(have - template, key=str)]
    return problems


def language_problems(folder: Path) -> list[str]:
    if not (folder / f"{DOMAIN}.pot").is_file():
        return []
    return [f"no {lang}/LC_MESSAGES/{DOMAIN}.po: run `birga i18n update` and translate it"
            for lang in TRANSLATED
            if not (folder / lang / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()]


# --- the repository's catalogues --------------------------------------------------------------

PO_FILES = po_files()
FOLDERS = translation_folders()


def test_the_core_catalogues_are_found() -> None:
    """Guards the walk itself: if it found nothing, every parametrised test would vanish."""
    core = PROJECT_ROOT / "translations"
    assert core in FOLDERS
    assert {po.parent.parent.name for po in PO_FILES if po.is_relative_to(core)} >= set(TRANSLATED)


@pytest.mark.parametrize("po", PO_FILES, ids=_rel)
def test_catalogue_header_declares_language_utf8_and_cldr_plural_rule(po: Path) -> None:
    assert header_problems(po) == [], _rel(po)


@pytest.mark.parametrize("po", PO_FILES, ids=_rel)
def test_catalogue_entries_are_translated_with_matching_placeholders(po: Path) -> None:
    assert entry_problems(po) == [], _rel(po)


@pytest.mark.parametrize("po", PO_FILES, ids=_rel)
def test_catalogue_holds_exactly_the_messages_of_its_template(po: Path) -> None:
    assert freshness_problems(po) == [], _rel(po)


@pytest.mark.parametrize("folder", FOLDERS, ids=_rel)
def test_every_language_has_a_catalogue(folder: Path) -> None:
    assert language_problems(folder) == [], _rel(folder)


def _extract_targets() -> list[pytest.ParameterSet]:
    """What `birga i18n update` extracts: core's code and templates, and each local addon."""
    targets = [pytest.param("core", PROJECT_ROOT / "translations",
                            [PROJECT_ROOT / "core", PROJECT_ROOT / "templates"], id="core")]
    for addon in sorted(discover([PROJECT_ROOT / "addons"], entry_points=False).values(),
                        key=lambda a: a.name):
        targets.append(pytest.param(addon.name, addon.path / "translations", [addon.path],
                                    id=addon.name))
    return targets


@pytest.mark.parametrize("owner, translations, sources", _extract_targets())
def test_template_is_up_to_date_with_the_code(tmp_path: Path, owner: str, translations: Path,
                                               sources: list[Path]) -> None:
    count = extract(tmp_path, sources)
    with (tmp_path / f"{DOMAIN}.pot").open("rb") as fh:
        fresh = _keys(read_po(fh))
    committed_pot = translations / f"{DOMAIN}.pot"
    if not committed_pot.is_file():
        assert count == 0, f"{owner} has {count} translatable messages but no {DOMAIN}.pot: " \
                           "run `birga i18n update`"
        return
    with committed_pot.open("rb") as fh:
        committed = _keys(read_po(fh))
    assert sorted(fresh - committed, key=str) == [], f"{owner}: new in the code; {UPDATE_HINT}"
    assert sorted(committed - fresh, key=str) == [], f"{owner}: gone from the code; {UPDATE_HINT}"


def test_the_checks_catch_each_kind_of_broken_catalogue(tmp_path: Path) -> None:
    """The catalogue tests above pass on good data; this proves they fail on bad data."""
    folder = tmp_path / "translations"
    template = Catalog(project="Birga", charset="utf-8")
    for msgid in ("Contacts", "Hello %(name)s", "Gone soon", "Brand new"):
        template.add(msgid)
    template.add(("%(num)d deal", "%(num)d deals"))
    folder.mkdir()
    with (folder / f"{DOMAIN}.pot").open("wb") as fh:
        write_po(fh, template)
    po = folder / "ru" / "LC_MESSAGES" / f"{DOMAIN}.po"
    po.parent.mkdir(parents=True)
    # Fuzzy header, the two-form rule flask-babel#241 falls back to, and one fault per entry.
    po.write_text('''#, fuzzy
msgid ""
msgstr ""
"Language: ru\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"
"Content-Type: text/plain; charset=utf-8\\n"

#, fuzzy
msgid "Contacts"
msgstr ""

msgid "Hello %(name)s"
msgstr "Привет, %(nmae)s"

msgid "Gone soon"
msgstr "Скоро уйдёт"

msgid "Left the code"
msgstr "Уже нет в коде"

msgid "%(num)d deal"
msgid_plural "%(num)d deals"
msgstr[0] "%(num)d сделка"
msgstr[1] ""
''', encoding="utf-8")

    header = "\n".join(header_problems(po))
    assert "fuzzy" in header and "nplurals=2" in header and "plural=(n != 1)" in header
    entries = "\n".join(entry_problems(po))
    assert "'Contacts' is fuzzy" in entries and "'Contacts' has an empty translation" in entries
    assert "%(nmae)s" in entries
    assert "'%(num)d deal' has 2 plural forms, ru needs 3" in entries
    assert "'%(num)d deal' has an empty translation" in entries
    (folder / "uz" / "LC_MESSAGES").mkdir(parents=True)
    uz = folder / "uz" / "LC_MESSAGES" / f"{DOMAIN}.po"
    uz.write_text('msgid ""\nmsgstr "Language: uz\\n"\n\nmsgid "Contacts"\n'
                  'msgstr "Bog\'lanishlar"\n', encoding="utf-8")
    assert entry_problems(uz) == ["'Contacts' has apostrophe in oʻ/gʻ instead of ʻ (U+02BB)"]
    fresh = "\n".join(freshness_problems(po))
    assert "missing 'Brand new'" in fresh and "stale 'Left the code'" in fresh
    assert "birga i18n update" in fresh
    missing = language_problems(folder)
    assert len(missing) == len(TRANSLATED) - 2
    assert not any(f" {lang}/" in m for m in missing for lang in ("ru", "uz"))


# --- the merged catalogues at run time --------------------------------------------------------

def _read(po: Path, lang: str) -> Catalog:
    with po.open("rb") as fh:
        return read_po(fh, locale=lang)


def test_addon_plurals_survive_the_catalogue_merge_and_instance_overrides_win(make_app) -> None:
    probe_po = PROBE_ADDONS / "i18n_probe" / "translations" / "ru" / "LC_MESSAGES" / "messages.po"
    assert not probe_po.with_suffix(".mo").exists(), "the probe must exercise in-memory compiling"
    app = make_app(["i18n_probe"],
                   BIRGA_ADDONS_PATHS=[str(PROJECT_ROOT / "addons"), str(PROBE_ADDONS)])
    core = _read(PROJECT_ROOT / "translations" / "ru" / "LC_MESSAGES" / "messages.po", "ru")
    probe = _read(probe_po, "ru")
    deal = probe[("%(num)d open deal", "%(num)d open deals")].string
    lock = core["Too many failed attempts. Try again in %(num)d minute."].string

    # The instance folder overrides one core and one addon message; it is read lazily, at the
    # first Russian request, so writing it after the app exists is what an operator does too.
    override = Catalog(locale="ru", charset="utf-8", fuzzy=False)
    override.add("Settings", "Параметры")
    override.add("Probe pipeline", "Воронка филиала")
    target = Path(app.instance_path) / "translations" / "ru" / "LC_MESSAGES" / "messages.po"
    target.parent.mkdir(parents=True)
    with target.open("wb") as fh:
        write_po(fh, override)
    assert core["Settings"].string != "Параметры"
    assert probe["Probe pipeline"].string != "Воронка филиала"

    with app.test_request_context("/", headers={"Accept-Language": "ru"}):
        assert str(get_locale()) == "ru"
        got = {n: ngettext("%(num)d open deal", "%(num)d open deals", n)
               for n in (1, 2, 5, 11, 21, 22)}
        # CLDR Russian: one for 1 and 21, few for 2 and 22, many for 5 and 11.
        assert got == {1: deal[0] % {"num": 1}, 2: deal[1] % {"num": 2},
                       5: deal[2] % {"num": 5}, 11: deal[2] % {"num": 11},
                       21: deal[0] % {"num": 21}, 22: deal[1] % {"num": 22}}
        assert len(set(deal)) == 3  # distinct forms, so a wrong rule cannot pass by accident
        # Core's catalogue is still there, plurals included.
        assert gettext("Sign in") == core["Sign in"].string
        assert ngettext("Too many failed attempts. Try again in %(num)d minute.",
                        "Too many failed attempts. Try again in %(num)d minutes.", 5) \
            == lock[2] % {"num": 5}
        # The instance override wins over both.
        assert gettext("Settings") == "Параметры"
        assert gettext("Probe pipeline") == "Воронка филиала"


# --- every string on the main pages is translated --------------------------------------------

class _VisibleText(HTMLParser):
    """Text nodes and the attributes people see or hear (title, aria-label, placeholder)."""

    ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden = 0
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._hidden += 1
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        for name, value in attrs:
            if value and (name in self.ATTRIBUTES
                          or (name == "value" and ("type", "submit") in attrs)):
                self.chunks.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.chunks.append(" ".join(data.split()))


def _source_patterns(directories: list[Path], lang: str) -> dict[str, re.Pattern[str]]:
    """English msgids that have a different translation in `lang`, as whole-word patterns
    (placeholders match any text). A msgid that is also a word of the language itself (Latvian
    "no" means "from") is left out: seeing it proves nothing."""
    patterns = {}
    messages = []
    for directory in directories:
        po = directory / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        if po.is_file():
            messages += [m for m in _read(po, lang) if m.id]
    native = "\n".join(form for m in messages for form in _forms(m) if form)
    for message in messages:
        ids = message.id if message.pluralizable else (message.id,)
        forms = _forms(message)
        for msgid in ids:
            if not msgid or not all(forms) or msgid in forms:
                continue
            pieces = []  # literal text as a whitespace-tolerant pattern, placeholders as .+?
            for index, piece in enumerate(re.split(f"({FORMAT_TOKEN_RE.pattern})", msgid)):
                if index % 2:
                    pieces.append("%" if piece == "%%" else ".+?")
                else:
                    pieces += [r"\s+" if not word.strip() else re.escape(word)
                               for word in re.split(r"(\s+)", piece) if word]
            if not re.search(r"[A-Za-z]{2}", FORMAT_TOKEN_RE.sub("", msgid)):
                continue
            pattern = re.compile(r"(?<!\w)" + "".join(pieces) + r"(?!\w)")
            if not pattern.search(native):
                patterns[msgid] = pattern
    return patterns


def _builtin_addons() -> list[str]:
    found = discover([PROJECT_ROOT / "addons"], entry_points=False)
    return sorted(name for name, addon in found.items() if addon.installable)


def _leaks(html: str, patterns: dict[str, re.Pattern[str]], data: set[str]
           ) -> tuple[str | None, list[str], str]:
    """(the page's html lang, English msgids found in its visible text, that text)."""
    parser = _VisibleText()
    parser.feed(html)
    text = " | ".join(c for c in parser.chunks if c not in data)
    return parser.lang, sorted(m for m, pattern in patterns.items() if pattern.search(text)), text


@pytest.mark.parametrize("lang", TRANSLATED)
def test_main_pages_show_no_untranslated_source_text(make_app, make_user, lang: str) -> None:
    app = make_app(_builtin_addons())
    state = app.extensions["birga"]
    # Technical names and versions are shown as written; titles and summaries are translated.
    data = {"Birga"} | {str(v) for a in state.available.values() for v in (a.name, a.version)}
    with app.app_context():
        admin = make_user("admin", is_admin=True, locale=lang)
        login_name = admin.login
    patterns = _source_patterns(app.extensions["birga.i18n"].directories, lang)
    assert patterns, f"no translated messages found for {lang}"
    client = app.test_client()
    header = {"Accept-Language": lang}

    pages = {"login page": client.get("/login", headers=header)}
    token = csrf_token(client)
    pages["failed login"] = client.post("/login", headers=header, data={
        "login": login_name, "password": "not the password", "csrf_token": token})
    signed_in = client.post("/login", data={"login": login_name, "password": TEST_PASSWORD,
                                            "csrf_token": token})
    assert signed_in.status_code == 302
    pages["dashboard"] = client.get("/")
    pages["addons page"] = client.get("/admin/addons")

    for page, response in pages.items():
        assert response.status_code == 200, page
        page_lang, leaked, text = _leaks(response.get_data(as_text=True), patterns, data)
        assert page_lang == lang, f"{page} rendered in {page_lang}, not {lang}"
        assert leaked == [], f"{page} in {lang} shows English: {leaked}\n{text}"


def test_manifest_title_and_summary_are_extracted_with_their_context(tmp_path: Path) -> None:
    addon = tmp_path / "addons" / "fx_shop"
    addon.mkdir(parents=True)
    (addon / "__manifest__.py").write_text(
        '{"name": "Shop", "version": "1.0.0", "summary": "Sell from the card",\n'
        ' "author": "A partner", "depends": []}\n', encoding="utf-8")
    assert extract(tmp_path / "translations", [addon]) == 2
    with (tmp_path / "translations" / f"{DOMAIN}.pot").open("rb") as fh:
        template = read_po(fh)
    assert {(m.context, m.id) for m in template if m.id} == {
        (MANIFEST_CONTEXT, "Shop"), (MANIFEST_CONTEXT, "Sell from the card")}


def test_addons_page_shows_titles_and_summaries_of_disabled_addons_in_the_admins_language(
        make_app, make_user, login) -> None:
    """The Addons page lists addons that are not enabled, whose catalogues the app has not
    merged: their manifest text comes from each addon's own catalogue."""
    app = make_app(["contacts"])
    client = app.test_client()
    with app.app_context():
        login(client, make_user("admin", is_admin=True, locale="lv"))
    html = client.get("/admin/addons").get_data(as_text=True)
    for name, title, summary in (
            ("contacts", "Kontakti", "Personas un uzņēmumi"),
            ("documents", "Dokumenti", "Produkti, komerciālie piedāvājumi"),
            ("pipeline", "Pārdošanas piltuve", "darījumi pielāgojamās piltuvēs")):
        row = html.split(f'id="addon-{name}"')[1].split("</tr>")[0]
        assert f"<strong>{title}</strong>" in row and summary in row, name
        assert app.extensions["birga"].available[name].title not in row


def test_the_page_check_spots_english_text(make_app) -> None:
    """The same check on the English login page must report the source strings it shows."""
    app = make_app([])
    patterns = _source_patterns(app.extensions["birga.i18n"].directories, "ru")
    html = app.test_client().get("/login", headers={"Accept-Language": "en"}).get_data(
        as_text=True)
    page_lang, leaked, _text = _leaks(html, patterns, set())
    assert page_lang == "en"
    assert {"Sign in", "Password", "Keep me signed in", "Language"} <= set(leaked)


def _python_sources() -> Iterator[Path]:
    for root in (PROJECT_ROOT / "core", PROJECT_ROOT / "addons"):
        for path in root.rglob("*.py"):
            if not SKIP_DIRS.intersection(path.parts):
                yield path


def test_no_gettext_call_hides_inside_an_f_string() -> None:
    """Babel's extractor does not read into f-strings (Python 3.11 gives them as one
    string token), so `f"{_('x')}"` shows English in every language, silently."""
    import io
    import tokenize

    call = re.compile(r"\{[^{}]*\b(?:_|_l|gettext|ngettext|pgettext|lazy_gettext)\(")
    hidden = []
    for path in _python_sources():
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        for token in tokens:
            prefix = token.string[:2].lower()
            if token.type == tokenize.STRING and "f" in prefix and call.search(token.string):
                hidden.append(f"{path.relative_to(PROJECT_ROOT)}:{token.start[0]}")
    assert hidden == []
