"""Record rules: each default role sees own / team / all records of a model, through one gateway.

The test model lives on its own metadata (not `db.Model`), so the migration tests never see it;
its table is created for the test and dropped afterwards.
"""
from __future__ import annotations

import pytest
from flask import Blueprint
from sqlalchemy import Integer, MetaData, String, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.extensions import db
from core.security import (
    RecordRule,
    Role,
    Team,
    TeamMember,
    get_or_404,
    register_record_rule,
    scoped,
    seed_default_roles,
    set_user_roles,
    visible,
)
from core.testing import csrf_token


class _TestBase(DeclarativeBase):
    metadata = MetaData()


class Deal(_TestBase):
    __tablename__ = "core_test_deal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(Integer)
    team_id: Mapped[int | None] = mapped_column(Integer)


deals_bp = Blueprint("core_test_deals", __name__, url_prefix="/core-test/deals")


@deals_bp.route("/<int:deal_id>")
def show(deal_id: int):
    return get_or_404(Deal, deal_id).title


@deals_bp.route("/")
def index():
    return ",".join(d.title for d in db.session.scalars(visible(Deal).order_by(Deal.title)))


class World:
    """Two teams, one user per default role, and one deal owned by each user."""

    def __init__(self, app, make_user):
        seed_default_roles()
        self.app = app
        roles = {r.code: r for r in db.session.scalars(select(Role))}
        self.roles = roles
        spec = {
            "root": (None, True), "boss": ("sales_manager", False),
            "sam": ("salesperson", False), "sara": ("salesperson", False),
            "otto": ("salesperson", False), "sue": ("support_agent", False),
            "aud": ("auditor", False), "adm": ("administrator", False), "nobody": (None, False),
        }
        self.users = {}
        for login, (role, is_admin) in spec.items():
            user = make_user(login, is_admin=is_admin)
            if role:
                set_user_roles(user, [roles[role].id])
            self.users[login] = user
        self.team_a = Team(name="North", manager_id=self.users["boss"].id)
        self.team_b = Team(name="South")
        db.session.add_all([self.team_a, self.team_b])
        db.session.flush()
        for login in ("sam", "sara"):
            db.session.add(TeamMember(team_id=self.team_a.id, user_id=self.users[login].id))
        db.session.add(TeamMember(team_id=self.team_b.id, user_id=self.users["otto"].id))
        self.deals = {}
        for login, user in self.users.items():
            deal = Deal(title=f"deal-{login}", owner_id=user.id)
            db.session.add(deal)
            self.deals[login] = deal
        db.session.commit()

    def seen_by(self, login: str) -> set[str]:
        """Titles of the deals the gateway lets `login` see."""
        return {d.title for d in db.session.scalars(scoped(select(Deal), user=self.users[login]))}


@pytest.fixture
def world(make_app, make_user):
    app = make_app([])
    app.register_blueprint(deals_bp)
    with app.app_context():
        Deal.__table__.create(db.engine)
        register_record_rule(Deal, owner_attr="owner_id", team_attr="team_id", app=app)
        try:
            yield World(app, make_user)
        finally:
            db.session.rollback()
            Deal.__table__.drop(db.engine)


ALL = {"deal-root", "deal-boss", "deal-sam", "deal-sara", "deal-otto", "deal-sue",
       "deal-aud", "deal-adm", "deal-nobody"}


@pytest.mark.parametrize(("login", "expected"), [
    ("root", ALL),                                            # is_admin: everything
    ("adm", ALL),                                             # administrator role: all
    ("boss", {"deal-boss", "deal-sam", "deal-sara"}),         # sales manager: the team
    ("sam", {"deal-sam"}),                                    # salesperson: own
    ("otto", {"deal-otto"}),
    ("sue", ALL),                                             # support agent: all
    ("aud", ALL),                                             # read-only auditor: all
    ("nobody", set()),                                        # no role: nothing
])
def test_each_default_role_sees_its_scope(world, login, expected):
    assert world.seen_by(login) == expected


def test_a_team_member_sees_teammates_records_when_the_scope_is_team(world):
    salesperson = world.roles["salesperson"]
    db.session.add(RecordRule(model="core_test_deal", role_id=salesperson.id, scope="team"))
    db.session.commit()
    assert world.seen_by("sam") == {"deal-sam", "deal-sara", "deal-boss"}
    assert world.seen_by("otto") == {"deal-otto"}  # South has nobody else


def test_a_record_assigned_to_a_team_is_seen_by_that_team(world):
    outsider = world.deals["nobody"]
    outsider.team_id = world.team_b.id
    db.session.commit()
    assert "deal-nobody" not in world.seen_by("boss")
    world.team_b.manager_id = world.users["boss"].id
    db.session.commit()
    assert {"deal-nobody", "deal-otto"} <= world.seen_by("boss")


def test_the_widest_scope_of_several_roles_wins(world):
    sam = world.users["sam"]
    set_user_roles(sam, [world.roles["salesperson"].id, world.roles["auditor"].id])
    db.session.commit()
    assert world.seen_by("sam") == ALL


def test_a_per_model_rule_overrides_the_roles_default_scope(world):
    auditor = world.roles["auditor"]
    db.session.add(RecordRule(model="core_test_deal", role_id=auditor.id, scope="own"))
    db.session.commit()
    assert world.seen_by("aud") == {"deal-aud"}


def test_a_deactivated_user_sees_nothing(world):
    world.users["aud"].active = False
    db.session.commit()
    assert world.seen_by("aud") == set()


def test_get_or_404_hides_another_salespersons_record_and_shows_it_to_the_manager(world, login):
    sam_deal = world.deals["sam"].id
    otto = world.app.test_client()
    login(otto, world.users["otto"])
    response = otto.get(f"/core-test/deals/{sam_deal}")
    assert response.status_code == 404
    assert otto.get(f"/core-test/deals/{world.deals['otto'].id}").status_code == 200
    assert otto.get("/core-test/deals/999999").status_code == 404  # same answer: no leak

    boss = world.app.test_client()
    login(boss, world.users["boss"])
    response = boss.get(f"/core-test/deals/{sam_deal}")
    assert response.status_code == 200 and response.get_data(True) == "deal-sam"
    assert boss.get(f"/core-test/deals/{world.deals['otto'].id}").status_code == 404
    assert boss.get("/core-test/deals/").get_data(True) == "deal-boss,deal-sam,deal-sara"


def test_a_team_scoped_list_is_one_query_however_many_records_and_teammates(world):
    boss = world.users["boss"]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def titles() -> int:
        statements.clear()
        return len(db.session.scalars(visible(Deal, user=boss)).all())

    world.seen_by("boss")  # warm the per-request access cache
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert titles() == 3
        assert len(statements) == 1
        for i in range(20):
            member = world.users["sam"] if i % 2 else world.users["sara"]
            db.session.add(Deal(title=f"extra-{i}", owner_id=member.id))
        db.session.commit()
        world.seen_by("boss")  # the commit forgot the cache; read the access again
        assert titles() == 23
        assert len(statements) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_an_admin_sets_a_roles_scope_for_the_model_from_the_roles_page(world, login):
    admin = world.app.test_client()
    login(admin, world.users["root"])
    role = world.roles["salesperson"]
    page = admin.get(f"/admin/access/roles/{role.id}").get_data(True)
    assert 'name="scope-core_test_deal"' in page
    response = admin.post(f"/admin/access/roles/{role.id}", data={
        "csrf_token": csrf_token(admin, f"/admin/access/roles/{role.id}"),
        "code": "salesperson", "name": "", "default_scope": "own",
        "permissions": [], "patterns": "*.read\n*.write", "scope-core_test_deal": "all"})
    assert response.status_code == 302
    db.session.expire_all()
    assert world.seen_by("sam") == ALL
    assert world.seen_by("otto") == ALL


def test_an_addons_own_rule_narrows_every_non_admin_query(world):
    register_record_rule(Deal, owner_attr="owner_id", team_attr="team_id", app=world.app,
                         where=lambda user: Deal.title.not_like("%-s%"))
    assert world.seen_by("boss") == {"deal-boss"}  # deal-sam and deal-sara are filtered out
    assert world.seen_by("aud") == ALL - {"deal-sam", "deal-sara", "deal-sue"}
    assert world.seen_by("root") == ALL  # administrators are not narrowed


def test_counting_through_the_gateway_needs_the_model_named(world):
    from sqlalchemy import func

    stmt = scoped(select(func.count()).select_from(Deal), user=world.users["boss"], model=Deal)
    assert db.session.scalar(stmt) == 3
    with pytest.raises(TypeError):
        scoped(select(func.count()).select_from(Deal), user=world.users["boss"])


def test_anonymous_visitors_see_no_records(world):
    from flask_login import AnonymousUserMixin

    assert db.session.scalars(visible(Deal, user=AnonymousUserMixin())).all() == []


def test_a_rule_written_over_a_grouped_tables_columns_keeps_the_same_rows(world):
    """`rule_clause_on`: the rule over the owner and team columns of a table that keeps the
    records grouped by owner and team gives each user the groups of the records she sees."""
    from sqlalchemy import func

    from core.security import rule_clause_on

    deal = Deal.__table__
    world.deals["nobody"].team_id = world.team_a.id
    db.session.commit()
    groups = select(deal.c.owner_id, deal.c.team_id, func.count().label("n")) \
        .group_by(deal.c.owner_id, deal.c.team_id).subquery()
    columns = {"owner_id": groups.c.owner_id, "team_id": groups.c.team_id}
    for login in ("root", "boss", "sam", "sue", "nobody"):
        user = world.users[login]
        rule = rule_clause_on(Deal, columns, user)
        stmt = select(func.coalesce(func.sum(groups.c.n), 0))
        kept = db.session.scalar(stmt if rule is None else stmt.where(rule))
        assert kept == len(world.seen_by(login)), login
    register_record_rule(Deal, owner_attr="owner_id", team_attr="team_id", app=world.app,
                         where=lambda user: Deal.title.not_like("%-s%"))
    with pytest.raises(LookupError):  # the addon's own condition reads the deal's columns
        rule_clause_on(Deal, columns, world.users["boss"])
    assert rule_clause_on(Deal, columns, world.users["root"]) is None  # admins: no rule
