"""Access changes in the audit log: creating a user, changing their roles and teams,
deactivating them, issuing a password link, editing a team and a role; each entry reads in
the administrator's language, with roles, teams and people named as they are now, and the
log's lookups stay one query per listed table (SQLite and PostgreSQL)."""
from __future__ import annotations

import re

from flask_babel import force_locale, gettext
from sqlalchemy import select

from core.api import AuditLog
from core.extensions import db
from core.security import Role, Team, seed_default_roles
from core.testing import csrf_token, statements


def entries(model: str) -> list[AuditLog]:
    db.session.expire_all()
    return db.session.scalars(select(AuditLog).where(AuditLog.model == model)
                              .order_by(AuditLog.id)).all()


def post(client, path: str, data: dict) -> int:
    response = client.post(path, data={**data, "csrf_token": csrf_token(client, "/")})
    return response.status_code


def test_a_users_life_is_in_the_log_in_the_admins_language(app, client, make_user, login):
    boss = make_user("boss", is_admin=True, locale="lv", name="Boriss Bosis")
    seed_default_roles()
    north = Team(name="Ziemeļi")
    db.session.add(north)
    db.session.commit()
    roles = {r.code: r.id for r in db.session.scalars(select(Role))}
    login(client, boss)

    assert post(client, "/admin/access/users/new", {
        "login": "vera", "name": "Vera Ozola", "email": "vera@example.lv",
        "roles": [roles["salesperson"]]}) == 200  # the page with the password link
    vera_id = entries("core.user")[0].record_id
    assert post(client, f"/admin/access/users/{vera_id}", {
        "login": "vera", "name": "Vera Ozola", "email": "vera@example.lv",
        "roles": [roles["sales_manager"]], "teams": [north.id]}) == 302
    assert post(client, f"/admin/access/users/{vera_id}", {  # nothing changed: no entry
        "login": "vera", "name": "Vera Ozola", "email": "vera@example.lv",
        "roles": [roles["sales_manager"]], "teams": [north.id]}) == 302
    assert post(client, f"/admin/access/users/{vera_id}/reset", {}) == 200
    assert post(client, f"/admin/access/users/{vera_id}/deactivate", {}) == 302

    logged = entries("core.user")
    assert [e.action for e in logged] == ["create", "update", "password_link", "update"]
    assert logged[0].changes["roles"] == [roles["salesperson"]]
    assert logged[1].changes == {"roles": [[roles["salesperson"]], [roles["sales_manager"]]],
                                 "teams": [[], [north.id]]}
    assert logged[3].changes == {"active": [True, False]}
    assert all(e.user_login == "boss" for e in logged)

    # The role is renamed afterwards: the log names it as it is called now.
    db.session.get(Role, roles["sales_manager"]).name = "Pārdošanas vadītāji"
    db.session.commit()
    with statements() as seen:
        html = client.get("/admin/audit/?model=core.user").get_data(as_text=True)
    with app.test_request_context(), force_locale("lv"):
        words = {w: gettext(w) for w in ("User", "Roles", "Teams", "Active", "Salesperson",
                                         "Password link issued", "Changed", "Created")}
    assert all(words[w] != w for w in words), words
    assert f"{words['User']}</span> #{vera_id}" in html
    assert f"{words['Salesperson']} → Pārdošanas vadītāji" in html
    assert "— → Ziemeļi" in html
    assert words["Password link issued"] in html and words["Roles"] in html
    assert "✓ → ✗" in html
    assert "roles" not in re.sub(r"<[^>]+>", " ", html).split()  # labels, not keys
    lookups = [s for s in seen if re.match(r"SELECT core_(role|team)\.id\b", s)]
    assert sorted(s.split("FROM ")[1].split()[0] for s in lookups) == ["core_role", "core_team"]


def test_team_and_role_edits_and_deletes_are_logged(app, client, make_user, login):
    boss = make_user("boss", is_admin=True, locale="ru")
    anna = make_user("anna", name="Анна Петрова")
    seed_default_roles()
    login(client, boss)

    assert post(client, "/admin/access/teams/new", {
        "name": "Юг", "manager": anna.id, "members": [anna.id]}) == 302
    team_id = entries("core.team")[0].record_id
    assert post(client, f"/admin/access/teams/{team_id}", {
        "name": "Юг и Запад", "manager": 0, "members": [anna.id]}) == 302
    assert post(client, f"/admin/access/teams/{team_id}/delete", {}) == 302
    assert post(client, "/admin/access/roles/new", {
        "code": "controller", "name": "Контролёр", "default_scope": "own",
        "permissions": ["records.annotate"]}) == 302
    role_id = entries("core.role")[0].record_id
    assert post(client, f"/admin/access/roles/{role_id}", {
        "code": "controller", "name": "Контролёр", "default_scope": "all",
        "permissions": ["records.annotate"], "patterns": "documents.*"}) == 302
    assert post(client, f"/admin/access/roles/{role_id}/delete", {}) == 302

    assert [e.action for e in entries("core.team")] == ["create", "update", "delete"]
    assert entries("core.team")[1].changes == {"name": ["Юг", "Юг и Запад"],
                                               "manager_id": [anna.id, None]}
    role_log = entries("core.role")
    assert [e.action for e in role_log] == ["create", "update", "delete"]
    assert role_log[1].changes == {
        "default_scope": ["own", "all"],
        "permissions": [["records.annotate"], ["documents.*", "records.annotate"]]}

    html = client.get("/admin/audit/?model=core.role").get_data(as_text=True)
    with app.test_request_context(), force_locale("ru"):
        own, everything = gettext("Own records"), gettext("All records")
        permissions = gettext("Permissions")
    assert f"{own} → {everything}" in html and permissions in html
    assert "records.annotate → documents.*, records.annotate" in html
    teams = client.get("/admin/audit/?model=core.team").get_data(as_text=True)
    assert "Анна Петрова → —" in teams and "Юг → Юг и Запад" in teams


def test_choosing_a_password_from_the_link_is_logged_as_the_user(app, client, make_user):
    from core.security import make_reset_token

    vera = make_user("vera")
    with app.test_request_context():
        token = make_reset_token(vera)
    path = f"/account/password/{token}"
    client.post(path, data={"password": "a-new-long-password", "confirm": "a-new-long-password",
                            "csrf_token": csrf_token(client, path)})
    [entry] = entries("core.user")
    assert (entry.action, entry.record_id, entry.user_login) == ("password_set", vera.id,
                                                                 "vera")
