"""Addons' seed data: what an installation needs before anyone opens a page.

An addon may ship `seed.py` with an idempotent `seed()` (add what is missing, never change
what an admin edited): the default sales funnel, the shipped document templates. `birga init`,
`birga db upgrade` and enabling the addon run it, so pages no longer create reference rows
(and commit) while answering a GET; a page may still fall back to seeding for a database set
up before the addon had a seed.
"""
from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable

from flask import Flask

from .extensions import db


def run_seeds(app: Flask, names: Iterable[str] | None = None) -> list[str]:
    """Run `seed()` of the enabled addons (only `names` when given), in dependency order,
    each committed on its own; returns the names whose seed ran. Needs an app context."""
    wanted = None if names is None else set(names)
    ran = []
    for addon in app.extensions["birga"].addons:
        if wanted is not None and addon.name not in wanted:
            continue
        if importlib.util.find_spec(f"{addon.module}.seed") is None:
            continue
        importlib.import_module(f"{addon.module}.seed").seed()
        db.session.commit()
        ran.append(addon.name)
    return ran
