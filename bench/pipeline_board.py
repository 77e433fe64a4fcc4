"""Pipeline benchmark: the kanban board and the deal list against bare pages, and the move POST.

Issue 5 asks that, with `gen_dataset.py --contacts 100000` loaded (50k deals, 200k activities),
the kanban page of the main pipeline and the deal list page, signed in as a sales manager (so the
record rules apply: her team's deals), served by gunicorn with 2 workers under `wrk`
(8 connections, 10 s), each reach at least 40 % of the requests per second of a bare Flask +
SQLAlchemy + Jinja page rendering the same rows from the same database in the same run, p99
under 150 ms, with a small constant number of SQL queries; and that moving a deal between
stages (the board's POST) sustains at least 200 requests/s on SQLite.

    .venv/bin/python bench/pipeline_board.py [--contacts N] [--duration 10] [--engines sqlite,pg]

Per engine (SQLite in a temporary folder; PostgreSQL at 127.0.0.1:5432/test in a private schema
when it answers):
1. generates the data set (once) and loads users, contacts (with the contacts benchmark's
   loader), the seeded funnel, deals (stage, lost reason, won/lost dates, next/last activity
   from the activities) and activities with Core `executemany` inserts;
2. counts the SQL statements of one board page and one list page (in process);
3. serves Birga and the bare pages with gunicorn (2 workers each, loopback only, both up at
   once) and runs `wrk` against each page in alternating rounds (bare then Birga, then Birga
   then bare), so a change in the shared machine's load weighs on both sides; beside req/s
   and p99 it reads the workers' CPU time per request from /proc (`cpu_ratio`: bare / Birga
   CPU per request, a figure other processes' load barely moves); then `wrk` POSTs JSON moves
   between open stages of random deals (with the session cookie and the CSRF header) to the
   real move endpoint, on SQLite.
The last line is one JSON object (see bench/README.md); `ratio` is Birga / bare throughput of
the board page, so higher is better.
"""
from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import _common as common

CARDS = 50

BARE_BOARD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Board</title></head>
<body><main><h1>Sales</h1><div class="board">
{% for stage in stages %}<section><h2>{{ stage.name }} {{ counts.get(stage.id, 0) }}</h2>
<ul>{% for code, amount in totals.get(stage.id, {}).items() %}<li>{{ amount }} {{ code }}</li>
{% endfor %}</ul><ol>
{% for r in cards.get(stage.id, []) %}<li><a href="/d/{{ r.id }}">{{ r.title }}</a>
<div>{{ r.company or '' }} · {{ r.person or '' }}</div><div>{{ r.amount }} {{ r.currency }}
{{ r.owner or '' }}</div>{% if not r.next_activity_at %}<div>No next activity</div>{% endif %}
</li>{% endfor %}</ol></section>{% endfor %}
</div></main></body></html>
"""
BARE_LIST = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Deals</title></head>
<body><main><h1>Deals</h1><table><thead><tr><th>Title</th><th>Client</th><th>Stage</th>
<th>Amount</th><th>Probability</th><th>Close</th><th>Salesperson</th><th>Next</th></tr></thead>
<tbody>{% for r in rows %}<tr><td><a href="/d/{{ r.id }}">{{ r.title }}</a></td>
<td>{{ r.company or r.person or '' }}</td><td>{{ r.stage }}</td>
<td>{{ r.amount }} {{ r.currency }}</td><td>{{ r.probability }}</td>
<td>{{ r.expected_close or '' }}</td><td>{{ r.owner or '' }}</td>
<td>{{ r.next_activity_at or '' }}</td></tr>{% endfor %}</tbody></table></main></body></html>
"""
CARD_SQL = """
SELECT d.id, d.title, d.amount, d.currency, d.next_activity_at, p.name AS person,
       c.name AS company, u.name AS owner
FROM pipeline_deal d LEFT JOIN contacts_partner p ON p.id = d.partner_id
LEFT JOIN contacts_partner c ON c.id = d.company_id LEFT JOIN core_user u ON u.id = d.owner_id
WHERE d.pipeline_id = :pipeline AND d.active = :active AND d.stage_id = :stage
ORDER BY d.sequence, d.id LIMIT 50
"""
LIST_SQL = """
SELECT d.id, d.title, d.amount, d.currency, d.expected_close, d.next_activity_at,
       COALESCE(d.probability, s.probability) AS probability, s.name AS stage,
       p.name AS person, c.name AS company, u.name AS owner
FROM pipeline_deal d JOIN pipeline_stage s ON s.id = d.stage_id
LEFT JOIN contacts_partner p ON p.id = d.partner_id
LEFT JOIN contacts_partner c ON c.id = d.company_id LEFT JOIN core_user u ON u.id = d.owner_id
WHERE d.active = :active ORDER BY d.id DESC LIMIT 50
"""


