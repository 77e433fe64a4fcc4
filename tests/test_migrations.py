"""Per-addon migrations: models and migrations agree, each owner keeps its version table."""
from __future__ import annotations

import shutil

from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import inspect

from core import PROJECT_ROOT, migrate
from core.cli import main
from core.extensions import db
from core.manage import enable_addon
from core.testing import birga_command

from .conftest import FIXTURE_ADDONS


def tables(app):
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def test_migrating_an_empty_database_gives_exactly_the_declared_schema(fx_app):
    app = fx_app(["fx_ext"], migrate=True)
    for owner in ["core", "fx_base", "fx_ext"]:
        assert migrate.diff(app, owner) == [], owner
    present = tables(app)
    assert {"alembic_version_core", "alembic_version_fx_base", "alembic_version_fx_ext",
            "core_user", "fx_base_thing", "fx_ext_tag"} <= present
    assert migrate.current(app) == {"core": migrate.current(app)["core"],
                                    "fx_base": "fxb0001", "fx_ext": "fxe0001"}


def test_enabling_an_addon_later_migrates_just_it(fx_app):
    app = fx_app(["fx_base"], migrate=True)
    assert "fx_ext_tag" not in tables(app)
    before = migrate.current(app)
    assert enable_addon(app, "fx_ext") == ["fx_ext"]
    assert "fx_ext_tag" in tables(app)
    after = migrate.current(_rebuilt(app))
    assert after["fx_ext"] == "fxe0001"
    assert after["core"] == before["core"] and after["fx_base"] == before["fx_base"]


def _rebuilt(app):
    from core import create_app

    return create_app(app.config["BIRGA_OVERRIDES"])


def test_autogenerate_for_one_addon_sees_only_its_tables(fx_app, tmp_path):
    paths = tmp_path / "addons"
    shutil.copytree(FIXTURE_ADDONS, paths)
    for f in (paths / "fx_ext" / "migrations" / "versions").glob("*.py"):
        f.unlink()
    app = fx_app(["fx_ext"], BIRGA_ADDONS_PATHS=[str(PROJECT_ROOT / "addons"), str(paths)],
                 migrate=True)
    assert "fx_ext_tag" not in tables(app)  # fx_ext has no revision yet
    runner = CliRunner()
    info = ScriptInfo(create_app=lambda: app)
    result = runner.invoke(main, ["db", "revision", "--addon", "fx_base", "-m", "nothing",
                                  "--autogenerate"], obj=info)
    assert result.exit_code == 0, result.output
    [empty] = (paths / "fx_base" / "migrations" / "versions").glob("*nothing.py")
    body = empty.read_text()
    assert "create_table" not in body and "drop_table" not in body
    result = runner.invoke(main, ["db", "revision", "--addon", "fx_ext", "-m", "tags",
                                  "--autogenerate"], obj=info)
    assert result.exit_code == 0, result.output
    [made] = (paths / "fx_ext" / "migrations" / "versions").glob("*tags.py")
    body = made.read_text()
    assert "create_table('fx_ext_tag'" in body
    assert "core_" not in body and "fx_base_thing'" not in body.split("ForeignKeyConstraint")[0]
    result = runner.invoke(main, ["db", "upgrade"], obj=info)
    assert result.exit_code == 0, result.output
    assert migrate.diff(app, "fx_ext") == []


def test_birga_init_creates_schema_state_and_admin(make_app, monkeypatch):
    from core.models import User

    app = make_app([], migrate=False)
    with app.app_context():
        db.drop_all()
    monkeypatch.setenv("BIRGA_ADMIN_LOGIN", "Boss")
    monkeypatch.setenv("BIRGA_ADMIN_PASSWORD", "s3cret-pass")
    result = birga_command(app, "init")
    assert result.exit_code == 0, result.output
    assert "login:    boss" in result.output and "s3cret-pass" not in result.output
    with app.app_context():
        admin = db.session.scalar(db.select(User))
        assert admin.login == "boss" and admin.is_admin and admin.check_password("s3cret-pass")
    again = birga_command(app, "init")
    assert again.exit_code == 0 and "Administrator created" not in again.output


