"""A serving process hands the objects of its built app over to a permanent GC generation.

Why: a built app holds some 170k objects the garbage collector tracks (imported modules,
SQLAlchemy mappers and compiled statements, Babel's locale data, Jinja templates). CPython's
full collection walks every one of them: 130-240 ms on the benchmark machine, about once every
200 board requests as request objects caught mid-request get promoted. The worker answers
nothing meanwhile and every request queued behind it waits: with eight users on two workers,
that pause alone lands in the page's p99. `gc.freeze()` on the first request, after one last
collection, moves everything that exists then into a generation the collector skips; request
garbage is collected as before (a full collection then takes a few ms).

Not under `TESTING`: a test process builds hundreds of apps, and the reference cycles of a
frozen app would never be freed. `BIRGA_GC_FREEZE = False` turns it off. The addon reloader
unfreezes before it builds a new app, so the old one can be collected.
"""
from __future__ import annotations

import gc

from flask import Flask

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    if app.testing or not app.config.get("BIRGA_GC_FREEZE", True):
        return
    frozen = False

    @app.before_request
    def _freeze_once() -> None:
        nonlocal frozen
        if frozen:
            return
        frozen = True
        gc.collect()
        gc.freeze()
