"""The kanban board: totals per currency (never mixed) with a converted total at dated rates,
filters, record rules, the conflict answer of a move, and a query count that does not grow with
the number of deals."""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from addons.contacts.models import Partner
from addons.pipeline.board import DealFilters, board_columns
from addons.pipeline.models import Deal, DealTag, Tag
from addons.pipeline.state import create_deal, move_deal, seed_defaults
from core.api import assign_roles, db, seed_reference_data, set_exchange_rate
from core.security import Team, TeamMember
from core.testing import csrf_token
from core.testing import statements as counted_statements

pytestmark = pytest.mark.addons("pipeline")


def _funnel():
    pipeline = seed_defaults()
    db.session.commit()
    return pipeline, {s.name: s for s in pipeline.stages}


def test_column_totals_are_per_currency_with_a_converted_total(app, make_user):
    seed_reference_data()
    today = date.today()
    set_exchange_rate("USD", "0.90", today - timedelta(days=3))
    set_exchange_rate("USD", "0.50", today + timedelta(days=30))  # a future rate: not used
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, stages = _funnel()
    for title, amount, currency in (("A", "100.00", "EUR"), ("B", "250.50", "EUR"),
                                    ("C", "1000", "USD")):
        create_deal(title=title, pipeline=pipeline, user=user, amount=amount,
                    currency=currency)
    db.session.commit()
    columns = {c.stage.name: c for c in board_columns(pipeline, user, DealFilters())}
    new = columns["New"]
    assert new.count == 3
    assert new.totals == {"EUR": Decimal("350.50"), "USD": Decimal("1000.00")}
    assert new.converted == Decimal("350.50") + Decimal("900.00")
    assert columns["Won"].totals == {} and columns["Won"].count == 0


def test_a_missing_rate_gives_no_converted_total_rather_than_a_wrong_one(app, make_user):
    seed_reference_data()
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, _stages = _funnel()
    create_deal(title="Tenge deal", pipeline=pipeline, user=user, amount="5000",
                currency="KZT")
    db.session.commit()
    new = board_columns(pipeline, user, DealFilters())[0]
    assert new.totals == {"KZT": Decimal("5000.00")}
    assert new.converted is None and new.missing_rates == ["KZT"]


def test_board_page_shows_totals_per_currency_never_summed_across(app, client, login,
                                                                  make_user):
    seed_reference_data()
    set_exchange_rate("USD", "0.90", date.today())
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, _stages = _funnel()
    create_deal(title="Euro deal", pipeline=pipeline, user=user, amount="100", currency="EUR")
    create_deal(title="Dollar deal", pipeline=pipeline, user=user, amount="100",
                currency="USD")
    db.session.commit()
    login(client, user)
    html = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    totals = re.findall(r'class="total" data-currency="(\w+)">([^<]+)<', html)
    assert [code for code, _text in totals] == ["EUR", "USD"]
    converted = re.search(r'class="converted-total"[^>]*>\s*≈ ([^<]+?)\s*<', html)
    assert converted is not None and "190" in converted.group(1)


def test_filters_by_owner_team_tag_and_no_next_activity(app, make_user):
    manager, sam, sara = make_user("mara"), make_user("sam"), make_user("sara")
    assign_roles(manager, "administrator")
    team = Team(name="North")
    db.session.add(team)
    db.session.flush()
    hot = Tag(name="hot")
    db.session.add(hot)
    pipeline, _stages = _funnel()
    a = create_deal(title="Sam's", pipeline=pipeline, user=sam, team_id=team.id)
    b = create_deal(title="Sara's", pipeline=pipeline, user=sara)
    c = create_deal(title="Sara's planned", pipeline=pipeline, user=sara)
    db.session.flush()
    db.session.add(DealTag(deal_id=b.id, tag_id=hot.id))
    from datetime import UTC, datetime

    c.next_activity_at = datetime.now(UTC)
    db.session.commit()

    def titles(**args):
        cols = board_columns(pipeline, manager, DealFilters.parse(args))
        return sorted(card.deal.title for col in cols for card in col.cards)

    assert titles() == ["Sam's", "Sara's", "Sara's planned"]
    assert titles(owner=str(sara.id)) == ["Sara's", "Sara's planned"]
    assert titles(team=str(team.id)) == ["Sam's"]
    assert titles(tag=str(hot.id)) == ["Sara's"]
    assert titles(no_next="1") == ["Sam's", "Sara's"]
    a.owner_id = None  # reclaimed, nobody could take it: the pool
    db.session.commit()
    assert titles(owner="none") == ["Sam's"]
    assert DealFilters.parse({"owner": "none"}).args() == {"owner": "none"}


