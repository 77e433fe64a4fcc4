"""`birga`: the command line (a Flask CLI group, so every Flask command works too)."""
from __future__ import annotations

import importlib
import importlib.util
import os
import secrets
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from .addons import AddonError, discover, resolve


def _create_app(*args, **kwargs):
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """Birga CRM: set up, migrate, manage addons and translations, serve."""


def _fail(exc: Exception) -> None:
    click.secho(str(exc), fg="red", err=True)
    sys.exit(1)


# -- set-up ------------------------------------------------------------------------------
@main.command("init")
@with_appcontext
def init_command() -> None:
    """Create or upgrade the database, record the enabled addons, create the admin."""
    from . import migrate
    from .activities import seed_activity_types
    from .dbstats import refresh_statistics
    from .extensions import db
    from .models import User
    from .refdata import seed_reference_data
    from .security import seed_default_roles
    from .seeding import run_seeds
    from .state import read_enabled, write_enabled

    app = current_app._get_current_object()
    ran = migrate.upgrade(app)
    with db.engine.begin() as conn:
        if read_enabled(conn) is None:
            write_enabled(conn, {a.name: a.version for a in app.extensions["birga"].addons})
    click.echo(f"Database ready ({', '.join(ran)}).")
    # Idempotent seeds: each adds only what is missing and keeps the admin's edits.
    seed_default_roles()
    seed_activity_types()
    seed_reference_data()
    db.session.commit()
    run_seeds(app)
    if db.session.scalar(select(User).where(User.is_admin.is_(True))) is None:
        login = os.environ.get("BIRGA_ADMIN_LOGIN", "admin").strip().lower()
        password = os.environ.get("BIRGA_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user = User(login=login, name="Administrator", is_admin=True)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        click.echo("Administrator created. Sign in with:")
        click.echo(f"  login:    {login}")
        if "BIRGA_ADMIN_PASSWORD" not in os.environ:
            click.echo(f"  password: {password}   (shown once; change it after signing in)")
    refresh_statistics()  # new indexes and seeded tables have no planner statistics yet


@main.command("demo")
@with_appcontext
def demo_command() -> None:
    """Load each enabled addon's demo data (`demo.load()`), once per addon."""
    from .dbstats import refresh_statistics
    from .extensions import db
    from .models import AddonState

    app = current_app._get_current_object()
    loaded = False
    for addon in app.extensions["birga"].addons:
        if importlib.util.find_spec(f"{addon.module}.demo") is None:
            continue
        state = db.session.get(AddonState, addon.name)
        if state is not None and state.demo_loaded:
            continue
        importlib.import_module(f"{addon.module}.demo").load()
        if state is not None:
            state.demo_loaded = True
        db.session.commit()
        loaded = True
        click.echo(f"Demo data loaded: {addon.name}")
    if loaded:
        refresh_statistics()


@main.command("serve")
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="HOST")
@click.option("--port", default=lambda: int(os.environ.get("PORT", "5000")), type=int,
              show_default="PORT")
def serve_command(host: str, port: int) -> None:
    """Serve the app (threaded); it follows addon changes without a restart."""
    from werkzeug.serving import run_simple

    from .reloader import AddonReloader

    click.echo(f"Birga is serving on http://{host}:{port}/")
    run_simple(host, port, AddonReloader(), threaded=True, use_reloader=False)


@main.command("worker")
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(1),
              help="How many jobs run at once.")
@click.option("-k", "--worker-type", default="thread", show_default=True,
              type=click.Choice(["thread", "process"]))
@click.option("--periodic/--no-periodic", default=True, show_default=True,
              help="Also run the scheduler of periodic jobs (one worker per firm is enough).")
@with_appcontext
def worker_command(workers: int, worker_type: str, periodic: bool) -> None:
    """Run background and periodic jobs until stopped (SIGTERM lets running jobs finish)."""
    import logging

    from .jobs import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_worker(current_app._get_current_object(), workers=workers, worker_type=worker_type,
               periodic=periodic)


# -- addons ------------------------------------------------------------------------------
@main.group("addons")
def addons_group() -> None:
    """List, enable, disable and scaffold addons."""


@addons_group.command("list")
@with_appcontext
def addons_list() -> None:
    """Every discovered addon with its state, version, source and dependencies."""
    state = current_app.extensions["birga"]
    enabled = {a.name for a in state.addons}
    for addon in sorted(state.available.values(), key=lambda a: a.name):
        mark = "enabled " if addon.name in enabled else (
            "disabled" if addon.installable else "not-installable")
        deps = ", ".join(addon.depends) or "-"
        click.echo(f"{addon.name:20} {mark:15} {addon.version:10} {addon.source_label}  "
                   f"depends: {deps}")


@addons_group.command("enable")
@click.argument("name")
@with_appcontext
def addons_enable(name: str) -> None:
    """Enable NAME and its dependencies, and migrate them."""
    from .manage import enable_addon

    try:
        added = enable_addon(current_app._get_current_object(), name)
    except AddonError as exc:
        _fail(exc)
    click.echo(f"Enabled: {', '.join(added) if added else name + ' (already enabled)'}")


