"""Addon manifests, discovery and dependency resolution.

Nothing here imports an addon's code: manifests are read with `ast.literal_eval` and pip-installed
addons are located with `importlib.util.find_spec`, so listing and resolving addons is safe even
when an addon is broken or disabled. Each failure is its own exception naming the addon, the file
and the fix, because a silently skipped addon is the worst kind of bug to diagnose.
"""
from __future__ import annotations

import ast
import heapq
import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "birga.addons"
MANIFEST_FILE = "__manifest__.py"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
RESERVED_NAMES = frozenset({"core", "admin", "auth", "static", "api", "birga"})

#: key -> (expected type, required)
MANIFEST_SCHEMA: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "name": (str, True),
    "version": (str, True),
    "summary": (str, False),
    "description": (str, False),
    "author": (str, False),
    "website": (str, False),
    "license": (str, False),
    "category": (str, False),
    "depends": (list, False),
    "installable": (bool, False),
}


class AddonError(Exception):
    """Base of every addon problem; `str()` names the addon, the file and the fix."""

    def __init__(self, message: str, *, addon: str | None = None, path: Path | str | None = None,
                 fix: str | None = None) -> None:
        self.addon = addon
        self.path = str(path) if path else None
        self.fix = fix
        parts = [message]
        if self.path:
            parts.append(f"(file: {self.path})")
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class InvalidManifest(AddonError):
    """The manifest is not a dict literal, has an unknown key, a wrong type or a bad name."""


class DuplicateAddon(AddonError):
    """Two places provide an addon with the same technical name."""


class MissingDependency(AddonError):
    """An addon depends on a name no source provides."""


class DependencyCycle(AddonError):
    """The `depends` graph has a cycle; `cycle` holds it as a list, first == last."""

    def __init__(self, cycle: list[str], path: Path | str | None = None) -> None:
        self.cycle = cycle
        super().__init__(
            f"Addon dependency cycle: {' -> '.join(cycle)}.",
            addon=cycle[0], path=path,
            fix="remove one of these names from a `depends` list so the chain ends.",
        )


class AddonNotInstallable(AddonError):
    """The manifest says `installable: False`, yet the addon was asked for."""


class UnknownAddon(AddonError):
    """A name was asked for that no source provides."""


class AddonInUse(AddonError):
    """Disabling was refused because enabled addons depend on this one."""

    def __init__(self, name: str, dependents: list[str]) -> None:
        self.dependents = dependents
        super().__init__(
            f"Addon '{name}' is needed by the enabled addon(s): {', '.join(dependents)}.",
            addon=name, fix=f"disable {', '.join(dependents)} first.",
        )


class TablePrefixError(AddonError):
    """A model declares a table whose name does not start with its addon's name."""


@dataclass(frozen=True)
class Addon:
    """One discovered addon: where it lives and what its manifest says (nothing imported)."""

    name: str
    path: Path
    module: str
    manifest: dict[str, Any]
    source: str  # "folder" or "distribution"
    distribution: str | None = None
    depends: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def installable(self) -> bool:
        return self.manifest.get("installable", True)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def source_label(self) -> str:
        if self.source == "distribution":
            return f"pip: {self.distribution}"
        return f"folder: {self.path}"


def read_manifest(path: Path, name: str) -> dict[str, Any]:
    """Parse and validate `__manifest__.py` without executing it."""
    try:
        text = path.read_text(encoding="utf-8")
        value = ast.literal_eval(text.strip() or "None")
    except (SyntaxError, ValueError) as exc:
        raise InvalidManifest(
            f"Manifest of addon '{name}' is not a Python dict literal: {exc}.", addon=name,
            path=path, fix="keep only one `{...}` literal with strings, lists and booleans.",
        ) from exc
    if not isinstance(value, dict):
        raise InvalidManifest(f"Manifest of addon '{name}' must be a dict.", addon=name, path=path,
                              fix="write the manifest as one `{...}` literal.")
    for key in value:
        if key not in MANIFEST_SCHEMA:
            raise InvalidManifest(
                f"Manifest of addon '{name}' has an unknown key '{key}'.", addon=name, path=path,
                fix=f"use only: {', '.join(sorted(MANIFEST_SCHEMA))}.",
            )
    for key, (kind, required) in MANIFEST_SCHEMA.items():
        if key not in value:
            if required:
                raise InvalidManifest(f"Manifest of addon '{name}' lacks the key '{key}'.",
                                      addon=name, path=path, fix=f"add \"{key}\": ... to it.")
            continue
        if not isinstance(value[key], kind):
            raise InvalidManifest(
                f"Manifest key '{key}' of addon '{name}' must be of type {kind.__name__}, "
                f"not {type(value[key]).__name__}.", addon=name, path=path,
                fix=f"change the value of '{key}'.",
            )
    for dep in value.get("depends", []):
        if not isinstance(dep, str) or not NAME_RE.match(dep):
            raise InvalidManifest(f"Addon '{name}' depends on an invalid name {dep!r}.",
                                  addon=name, path=path,
                                  fix="list technical addon names such as \"contacts\".")
    return value


def _check_name(name: str, path: Path) -> None:
    if not NAME_RE.match(name) or name in RESERVED_NAMES:
        raise InvalidManifest(
            f"'{name}' is not a valid addon name.", addon=name, path=path,
            fix="use 2-40 lowercase letters, digits or '_', starting with a letter, "
                f"and none of: {', '.join(sorted(RESERVED_NAMES))}.",
        )


