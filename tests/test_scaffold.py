"""`birga addons new`: the scaffold gives a partner package that pip installs and Birga serves
(migrated, translated), and a local addon whose own generated tests pass."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po
from click.testing import CliRunner

from core import loader, migrate
from core.addons import discover_entry_points
from core.cli import main
from core.extensions import db
from core.i18n import MANIFEST_CONTEXT, TRANSLATED
from core.scaffold import ScaffoldError, scaffold
from core.testing import csrf_token

PARTNER = "acme_loyalty"  # installed with pip into a private folder
LOCAL = "acme_notes"  # written into a temporary addons folder


def _forget(name: str) -> None:
    """Drop every trace an imported addon leaves in this process, so later tests never see it."""
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")
                   or m == f"addons.{name}" or m.startswith(f"addons.{name}.")]:
        del sys.modules[module]
    for table in [t for t in db.metadata.tables.values() if loader.owner_of(t.name) == name]:
        db.metadata.remove(table)
    loader._TABLES_BY_OWNER.pop(name, None)
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def partner_site(tmp_path_factory: pytest.TempPathFactory):
    """The scaffolded partner distribution, pip-installed (not editable) into its own folder,
    which is on `sys.path` only while this module's tests run."""
    root = tmp_path_factory.mktemp("partner")
    package = scaffold(PARTNER, package_dir=root / "birga-acme-loyalty",
                       addons_dir=root / "addons", title="Acme Loyalty")
    site = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--quiet",
         "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        _forget(PARTNER)


def test_installed_partner_package_is_discovered_through_its_entry_point(partner_site):
    found = {a.name: a for a in discover_entry_points()}
    addon = found[PARTNER]
    assert addon.source == "distribution"
    assert addon.distribution == "birga-acme-loyalty 0.1.0"
    assert addon.module == PARTNER
    assert addon.path == partner_site / PARTNER
    assert addon.title == "Acme Loyalty"
    # package-data shipped what the loader reads from the folder, not from the import system
    assert (addon.path / "templates" / PARTNER / "index.html").is_file()
    for lang in TRANSLATED:
        assert (addon.path / "translations" / lang / "LC_MESSAGES" / "messages.po").is_file()
    assert len(list((addon.path / "migrations" / "versions").glob("*.py"))) == 1


def test_name_of_an_installed_addon_is_refused(partner_site, tmp_path: Path):
    result = _cli(PARTNER, "--addons-dir", str(tmp_path / "addons"))
    assert result.exit_code == 1
    assert "already installed by the distribution birga-acme-loyalty" in result.output
    assert not (tmp_path / "addons").exists()


def _signed_in_client(app, make_user, login, items: list[str]):
    model = importlib.import_module(f"{PARTNER}.models").Item
    db.session.add_all([model(name=n) for n in items])
    db.session.commit()
    client = app.test_client()
    assert login(client, make_user("aigerim", is_admin=True)).status_code == 302
    return client, model


def _switch_language(client, code: str) -> None:
    page = f"/{PARTNER}/"
    response = client.post("/locale", data={"locale": code, "next": page,
                                            "csrf_token": csrf_token(client, page)})
    assert response.status_code == 302


def test_partner_addon_migrates_and_serves_its_page_in_kazakh(partner_site, make_app, make_user,
                                                              login):
    app = make_app([PARTNER], migrate=True)
    assert migrate.current(app)[PARTNER] is not None
    assert migrate.diff(app, PARTNER) == []  # the generated migration matches the model
    with app.app_context():
        client, _model = _signed_in_client(app, make_user, login, ["Gold card", "Silver card"])
        english = client.get(f"/{PARTNER}/").get_data(as_text=True)
        assert "<h1>Items</h1>" in english and "2 items" in english

        _switch_language(client, "kk")
        response = client.get(f"/{PARTNER}/")
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert '<html lang="kk">' in html
        assert "<h1>Жазбалар</h1>" in html
        assert "2 жазба" in html
        assert "2 items" not in html
        assert "Gold card" in html and "Silver card" in html