def test_after_a_move_the_board_gets_every_columns_new_count_and_sums(app, client, login,
                                                                     make_user):
    seed_reference_data()
    sam, sara = make_user("sam"), make_user("sara")
    for user in (sam, sara):
        assign_roles(user, "salesperson")
    pipeline, stages = _funnel()
    deal = create_deal(title="Euro deal", pipeline=pipeline, user=sam, amount="1200",
                       currency="EUR")
    create_deal(title="Sara's", pipeline=pipeline, user=sara, amount="999", currency="USD")
    db.session.commit()
    sam.locale = "lv"
    db.session.commit()
    login(client, sam)
    board = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    assert f'data-sums-url="/pipeline/board/{pipeline.id}/sums"' in board
    token = csrf_token(client, f"/pipeline/board/{pipeline.id}")
    assert client.post(f"/pipeline/deals/{deal.id}/move",
                       json={"stage_id": stages["Qualified"].id, "version": deal.version},
                       headers={"X-CSRFToken": token}).get_json()["ok"]
    sums = client.get(f"/pipeline/board/{pipeline.id}/sums").get_json()["columns"]
    new, qualified = sums[str(stages["New"].id)], sums[str(stages["Qualified"].id)]
    assert new["count"] == "0" and "data-currency" not in new["sums"]  # Sara's is not his
    assert qualified["count"] == "1"
    assert re.search(r'data-currency="EUR">1\xa0200,00\xa0€<', qualified["sums"])  # lv
    # The board's filters apply: filtered to Sara's deals, Sam sees none of them.
    filtered = client.get(f"/pipeline/board/{pipeline.id}/sums?owner={sara.id}").get_json()
    assert filtered["columns"][str(stages["Qualified"].id)]["count"] == "0"
    assert client.get("/pipeline/board/999999/sums").status_code == 404


def test_a_salesperson_sees_own_deals_on_the_board_and_404_on_others(app, client, login,
                                                                     make_user):
    sam, sara = make_user("sam"), make_user("sara")
    assign_roles(sam, "salesperson")
    assign_roles(sara, "salesperson")
    pipeline, stages = _funnel()
    mine = create_deal(title="Own deal of Sam", pipeline=pipeline, user=sam)
    theirs = create_deal(title="Secret deal of Sara", pipeline=pipeline, user=sara)
    db.session.commit()
    login(client, sam)
    html = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    assert "Own deal of Sam" in html and "Secret deal of Sara" not in html
    assert client.get(f"/pipeline/deals/{mine.id}").status_code == 200
    assert client.get(f"/pipeline/deals/{theirs.id}").status_code == 404
    token = csrf_token(client, "/pipeline/deals")
    response = client.post(f"/pipeline/deals/{theirs.id}/move",
                           json={"stage_id": stages["Qualified"].id, "version": 1},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Deal, theirs.id).stage.name == "New"