def _make(name: str, path: Path, module: str, source: str, dist: str | None) -> Addon:
    _check_name(name, path)
    manifest = read_manifest(path / MANIFEST_FILE, name)
    return Addon(name=name, path=path, module=module, manifest=manifest, source=source,
                 distribution=dist, depends=tuple(manifest.get("depends", [])))


def discover_folder(folder: Path) -> list[Addon]:
    """Every `<folder>/<name>/__manifest__.py`; imported later as `addons.<name>`."""
    found = []
    if not folder.is_dir():
        return found
    for child in sorted(folder.iterdir()):
        if (child / MANIFEST_FILE).is_file():
            found.append(_make(child.name, child, f"addons.{child.name}", "folder", None))
    return found


def discover_entry_points() -> list[Addon]:
    """Every entry point in group `birga.addons`: name = addon name, value = its package."""
    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        spec = importlib.util.find_spec(ep.value)
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
        if spec is None or not spec.submodule_search_locations:
            raise InvalidManifest(
                f"Entry point '{ep.name}' of {dist} names '{ep.value}', which is not a package.",
                addon=ep.name, fix="point the entry point at the addon's package.",
            )
        path = Path(next(iter(spec.submodule_search_locations)))
        if not (path / MANIFEST_FILE).is_file():
            raise InvalidManifest(f"Addon '{ep.name}' from {dist} has no {MANIFEST_FILE}.",
                                  addon=ep.name, path=path / MANIFEST_FILE,
                                  fix="ship the manifest inside the package (package-data).")
        found.append(_make(ep.name, path, ep.value, "distribution", dist))
    return found


def discover(folders: Iterable[Path], entry_points: bool = True) -> dict[str, Addon]:
    """All addons from the folders and (optionally) pip entry points, keyed by name."""
    candidates: list[Addon] = []
    for folder in folders:
        candidates.extend(discover_folder(Path(folder)))
    if entry_points:
        candidates.extend(discover_entry_points())
    result: dict[str, Addon] = {}
    for addon in candidates:
        other = result.get(addon.name)
        if other is not None:
            raise DuplicateAddon(
                f"Addon '{addon.name}' is provided twice: by {other.source_label} "
                f"and by {addon.source_label}.", addon=addon.name, path=addon.manifest_path,
                fix="remove or rename one of them (pip uninstall the distribution, or "
                    "delete the folder).",
            )
        result[addon.name] = addon
    return result


def resolve(requested: Iterable[str], available: dict[str, Addon]) -> list[Addon]:
    """The requested addons plus their dependencies, in load order.

    Dependencies come before dependents; ties break alphabetically so every machine loads,
    migrates and translates in the same order.
    """
    closure: dict[str, Addon] = {}
    stack = [(name, None) for name in sorted(set(requested), reverse=True)]
    while stack:
        name, needed_by = stack.pop()
        if name in closure:
            continue
        addon = available.get(name)
        if addon is None:
            if needed_by is None:
                raise UnknownAddon(f"No addon named '{name}' was found.", addon=name,
                                   fix="check the name with `birga addons list`, or pip install "
                                       "the distribution that provides it.")
            parent = available[needed_by]
            raise MissingDependency(
                f"Addon '{needed_by}' depends on '{name}', which is not available.",
                addon=needed_by, path=parent.manifest_path,
                fix=f"put the '{name}' addon in an addons folder or pip install the package "
                    f"that provides it, or remove '{name}' from depends.",
            )
        if not addon.installable:
            who = f" (needed by '{needed_by}')" if needed_by else ""
            raise AddonNotInstallable(
                f"Addon '{name}'{who} is marked not installable.", addon=name,
                path=addon.manifest_path,
                fix="set \"installable\": True in its manifest once it is ready, or do not "
                    "enable it.",
            )
        closure[name] = addon
        for dep in sorted(addon.depends, reverse=True):
            stack.append((dep, name))
    return [closure[name] for name in _topological(closure)]


def _topological(closure: dict[str, Addon]) -> list[str]:
    """Kahn's algorithm with a heap: the alphabetically smallest ready addon goes first."""
    indegree = {name: len(set(a.depends)) for name, a in closure.items()}
    dependents: dict[str, list[str]] = {name: [] for name in closure}
    for name, addon in closure.items():
        for dep in set(addon.depends):
            dependents[dep].append(name)
    ready = [name for name, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in dependents[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, child)
    if len(order) != len(closure):
        cycle = _find_cycle({n: closure[n] for n in closure if n not in order})
        raise DependencyCycle(cycle, path=closure[cycle[0]].manifest_path)
    return order


def _find_cycle(rest: dict[str, Addon]) -> list[str]:
    """One cycle among addons left over by the topological sort, as `[a, b, a]`."""
    start = min(rest)
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = min(d for d in rest[node].depends if d in rest)
    return path[seen[node]:] + [node]


def dependents_of(name: str, enabled: Iterable[Addon]) -> list[str]:
    """Enabled addons that need `name`, directly or through others, sorted."""
    enabled = list(enabled)
    needs: set[str] = {name}
    changed = True
    while changed:
        changed = False
        for addon in enabled:
            if addon.name not in needs and needs.intersection(addon.depends):
                needs.add(addon.name)
                changed = True
    needs.discard(name)
    return sorted(needs)
