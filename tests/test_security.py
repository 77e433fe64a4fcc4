"""Roles grant permissions; admin pages for users, teams and roles; sessions and reset links."""
from __future__ import annotations

import re
import time

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select

from core.extensions import db
from core.models import User
from core.security import (
    DEFAULT_ROLES,
    Role,
    Team,
    TeamMember,
    UserRole,
    make_reset_token,
    permission_required,
    seed_default_roles,
    set_user_roles,
)
from core.testing import TEST_PASSWORD, csrf_token

NEW_PASSWORD = "a brand new secret phrase"


@pytest.fixture
def roles(app):
    seed_default_roles()
    return {r.code: r for r in db.session.scalars(select(Role))}


def with_roles(make_user, roles, login, *codes, **fields):
    user = make_user(login, **fields)
    set_user_roles(user, [roles[c].id for c in codes])
    db.session.commit()
    return user


def fresh(user):
    db.session.expire_all()
    return db.session.get(User, user.id)


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def post(client, path, data=None, page="/"):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **(data or {})})


# -- permissions ---------------------------------------------------------------------------
def test_permissions_come_from_roles_with_wildcards(app, make_user, roles):
    registry = app.extensions["birga"].registry
    registry.add_permission("contacts.read", "Read contacts", addon="contacts")
    registry.add_permission("contacts.delete", "Delete contacts", addon="contacts")
    sam = with_roles(make_user, roles, "sam", "salesperson")
    assert sam.has_permission("contacts.read")
    assert not sam.has_permission("contacts.delete")
    assert not sam.has_permission("core.admin")
    custom = Role(code="contact_keeper", default_scope="own")
    custom.permissions = {"contacts.*"}
    db.session.add(custom)
    db.session.commit()
    keeper = with_roles(make_user, roles | {"contact_keeper": custom}, "kim", "contact_keeper")
    assert keeper.has_permission("contacts.delete")
    assert not keeper.has_permission("pipeline.read")
    assert with_roles(make_user, roles, "adm", "administrator").has_permission("core.admin")
    assert make_user("root", is_admin=True).has_permission("anything.at_all")
    assert not make_user("nobody").has_permission("contacts.read")


def test_a_role_change_is_seen_by_the_next_check(app, make_user, roles):
    sam = with_roles(make_user, roles, "sam", "salesperson")
    assert not sam.has_permission("pipeline.delete")
    set_user_roles(sam, [roles["sales_manager"].id])
    db.session.commit()
    assert sam.has_permission("pipeline.delete")


def test_a_deactivated_user_holds_no_permission(app, make_user, roles):
    sam = with_roles(make_user, roles, "sam", "salesperson")
    sam.active = False
    db.session.commit()
    assert not sam.has_permission("contacts.read")


def test_seeding_default_roles_is_idempotent_and_keeps_admins_edits(app):
    assert sorted(seed_default_roles()) == sorted(DEFAULT_ROLES)
    salesperson = db.session.scalar(select(Role).where(Role.code == "salesperson"))
    salesperson.permissions = {"contacts.read"}
    db.session.commit()
    assert seed_default_roles() == []
    db.session.expire_all()
    assert db.session.scalar(select(Role).where(Role.code == "salesperson")).permissions == {
        "contacts.read"}
    assert db.session.scalar(select(Role).where(Role.code == "auditor")).display_name == (
        "Read-only auditor")


def test_settings_menu_shows_access_pages_to_admins_only(app, client, make_user, login, roles):
    login(client, with_roles(make_user, roles, "sam", "salesperson"))
    assert 'data-menu="settings.users"' not in client.get("/").get_data(True)
    admin = app.test_client()
    login(admin, make_user("root", is_admin=True))
    html = admin.get("/").get_data(True)
    for name in ("users", "teams", "roles"):
        assert f'data-menu="settings.{name}"' in html


def test_a_view_guarded_by_a_permission_is_404_without_it(make_app, make_user, login):
    app = make_app([])

    @app.route("/core-test/contacts")
    @permission_required("contacts.read")
    def contacts():
        return "contacts"

    with app.app_context():
        seed_default_roles()
        roles = {r.code: r for r in db.session.scalars(select(Role))}
        reader = with_roles(make_user, roles, "sam", "salesperson")
        nobody = make_user("nobody")
        anonymous = app.test_client()
        assert anonymous.get("/core-test/contacts").status_code == 302  # to the sign-in page
        client = app.test_client()
        login(client, nobody)
        assert client.get("/core-test/contacts").status_code == 404
        client = app.test_client()
        login(client, reader)
        response = client.get("/core-test/contacts")
        assert response.status_code == 200 and response.get_data(True) == "contacts"


