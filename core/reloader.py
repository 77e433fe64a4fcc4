"""A WSGI app that rebuilds itself when the enabled addon set changes in the database.

Flask cannot register blueprints on an app that has served requests, and an addon's models,
templates and catalogues are wired at build time. So, as Odoo compares a registry sequence at
the start of each request, every worker compares `core_registry.sequence` with the number its
app was built at and, when it moved, builds a fresh app before serving. Any number of processes
on any number of hosts converge without a restart.
"""
from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from .extensions import db
from .state import read_sequence


class AddonReloader:
    """`app = AddonReloader()` in wsgi.py; `factory` defaults to `core.create_app`."""

    def __init__(self, factory: Callable[..., Flask] | None = None, **factory_kwargs: Any):
        if factory is None:
            from . import create_app

            factory = create_app
        self._factory = factory
        self._kwargs = factory_kwargs
        self._lock = threading.Lock()
        self.app = factory(**factory_kwargs)
        self._checked = 0.0

    @property
    def interval(self) -> float:
        return float(self.app.config.get("BIRGA_REGISTRY_CHECK_SECONDS", 0.0))

    def current_sequence(self) -> int:
        with self.app.app_context():
            return read_sequence(db.engine)

    def refresh(self) -> Flask:
        """Rebuild when the database's sequence differs from the one the app was built at."""
        now = time.monotonic()
        if self.interval and now - self._checked < self.interval:
            return self.app
        self._checked = now
        seen = self.current_sequence()
        if seen != self.app.extensions["birga"].sequence:
            with self._lock:
                if seen != self.app.extensions["birga"].sequence:
                    old = self.app
                    gc.unfreeze()  # the old app's objects may go (the new one refreezes)
                    self.app = self._factory(**self._kwargs)
                    old.logger.info("Addon set changed (sequence %s): app rebuilt", seen)
        return self.app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        return self.refresh()(environ, start_response)
