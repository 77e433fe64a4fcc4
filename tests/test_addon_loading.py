"""Loading enabled addons: tables, blueprints, templates, menus and template hooks."""
from __future__ import annotations

import pytest
from flask import render_template

from core.addons import TablePrefixError
from core.registry import MenuError
from core.security import assign_roles

from .conftest import ADDON_PATHS, write_addon


def names(app):
    return [a.name for a in app.extensions["birga"].addons]


@pytest.fixture
def signed_in(make_user, login):
    """A test client of `app` signed in as a new user (admin when asked)."""

    def factory(app, is_admin=False):
        client = app.test_client()
        with app.app_context():
            user = make_user("admin" if is_admin else "reader", is_admin=is_admin)
            assign_roles(user, *(() if is_admin else ("salesperson",)))  # grants *.read
            assert login(client, user).status_code == 302
        return client

    return factory


def test_enabling_a_dependent_loads_its_dependency_first(fx_app):
    app = fx_app(["fx_ext"])
    assert names(app) == ["fx_base", "fx_ext"]
    assert "fx_base.index" in app.view_functions


def test_blueprint_is_mounted_under_the_addon_name(fx_app, signed_in):
    app = fx_app(["fx_base"])
    response = signed_in(app).get("/fx_base/")
    assert response.status_code == 200
    assert "<h1>Things</h1>" in response.get_data(as_text=True)


def test_hooks_render_every_contribution_in_sequence_and_escape_plain_strings(fx_app, signed_in):
    app = fx_app(["fx_ext"])
    html = signed_in(app).get("/fx_base/").get_data(as_text=True)
    panel = html[html.index('<div id="panel">'):html.index("</div>", html.index('id="panel"'))]
    assert panel.index("ext:0") < panel.index("base:0") < panel.index("&lt;b&gt;raw")
    assert "<b>raw</b>" not in panel  # a callable's plain str is escaped
    assert "<i>0</i>" in panel  # Markup built on purpose passes


def test_hook_without_contributions_renders_nothing(fx_app, signed_in):
    app = fx_app(["fx_base"])
    html = signed_in(app).get("/fx_base/").get_data(as_text=True)
    assert "base:0" in html and "ext:" not in html


def test_template_precedence_instance_then_dependents_then_dependencies(fx_app, tmp_path):
    app = fx_app(["fx_ext"])
    with app.test_request_context():
        assert render_template("fx_base/overridable.html").strip() == "from-ext"
    instance = tmp_path / "inst"
    (instance / "templates" / "fx_base").mkdir(parents=True)
    (instance / "templates" / "fx_base" / "overridable.html").write_text("from-instance")
    app = fx_app(["fx_ext"], INSTANCE_PATH=str(instance))
    with app.test_request_context():
        assert render_template("fx_base/overridable.html").strip() == "from-instance"
    app = fx_app(["fx_base"])
    with app.test_request_context():
        assert render_template("fx_base/overridable.html").strip() == "from-base"


def test_menu_is_built_from_enabled_addons_and_permissions(fx_app, signed_in):
    app = fx_app(["fx_base"])
    client = signed_in(app)
    html = client.get("/").get_data(as_text=True)
    assert 'data-menu="fx_base.list"' in html
    assert 'data-menu="settings.addons"' not in html  # admins only
    app = fx_app([])
    html = signed_in(app, is_admin=True).get("/").get_data(as_text=True)
    assert 'data-menu="fx_base' not in html
    assert 'data-menu="settings.addons"' in html
    top = app.extensions["birga"].registry.menu_tree()
    assert [m.id for m in top][:1] == ["home"] and top[-1].id == "settings"


def test_each_user_gets_the_menu_of_their_permissions_and_language_from_the_cache(
        fx_app, signed_in, make_user, login):
    app = fx_app(["fx_base"])
    admin, reader = signed_in(app, is_admin=True), signed_in(app)
    for _ in range(2):  # the second round is served from the rendered menus
        assert 'data-menu="settings.addons"' in admin.get("/").get_data(as_text=True)
        assert 'data-menu="settings.addons"' not in reader.get("/").get_data(as_text=True)
    client = app.test_client()
    with app.app_context():
        latvian = make_user("lv-reader", locale="lv")
        assign_roles(latvian, "salesperson")
        assert login(client, latvian).status_code == 302
    html = client.get("/").get_data(as_text=True)
    assert 'data-menu="settings.addons"' not in html
    assert ">Pārskats<" in html and ">Dashboard<" not in html
    registry = app.extensions["birga"].registry
    assert len(registry._nav) == 3  # (en, admin), (en, reader), (lv, reader)
    registry.add_menu("fx_base.more", "More", "web.index", addon="fx_base")
    assert registry._nav == {}  # a new entry: every menu renders again


def test_unknown_menu_parent_stops_the_app(make_app, tmp_path):
    write_addon(tmp_path, "orphan_menu", {"name": "Orphan", "version": "1"}, {
        "__init__.py": "def init_app(app, addon):\n"
                       "    addon.menu('orphan', 'Orphan', None, parent='nowhere')\n"})
    with pytest.raises(MenuError, match="unknown parent 'nowhere'"):
        make_app(["orphan_menu"], BIRGA_ADDONS_PATHS=[*ADDON_PATHS, str(tmp_path)])


def test_table_without_the_addon_prefix_is_rejected(make_app, tmp_path):
    write_addon(tmp_path, "prefixless", {"name": "P", "version": "1"}, {
        "__init__.py": "",
        "models.py": "from core.api import db\n"
                     "class Bad(db.Model):\n"
                     "    __tablename__ = 'wrong_table'\n"
                     "    id = db.Column(db.Integer, primary_key=True)\n"})
    with pytest.raises(TablePrefixError) as err:
        make_app(["prefixless"], BIRGA_ADDONS_PATHS=[*ADDON_PATHS, str(tmp_path)])
    assert "'wrong_table'" in str(err.value) and "prefixless_" in str(err.value)
    assert "models.py" in str(err.value)


def test_two_apps_with_different_addons_keep_separate_registries(fx_app):
    one, two = fx_app(["fx_ext"]), fx_app([])
    assert "fx_base.panel" in one.extensions["birga"].registry.hooks
    assert "fx_base.panel" not in two.extensions["birga"].registry.hooks
    assert "fx_base.index" not in two.view_functions