# -- every admin route is hidden from non-admins -------------------------------------------
def test_every_access_admin_route_is_404_for_a_salesperson(app, client, make_user, login,
                                                              roles):
    sam = with_roles(make_user, roles, "sam", "salesperson")
    team = Team(name="North")
    db.session.add(team)
    db.session.commit()
    ids = {"user_id": sam.id, "team_id": team.id, "role_id": roles["salesperson"].id}
    login(client, sam)
    token = csrf_token(client, "/")
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("security.")]
    assert len(rules) >= 12
    for rule in rules:
        path = rule.build({a: ids[a] for a in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, data={"csrf_token": token})
            assert response.status_code == 404, (rule.endpoint, method)
    assert fresh(sam).active and signed_in(client)


def test_admin_pages_render_for_an_admin(app, client, make_user, login, roles):
    login(client, make_user("root", is_admin=True))
    team = Team(name="North")
    db.session.add(team)
    db.session.commit()
    for path in ["/admin/access/users", "/admin/access/users/new", "/admin/access/teams",
                 "/admin/access/teams/new", f"/admin/access/teams/{team.id}",
                 "/admin/access/roles", "/admin/access/roles/new",
                 f"/admin/access/roles/{roles['sales_manager'].id}"]:
        assert client.get(path).status_code == 200, path
    assert "Sales manager" in client.get("/admin/access/roles").get_data(True)


# -- invitations and password links --------------------------------------------------------
def reset_link(html: str) -> str:
    """The path of the link the page shows to the admin."""
    found = re.search(r'value="https?://[^/"]+(/account/password/[^"]+)"', html)
    assert found, html
    return found.group(1)


def test_admin_invites_a_user_who_sets_a_password_once(app, client, make_user, login, roles):
    login(client, make_user("root", is_admin=True))
    team = Team(name="North")
    db.session.add(team)
    db.session.commit()
    response = post(client, "/admin/access/users/new", {
        "login": "Nina", "name": "Nina K", "email": "nina@example.com",
        "roles": [str(roles["salesperson"].id)], "teams": [str(team.id)]},
        page="/admin/access/users/new")
    assert response.status_code == 200
    link = reset_link(response.get_data(True))
    nina = db.session.scalar(select(User).where(User.login == "nina"))
    assert nina.password_hash == "" and not nina.check_password("")
    assert db.session.scalar(select(UserRole.role_id).where(UserRole.user_id == nina.id)) == (
        roles["salesperson"].id)
    assert db.session.scalar(select(TeamMember.team_id).where(
        TeamMember.user_id == nina.id)) == team.id

    browser = app.test_client()
    assert browser.get(link).status_code == 200
    response = post(browser, link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, link)
    assert response.status_code == 302 and response.location.endswith("/login")
    assert fresh(nina).check_password(NEW_PASSWORD)
    assert browser.get(link).status_code == 404  # single use
    browser.post("/login", data={"login": "nina", "password": NEW_PASSWORD,
                                 "csrf_token": csrf_token(browser)})
    assert signed_in(browser)


def test_mismatched_passwords_are_refused_and_the_link_stays_valid(app, make_user):
    anna = make_user("anna")
    link = "/account/password/" + make_reset_token(anna)
    client = app.test_client()
    response = post(client, link, {"password": NEW_PASSWORD, "confirm": "something else"}, link)
    assert response.status_code == 200 and "The passwords differ." in response.get_data(True)
    assert fresh(anna).check_password(TEST_PASSWORD)
    assert client.get(link).status_code == 200


def test_a_reset_link_expires(app, make_user, monkeypatch):
    anna = make_user("anna")
    hours = app.config.get("BIRGA_PASSWORD_RESET_HOURS", 24)
    issued = int(time.time()) - int(hours * 3600) - 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued)
    old = make_reset_token(anna)
    monkeypatch.undo()
    client = app.test_client()
    assert client.get("/account/password/" + old).status_code == 404
    assert client.get("/account/password/" + make_reset_token(anna)).status_code == 200
    assert client.get("/account/password/" + old[:-2] + "xx").status_code == 404  # forged


def test_an_admins_reset_link_ends_the_users_other_sessions(app, client, make_user, login):
    anna = make_user("anna")
    login(client, anna)
    admin = app.test_client()
    login(admin, make_user("root", is_admin=True))
    html = post(admin, f"/admin/access/users/{anna.id}/reset",
                page="/admin/access/users").get_data(True)
    link = reset_link(html)
    assert signed_in(client)  # issuing the link changes nothing yet
    browser = app.test_client()
    post(browser, link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, link)
    assert not signed_in(client)


