"""A serving app freezes the garbage collector's view of itself once, on its first request;
test apps never do (a test process builds hundreds of apps)."""
from __future__ import annotations

import gc


def _calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    return calls


def test_a_serving_app_freezes_once_on_its_first_request(make_app, monkeypatch):
    app = make_app(TESTING=False)
    calls = _calls(monkeypatch)
    client = app.test_client()
    for _ in range(3):
        client.get("/healthz")
    assert calls == ["collect", "freeze"]


def test_test_apps_and_the_setting_leave_the_collector_alone(make_app, monkeypatch):
    calls = _calls(monkeypatch)
    for app in (make_app(), make_app(TESTING=False, BIRGA_GC_FREEZE=False)):
        app.test_client().get("/healthz")
    assert calls == []


def test_the_reloader_unfreezes_before_building_a_new_app(monkeypatch):
    from flask import Flask

    from core.reloader import AddonReloader

    built: list[str] = []

    def factory() -> Flask:
        app = Flask("x")
        app.extensions["birga"] = type("State", (), {"sequence": len(built)})()
        built.append("app")
        return app

    monkeypatch.setattr(AddonReloader, "current_sequence", lambda self: 7)
    monkeypatch.setattr(gc, "unfreeze", lambda: built.append("unfreeze"))
    reloader = AddonReloader(factory)
    reloader.refresh()
    assert built == ["app", "unfreeze", "app"]
