"""Catalogue maintenance behind `birga i18n`: extract, update, compile (Babel's API, no shell)."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from .i18n import DOMAIN, MANIFEST_CONTEXT, TRANSLATED

KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "_l": None,
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
    "lazy_pgettext": ((1, "c"), 2),
}
METHOD_MAP = [
    ("**/tests/**", "ignore"),
    ("**/scaffold/template/**", "ignore"),
    ("**/migrations/**", "ignore"),
    ("**/__manifest__.py", "core.i18n_tools:extract_manifest"),
    ("**.py", "python"),
    ("**.html", "jinja2"),
    ("**.txt", "jinja2"),
]
OPTIONS = {"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"},
           "**.txt": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def extract_manifest(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
                     ) -> Iterator[tuple[int, str, tuple[str, str], list[str]]]:
    """Babel extraction method for `__manifest__.py`: its `name` and `summary`, with the
    context `MANIFEST_CONTEXT`, so the Addons page shows them in the admin's language (as
    Odoo translates a module's manifest)."""
    tree = ast.parse(fileobj.read().decode("utf-8"))
    manifest = next((node for node in ast.walk(tree) if isinstance(node, ast.Dict)), None)
    if manifest is None:
        return
    for key, value in zip(manifest.keys, manifest.values, strict=True):
        if (isinstance(key, ast.Constant) and key.value in ("name", "summary")
                and isinstance(value, ast.Constant) and isinstance(value.value, str)):
            yield value.lineno, "pgettext", (MANIFEST_CONTEXT, value.value), [
                f"The addon's {key.value} on the Addons page."]


def extract(translations_dir: Path, sources: list[Path]) -> int:
    """Write `messages.pot` into `translations_dir`; returns the number of messages."""
    catalog = Catalog(project="Birga", version="1.0", msgid_bugs_address="",
                      copyright_holder="Birga contributors", charset="utf-8")
    for source in sources:
        if not source.is_dir():
            continue
        for filename, lineno, message, comments, context in extract_from_dir(
                str(source), METHOD_MAP, OPTIONS, KEYWORDS, strip_comment_tags=True):
            rel = (source / filename).relative_to(source.parent)
            catalog.add(message, None, [(str(rel), lineno)], auto_comments=comments,
                        context=context)
    translations_dir.mkdir(parents=True, exist_ok=True)
    with (translations_dir / f"{DOMAIN}.pot").open("wb") as fh:
        write_po(fh, catalog, width=100, omit_header=False, sort_output=True)
    return len(catalog)


def update(translations_dir: Path, languages: tuple[str, ...] = TRANSLATED) -> dict[str, str]:
    """Merge the template into each language's `.po`; new languages get a fresh catalogue."""
    pot = translations_dir / f"{DOMAIN}.pot"
    with pot.open("rb") as fh:
        template = read_po(fh)
    stats = {}
    for lang in languages:
        po = translations_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        if po.is_file():
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=lang)
            catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        else:
            po.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=lang, project="Birga", charset="utf-8")
            catalog.update(template, no_fuzzy_matching=True)
        with po.open("wb") as fh:
            write_po(fh, catalog, width=100, ignore_obsolete=True, sort_output=True)
        missing = sum(1 for m in catalog if m.id and not _translated(m))
        stats[lang] = f"{len(catalog) - 1} messages, {missing} untranslated"
    return stats


def _translated(message) -> bool:
    if isinstance(message.string, tuple | list):
        return all(message.string)
    return bool(message.string)


def compile_all(translations_dir: Path) -> int:
    """Compile every `<lang>/LC_MESSAGES/messages.po` next to itself."""
    count = 0
    for po in sorted(translations_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        lang = po.parent.parent.name
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        with po.with_suffix(".mo").open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        count += 1
    return count
