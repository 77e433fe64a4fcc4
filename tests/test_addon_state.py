"""Enabling and disabling addons: the Addons page, the CLI, and every worker following along."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from werkzeug.test import Client

from core import create_app
from core.cli import main
from core.extensions import db
from core.models import User
from core.reloader import AddonReloader
from core.testing import TEST_PASSWORD


def make_admin(app):
    with app.app_context():
        user = User(login="admin", name="Admin", is_admin=True)
        user.set_password(TEST_PASSWORD)
        db.session.add(user)
        db.session.commit()


def signed_in(wsgi) -> Client:
    client = Client(wsgi)
    token = _token(client, "/login")
    response = client.post("/login", data={"login": "admin", "password": TEST_PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302
    return client


def _token(client, path):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def post(client, path):
    return client.post(path, data={"csrf_token": _token(client, "/admin/addons")},
                       follow_redirects=True)


@pytest.fixture
def workers(fx_app):
    """Two app servers (as two gunicorn workers would be) on one database."""
    first = fx_app(["fx_base"], migrate=True)
    make_admin(first)
    overrides = first.config["BIRGA_OVERRIDES"]
    return (AddonReloader(create_app, config=overrides),
            AddonReloader(create_app, config=overrides))


def test_enabling_on_one_worker_reaches_the_other_without_restart(workers):
    one, two = workers
    c1, c2 = signed_in(one), signed_in(two)
    assert "ext:" not in c2.get("/fx_base/").get_data(as_text=True)
    page = post(c1, "/admin/addons/fx_ext/enable").get_data(as_text=True)
    assert "Enabled: fx_ext." in page
    assert "ext:0" in c2.get("/fx_base/").get_data(as_text=True)
    assert [a.name for a in two.app.extensions["birga"].addons] == ["fx_base", "fx_ext"]

    page = post(c2, "/admin/addons/fx_ext/disable").get_data(as_text=True)
    assert "Disabled: fx_ext." in page
    assert "ext:" not in c1.get("/fx_base/").get_data(as_text=True)


def test_disabling_a_needed_addon_is_refused_with_the_dependents(workers):
    one, _two = workers
    client = signed_in(one)
    post(client, "/admin/addons/fx_ext/enable")
    page = post(client, "/admin/addons/fx_base/disable").get_data(as_text=True)
    assert "fx_base cannot be disabled while these enabled addons depend on it: fx_ext." in page
    assert "fx_base.index" in one.app.view_functions


def test_addons_page_lists_source_state_and_dependencies(workers):
    one, _two = workers
    html = signed_in(one).get("/admin/addons").get_data(as_text=True)
    row = html[html.index('id="addon-fx_ext"'):]
    row = row[:row.index("</tr>")]
    assert "Fixture Extension" in row and "0.3.0" in row and "fx_base" in row
    assert "built-in folder" in row and "disabled" in row
    base = html[html.index('id="addon-fx_base"'):]
    base = base[:base.index("</tr>")]
    assert "enabled" in base and "fx_ext" in base  # needed by


def test_addons_page_is_for_admins_only(fx_app, make_user, login):
    app = fx_app(["fx_base"])
    client = app.test_client()
    with app.app_context():
        login(client, make_user("clerk"))
    assert client.get("/admin/addons").status_code == 404
    assert client.post("/admin/addons/fx_base/disable").status_code in (400, 404)


def test_state_changing_requests_need_the_csrf_token(workers):
    one, _two = workers
    client = signed_in(one)
    response = client.post("/admin/addons/fx_ext/enable")
    assert response.status_code == 400
    assert "fx_ext" not in [a.name for a in one.refresh().extensions["birga"].addons]


def test_cli_lists_enables_disables_and_graphs(fx_app):
    first = fx_app(["fx_base"], migrate=True)
    overrides = first.config["BIRGA_OVERRIDES"]
    runner = CliRunner()

    def run(*args):
        info = ScriptInfo(create_app=lambda: create_app(overrides))
        return runner.invoke(main, list(args), obj=info)

    out = run("addons", "list").output
    assert re.search(r"fx_base\s+enabled\s+1\.0\.0", out)
    assert re.search(r"fx_ext\s+disabled\s+0\.3\.0", out)
    result = run("addons", "enable", "fx_ext")
    assert result.exit_code == 0 and "Enabled: fx_ext" in result.output
    result = run("addons", "disable", "fx_base")
    assert result.exit_code == 1
    assert "needed by the enabled addon(s): fx_ext" in result.output
    graph = run("addons", "graph").output.splitlines()
    assert graph.index("fx_base") < graph.index("fx_ext -> fx_base")
    assert run("addons", "disable", "fx_ext").exit_code == 0
    assert run("addons", "enable", "ghost").exit_code == 1


def test_an_installation_with_no_addon_enabled_is_not_taken_for_a_fresh_one(fx_app):
    app = fx_app([], migrate=True)  # state written: nothing enabled
    overrides = {**app.config["BIRGA_OVERRIDES"], "BIRGA_ADDONS": None}
    again = create_app(overrides)  # would fall back to "every built-in addon" if fresh
    assert again.extensions["birga"].addons == []
