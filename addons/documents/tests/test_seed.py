"""`birga init` copies the shipped templates, so the Print panel needs no seeding GET."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from addons.documents.default_templates import DEFAULTS
from addons.documents.models import DocumentTemplate
from core.api import db
from core.testing import birga_command

pytestmark = pytest.mark.addons("contacts", "documents")


def test_birga_init_seeds_every_shipped_template_once(make_app):
    app = make_app(["contacts", "documents"], migrate=False)
    with app.app_context():
        db.drop_all()
    for _ in range(2):
        result = birga_command(app, "init")
        assert result.exit_code == 0, result.output
    with app.app_context():
        codes = list(db.session.scalars(select(DocumentTemplate.code)))
    assert sorted(codes) == sorted(DEFAULTS)
