"""`birga addons new`: write a working, tested, translated addon to start from.

The addon's files are real files under `template/` (ruff skips them; the `.tmpl` suffix keeps
pytest, setuptools and `pybabel` from treating them as code), rendered with `string.Template`.
The same addon is written either into an addons folder (a local addon, imported as
`addons.<name>`) or inside a pip-installable distribution whose entry point makes Birga find it.
Everything is written to a staging folder first and moved into place at the end, so a failure
never leaves half an addon behind.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from string import Template

from core.addons import ENTRY_POINT_GROUP, MANIFEST_FILE, NAME_RE, RESERVED_NAMES

from .catalogs import MissingTranslation, write_catalogs

__all__ = ["ScaffoldError", "scaffold", "TEMPLATE_DIR"]

TEMPLATE_DIR = Path(__file__).parent / "template"
SUFFIX = ".tmpl"


class ScaffoldError(Exception):
    """The addon cannot be created as asked; the message says why and what to do instead."""


def scaffold(name: str, *, package_dir: Path | None, addons_dir: Path,
             title: str | None = None) -> Path:
    """Create addon `name`; returns the folder written (the addon, or the distribution).

    Without `package_dir` the addon goes to `addons_dir/<name>/`. With it, `package_dir` gets a
    `pyproject.toml` (distribution `birga-<name>`, entry point group `birga.addons`) and the
    addon as the top-level package `<name>/`.
    """
    _check_name(name)
    title = (title or name.replace("_", " ").title()).strip()
    if not title:
        raise ScaffoldError("The title must not be empty.")
    addons_dir = Path(addons_dir)
    _check_not_provided(name, addons_dir)
    if package_dir is None:
        target = addons_dir / name
        if target.exists():
            raise ScaffoldError(f"{target} already exists. Pick another name, or delete the "
                                f"folder if you mean to start over.")
        context = _context(name, title, module=f"addons.{name}")
        return _write(target, lambda stage: _render_addon(stage / name, context), single=name)

    package_dir = Path(package_dir)
    for existing in (package_dir / "pyproject.toml", package_dir / "README.md",
                     package_dir / name):
        if existing.exists():
            raise ScaffoldError(f"{existing} already exists. Pick an empty or new folder for "
                                f"the distribution.")
    if importlib.util.find_spec(name) is not None:
        raise ScaffoldError(f"A module named '{name}' is already importable here, so a package "
                            f"of that name would clash with it. Pick another name.")
    context = _context(name, title, module=name)

    def build(stage: Path) -> None:
        _render_tree(TEMPLATE_DIR / "package", stage, context)
        _render_addon(stage / name, context)

    return _write(package_dir, build, single=None)


def _check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise ScaffoldError(
            f"'{name}' is not a valid addon name: use 2-40 lowercase letters, digits or '_', "
            f"starting with a letter (it becomes a Python package and a table prefix).")
    if name in RESERVED_NAMES:
        raise ScaffoldError(f"'{name}' is reserved by Birga; reserved names: "
                            f"{', '.join(sorted(RESERVED_NAMES))}.")


def _check_not_provided(name: str, addons_dir: Path) -> None:
    """Refuse a name another source already provides: discovery would fail on the duplicate."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            dist = ep.dist.name if ep.dist else ep.value
            raise ScaffoldError(f"An addon named '{name}' is already installed by the "
                                f"distribution {dist}. Pick another name.")
    if (addons_dir / name / MANIFEST_FILE).is_file():
        raise ScaffoldError(f"An addon named '{name}' already exists in {addons_dir}. Pick "
                            f"another name.")


def _context(name: str, title: str, module: str) -> dict[str, str]:
    summary = f"{title} for Birga"
    author = "Your name or company"
    return {
        "name": name,
        "module": module,
        "title": title,
        "title_repr": repr(title),
        "summary_repr": repr(summary),
        "author_repr": repr(author),
        "summary_toml": json.dumps(summary, ensure_ascii=False),
        "author_toml": json.dumps(author, ensure_ascii=False),
        "dist": "birga-" + name.replace("_", "-"),
        # Alembic's own format: 12 hex digits, unique, and short enough for its version table.
        "revision": uuid.uuid4().hex[-12:],
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def _render_tree(source: Path, dest: Path, context: dict[str, str]) -> None:
    """Render every `*.tmpl` under `source` (path and content) into `dest`."""
    for path in sorted(source.rglob(f"*{SUFFIX}")):
        rel = Template(str(path.relative_to(source))).substitute(context)[:-len(SUFFIX)]
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = Template(path.read_text(encoding="utf-8")).substitute(context)
        target.write_text(text, encoding="utf-8")


def _render_addon(addon_dir: Path, context: dict[str, str]) -> None:
    _render_tree(TEMPLATE_DIR / "addon", addon_dir, context)
    try:
        write_catalogs(addon_dir, context["title"])
    except MissingTranslation as exc:  # only a scaffold whose templates drifted gets here
        raise ScaffoldError(str(exc)) from exc


def _write(target: Path, build: Callable[[Path], None], single: str | None) -> Path:
    """Build in a staging folder beside `target`, then move the result into place.

    `single` names the one folder the staging holds (a local addon); otherwise every entry of
    the staging folder moves into `target`, which may already exist (say, a fresh git clone).
    """
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScaffoldError(f"Cannot create {parent}: {exc.strerror}.") from exc
    stage = Path(tempfile.mkdtemp(prefix=".birga-scaffold-", dir=parent))
    try:
        build(stage)
        if single is not None:
            (stage / single).rename(target)
        else:
            target.mkdir(exist_ok=True)
            for entry in sorted(stage.iterdir()):
                entry.rename(target / entry.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target
