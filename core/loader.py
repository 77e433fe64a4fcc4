"""Importing enabled addons into one app: models, blueprint, templates, `init_app`.

Only addons in the resolved, enabled list are imported. Tables an addon's import adds to the
shared metadata are recorded as that addon's and must carry its prefix.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask

from .addons import Addon, AddonError, TablePrefixError
from .extensions import db
from .registry import Registry

#: addon name -> table names its modules declared; survives re-imports (sys.modules caches).
_TABLES_BY_OWNER: dict[str, set[str]] = {}


class AddonContext:
    """What an addon's `init_app(app, addon)` receives: its manifest and the app's registries."""

    def __init__(self, addon: Addon, registry: Registry) -> None:
        self.addon = addon
        self.name = addon.name
        self._registry = registry

    def menu(self, id: str, title: Any, endpoint: str | None = None, *,  # noqa: A002
             parent: str | None = None, sequence: int = 100,
             permission: str | None = None) -> None:
        """Add a menu entry; `title` should be a `lazy_gettext` string."""
        self._registry.add_menu(id, title, endpoint, parent=parent, sequence=sequence,
                                permission=permission, addon=self.name)

    def hook(self, name: str, contribution: Any, *, sequence: int = 100) -> None:
        """Contribute a template (by name) or a callable to the template hook `name`."""
        self._registry.add_hook(name, contribution, sequence=sequence, addon=self.name)

    def permission(self, name: str, title: Any) -> None:
        """Declare a permission such as `contacts.read`; roles grant them."""
        self._registry.add_permission(name, title, addon=self.name)

    def mail_handler(self, address: Any, handler: Any, *, sequence: int = 100) -> None:
        """Take inbound mail to `address` (exact, a pattern like `leads@*`, or a compiled
        regex); `handler(InboundMail)` files it. See `core.mail_inbound`."""
        from .mail_inbound import add_mail_handler

        add_mail_handler(self._registry, address, handler, addon=self.name, sequence=sequence)


def extend_addons_package(folders: list[Path]) -> None:
    """Make every configured addons folder part of the `addons` package (Odoo's addons path)."""
    import addons as addons_pkg

    for folder in folders:
        folder = str(Path(folder).resolve())
        if folder not in addons_pkg.__path__:
            addons_pkg.__path__.append(folder)


def owned_tables(owner: str) -> set[str]:
    return set(_TABLES_BY_OWNER.get(owner, ()))


def owner_of(table: str) -> str | None:
    """The addon (or `core`) whose models declared `table`, None for ad-hoc tables.

    Kept here rather than in `Table.info`, which Alembic would copy into every migration.
    """
    for owner, tables in _TABLES_BY_OWNER.items():
        if table in tables:
            return owner
    return None


def import_models(owner: str, module_name: str, path: Path | None = None) -> set[str]:
    """Import `module_name` (and its `.models` if present) and record the tables it added."""
    before = set(db.metadata.tables)
    module = importlib.import_module(module_name)
    pkg_path = getattr(module, "__path__", None)
    if pkg_path and importlib.util.find_spec(f"{module_name}.models") is not None:
        importlib.import_module(f"{module_name}.models")
    # Tables new in the metadata, plus those mapped by classes of this package: the module may
    # have been imported before (by a test, a script) and then adds nothing new here.
    added = (set(db.metadata.tables) - before) | _mapped_tables(module_name)
    _TABLES_BY_OWNER.setdefault(owner, set()).update(added)
    for table in _TABLES_BY_OWNER[owner]:
        if not table.startswith(f"{owner}_"):
            raise TablePrefixError(
                f"Addon '{owner}' declares the table '{table}', which does not start with "
                f"'{owner}_'.", addon=owner, path=(path / "models.py") if path else None,
                fix=f"rename it, e.g. __tablename__ = \"{owner}_{table}\".",
            )
    return _TABLES_BY_OWNER[owner]


def _mapped_tables(module_name: str) -> set[str]:
    names = set()
    for mapper in db.Model.registry.mappers:
        module = mapper.class_.__module__
        if module == module_name or module.startswith(module_name + "."):
            names.update(t.name for t in mapper.tables)
    return names


def load_addon(app: Flask, addon: Addon, registry: Registry) -> None:
    """Import one addon and wire it into `app`."""
    try:
        import_models(addon.name, addon.module, addon.path)
        module = sys.modules[addon.module]
    except AddonError:
        raise
    except Exception as exc:
        raise AddonError(f"Addon '{addon.name}' failed to import: {exc!r}.", addon=addon.name,
                         path=addon.path / "__init__.py",
                         fix="run `python -c 'import " + addon.module + "'` to see the "
                             "traceback.") from exc
    if importlib.util.find_spec(f"{addon.module}.views") is not None:
        views = importlib.import_module(f"{addon.module}.views")
        bp = getattr(views, "bp", None)
        if not isinstance(bp, Blueprint):
            raise AddonError(f"Addon '{addon.name}' has views.py without a Blueprint `bp`.",
                             addon=addon.name, path=addon.path / "views.py",
                             fix=f"define bp = Blueprint(\"{addon.name}\", __name__).")
        if bp.name != addon.name:
            raise AddonError(f"The blueprint of addon '{addon.name}' is named '{bp.name}'.",
                             addon=addon.name, path=addon.path / "views.py",
                             fix=f"name it \"{addon.name}\" so endpoints read "
                                 f"'{addon.name}.<view>'.")
        app.register_blueprint(bp, url_prefix=bp.url_prefix or f"/{addon.name}")
    init = getattr(module, "init_app", None)
    if callable(init):
        init(app, AddonContext(addon, registry))
