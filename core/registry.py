"""Per-app registries addons fill from their `init_app`: menus, template hooks, permissions.

They live in `app.extensions["birga"]`, never in module globals, so two apps with different
addon sets (two firms, or a test beside a worker) never see each other's entries.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import render_template, url_for
from markupsafe import Markup, escape

from .addons import AddonError

#: Rendered menus kept per registry (language x URL root x what a role set may open).
NAV_CACHE_SIZE = 256


def _grants_key(user: Any) -> Any:
    """What decides which entries `user` sees: admin (everything), the permissions their
    roles grant, or nothing (signed out, inactive)."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "active", False):
        return None
    if user.is_admin:
        return "*admin"
    from .security import user_permissions

    return user_permissions(user)


class MenuError(AddonError):
    """A menu entry names an unknown parent or reuses an id."""


@dataclass
class MenuItem:
    id: str
    title: Any  # a lazy string, translated when rendered
    endpoint: str | None
    parent: str | None = None
    sequence: int = 100
    permission: str | None = None
    addon: str = "core"
    children: list[MenuItem] = field(default_factory=list)

    @property
    def url(self) -> str | None:
        return url_for(self.endpoint) if self.endpoint else None


@dataclass
class HookContribution:
    sequence: int
    addon: str
    render: Callable[..., str]


@dataclass
class Permission:
    name: str
    title: Any
    addon: str


class Registry:
    """Menus, hooks and permissions of one app."""

    def __init__(self) -> None:
        self.menus: dict[str, MenuItem] = {}
        self.hooks: dict[str, list[HookContribution]] = {}
        self.permissions: dict[str, Permission] = {}
        self._tree: list[MenuItem] | None = None
        self._nav: dict[tuple[Any, ...], Markup] = {}

    # -- menus ---------------------------------------------------------------------------
    def add_menu(self, id: str, title: Any, endpoint: str | None = None, *,  # noqa: A002
                 parent: str | None = None, sequence: int = 100,
                 permission: str | None = None, addon: str = "core") -> MenuItem:
        if id in self.menus:
            raise MenuError(f"Menu id '{id}' is registered twice (by '{self.menus[id].addon}' "
                            f"and '{addon}').", addon=addon, fix="give the entry its own id.")
        item = MenuItem(id, title, endpoint, parent, sequence, permission, addon)
        self.menus[id] = item
        self._tree = None
        self._nav.clear()
        return item

    def menu_tree(self) -> list[MenuItem]:
        """Top-level items with children, ordered by (sequence, title); parents are checked."""
        if self._tree is None:
            for item in self.menus.values():
                item.children = []
            roots = []
            for item in self.menus.values():
                if item.parent is None:
                    roots.append(item)
                elif item.parent in self.menus:
                    self.menus[item.parent].children.append(item)
                else:
                    raise MenuError(
                        f"Menu '{item.id}' of addon '{item.addon}' names the unknown parent "
                        f"'{item.parent}'.", addon=item.addon,
                        fix="register the parent first or depend on the addon that does.",
                    )

            def key(i: MenuItem) -> tuple[int, str]:
                return (i.sequence, str(i.title))

            for item in self.menus.values():
                item.children.sort(key=key)
            roots.sort(key=key)
            self._tree = roots
        return self._tree

    def menu_for(self, user: Any) -> list[tuple[MenuItem, list[MenuItem]]]:
        """What `user` may open: (item, visible children); empty folders are hidden."""
        allowed = getattr(user, "has_permission", None)

        def visible(item: MenuItem) -> bool:
            return allowed is not None and allowed(item.permission)

        result = []
        for item in self.menu_tree():
            if not visible(item):
                continue
            children = [c for c in item.children if visible(c)]
            if item.endpoint is None and not children:
                continue
            result.append((item, children))
        return result

    def menu_html(self, user: Any, locale: str, root: str) -> Markup:
        """The main menu of `user` as HTML (`core/_mainnav.html`), rendered once per
        language, URL root and set of granted permissions, then reused: checking twenty
        entries, translating their titles and building their URLs cost a page about a fifth
        of an empty page's time. What a user sees depends on nothing else (`menu_for`)."""
        key = (locale, root, _grants_key(user))
        html = self._nav.get(key)
        if html is None:
            if len(self._nav) >= NAV_CACHE_SIZE:  # a bound, not a policy: keys are few
                self._nav.clear()
            html = self._nav[key] = Markup(  # noqa: S704 - an autoescaped template's output
                render_template("core/_mainnav.html", menu=self.menu_for(user)))
        return html

    # -- template hooks ------------------------------------------------------------------
    def add_hook(self, name: str, contribution: str | Callable[..., str], *,
                 sequence: int = 100, addon: str = "core") -> None:
        """`contribution` is a template name (rendered with the hook's context) or a callable."""
        if isinstance(contribution, str):
            template = contribution

            def render(**ctx: Any) -> str:
                # A rendered template is HTML we produced (autoescaped), so it is safe.
                return Markup(render_template(template, **ctx))  # noqa: S704
        else:
            render = contribution
        self.hooks.setdefault(name, []).append(HookContribution(sequence, addon, render))
        self.hooks[name].sort(key=lambda c: (c.sequence, c.addon))

    def render_hook(self, name: str, **ctx: Any) -> Markup:
        # A callable's plain str is escaped; only Markup it built on purpose passes as HTML.
        parts = [escape(c.render(**ctx)) for c in self.hooks.get(name, [])]
        return Markup("\n").join(parts)

    # -- permissions ---------------------------------------------------------------------
    def add_permission(self, name: str, title: Any, addon: str = "core") -> None:
        if not name.startswith(f"{addon}.") and addon != "core":
            raise AddonError(f"Permission '{name}' of addon '{addon}' must start with '{addon}.'.",
                             addon=addon, fix=f"rename it to '{addon}.{name.split('.')[-1]}'.")
        self.permissions[name] = Permission(name, title, addon)
