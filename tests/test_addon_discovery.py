"""Discovery and resolution: every failure is its own error naming the addon, file and fix."""
from __future__ import annotations

import pytest

from core.addons import (
    AddonNotInstallable,
    DependencyCycle,
    DuplicateAddon,
    InvalidManifest,
    MissingDependency,
    UnknownAddon,
    dependents_of,
    discover,
    resolve,
)

from .conftest import write_addon


def manifest(**extra):
    return {"name": "X", "version": "1.0", **extra}


def test_discovers_folder_addons_without_importing_them(tmp_path):
    write_addon(tmp_path, "alpha", manifest(summary="first"))
    write_addon(tmp_path, "beta", manifest(depends=["alpha"]))
    (tmp_path / "not_an_addon").mkdir()
    found = discover([tmp_path], entry_points=False)
    assert sorted(found) == ["alpha", "beta"]
    assert found["beta"].depends == ("alpha",)
    assert found["alpha"].source == "folder"
    assert found["alpha"].module == "addons.alpha"


def test_load_order_follows_depends_with_alphabetical_tie_break(tmp_path):
    write_addon(tmp_path, "zeta", manifest())
    write_addon(tmp_path, "alpha", manifest(depends=["zeta"]))
    write_addon(tmp_path, "mid", manifest())
    write_addon(tmp_path, "beta", manifest(depends=["mid", "alpha"]))
    found = discover([tmp_path], entry_points=False)
    order = [a.name for a in resolve(["beta", "mid"], found)]
    assert order == ["mid", "zeta", "alpha", "beta"]
    # The same answer whatever order the names are asked in.
    assert [a.name for a in resolve(["mid", "beta"], found)] == order


def test_missing_dependency_names_who_needs_what_and_the_fix(tmp_path):
    path = write_addon(tmp_path, "sales", manifest(depends=["ledger"]))
    found = discover([tmp_path], entry_points=False)
    with pytest.raises(MissingDependency) as err:
        resolve(["sales"], found)
    text = str(err.value)
    assert "'sales' depends on 'ledger'" in text
    assert str(path / "__manifest__.py") in text
    assert "pip install" in text
    assert err.value.addon == "sales"


def test_cycle_is_printed_as_a_chain(tmp_path):
    write_addon(tmp_path, "aa", manifest(depends=["bb"]))
    write_addon(tmp_path, "bb", manifest(depends=["aa"]))
    write_addon(tmp_path, "cc", manifest(depends=["aa"]))
    found = discover([tmp_path], entry_points=False)
    with pytest.raises(DependencyCycle) as err:
        resolve(["cc"], found)
    assert "aa -> bb -> aa" in str(err.value)
    assert err.value.cycle == ["aa", "bb", "aa"]


def test_same_name_in_two_places_names_both(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write_addon(one, "dup", manifest())
    write_addon(two, "dup", manifest())
    with pytest.raises(DuplicateAddon) as err:
        discover([one, two], entry_points=False)
    assert str(one / "dup") in str(err.value) and str(two / "dup") in str(err.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("{'name': 'X', 'version': '1', 'depend': ['a']}", "unknown key 'depend'"),
    ("{'name': 'X', 'version': 1}", "'version' of addon 'bad' must be of type str"),
    ("{'name': 'X'}", "lacks the key 'version'"),
    ("{'name': 'X', 'version': '1', 'depends': 'contacts'}", "must be of type list"),
    ("{'name': 'X', 'version': '1', 'depends': ['Bad-Name']}", "invalid name 'Bad-Name'"),
    ("__import__('os').system('true')", "not a Python dict literal"),
    ("['name']", "must be a dict"),
])
def test_invalid_manifest_is_refused_with_the_reason(tmp_path, text, expected):
    write_addon(tmp_path, "bad", text)
    with pytest.raises(InvalidManifest) as err:
        discover([tmp_path], entry_points=False)
    assert expected in str(err.value)
    assert "__manifest__.py" in str(err.value)


@pytest.mark.parametrize("name", ["Bad", "core", "x", "with-dash"])
def test_bad_addon_folder_names_are_refused(tmp_path, name):
    write_addon(tmp_path, name, manifest())
    with pytest.raises(InvalidManifest, match="not a valid addon name"):
        discover([tmp_path], entry_points=False)


def test_not_installable_addon_cannot_be_enabled_even_as_a_dependency(tmp_path):
    write_addon(tmp_path, "draft", manifest(installable=False))
    write_addon(tmp_path, "user", manifest(depends=["draft"]))
    found = discover([tmp_path], entry_points=False)
    with pytest.raises(AddonNotInstallable, match="'draft' .needed by 'user'. is marked not"):
        resolve(["user"], found)


def test_unknown_addon_name(tmp_path):
    with pytest.raises(UnknownAddon, match="No addon named 'ghost'"):
        resolve(["ghost"], {})


def test_dependents_are_found_transitively(tmp_path):
    write_addon(tmp_path, "base", manifest())
    write_addon(tmp_path, "mid", manifest(depends=["base"]))
    write_addon(tmp_path, "top", manifest(depends=["mid"]))
    write_addon(tmp_path, "other", manifest())
    found = discover([tmp_path], entry_points=False)
    enabled = resolve(["top", "other"], found)
    assert dependents_of("base", enabled) == ["mid", "top"]
    assert dependents_of("other", enabled) == []


def test_app_refuses_to_start_on_a_broken_addon(make_app, tmp_path):
    write_addon(tmp_path, "needy", manifest(depends=["nowhere"]))
    with pytest.raises(MissingDependency):
        make_app(["needy"], BIRGA_ADDONS_PATHS=[str(tmp_path)])


def test_disabled_addons_are_never_imported(fx_app, tmp_path):
    # write_addon's __init__ raises on import: starting the app must not touch it.
    write_addon(tmp_path, "landmine", manifest())
    app = fx_app(["fx_base"], BIRGA_ADDONS_PATHS=[*fx_app_paths(), str(tmp_path)])
    assert "landmine" in app.extensions["birga"].available
    assert [a.name for a in app.extensions["birga"].addons] == ["fx_base"]


def fx_app_paths():
    from .conftest import ADDON_PATHS

    return ADDON_PATHS