def test_a_board_move_from_a_stale_card_is_a_409_conflict(app, client, login, make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, stages = _funnel()
    deal = create_deal(title="Contested", pipeline=pipeline, user=user)
    db.session.commit()
    shown = deal.version
    move_deal(deal, stages["Proposal"], user=user)  # someone else moved it meanwhile
    db.session.commit()
    login(client, user)
    token = csrf_token(client, "/pipeline/deals")
    response = client.post(f"/pipeline/deals/{deal.id}/move",
                           json={"stage_id": stages["Qualified"].id, "version": shown},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 409
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "conflict" and body["error"]
    assert body["stage_id"] == stages["Proposal"].id
    db.session.expire_all()
    assert db.session.get(Deal, deal.id).stage.name == "Proposal"


def _fill(pipeline, stages, owner, count: int) -> None:
    tag = Tag(name=f"tag{count}")
    partner = Partner(kind="company", name=f"Client {count}", owner_id=owner.id)
    db.session.add_all([tag, partner])
    db.session.flush()
    names = [n for n in stages if n != "Lost"]
    for index in range(count):
        deal = create_deal(title=f"Deal {index}", pipeline=pipeline, user=owner,
                           stage=stages[names[index % len(names)]], amount=str(index),
                           currency=("EUR", "USD")[index % 2], company_id=partner.id)
        db.session.flush()
        db.session.add(DealTag(deal_id=deal.id, tag_id=tag.id))
    db.session.commit()


@pytest.mark.parametrize("role", ["sales_manager", "salesperson"])
def test_the_board_runs_the_same_number_of_queries_for_10_and_100_deals(make_app, make_user,
                                                                       login, role):
    counts = []
    for size in (10, 100):
        app = make_app(["pipeline"])
        with app.app_context():
            seed_reference_data()
            set_exchange_rate("USD", "0.9", date.today())
            user = make_user("mara")
            assign_roles(user, role)
            db.session.add(TeamMember(team_id=_team().id, user_id=user.id))
            db.session.commit()
            pipeline, stages = _funnel()
            _fill(pipeline, stages, user, size)
            client = app.test_client()
            login(client, user)
            client.get(f"/pipeline/board/{pipeline.id}")  # warm: first-request work
            with counted_statements() as statements:
                response = client.get(f"/pipeline/board/{pipeline.id}")
            assert response.status_code == 200
            html = response.get_data(as_text=True)
            assert html.count('class="deal-card') == size
            counts.append(len(statements))
    assert counts[0] == counts[1]
    assert counts[0] <= 25


def _team() -> Team:
    team = Team(name="Sales")
    db.session.add(team)
    db.session.flush()
    return team


def test_the_board_works_without_javascript_through_its_one_form(app, client, login,
                                                                  make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, stages = _funnel()
    deal = create_deal(title="No script", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    html = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    assert 'id="board-move"' in html
    assert f'name="stage_{deal.id}" form="board-move"' in html
    assert f'name="move" value="{deal.id}:{deal.version}" form="board-move"' in html
    token = csrf_token(client, f"/pipeline/board/{pipeline.id}")
    response = client.post(f"/pipeline/board/{pipeline.id}/move", data={
        "csrf_token": token, "move": f"{deal.id}:{deal.version}",
        f"stage_{deal.id}": stages["Proposal"].id, "next": f"/pipeline/board/{pipeline.id}"})
    assert response.status_code == 302 and response.location.endswith(
        f"/pipeline/board/{pipeline.id}")
    db.session.expire_all()
    assert db.session.get(Deal, deal.id).stage.name == "Proposal"


def test_cards_escape_what_users_typed_and_keep_each_columns_order(app, client, login,
                                                                   make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, stages = _funnel()
    client_co = Partner(kind="company", name="Acme <script>alert(1)</script>",
                        owner_id=user.id)
    tag = Tag(name="VIP & <b>")
    db.session.add_all([client_co, tag])
    db.session.flush()
    first = create_deal(title="<b>Bold</b> & co", pipeline=pipeline, user=user,
                        company_id=client_co.id)
    second = create_deal(title="Second", pipeline=pipeline, user=user)
    won = create_deal(title="Closed one", pipeline=pipeline, user=user, stage=stages["Won"],
                      amount="700")
    db.session.flush()
    first.sequence, second.sequence = 5, -5  # the column shows `second` above `first`
    db.session.add(DealTag(deal_id=first.id, tag_id=tag.id))
    db.session.commit()
    login(client, user)
    html = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    assert "<script>alert" not in html and "<b>Bold" not in html
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in html
    assert "Acme &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<span class="badge tag">VIP &amp; &lt;b&gt;</span>' in html
    assert html.index(f'id="deal-{second.id}"') < html.index(f'id="deal-{first.id}"')
    won_card = re.search(rf'<li class="deal-card[^"]*" id="deal-{won.id}"', html).group(0)
    assert "no-next" not in won_card  # only open deals are flagged
    new_card = re.search(rf'<li class="deal-card[^"]*" id="deal-{second.id}"', html).group(0)
    assert "no-next" in new_card
    assert f'name="move" value="{second.id}:{second.version}" form="board-move"' in html
    # The filters list users by display name, and teams and tags, escaped as well.
    assert f'<option value="{user.id}">{user.display_name}</option>' in html
    assert f'<option value="{tag.id}">VIP &amp; &lt;b&gt;</option>' in html


def test_a_folded_column_shows_its_count_but_no_cards(app, make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, stages = _funnel()
    for name in ("New", "Qualified", "Proposal"):
        create_deal(title=f"In {name}", pipeline=pipeline, user=user, stage=stages[name])
    for stage in pipeline.stages:
        stage.folded = stage.name != "Qualified"  # one column left: a single query, no union
    db.session.commit()
    columns = {c.stage.name: c for c in board_columns(pipeline, user, DealFilters())}
    assert [c.deal.title for c in columns["Qualified"].cards] == ["In Qualified"]
    assert columns["New"].cards == [] and columns["New"].count == 1 and columns["New"].more == 1
    stages["Proposal"].folded = False
    db.session.commit()
    columns = {c.stage.name: c for c in board_columns(pipeline, user, DealFilters())}
    assert [c.deal.title for c in columns["Proposal"].cards] == ["In Proposal"]
    assert [c.deal.title for c in columns["Qualified"].cards] == ["In Qualified"]


def test_a_board_move_reads_the_pipelines_stages_once(app, client, login, make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, stages = _funnel()
    deal = create_deal(title="Mover", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    token = csrf_token(client, f"/pipeline/board/{pipeline.id}")
    url, target = f"/pipeline/deals/{deal.id}/move", stages["Proposal"].id
    with counted_statements() as statements:
        response = client.post(url, json={"stage_id": target, "version": 1},
                               headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["stage_id"] == target
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")
             and "FROM pipeline_stage" in s]
    assert len(reads) == 1


def test_reused_statements_follow_each_user_her_scope_and_her_team(app, north_team):
    """The board and the list keep the statements they build per rule and filters: a second
    reader, a role change and a team change must each still get what the rules allow."""
    from sqlalchemy import delete, select

    from addons.pipeline.board import deal_list
    from core.security import Role, set_user_roles

    pipeline, _stages = _funnel()
    anna, boris, mara = north_team["anna"], north_team["boris"], north_team["mara"]
    for person in (anna, boris, mara):
        create_deal(title=f"Deal of {person.login}", pipeline=pipeline, user=person)
    db.session.commit()

    def seen(user):
        listed = {c.deal.title for c in deal_list(user, DealFilters())[0]}
        board = board_columns(pipeline, user, DealFilters())
        assert listed == {c.deal.title for col in board for c in col.cards}
        assert sum(col.count for col in board) == len(listed)
        return listed

    assert seen(anna) == {"Deal of anna"}
    assert seen(anna) == {"Deal of anna"}  # the reused statements
    assert seen(boris) == {"Deal of boris"}
    assert seen(mara) == {"Deal of anna", "Deal of boris", "Deal of mara"}
    manager = db.session.scalar(select(Role).where(Role.code == "sales_manager"))
    set_user_roles(anna, [manager.id])  # own -> team: she sees her team (mara's North)
    db.session.commit()
    assert seen(anna) == {"Deal of anna", "Deal of boris", "Deal of mara"}
    db.session.execute(delete(TeamMember).where(TeamMember.user_id == boris.id))
    db.session.commit()
    assert seen(mara) == {"Deal of anna", "Deal of mara"}  # boris left the team


def test_the_kept_stages_reasons_and_filter_lists_follow_changes_at_the_next_board(
        app, client, login, make_user):
    """The board's stages, lost reasons and filter lists (users, teams, tags) are kept by the
    worker (`core.cache`): a renamed or folded stage, a new or retired reason, a new team or
    tag shows at the next board, and the board reads none of them again meanwhile."""
    from addons.pipeline.models import LostReason

    user = make_user("mara")
    assign_roles(user, "sales_manager")
    pipeline, stages = _funnel()
    create_deal(title="Kept", pipeline=pipeline, user=user, stage=stages["Proposal"])
    db.session.commit()
    login(client, user)
    board = f"/pipeline/board/{pipeline.id}"
    client.get(board)
    with counted_statements() as seen:
        html = client.get(board).get_data(as_text=True)
    assert not [s for s in seen if "pipeline_stage.color" in s or "pipeline_lost_reason" in s
                or "core_team.name" in s]
    assert ">Too expensive</option>" in html and 'data-kind="open"' in html

    stages["Proposal"].name, stages["Qualified"].folded = "Offer sent", True
    retired = db.session.query(LostReason).filter_by(name="Too expensive").one()
    retired.active = False
    db.session.add(LostReason(name="Went quiet", sequence=99))
    db.session.add(Team(name="Night shift"))
    db.session.add(Tag(name="Hot lead"))
    db.session.commit()
    html = client.get(board).get_data(as_text=True)
    assert 'aria-label="Offer sent"' in html and ">Kept</a>" in html
    assert re.search(r'class="board-column kind-open folded" data-stage="'
                     rf'{stages["Qualified"].id}"', html)
    assert ">Went quiet</option>" in html and ">Too expensive</option>" not in html
    assert ">Night shift</option>" in html and ">Hot lead</option>" in html
