"""Kernel tests use the `core.testing` plugin's fixtures (make_app, app, client, login...)
plus fixture addons under tests/fixtures/addons."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import PROJECT_ROOT
from core.records import ANNOTATE
from core.testing import grant

FIXTURE_ADDONS = Path(__file__).parent / "fixtures" / "addons"
ADDON_PATHS = [str(PROJECT_ROOT / "addons"), str(FIXTURE_ADDONS)]


@pytest.fixture
def fx_app(make_app):
    """`fx_app(["fx_ext"], migrate=True)`: an app with the fixture addons on the addons path."""

    def factory(addons=("fx_base",), **config):
        config.setdefault("BIRGA_ADDONS_PATHS", ADDON_PATHS)
        return make_app(list(addons), **config)

    return factory


@pytest.fixture
def rec_app(fx_app):
    """An app with the fixture record page (`/fx_records/<id>` renders both record hooks) on a
    fixed clock (2026-11-23 08:00 UTC: 10:00 in Riga)."""
    app = fx_app(["fx_records"], BIRGA_FAKE_NOW="2026-11-23T08:00:00+00:00")
    with app.app_context():
        yield app


@pytest.fixture
def web(rec_app):
    return rec_app.test_client()


def annotating(make_user: Callable[..., Any]) -> Callable[..., Any]:
    """`make_user` whose users may add notes and files: the kernel's test models belong to no
    addon whose `<addon>.write` would allow it, so users get `records.annotate` (not with
    `annotate=False`). A module opts in by overriding its `make_user` fixture with this."""
    def factory(*args: Any, annotate: bool = True, **fields: Any) -> Any:
        user = make_user(*args, **fields)
        if annotate:
            grant(user, ANNOTATE)
        return user

    return factory


def write_addon(root: Path, name: str, manifest: str | dict, files: dict[str, str] | None = None
                ) -> Path:
    """Write a throw-away addon folder for discovery tests (never imported)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__manifest__.py").write_text(manifest if isinstance(manifest, str)
                                            else repr(manifest), encoding="utf-8")
    (folder / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    for rel, text in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder
