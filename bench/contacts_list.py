"""Contacts list benchmark: the real list page against a bare Flask + SQLAlchemy + Jinja page.

Issue 4 asks that the contacts list (50 rows, default sort, signed in as a salesperson so the
record rules apply), served by gunicorn with 2 workers under `wrk` (8 connections, 10 s),
reaches at least 40 % of the requests per second of a bare page rendering the same 50 rows from
the same database in the same run, with p99 under 100 ms, and a small constant number of SQL
queries per page. The ratio is the figure to compare; absolute numbers depend on the machine.

    .venv/bin/python bench/contacts_list.py [--contacts N] [--duration 10] [--engines sqlite,pg]

What it does, per engine (SQLite in a temporary folder; PostgreSQL at 127.0.0.1:5432/test in a
private schema when it answers):
1. generates the data set with `/work/shared/bench/gen_dataset.py` (once);
2. builds the schema from the models and loads users, companies and contacts with Core
   `executemany` inserts, the derived columns computed by the contacts services' own functions
   (`person_name`, `normalize_phone`, `search_tokens`, `sort_keys`);
3. counts the SQL statements of one list page and one card page (in process);
4. serves Birga and the bare page with gunicorn (2 workers each, loopback only) and runs `wrk`
   against each (a short warm-up first), printing requests/s and p99.
The last line is one JSON object (see bench/README.md); `ratio` is Birga / bare throughput,
so here higher is better.
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any

import _common as common

BARE_COLUMNS = ("id", "name", "company_name", "phone", "email", "city", "country", "status",
                "segment")
BARE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Contacts</title></head>
<body><main><h1>Contacts</h1>
<table><thead><tr><th>Name</th><th>Company</th><th>Phone</th><th>E-mail</th><th>City</th>
<th>Status</th><th>Segment</th></tr></thead><tbody>
{% for r in rows %}<tr><td><a href="/c/{{ r.id }}">{{ r.name }}</a></td>
<td>{{ r.company_name or '' }}</td><td>{{ r.phone or '' }}</td>
<td>{{ r.email or '' }}</td><td>{{ r.city or '' }}</td>
<td>{{ r.status }}</td><td>{{ r.segment or '' }}</td></tr>{% endfor %}
</tbody></table></main></body></html>
"""


# -- the two apps gunicorn serves (config through the environment) -----------------------
birga_app = common.birga_app


def bare_app():  # noqa: ANN201 - gunicorn's factory
    """The floor: Flask, one SQLAlchemy Core query, one Jinja template, no auth."""
    from flask import Flask
    from sqlalchemy import text

    engine = common.bare_engine()
    owner = int(os.environ["BENCH_OWNER_ID"])
    sql = text(f"SELECT {', '.join(BARE_COLUMNS)} FROM contacts_partner "  # noqa: S608
               "WHERE active = :active AND owner_id = :owner ORDER BY sort_en, id LIMIT 50")
    app = Flask("bare")
    # Compiled once, as Flask's loader caches a template file (`render_template_string`
    # would compile it on every request and flatter the ratio).
    template = app.jinja_env.from_string(BARE_TEMPLATE)

    @app.route("/")
    def index() -> str:
        with engine.connect() as conn:
            rows = conn.execute(sql, {"active": True, "owner": owner}).all()
        return template.render(rows=rows)

    return app


# -- measuring -----------------------------------------------------------------------------
def count_queries(target: common.Target) -> dict[str, int]:
    """SQL statements of one list page and one card page (after a warm-up request)."""
    from sqlalchemy import select

    from addons.contacts.models import Partner
    from core.api import db

    client = common.signed_in_client(target.app, target.login)
    with target.app.app_context():
        card_id = db.session.scalar(select(Partner.id).where(
            Partner.owner_id == target.owner_id).order_by(Partner.id).limit(1))
    result = {}
    for name, path in (("list", "/contacts/"), ("card", f"/contacts/{card_id}")):
        client.get(path)  # warm-up: caches, first connection
        result[name], response = common.counted(target.app, partial(client.get, path))
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
    return result


def _env(target: common.Target) -> dict[str, str]:
    return common.bench_env(target, BENCH_OWNER_ID=target.owner_id)


def in_process(target: common.Target, runs: int = 30) -> dict[str, float]:
    """Median milliseconds per page through the WSGI test client, no server in between: less
    sensitive than `wrk` to other processes competing for the CPU."""
    os.environ.update(_env(target))
    bare = bare_app().test_client()
    birga = common.signed_in_client(target.app, target.login)
    return {name: common.median_ms(partial(client.get, path), runs)
            for name, client, path in (("bare", bare, "/"), ("birga", birga, "/contacts/"))}


def measure(target: common.Target, seconds: int, connections: int) -> dict[str, Any]:
    result: dict[str, Any] = {"queries": count_queries(target),
                              "in_process_ms": in_process(target)}
    for name, factory, path in (("bare", "bare_app", "/"), ("birga", "birga_app", "/contacts/")):
        with common.served("contacts_list", factory, _env(target)) as (_process, port):
            cookie = common.http_session(port, target.login, "/contacts/")[0] \
                if name == "birga" else None
            url = f"http://127.0.0.1:{port}{path}"
            common.run_wrk(url, 2, connections, cookie)  # warm-up: workers' caches and pools
            result[name] = common.run_wrk(url, seconds, connections, cookie)
    result["ratio"] = round(result["birga"]["rps"] / result["bare"]["rps"], 3)
    return result


def main() -> None:
    args = common.arguments(__doc__, wrk=True).parse_args()
    common.require_wrk()
    engines = common.select_engines(args.engines)
    with common.scratch("birga-bench-list-") as (workdir, targets):
        _data, _users, loaded = common.load_data_set(workdir, targets, engines, args.contacts,
                                                     ["contacts"])
        print(f"  {loaded['companies']} companies, {loaded['people']} people, "
              f"{loaded['tokens']} search tokens in {loaded['seconds']} s")
        results = {}
        for target in targets:
            print(f"[{target.engine}] measuring (wrk {args.duration} s, "
                  f"{args.connections} connections) ...", flush=True)
            results[target.engine] = measure(target, args.duration, args.connections)
            r = results[target.engine]
            print(f"[{target.engine}] SQL per page: list {r['queries']['list']}, "
                  f"card {r['queries']['card']} (bare page: 1)")
            print(f"[{target.engine}] in process, median per page: birga "
                  f"{r['in_process_ms']['birga']} ms, bare {r['in_process_ms']['bare']} ms")
            for name in ("birga", "bare"):
                print(f"[{target.engine}] {name:5}: {r[name]['rps']:8.1f} req/s, "
                      f"p99 {r[name]['p99_ms']} ms, non-2xx {r[name]['non_2xx']}")
            print(f"[{target.engine}] ratio birga/bare: {r['ratio']:.1%} (goal >= 40 %, "
                  f"p99 < 100 ms)")
    first = results[engines[0]]
    common.print_result("contacts_list", first["birga"]["rps"], "req/s", first["bare"]["rps"],
                        first["ratio"], contacts=args.contacts, engines=results)


if __name__ == "__main__":
    main()