def test_partner_addon_picks_each_russian_plural_form(partner_site, make_app, make_user, login):
    app = make_app([PARTNER], migrate=True)
    with app.app_context():
        client, model = _signed_in_client(app, make_user, login, [])
        _switch_language(client, "ru")
        assert "Здесь пока ничего нет." in client.get(f"/{PARTNER}/").get_data(as_text=True)
        expected = {1: "1 запись", 2: "2 записи", 5: "5 записей", 21: "21 запись"}
        have = 0
        for count, text in expected.items():
            db.session.add_all([model(name=f"card {i}") for i in range(have, count)])
            db.session.commit()
            have = count
            html = client.get(f"/{PARTNER}/").get_data(as_text=True)
            assert text in html, count


def _cli(*args: str):
    return CliRunner().invoke(main, ["addons", "new", *args])


def test_local_addon_from_the_command_line_passes_its_own_tests(tmp_path: Path):
    addons_dir = tmp_path / "addons"
    result = _cli(LOCAL, "--addons-dir", str(addons_dir), "--title", "Acme Notes")
    assert result.exit_code == 0, result.output
    target = addons_dir / LOCAL
    assert f"Created {target}" in result.output
    assert sorted(p.name for p in addons_dir.iterdir()) == [LOCAL]  # no staging folder left
    assert "from addons.acme_notes.models import" in (
        target / "tests" / f"test_{LOCAL}.py").read_text(encoding="utf-8")

    env = {**os.environ, "BIRGA_ADDONS_PATHS": json.dumps([str(addons_dir)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--import-mode=importlib", str(target / "tests")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


def test_generated_catalogues_are_translated_with_each_languages_plural_rule(tmp_path: Path):
    target = scaffold(LOCAL, package_dir=None, addons_dir=tmp_path, title=None)
    for lang in TRANSLATED:
        po = target / "translations" / lang / "LC_MESSAGES" / "messages.po"
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        rule = get_plural(lang)
        assert catalog.plural_forms == rule.plural_forms, lang
        assert f"Plural-Forms: {rule.plural_forms}" in po.read_text(encoding="utf-8").replace(
            '"\n"', "")
        messages = [m for m in catalog if m.id]
        assert {m.id if isinstance(m.id, str) else m.id[0] for m in messages} >= {
            "Items", "%(num)d item"}
        for message in messages:
            if message.context == MANIFEST_CONTEXT:  # the partner's own words, as written
                assert message.string == message.id and message.user_comments, message.id
            elif message.pluralizable:
                assert len(message.string) == rule.num_plurals, (lang, message.id)
                assert all(message.string) and message.string[0] != message.id[0]
            else:
                assert message.string and message.string != message.id, (lang, message.id)
        assert {m.id for m in messages if m.context == MANIFEST_CONTEXT} == {
            "Acme Notes", "Acme Notes for Birga"}


@pytest.mark.parametrize(("name", "why"), [
    ("Bad-Name", "not a valid addon name"),
    ("x", "not a valid addon name"),
    ("9lives", "not a valid addon name"),
    ("core", "reserved"),
])
def test_bad_name_is_refused_and_writes_nothing(tmp_path: Path, name: str, why: str):
    result = _cli(name, "--addons-dir", str(tmp_path / "addons"))
    assert result.exit_code == 1
    assert why in result.output
    assert not (tmp_path / "addons").exists() or not any((tmp_path / "addons").iterdir())


def test_existing_addon_folder_is_refused_and_left_alone(tmp_path: Path):
    mine = tmp_path / LOCAL / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("keep me", encoding="utf-8")
    result = _cli(LOCAL, "--addons-dir", str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path / LOCAL} already exists" in result.output
    assert sorted(p.name for p in (tmp_path / LOCAL).iterdir()) == ["notes.txt"]
    assert mine.read_text(encoding="utf-8") == "keep me"


def test_existing_distribution_folder_is_refused(tmp_path: Path):
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    with pytest.raises(ScaffoldError, match="pyproject.toml already exists"):
        scaffold("acme_other", package_dir=tmp_path / "dist", addons_dir=tmp_path / "addons",
                 title=None)
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["pyproject.toml"]


def test_package_name_that_is_already_importable_is_refused(tmp_path: Path):
    with pytest.raises(ScaffoldError, match="'json' is already importable"):
        scaffold("json", package_dir=tmp_path / "dist", addons_dir=tmp_path / "addons",
                 title=None)
    assert not (tmp_path / "dist").exists()