def test_builtin_addons_migrate_to_exactly_their_models(make_app):
    """Every built-in addon's migrations give the schema its models declare."""
    from core.addons import discover

    builtin = sorted(a.name for a in discover([PROJECT_ROOT / "addons"],
                                              entry_points=False).values() if a.installable)
    app = make_app(builtin, migrate=True)
    for owner in ["core", *builtin]:
        assert migrate.diff(app, owner) == [], owner


def test_upgrading_gives_an_existing_support_agent_role_records_annotate(make_app):
    """Data migration 6c1f0a2b9d47: agents who logged calls before keep doing so."""
    from sqlalchemy import select

    from core.extensions import db
    from core.security import Role, RolePermission, seed_default_roles

    app = make_app([], migrate=True)
    migrate.downgrade(app, "core", "02b648aeb79f")
    with app.app_context():
        seed_default_roles()
        agent = db.session.scalar(select(Role).where(Role.code == "support_agent"))
        agent.permissions = agent.permissions - {"records.annotate"}  # as seeded before
        db.session.commit()
    migrate.upgrade(app, ["core"])
    with app.app_context():
        held = set(db.session.scalars(select(RolePermission.permission).join(
            Role, Role.id == RolePermission.role_id).where(Role.code == "support_agent")))
        assert "records.annotate" in held and "support.*" in held


def test_upgrading_folds_existing_custom_text_values(make_app):
    """Data migration 9b4d2e7c1f58: values typed before it are found by the folded filter."""
    from sqlalchemy import text

    app = make_app(["contacts"], migrate=True)
    migrate.downgrade(app, "contacts", "3c8e5f1a9d47")
    with app.app_context():
        from addons.contacts.models import CustomField, Partner

        partner = Partner(kind="company", name="SIA Koks")
        field = CustomField(code="code", labels={"en": "Code"}, kind="text")
        db.session.add_all([partner, field])
        db.session.flush()
        # The model already has the new column: the row is written as the old code did.
        db.session.execute(text(
            "INSERT INTO contacts_custom_value (partner_id, field_id, value_text)"
            " VALUES (:partner, :field, 'Būve ПРОЕКТ')"),
            {"partner": partner.id, "field": field.id})
        db.session.commit()
    migrate.upgrade(app, ["contacts"])
    with app.app_context():
        assert db.session.execute(text(
            "SELECT value_key FROM contacts_custom_value")).scalar() == "buve proekt"


def test_upgrading_counts_existing_partners_into_the_kept_totals(make_app):
    """Migration 5e1a7c3b9d20: the totals start from the partners already there, and its
    triggers keep them from then on."""
    from sqlalchemy import text

    app = make_app(["contacts"], migrate=True)
    migrate.downgrade(app, "contacts", "9b4d2e7c1f58")
    with app.app_context():
        from addons.contacts.models import Partner

        db.session.add_all([Partner(kind="company", name="SIA Koks", status="client"),
                            Partner(kind="person", name="Anna", status="lead"),
                            Partner(kind="person", name="Ivan", status="lead")])
        db.session.commit()
    migrate.upgrade(app, ["contacts"])
    with app.app_context():
        db.session.add(Partner(kind="person", name="Olga", status="lead"))
        db.session.commit()
        kept = db.session.execute(text(
            "SELECT kind, status, partners FROM contacts_partner_total ORDER BY kind"))
        assert [tuple(r) for r in kept] == [("company", "client", 1), ("person", "lead", 3)]


def _things(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(db.select(db.text("name")).select_from(
            db.table("fx_base_thing"))))


def test_birga_init_and_upgrade_run_each_addons_seed_once(fx_app):
    app = fx_app(["fx_base"], migrate=False)
    with app.app_context():
        db.drop_all()
    for command in (["init"], ["init"], ["db", "upgrade"]):
        result = birga_command(app, *command)
        assert result.exit_code == 0, result.output
    assert _things(app) == ["Default thing"]  # idempotent: seeded once


def test_enabling_an_addon_runs_its_seed(fx_app):
    app = fx_app([], migrate=True)
    assert enable_addon(app, "fx_base") == ["fx_base"]
    assert _things(app) == ["Default thing"]