# -- deactivation --------------------------------------------------------------------------
def test_deactivation_ends_sessions_and_remember_cookies_but_keeps_the_user(
        app, client, make_user, login, roles):
    sam = with_roles(make_user, roles, "sam", "salesperson")
    client.post("/login", data={"login": "sam", "password": TEST_PASSWORD, "remember": "y",
                                "csrf_token": csrf_token(client)})
    assert signed_in(client)
    remembered = client.get_cookie("remember_token")
    assert remembered is not None

    admin = app.test_client()
    login(admin, make_user("root", is_admin=True))
    response = post(admin, f"/admin/access/users/{sam.id}/deactivate", page="/admin/access/users")
    assert response.status_code == 302
    assert not signed_in(client)
    sam = fresh(sam)
    assert sam is not None and not sam.active
    assert db.session.scalar(select(UserRole.role_id).where(UserRole.user_id == sam.id))

    post(admin, f"/admin/access/users/{sam.id}/activate", page="/admin/access/users")
    assert fresh(sam).active
    stolen = app.test_client()  # only the old "remember me" cookie: it must stay dead
    stolen.set_cookie("remember_token", remembered.value)
    assert not signed_in(stolen)
    again = app.test_client()
    again.post("/login", data={"login": "sam", "password": TEST_PASSWORD,
                               "csrf_token": csrf_token(again)})
    assert signed_in(again)


def test_a_remember_cookie_alone_signs_in_while_the_session_version_holds(app, client,
                                                                        make_user):
    make_user("sam")
    client.post("/login", data={"login": "sam", "password": TEST_PASSWORD, "remember": "y",
                                "csrf_token": csrf_token(client)})
    cookie = client.get_cookie("remember_token")
    other = app.test_client()
    other.set_cookie("remember_token", cookie.value)
    assert signed_in(other)


def test_an_admin_cannot_deactivate_themselves(app, client, make_user, login):
    root = make_user("root", is_admin=True)
    login(client, root)
    response = post(client, f"/admin/access/users/{root.id}/deactivate",
                    page="/admin/access/users")
    assert response.status_code == 302
    assert fresh(root).active and signed_in(client)


# -- teams and roles pages ------------------------------------------------------------------
def test_admin_creates_a_team_with_a_manager_and_members(app, client, make_user, login):
    login(client, make_user("root", is_admin=True))
    boss, sam = make_user("boss"), make_user("sam")
    response = post(client, "/admin/access/teams/new", {
        "name": "North", "manager": str(boss.id), "members": [str(sam.id)]},
        page="/admin/access/teams/new")
    assert response.status_code == 302
    team = db.session.scalar(select(Team).where(Team.name == "North"))
    assert team.manager_id == boss.id and [u.login for u in team.members] == ["sam"]
    response = post(client, "/admin/access/teams/new", {"name": "North", "manager": "0"},
                    page="/admin/access/teams/new")
    assert "A team with this name exists." in response.get_data(True)
    team_id = team.id
    post(client, f"/admin/access/teams/{team_id}/delete", page="/admin/access/teams")
    db.session.expire_all()
    assert db.session.get(Team, team_id) is None
    assert db.session.scalars(select(TeamMember)).all() == []  # memberships go with it
    assert fresh(sam).active  # the people stay


def test_admin_creates_a_role_and_rejects_bad_patterns(app, client, make_user, login, roles):
    login(client, make_user("root", is_admin=True))
    page = "/admin/access/roles/new"
    response = post(client, page, {"code": "closer", "name": "Closer", "default_scope": "team",
                                   "patterns": "pipeline.*\nnot a pattern"}, page=page)
    assert "Not a permission name or wildcard: not a pattern" in response.get_data(True)
    response = post(client, page, {"code": "closer", "name": "Closer", "default_scope": "team",
                                   "permissions": ["core.admin"], "patterns": "pipeline.*"},
                    page=page)
    assert response.status_code == 302
    role = db.session.scalar(select(Role).where(Role.code == "closer"))
    assert role.permissions == {"core.admin", "pipeline.*"} and role.default_scope == "team"
    response = post(client, f"/admin/access/roles/{roles['salesperson'].id}/delete",
                    page="/admin/access/roles")
    assert db.session.get(Role, roles["salesperson"].id) is not None  # defaults stay
    post(client, f"/admin/access/roles/{role.id}/delete", page="/admin/access/roles")
    db.session.expire_all()
    assert db.session.scalar(select(Role).where(Role.code == "closer")) is None


def test_an_invitation_is_mailed_when_mail_is_set_up(make_app, make_user, login, smtp_inbox):
    app = make_app([], **smtp_inbox.config("crm@birga.test"), BIRGA_JOBS_IMMEDIATE=True)
    with app.app_context():
        client = app.test_client()
        login(client, make_user("root", is_admin=True))
        response = post(client, "/admin/access/users/new", {
            "login": "nina", "name": "Nina", "email": "nina@example.com"},
            page="/admin/access/users/new")
        html = response.get_data(True)
        assert "The link was sent to nina@example.com." in html
        (message,) = smtp_inbox.wait_for(1)
        assert message["To"] == "nina@example.com"
        assert message["Subject"] == "Your Birga account is ready"
        assert reset_link(html) in message.get_content()