# -- the apps gunicorn serves ----------------------------------------------------------------
birga_app = common.birga_app


def bare_app():  # noqa: ANN201 - gunicorn's factory
    """The floor: Flask, SQLAlchemy Core queries, one Jinja template each, no auth."""
    from flask import Flask
    from sqlalchemy import text

    engine = common.bare_engine()
    pipeline = int(os.environ["BENCH_PIPELINE_ID"])
    app = Flask("bare")
    # Compiled once, as Flask's loader caches template files (render_template_string would
    # compile on every request and flatter the ratio).
    templates = {"board": app.jinja_env.from_string(BARE_BOARD),
                 "list": app.jinja_env.from_string(BARE_LIST)}

    @app.route("/board")
    def board() -> str:
        with engine.connect() as conn:
            stages = conn.execute(text(
                "SELECT id, name FROM pipeline_stage WHERE pipeline_id = :p ORDER BY sequence"),
                {"p": pipeline}).all()
            cards = {s.id: conn.execute(text(CARD_SQL), {"pipeline": pipeline, "active": True,
                                                         "stage": s.id}).all() for s in stages}
            counts: dict[int, int] = {}
            totals: dict[int, dict[str, Any]] = {}
            for stage_id, currency, count, amount in conn.execute(text(
                    "SELECT stage_id, currency, COUNT(id), SUM(amount) FROM pipeline_deal "
                    "WHERE pipeline_id = :p AND active = :a GROUP BY stage_id, currency"),
                    {"p": pipeline, "a": True}):
                counts[stage_id] = counts.get(stage_id, 0) + count
                totals.setdefault(stage_id, {})[currency] = amount
        return templates["board"].render( stages=stages, cards=cards, counts=counts,
                                      totals=totals)

    @app.route("/list")
    def deal_list() -> str:
        with engine.connect() as conn:
            rows = conn.execute(text(LIST_SQL), {"active": True}).all()
        return templates["list"].render( rows=rows)

    return app


# -- data ------------------------------------------------------------------------------------
def prepare(target: common.Target, data: Path) -> dict[str, int]:
    """The app, users with their roles and languages; the first manager signs in and manages a
    team of everyone."""
    from core.api import db
    from core.security import Team, TeamMember

    target.build()
    ids = common.load_users(target, data, sign_in=("manager",), locale=True)
    with target.app.app_context():
        team = Team(name="Sales floor", manager_id=target.owner_id)
        db.session.add(team)
        db.session.flush()
        for login, uid in ids.items():
            if login != target.login:
                db.session.add(TeamMember(team_id=team.id, user_id=uid))
        db.session.commit()
    return ids


