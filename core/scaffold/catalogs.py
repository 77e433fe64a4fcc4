"""The scaffold's translation catalogues: real translations of the few strings it writes.

The messages are extracted from the rendered addon itself (the same extractor `birga i18n`
uses), so a string added to a template without a translation here fails the scaffold at once
instead of shipping an addon that silently shows English in five languages.
"""
from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po

from core.i18n import DOMAIN, MANIFEST_CONTEXT, TRANSLATED
from core.i18n_tools import extract

#: msgid (the singular for plural messages) -> language -> text, or one text per plural form
#: in the order of the language's gettext plural rule.
TRANSLATIONS: dict[str, dict[str, str | tuple[str, ...]]] = {
    "Items": {
        "lv": "Ieraksti",
        "ru": "Записи",
        "uz": "Yozuvlar",
        "kk": "Жазбалар",
        "ro": "Înregistrări",
    },
    "View items": {
        "lv": "Skatīt ierakstus",
        "ru": "Просмотр записей",
        "uz": "Yozuvlarni koʻrish",
        "kk": "Жазбаларды көру",
        "ro": "Vizualizarea înregistrărilor",
    },
    "Nothing here yet.": {
        "lv": "Šeit vēl nekā nav.",
        "ru": "Здесь пока ничего нет.",
        "uz": "Bu yerda hali hech narsa yoʻq.",
        "kk": "Мұнда әзірге ештеңе жоқ.",
        "ro": "Nu există încă nimic aici.",
    },
    "%(num)d item": {
        # lv: 1, 21 ... | other non-zero | zero
        "lv": ("%(num)d ieraksts", "%(num)d ieraksti", "%(num)d ierakstu"),
        # ru: 1, 21 ... | 2-4, 22-24 ... | 0, 5-20 ...
        "ru": ("%(num)d запись", "%(num)d записи", "%(num)d записей"),
        # uz, kk: a noun after a numeral stays singular, but gettext still wants two forms
        "uz": ("%(num)d ta yozuv", "%(num)d ta yozuv"),
        "kk": ("%(num)d жазба", "%(num)d жазба"),
        # ro: 1 | 0, 2-19, 101-119 ... | 20 and more ("de")
        "ro": ("%(num)d înregistrare", "%(num)d înregistrări", "%(num)d de înregistrări"),
    },
}


class MissingTranslation(Exception):
    """The rendered addon has a message this table does not translate (a scaffold bug)."""


def write_catalogs(addon_dir: Path, title: str,
                   languages: tuple[str, ...] = TRANSLATED) -> list[Path]:
    """Write `translations/messages.pot` and a translated `.po` per language; returns the `.po`s.

    The `Plural-Forms` header and the number of forms come from CLDR through Babel's
    `get_plural`, the same data Birga uses at run time.
    """
    tdir = addon_dir / "translations"
    extract(tdir, [addon_dir])
    with (tdir / f"{DOMAIN}.pot").open("rb") as fh:
        template = read_po(fh)
    written = []
    for lang in languages:
        plural = get_plural(lang)
        catalog = Catalog(locale=lang, project=title, version="0.1.0", charset="utf-8",
                          fuzzy=False)
        catalog.update(template, no_fuzzy_matching=True)
        for message in catalog:
            if not message.id:
                continue
            key = message.id[0] if message.pluralizable else message.id
            if message.context == MANIFEST_CONTEXT:
                # The partner's own title and summary: only they can translate them. Until
                # they do, every language shows them as written (a brand name often stays so).
                message.string = message.id
                message.user_comments = ["Translate the addon's name or summary, unless it is "
                                         "a brand name that stays as it is."]
                continue
            text = TRANSLATIONS.get(key, {}).get(lang)
            if text is None:
                raise MissingTranslation(f"No {lang} translation for the scaffold's {key!r}.")
            if message.pluralizable:
                if not isinstance(text, tuple) or len(text) != plural.num_plurals:
                    raise MissingTranslation(
                        f"{lang} needs {plural.num_plurals} plural forms for {key!r}.")
                message.string = text
            else:
                message.string = text
        po = tdir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        po.parent.mkdir(parents=True, exist_ok=True)
        with po.open("wb") as fh:
            write_po(fh, catalog, width=100, sort_output=True)
        written.append(po)
    return written