@addons_group.command("disable")
@click.argument("name")
@with_appcontext
def addons_disable(name: str) -> None:
    """Disable NAME; refused while an enabled addon depends on it."""
    from .manage import disable_addon

    try:
        changed = disable_addon(current_app._get_current_object(), name)
    except AddonError as exc:
        _fail(exc)
    click.echo(f"Disabled: {name}" if changed else f"{name} was not enabled")


@addons_group.command("graph")
@with_appcontext
def addons_graph() -> None:
    """The dependency graph of every installable addon, in load order."""
    state = current_app.extensions["birga"]
    try:
        ordered = resolve([a.name for a in state.available.values() if a.installable],
                          state.available)
    except AddonError as exc:
        _fail(exc)
    for addon in ordered:
        click.echo(f"{addon.name} -> {', '.join(addon.depends)}" if addon.depends
                   else addon.name)


@addons_group.command("new")
@click.argument("name")
@click.option("--package", "package_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a pip-installable distribution into this folder instead of addons/.")
@click.option("--title", default=None, help="Title shown to admins.")
@click.option("--addons-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Addons folder for a local addon (default: the project's addons/).")
def addons_new(name: str, package_dir: Path | None, title: str | None,
               addons_dir: Path | None) -> None:
    """Scaffold a new addon NAME (local folder, or a partner package with --package)."""
    from . import PROJECT_ROOT
    from .scaffold import ScaffoldError, scaffold

    try:
        target = scaffold(name, package_dir=package_dir, title=title,
                          addons_dir=addons_dir or PROJECT_ROOT / "addons")
    except ScaffoldError as exc:
        _fail(exc)
    click.echo(f"Created {target}")


# -- database ----------------------------------------------------------------------------
@main.group("db")
def db_group() -> None:
    """Migrations: core first, then every enabled addon in dependency order."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    from . import migrate
    from .dbstats import refresh_statistics
    from .seeding import run_seeds

    app = current_app._get_current_object()
    ran = migrate.upgrade(app)
    run_seeds(app)  # what a new version of an addon ships (idempotent)
    refresh_statistics()  # new indexes have no statistics yet
    click.echo(f"Upgraded: {', '.join(ran)}")


@db_group.command("revision")
@click.option("--addon", "owner", default="core", show_default=True)
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
@with_appcontext
def db_revision(owner: str, message: str, autogenerate: bool) -> None:
    """Write a revision for one owner; autogenerate sees only its tables."""
    from . import migrate

    app = current_app._get_current_object()
    if owner != "core" and owner not in app.extensions["birga"].addons_by_name:
        _fail(click.ClickException(f"Addon '{owner}' is not enabled; enable it first."))
    migrate.revision(app, owner, message, autogenerate=autogenerate)


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    from . import migrate

    for owner, rev in migrate.current(current_app._get_current_object()).items():
        click.echo(f"{owner:20} {rev or '-'}")


# -- translations ------------------------------------------------------------------------
@main.group("i18n")
def i18n_group() -> None:
    """Extract, update and compile the catalogues of core and addons."""


def _i18n_targets(addon: str | None) -> list[tuple[str, Path, list[Path]]]:
    """(owner, translations dir, source dirs) for core and every discovered local addon."""
    from . import PROJECT_ROOT

    found = discover([PROJECT_ROOT / "addons"], entry_points=True)
    targets = [("core", PROJECT_ROOT / "translations",
                [PROJECT_ROOT / "core", PROJECT_ROOT / "templates"])]
    for a in found.values():
        targets.append((a.name, a.path / "translations", [a.path]))
    if addon:
        targets = [t for t in targets if t[0] == addon]
        if not targets:
            _fail(click.ClickException(f"No addon named '{addon}'."))
    return targets


@i18n_group.command("extract")
@click.option("--addon", default=None)
def i18n_extract(addon: str | None) -> None:
    """Write each owner's `messages.pot` from its Python code and templates."""
    from .i18n_tools import extract

    for owner, tdir, sources in _i18n_targets(addon):
        n = extract(tdir, sources)
        click.echo(f"{owner}: {n} messages")


@i18n_group.command("update")
@click.option("--addon", default=None)
def i18n_update(addon: str | None) -> None:
    """Extract, then merge the template into every language's `.po` (creating missing ones)."""
    from .i18n_tools import extract, update

    for owner, tdir, sources in _i18n_targets(addon):
        extract(tdir, sources)
        for lang, stats in update(tdir).items():
            click.echo(f"{owner} {lang}: {stats}")


@i18n_group.command("compile")
@click.option("--addon", default=None)
def i18n_compile(addon: str | None) -> None:
    """Compile `.po` to `.mo` (build output, never committed)."""
    from .i18n_tools import compile_all

    for owner, tdir, _sources in _i18n_targets(addon):
        n = compile_all(tdir)
        if n:
            click.echo(f"{owner}: {n} catalogues compiled")


# -- reference data: `birga refdata load | vat | rate` (core.refdata) ------------------------
from .refdata import refdata_cli  # noqa: E402

main.add_command(refdata_cli)

# -- inbound e-mail: `birga mail ingest` (core.mail_inbound) ------------------------------
from .mail_inbound import mail_cli  # noqa: E402

main.add_command(mail_cli)


if __name__ == "__main__":  # pragma: no cover
    main()
