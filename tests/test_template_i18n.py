"""Macros that translate must be imported `with context`: an imported template without it is
built once per app with its own evaluation context, so the language of the first page that
imported it sticks for every later visitor."""
from __future__ import annotations

import re
from pathlib import Path

from core import PROJECT_ROOT

IMPORT = re.compile(r'{%-?\s*(?:from\s+"([^"]+)"\s+import|import\s+"([^"]+)")([^%]*)%}')
TRANSLATES = re.compile(r"\b(?:_|gettext|ngettext|pgettext|npgettext)\(")
# Kernel templates and the addons whose templates this check already covers.
CHECKED = [PROJECT_ROOT / "templates", PROJECT_ROOT / "addons" / "contacts" / "templates"]


def _template(name: str) -> Path | None:
    for root in [PROJECT_ROOT / "templates", *PROJECT_ROOT.glob("addons/*/templates")]:
        if (root / name).is_file():
            return root / name
    return None


def test_translating_macros_are_imported_with_context() -> None:
    wrong = []
    for root in CHECKED:
        for path in root.rglob("*.html"):
            for match in IMPORT.finditer(path.read_text(encoding="utf-8")):
                source = _template(match.group(1) or match.group(2))
                if (source is not None and "with context" not in match.group(3)
                        and TRANSLATES.search(source.read_text(encoding="utf-8"))):
                    wrong.append(f"{path.relative_to(PROJECT_ROOT)}: {match.group(0)}")
    assert wrong == []


def test_access_tabs_follow_each_users_language(make_app, make_user, login) -> None:
    app = make_app([])
    with app.app_context():
        ru = make_user("ivan", is_admin=True, locale="ru")
        en = make_user("anna", is_admin=True, locale="en")
        pages = []
        for user in (ru, en):
            client = app.test_client()
            login(client, user)
            pages.append(client.get(f"/admin/access/users/{user.id}").get_data(as_text=True))
    assert "Пользователи" in pages[0] and "Команды" in pages[0]
    assert "Пользователи" not in pages[1] and ">Teams<" in pages[1]


def test_a_macro_imported_without_context_still_follows_each_requests_language(app) -> None:
    """The kernel's safety net for partners' templates: the check above covers ours only."""
    from flask import render_template_string
    from flask_babel import force_locale
    from jinja2 import ChoiceLoader, DictLoader

    app.jinja_env.loader = ChoiceLoader([
        DictLoader({"partner/_m.html": "{% macro out() %}{{ _('Sign out') }}{% endmacro %}"}),
        app.jinja_env.loader])
    page = '{% from "partner/_m.html" import out %}{{ out() }}'
    seen = []
    for locale in ("ru", "en", "lv", "ru"):
        with app.test_request_context("/"), force_locale(locale):
            seen.append(render_template_string(page))
    assert seen == ["Выйти", "Sign out", "Atteikties", "Выйти"]
