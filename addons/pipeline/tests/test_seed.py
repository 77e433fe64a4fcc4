"""`birga init` seeds the default funnel, so the first board visit writes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from addons.pipeline.models import LostReason, Pipeline, Stage
from core.api import db
from core.testing import birga_command

pytestmark = pytest.mark.addons("contacts", "pipeline")


def test_birga_init_seeds_the_default_funnel_once(make_app):
    app = make_app(["contacts", "pipeline"], migrate=False)
    with app.app_context():
        db.drop_all()
    for _ in range(2):
        result = birga_command(app, "init")
        assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Pipeline.id))) == 1
        assert db.session.scalar(select(func.count(Stage.id))) >= 4
        assert db.session.scalar(select(func.count(LostReason.id))) >= 3