def load_deals(target: common.Target, data: Path, users: dict[str, int],
               companies: int) -> dict[str, int]:
    """The funnel, the deals and the activities (Core inserts, in chunks)."""
    from sqlalchemy import insert, select

    from addons.pipeline.models import Deal, LostReason, StageChange
    from addons.pipeline.state import seed_defaults
    from core.activities import Activity, ActivityType, seed_activity_types
    from core.api import db

    with target.app.app_context():
        pipeline = seed_defaults()
        db.session.commit()
        seed_activity_types()
        target.pipeline_id = pipeline.id
        stages = {s.name: s for s in pipeline.stages}
        reasons = {r.name: r.id for r in db.session.scalars(select(LostReason))}
        types = {t.code: t.id for t in db.session.scalars(select(ActivityType))}
        next_at: dict[int, datetime] = {}
        last_at: dict[int, datetime] = {}
        activities = []
        for row in common.read_csv(data / "activities.csv"):
            due, done = common.moment(row["due_at"]), common.moment(row["done_at"])
            deal_id = int(row["deal_id"]) if row["deal_id"] else None
            if deal_id is not None:
                if done is None:
                    next_at[deal_id] = min(next_at.get(deal_id, due), due)
                else:
                    last_at[deal_id] = max(last_at.get(deal_id, done), done)
            model, record = ("pipeline.deal", deal_id) if deal_id else (
                ("contacts.partner", companies + int(row["contact_id"]))
                if row["contact_id"] else (None, None))
            activities.append({"type_id": types.get(row["type"], types["task"]),
                               "summary": row["subject"], "note": "", "due_at": due,
                               "done_at": done, "assignee_id": users[row["owner"]],
                               "creator_id": users[row["owner"]], "model": model,
                               "record_id": record, "created_at": due, "updated_at": due})
        deals, changes = [], []
        for row in common.read_csv(data / "deals.csv"):
            deal_id = int(row["id"])
            stage = stages[common.STAGES[row["stage"]]]
            created = common.moment(row["created_at"])
            closed = created + timedelta(days=deal_id % 60 + 1)
            owner = users[row["owner"]]
            deals.append({
                "id": deal_id, "title": row["title"], "pipeline_id": pipeline.id,
                "stage_id": stage.id, "partner_id": companies + int(row["contact_id"])
                if row["contact_id"] else None,
                "company_id": int(row["company_id"]) if row["company_id"] else None,
                "amount": row["amount"], "currency": row["currency"], "probability": None,
                "expected_close": datetime.fromisoformat(row["expected_close"]).date()
                if row["expected_close"] else None, "owner_id": owner, "team_id": None,
                "source": "manual", "active": True, "stale": False, "sequence": 0,
                "lost_reason_id": reasons[common.REASONS[row["lost_reason"]]]
                if stage.kind == "lost" and row["lost_reason"] else None,
                "won_at": closed if stage.kind == "won" else None,
                "lost_at": closed if stage.kind == "lost" else None,
                "stage_changed_at": closed if stage.kind != "open" else created,
                "next_activity_at": next_at.get(deal_id), "last_activity_at":
                last_at.get(deal_id), "created_at": created, "updated_at": created,
                "version": 1})
            changes.append({"deal_id": deal_id, "from_stage_id": None,
                            "to_stage_id": stage.id, "user_id": owner, "via": "import",
                            "at": created})
        with db.engine.begin() as conn:
            for table, rows in ((Deal.__table__, deals), (StageChange.__table__, changes),
                                (Activity.__table__, activities)):
                for start in range(0, len(rows), common.CHUNK):
                    conn.execute(insert(table), rows[start:start + common.CHUNK])
        common.analyze(target)
        # SQLite reads the statistics when a connection opens: the pooled ones opened before
        # ANALYZE would plan the in-process pages without them (the deal list then sorts the
        # manager's whole share: ~100 ms instead of ~1). Served workers connect afresh.
        db.engine.dispose()
    return {"deals": len(deals), "activities": len(activities)}


# -- measuring -------------------------------------------------------------------------------
def _signed_in_client(target: common.Target) -> Any:
    return common.signed_in_client(target.app, target.login)


def _env(target: common.Target) -> dict[str, str]:
    return common.bench_env(target, BENCH_PIPELINE_ID=target.pipeline_id)


def pages(target: common.Target) -> dict[str, str]:
    return {"board": f"/pipeline/board/{target.pipeline_id}", "list": "/pipeline/deals"}


def count_queries(target: common.Target) -> dict[str, int]:
    """SQL statements of one board page and one list page (after a warm-up request)."""
    client = _signed_in_client(target)
    result = {}
    for name, path in pages(target).items():
        client.get(path)
        queries, response = common.counted(target.app, partial(client.get, path))
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        if name == "board" and response.get_data(as_text=True).count('class="deal-card') == 0:
            raise SystemExit("the board shows no cards: the data did not load")
        result[name] = queries
    return result


