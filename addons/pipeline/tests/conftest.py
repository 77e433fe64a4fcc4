"""Fixtures shared by the pipeline's tests (besides the `core.testing` plugin's)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from core.api import Team, assign_roles, db
from core.security import TeamMember


@pytest.fixture
def north_team(app: Flask, make_user: Callable[..., Any]) -> dict[str, Any]:
    """Team North, committed: Mara (sales manager) manages the salespeople Anna, Boris, Cara and
    Dan. Keys: "team" and each person's login."""
    mara = make_user("mara", name="Mara")
    assign_roles(mara, "sales_manager")
    people = {}
    for login in ("anna", "boris", "cara", "dan"):
        people[login] = make_user(login, name=login.title())
        assign_roles(people[login], "salesperson")
    crew = Team(name="North", manager_id=mara.id)
    db.session.add(crew)
    db.session.flush()
    for person in people.values():
        db.session.add(TeamMember(team_id=crew.id, user_id=person.id))
    db.session.commit()
    return {"mara": mara, "team": crew, **people}
