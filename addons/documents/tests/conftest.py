"""Fixtures shared by the documents addon's tests (besides the `core.testing` plugin's)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from core.api import assign_roles, db


@pytest.fixture
def demo_app(make_app: Callable[..., Flask], make_user: Callable[..., Any]) -> Flask:
    """An app with contacts, pipeline and documents and their demo data, and an administrator
    signed in as `admin` (the login `core.testing`'s password opens)."""
    from addons.contacts import demo as contacts_demo
    from addons.documents import demo as documents_demo
    from addons.pipeline import demo as pipeline_demo

    app = make_app(["contacts", "pipeline", "documents"])
    with app.app_context():
        admin = make_user("admin", is_admin=True)
        assign_roles(admin, "administrator")
        db.session.commit()
        for module in (contacts_demo, pipeline_demo, documents_demo):
            module.load()
            db.session.commit()
    return app