def in_process(target: common.Target, runs: int = 30) -> dict[str, dict[str, float]]:
    """Median milliseconds per page through the WSGI test client, no server in between: far
    less sensitive than `wrk` to other processes competing for a shared machine's CPU."""
    os.environ.update(_env(target))
    bare = bare_app().test_client()
    birga = _signed_in_client(target)
    result: dict[str, dict[str, float]] = {}
    for page, path in pages(target).items():
        for name, client, url in (("bare", bare, f"/{page}"), ("birga", birga, path)):
            result.setdefault(page, {})[name] = common.median_ms(partial(client.get, url), runs)
    return result


def session(port: int, login: str, path: str) -> tuple[str, str]:
    """Sign in over HTTP; the Cookie header and the CSRF token of that session."""
    cookie, html = common.http_session(port, login, path)
    return cookie, re.search(r'data-csrf="([^"]+)"', html).group(1)


#: Each wrk thread draws its own deals (same seed in both would move the same deals at the
#: same moment: real conflicts, answered 409, that a board's users would not cause).
MOVE_SCRIPT = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(%(seed)d + 1000 * id)
end
local stages = {%(stages)s}
request = function()
  local deal = math.random(1, %(deals)d)
  local stage = stages[math.random(1, #stages)]
  local body = '{"stage_id": ' .. stage .. '}'
  return wrk.format("POST", "/pipeline/api/deals/" .. deal .. "/move", nil, body)
end
"""


def run_moves(target: common.Target, port: int, cookie: str, token: str, seconds: int,
              connections: int, deals: int, workdir: Path) -> dict[str, Any]:
    """Random deals to random open stages through the JSON move endpoint (state machine,
    history, timeline, audit: the whole path), as the board's drag and drop does."""
    from sqlalchemy import select

    from addons.pipeline.models import Stage

    with target.app.app_context():
        from core.api import db

        open_ids = list(db.session.scalars(select(Stage.id).where(
            Stage.pipeline_id == target.pipeline_id, Stage.kind == "open")))
    script = workdir / "move.lua"
    script.write_text(MOVE_SCRIPT % {"seed": 59, "stages": ", ".join(map(str, open_ids)),
                                     "deals": deals})
    return common.run_wrk(f"http://127.0.0.1:{port}", seconds, connections, cookie, extra=[
        "-s", str(script), "-H", f"X-CSRFToken: {token}", "-H", "Content-Type: application/json",
        "-H", "Accept: application/json"])


def _wrk_with_cpu(url: str, seconds: int, connections: int, cookie: str | None,
                  master: int) -> dict[str, Any]:
    run = common.run_wrk(url, seconds, connections, cookie, master=master)
    run["requests"] = round(run["rps"] * seconds)
    return run


def _combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several `wrk` runs of one page as one figure: mean req/s, the worst p99, and the
    workers' CPU milliseconds per request (a figure other processes' load barely moves)."""
    requests = sum(r["requests"] for r in runs)
    cpu = None if any(r["cpu_s"] is None for r in runs) else sum(r["cpu_s"] for r in runs)
    p99s = [r["p99_ms"] for r in runs if r["p99_ms"] is not None]
    return {"rps": round(sum(r["rps"] for r in runs) / len(runs), 1),
            "p99_ms": max(p99s) if p99s else None,
            "non_2xx": sum(r["non_2xx"] for r in runs),
            "cpu_ms_per_request": round(cpu * 1000 / requests, 2) if cpu and requests else None}


def measure(target: common.Target, seconds: int, connections: int, deals: int,
            workdir: Path, rounds: int = 2) -> dict[str, Any]:
    """Both apps served at once; each page's `wrk` runs alternate between them in `rounds`
    (bare first, then Birga first), so a change in the machine's load during the run
    weighs on both sides alike instead of on whichever ran later."""
    result: dict[str, Any] = {"queries": count_queries(target),
                              "in_process_ms": in_process(target)}
    paths = pages(target)
    env = _env(target)
    with common.served("pipeline_board", "bare_app", env, "/list") as bare_server, \
            common.served("pipeline_board", "birga_app", env, "/healthz") as birga_server:
        servers = {"bare": bare_server, "birga": birga_server}
        cookie = session(servers["birga"][1], target.login, paths["board"])[0]
        part = max(seconds // rounds, 1)
        for page in ("board", "list"):
            urls = {"bare": f"http://127.0.0.1:{servers['bare'][1]}/{page}",
                    "birga": f"http://127.0.0.1:{servers['birga'][1]}{paths[page]}"}
            cookies = {"bare": None, "birga": cookie}
            runs: dict[str, list[dict[str, Any]]] = {"bare": [], "birga": []}
            for name in runs:
                common.run_wrk(urls[name], 2, connections, cookies[name])  # warm-up
            for index in range(rounds):
                for name in ("bare", "birga") if index % 2 == 0 else ("birga", "bare"):
                    runs[name].append(_wrk_with_cpu(urls[name], part, connections,
                                                    cookies[name], servers[name][0].pid))
            result[page] = {name: _combined(runs[name]) for name in runs}
        if target.engine == "sqlite":
            cookie, token = session(servers["birga"][1], target.login, paths["board"])
            result["move"] = run_moves(target, servers["birga"][1], cookie, token, seconds,
                                       connections, deals, workdir)
    for page in ("board", "list"):
        bare, birga = result[page]["bare"], result[page]["birga"]
        result[page]["ratio"] = round(birga["rps"] / bare["rps"], 3)
        if bare["cpu_ms_per_request"] and birga["cpu_ms_per_request"]:
            result[page]["cpu_ratio"] = round(bare["cpu_ms_per_request"]
                                              / birga["cpu_ms_per_request"], 3)
    return result


def main() -> None:
    args = common.arguments(__doc__, wrk=True).parse_args()
    common.require_wrk()
    engines = common.select_engines(args.engines)
    results: dict[str, Any] = {}
    with common.scratch("birga-bench-pipeline-") as (workdir, targets):
        data, users, loaded = common.load_data_set(workdir, targets, engines, args.contacts,
                                                   ["pipeline"], prepare)
        loaded_deals: dict[str, int] = {}
        for target in targets:
            loaded_deals = load_deals(target, data, users, loaded["companies"])
        print(f"  {loaded['companies']} companies, {loaded['people']} people, "
              f"{loaded_deals['deals']} deals, {loaded_deals['activities']} activities")
        for target in targets:
            print(f"[{target.engine}] measuring (wrk {args.duration} s, "
                  f"{args.connections} connections) ...", flush=True)
            r = measure(target, args.duration, args.connections, loaded_deals["deals"],
                        workdir)
            results[target.engine] = r
            print(f"[{target.engine}] SQL per page: board {r['queries']['board']}, "
                  f"list {r['queries']['list']}")
            for page, ms in r["in_process_ms"].items():
                print(f"[{target.engine}] in process, median {page}: birga {ms['birga']} ms, "
                      f"bare {ms['bare']} ms")
            for page in ("board", "list"):
                for name in ("birga", "bare"):
                    m = r[page][name]
                    print(f"[{target.engine}] {page:5} {name:5}: {m['rps']:8.1f} req/s, "
                          f"p99 {m['p99_ms']} ms, non-2xx {m['non_2xx']}, "
                          f"worker CPU {m['cpu_ms_per_request']} ms/request")
                print(f"[{target.engine}] {page} ratio birga/bare: {r[page]['ratio']:.1%} "
                      f"(goal >= 40 %, p99 < 150 ms); CPU per request bare/birga: "
                      f"{r[page].get('cpu_ratio', 0):.1%}")
            if "move" in r:
                m = r["move"]
                print(f"[{target.engine}] move POST: {m['rps']:.1f} req/s, p99 {m['p99_ms']} "
                      f"ms, non-2xx {m['non_2xx']} (goal >= 200 req/s)")
    first = results[engines[0]]
    common.print_result(
        "pipeline_board", first["board"]["birga"]["rps"], "req/s",
        first["board"]["bare"]["rps"], first["board"]["ratio"],
        list_ratio=first["list"]["ratio"], cpu_ratio=first["board"].get("cpu_ratio"),
        list_cpu_ratio=first["list"].get("cpu_ratio"),
        move_rps_sqlite=results.get("sqlite", {}).get("move", {}).get("rps"),
        queries=first["queries"], contacts=args.contacts, engines=results)


if __name__ == "__main__":
    main()
