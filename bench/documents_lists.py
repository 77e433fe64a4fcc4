"""Documents list benchmark: the offer list and the product list against bare pages.

Issue 6 asks that, with the data set of `gen_dataset.py` loaded (its contacts and 500 products)
and a realistic number of offers (20k, with lines, for the data set's clients), the offer list
page signed in as a salesperson (so the record rule applies: her own offers) and the product
list page signed in as a sales manager (the product pages need `documents.manage`, which a
salesperson does not have; products have no record rule), served by gunicorn with 2 workers
under `wrk` (8 connections, 10 s), each reach at least 40 % of the requests per second of a
bare Flask + SQLAlchemy + Jinja page rendering the same rows from the same database in the same
run, p99 under 150 ms, with a small constant number of SQL queries per page.

    .venv/bin/python bench/documents_lists.py [--contacts N] [--offers N] [--duration 10]
                                              [--rounds 2] [--engines sqlite,postgresql]

Per engine (SQLite in a temporary folder; PostgreSQL at 127.0.0.1:5432/test in a private schema
when it answers):
1. generates the data set (once); loads users, companies and people with the contacts
   benchmark's loader, the products through the real CSV import (`import_products`) plus an
   older and a future dated price per product, and the offers (owned by their client's
   salesperson; states, numbers, a few revisions, 1-8 lines each, totals from the real
   `pricing.compute_totals`) with Core `executemany` inserts;
2. counts the SQL statements of one page of each list (in process), and checks that Birga and
   the bare page show the same rows;
3. prints in-process medians (test client, no server: the steadier figure on a shared machine),
   wall time and this process's CPU time, Birga and bare alternating;
4. serves Birga and the bare pages with gunicorn (2 workers each, loopback only, both servers
   up at once) and runs `wrk` against each page (a short warm-up first), alternating Birga and
   bare for `--rounds` rounds, printing mean requests/s, the worst round's p99 and the server
   workers' CPU time per request (Linux; bare CPU / Birga CPU is the `server_cpu_ratio`, which
   other load on a shared machine barely moves, unlike requests/s and p99).
The last line is one JSON object (see bench/README.md); `ratio` is Birga / bare throughput of
the offer list (the lower of the two pages is `min_ratio`), so higher is better.
"""
from __future__ import annotations

import os
import random
import re
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import _common as common

#: Weights of the offer states (most offers were sent; a quarter became orders).
STATE_WEIGHTS = {"draft": 12, "sent": 30, "accepted": 10, "declined": 13, "placed": 8,
                 "paid": 10, "delivered": 17}
PAGES = {"offers": "/documents/offers", "products": "/documents/products"}
#: Who sees each page (a data set role): the product pages need `documents.manage`.
PAGE_ROLES = {"offers": "sales", "products": "manager"}

BARE_OFFERS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Offers</title></head>
<body><main><h1>Offers</h1><table><thead><tr><th>Number</th><th>Client</th><th>Date</th>
<th>Valid until</th><th>State</th><th>Total</th></tr></thead><tbody>
{% for r in rows %}<tr><td><a href="/documents/offers/{{ r.id }}">{{ r.number or r.id }}</a></td>
<td>{{ r.client or '' }}</td><td>{{ r.offer_date }}</td><td>{{ r.valid_until or '' }}</td>
<td>{{ r.state }}</td><td>{{ r.amount_total }} {{ r.currency }}</td></tr>{% endfor %}
</tbody></table></main></body></html>
"""
BARE_PRODUCTS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Products</title></head>
<body><main><h1>Products</h1><table><thead><tr><th>SKU</th><th>Name</th><th>Unit</th>
<th>Price today</th><th>Stock</th><th>Active</th></tr></thead><tbody>
{% for r in rows %}<tr><td><a href="/documents/products/{{ r.id }}">{{ r.sku }}</a></td>
<td>{{ r.name }}</td><td>{{ r.unit }}</td><td>{{ r.price or '' }}</td>
<td>{{ r.stock if r.track_stock else '' }}</td><td>{{ r.active }}</td></tr>{% endfor %}
</tbody></table></main></body></html>
"""
#: The page of offers first, then the clients' names (joining before the LIMIT would make
#: PostgreSQL hash the whole partner table).
OFFERS_SQL = """
SELECT o.id, o.number, o.revision, p.name AS client, o.offer_date, o.valid_until, o.state,
       o.amount_total, o.currency
FROM (SELECT id, number, revision, partner_id, offer_date, valid_until, state, amount_total,
             currency, created_at FROM documents_offer
      WHERE owner_id = :owner AND is_current = :current
      ORDER BY created_at DESC, id DESC LIMIT 50) AS o
LEFT JOIN contacts_partner p ON p.id = o.partner_id
ORDER BY o.created_at DESC, o.id DESC
"""
PRODUCTS_SQL = """
SELECT p.id, p.sku, p.name, p.unit, p.track_stock, p.stock, p.active,
       (SELECT pp.price FROM documents_product_price pp WHERE pp.product_id = p.id
        AND pp.currency = :currency AND pp.valid_from <= :today
        ORDER BY pp.valid_from DESC LIMIT 1) AS price
FROM documents_product p ORDER BY p.sku LIMIT 50
"""


# -- the apps gunicorn serves ----------------------------------------------------------------
birga_app = common.birga_app


def bare_app():  # noqa: ANN201 - gunicorn's factory
    """The floor: Flask, one SQLAlchemy Core query per page, one Jinja template, no auth."""
    from flask import Flask
    from sqlalchemy import text

    engine = common.bare_engine()
    owner = int(os.environ["BENCH_OWNER_ID"])
    app = Flask("bare")
    # Compiled once, as Flask's loader caches a template file (`render_template_string`
    # would compile it on every request and flatter the ratio).
    offers_page = app.jinja_env.from_string(BARE_OFFERS)
    products_page = app.jinja_env.from_string(BARE_PRODUCTS)

    @app.route("/offers")
    def offers() -> str:
        with engine.connect() as conn:
            rows = conn.execute(text(OFFERS_SQL), {"owner": owner, "current": True}).all()
        return offers_page.render(rows=rows)

    @app.route("/products")
    def products() -> str:
        with engine.connect() as conn:
            rows = conn.execute(text(PRODUCTS_SQL), {"currency": "EUR",
                                                     "today": date.today()}).all()
        return products_page.render(rows=rows)

    return app


# -- data ------------------------------------------------------------------------------------
def prepare(target: common.Target, data: Path) -> dict[str, int]:
    """The app with the reference data, and the users: the first salesperson's offers are
    measured, the first sales manager sees the products."""
    from core.api import db, seed_reference_data

    target.build()
    with target.app.app_context():
        seed_reference_data()  # currencies and VAT rates, as `birga init` seeds them
        db.session.commit()
    return common.load_users(target, data, sign_in=("sales", "manager"))


def load_products(target: common.Target, data: Path, today: date) -> list[dict[str, Any]]:
    """products.csv through the real import (price valid from 60 days ago), then an older and,
    for every fifth product, a future price row; returns what the offer lines need."""
    from sqlalchemy import insert, select

    from addons.documents.models import Product, ProductPrice
    from addons.documents.products_import import import_products
    from core.api import db, vat_rate

    current_from = today - timedelta(days=60)
    with target.app.app_context():
        result = import_products((data / "products.csv").read_text(encoding="utf-8"),
                                 valid_from=current_from, country="LV")
        db.session.commit()
        if result.created < 1:
            raise SystemExit(f"the product import created nothing: {result.problems[:3]}")
        products = []
        extra = []
        for product_id, price, category, stock in db.session.execute(
                select(Product.id, ProductPrice.price, Product.vat_category, Product.stock)
                .join(ProductPrice, ProductPrice.product_id == Product.id)
                .order_by(Product.id)):
            old = (Decimal(price) * Decimal("0.92")).quantize(Decimal("0.01"))
            extra.append({"product_id": product_id, "currency": "EUR", "price": old,
                          "valid_from": today - timedelta(days=400)})
            if product_id % 5 == 0:
                extra.append({"product_id": product_id, "currency": "EUR",
                              "price": (Decimal(price) * Decimal("1.05")).quantize(
                                  Decimal("0.01")), "valid_from": today + timedelta(days=30)})
            products.append({"id": product_id, "price": Decimal(price), "old_price": old,
                             "stock": stock, "rate": vat_rate("LV", category, today)})
        with db.engine.begin() as conn:
            conn.execute(insert(ProductPrice.__table__), extra)
    return products


def offer_rows(data: Path, products: list[dict[str, Any]], users: dict[str, int],
               companies: int, count: int, today: date) -> tuple[list[dict], list[dict]]:
    """`count` current offers (plus the earlier revisions of a few) for the data set's people,
    each owned by its client's salesperson, with 1-8 product lines and totals computed by the
    real `compute_totals`; deterministic (seeded)."""
    from addons.documents.pricing import LineInput, compute_totals

    rng = random.Random(59)
    people = [(companies + int(r["id"]), int(r["company_id"]) if r["company_id"] else None,
               users[r["owner"]], r["language"]) for r in common.read_csv(data / "contacts.csv")]
    states = list(STATE_WEIGHTS)
    weights = list(STATE_WEIGHTS.values())
    offers: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    serial: dict[int, int] = {}
    start = datetime.combine(today - timedelta(days=730), datetime.min.time(), tzinfo=UTC)

    def add(offer_id: int, partner: int, owner: int, lang: str, state: str, number: str | None,
            revision: int, previous: int | None, current: bool, moment: datetime) -> None:
        chosen = rng.sample(products, rng.randint(1, 8))
        inputs, line_rows = [], []
        for sequence, product in enumerate(chosen, start=1):
            old = moment.date() < today - timedelta(days=60)
            quantity = Decimal(rng.choice((1, 1, 2, 3, 5, 10, 12, 25)))
            discount = Decimal(rng.choice((0, 0, 0, 5, 10)))
            price = product["old_price"] if old else product["price"]
            inputs.append(LineInput(quantity, price, discount, product["rate"]))
            line_rows.append({
                "offer_id": offer_id, "sequence": sequence * 10, "product_id": product["id"],
                "description": f"Product {product['id']}", "quantity": quantity,
                "unit": "pcs", "unit_price": price, "discount": discount,
                "vat_rate": product["rate"], "price_date": today - timedelta(
                    days=400 if old else 60)})
        totals = compute_totals(inputs, "EUR", decimals=2)
        for row, net in zip(line_rows, totals.line_nets, strict=True):
            row["amount_untaxed"] = net
        lines.extend(line_rows)
        offers.append({
            "id": offer_id, "number": number, "revision": revision, "previous_id": previous,
            "is_current": current, "state": state, "partner_id": partner, "deal_id": None,
            "owner_id": owner, "currency": "EUR", "lang": lang, "seller_country": "LV",
            "offer_date": moment.date(), "valid_until": moment.date() + timedelta(days=30)
            if rng.random() < 0.8 else None, "payment_terms": None, "notes": None,
            "template_id": None, "amount_untaxed": totals.untaxed, "amount_tax": totals.tax,
            "amount_total": totals.total, "sent_at": moment if state != "draft" else None,
            "created_at": moment, "updated_at": moment, "version": 1})

    moments = sorted(start + timedelta(minutes=rng.randrange(730 * 24 * 60))
                     for _ in range(count))
    next_id = 1
    for moment in moments:
        person, company, owner, lang = rng.choice(people)
        partner = company if company and rng.random() < 0.4 else person
        state = rng.choices(states, weights)[0]
        number = None
        if state != "draft":
            serial[moment.year] = serial.get(moment.year, 0) + 1
            number = f"OFFER/{moment.year}/{serial[moment.year]:04d}"
        previous = None
        if number and rng.random() < 0.06:  # re-issued once: the frozen first revision too
            add(next_id, partner, owner, lang, "sent", number, 1, None, False,
                moment - timedelta(days=3))
            previous, next_id = next_id, next_id + 1
        add(next_id, partner, owner, lang, state, number, 2 if previous else 1, previous, True,
            moment)
        next_id += 1
    return offers, lines


def load_offers(targets: list[common.Target], offers: list[dict], lines: list[dict]) -> None:
    from sqlalchemy import insert

    from addons.documents.models import Offer, OfferLine
    from core.api import db

    for target in targets:
        with target.app.app_context(), db.engine.begin() as conn:
            for table, rows in ((Offer.__table__, offers), (OfferLine.__table__, lines)):
                for start in range(0, len(rows), common.CHUNK):
                    conn.execute(insert(table), rows[start:start + common.CHUNK])
        common.analyze(target)


# -- measuring -------------------------------------------------------------------------------
def signed_in_client(target: common.Target, page: str) -> Any:
    """A test client signed in as the user who sees `page` (salesperson or manager)."""
    return common.signed_in_client(target.app, target.logins[PAGE_ROLES[page]])


def _bare_env(target: common.Target) -> dict[str, str]:
    return common.bench_env(target, BENCH_OWNER_ID=target.owner_id)


def _linked_ids(html: str, page: str) -> list[int]:
    return [int(i) for i in re.findall(rf'href="/documents/{page}/(\d+)"', html)]


def count_queries(target: common.Target) -> dict[str, int]:
    """SQL statements of one page of each list (after a warm-up request); also checks that
    Birga's page and the bare page show the same 50 rows in the same order."""
    os.environ.update(_bare_env(target))
    bare = bare_app().test_client()
    result = {}
    for page, path in PAGES.items():
        client = signed_in_client(target, page)
        client.get(path)
        queries, response = common.counted(target.app, partial(client.get, path))
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        mine = _linked_ids(response.get_data(as_text=True), page)
        floor = _linked_ids(bare.get(f"/{page}").get_data(as_text=True), page)
        if len(mine) != 50 or mine != floor:
            raise SystemExit(f"{page}: Birga shows {len(mine)} rows, not the bare page's "
                             f"{len(floor)} (first {mine[:3]} vs {floor[:3]})")
        result[page] = queries
    return result


def in_process(target: common.Target, runs: int = 40) -> dict[str, dict[str, float]]:
    """Median milliseconds per page through the WSGI test client, no server in between: far
    less sensitive than `wrk` to other processes competing for a shared machine's CPU. Also
    the median CPU time of this process per page (`*_cpu`), steadier still on a busy machine
    (it leaves out PostgreSQL's own work, for both pages alike). Birga and the bare page
    alternate, so a burst of load from elsewhere hits both."""
    os.environ.update(_bare_env(target))
    bare = bare_app().test_client()
    result: dict[str, dict[str, float]] = {}
    for page, path in PAGES.items():
        birga = signed_in_client(target, page)
        variants = (("bare", bare, f"/{page}"), ("birga", birga, path))
        for _, client, url in variants:
            for _ in range(5):
                client.get(url)
        wall: dict[str, list[float]] = {"bare": [], "birga": []}
        cpu: dict[str, list[float]] = {"bare": [], "birga": []}
        for _ in range(runs):
            for name, client, url in variants:
                started, used = time.perf_counter(), time.process_time()
                client.get(url)
                cpu[name].append((time.process_time() - used) * 1000)
                wall[name].append((time.perf_counter() - started) * 1000)
        figures = result.setdefault(page, {})
        for name in wall:
            figures[name] = round(statistics.median(wall[name]), 2)
            figures[f"{name}_cpu"] = round(statistics.median(cpu[name]), 2)
        figures["ratio"] = round(figures["bare"] / figures["birga"], 3)
        figures["cpu_ratio"] = round(figures["bare_cpu"] / figures["birga_cpu"], 3)
    return result


def run_measured(url: str, seconds: int, connections: int, cookie: str | None,
                 master: int) -> dict[str, Any]:
    """One `wrk` run, plus the server workers' CPU time per request: the cost of a page
    that other processes on a shared machine do not change (throughput and p99 they do)."""
    run = common.run_wrk(url, seconds, connections, cookie, master=master)
    served = run["rps"] * seconds
    run["cpu_ms"] = round(run["cpu_s"] * 1000 / served, 2) \
        if run["cpu_s"] is not None and served else None
    return run


def _combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one page and variant: mean requests/s and server CPU per request, the worst
    round's p99."""
    p99s = [r["p99_ms"] for r in runs if r["p99_ms"] is not None]
    cpus = [r["cpu_ms"] for r in runs if r["cpu_ms"] is not None]
    return {"rps": round(statistics.mean(r["rps"] for r in runs), 1),
            "p99_ms": max(p99s) if p99s else None,
            "server_cpu_ms": round(statistics.mean(cpus), 2) if cpus else None,
            "non_2xx": sum(r["non_2xx"] for r in runs),
            "rounds_rps": [r["rps"] for r in runs]}


def measure(target: common.Target, seconds: int, connections: int,
            rounds: int) -> dict[str, Any]:
    """Both servers run side by side (each idle while the other is measured) and `wrk`
    alternates between them, `rounds` times per page: on a shared machine a burst of load
    from elsewhere then hits both variants, instead of only the one measured at that moment."""
    result: dict[str, Any] = {"queries": count_queries(target),
                              "in_process_ms": in_process(target)}
    env = _bare_env(target)
    with common.served("documents_lists", "bare_app", env, "/products") as bare_server, \
            common.served("documents_lists", "birga_app", env, "/healthz") as birga_server:
        servers = {"bare": bare_server, "birga": birga_server}
        for page, path in PAGES.items():
            port = servers["birga"][1]
            login = target.logins[PAGE_ROLES[page]]
            cookies = {"bare": None, "birga": common.http_session(port, login, path)[0]}
            urls = {"bare": f"http://127.0.0.1:{servers['bare'][1]}/{page}",
                    "birga": f"http://127.0.0.1:{port}{path}"}
            for name, url in urls.items():
                common.run_wrk(url, 2, connections, cookies[name])  # warm-up: caches and pools
            runs: dict[str, list[dict[str, Any]]] = {"bare": [], "birga": []}
            for _ in range(rounds):
                for name, url in urls.items():
                    runs[name].append(run_measured(url, seconds, connections, cookies[name],
                                                   servers[name][0].pid))
            figures = result[page] = {name: _combined(r) for name, r in runs.items()}
            figures["ratio"] = round(figures["birga"]["rps"] / figures["bare"]["rps"], 3)
            if figures["birga"]["server_cpu_ms"] and figures["bare"]["server_cpu_ms"]:
                figures["server_cpu_ratio"] = round(figures["bare"]["server_cpu_ms"]
                                                    / figures["birga"]["server_cpu_ms"], 3)
    return result


def report(engine: str, r: dict[str, Any]) -> None:
    print(f"[{engine}] SQL per page: offers {r['queries']['offers']}, products "
          f"{r['queries']['products']} (bare pages: 1)")
    for page, ms in r["in_process_ms"].items():
        print(f"[{engine}] in process, median {page:8}: birga {ms['birga']} ms, bare "
              f"{ms['bare']} ms, ratio {ms['ratio']:.1%}; CPU birga {ms['birga_cpu']} ms, bare "
              f"{ms['bare_cpu']} ms, ratio {ms['cpu_ratio']:.1%}")
    for page in PAGES:
        for name in ("birga", "bare"):
            m = r[page][name]
            print(f"[{engine}] {page:8} {name:5}: {m['rps']:8.1f} req/s (rounds "
                  f"{m['rounds_rps']}), worst p99 {m['p99_ms']} ms, server CPU "
                  f"{m['server_cpu_ms']} ms/request, non-2xx {m['non_2xx']}")
        ok = r[page]["ratio"] >= 0.4 and (r[page]["birga"]["p99_ms"] or 0) < 150
        cpu = r[page].get("server_cpu_ratio")
        print(f"[{engine}] {page} ratio birga/bare: {r[page]['ratio']:.1%} (goal >= 40 %, "
              f"p99 < 150 ms: {'met' if ok else 'MISSED'}); server CPU ratio "
              f"{'n/a' if cpu is None else f'{cpu:.1%}'}")


def main() -> None:
    parser = common.arguments(__doc__, wrk=True)
    parser.add_argument("--offers", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="wrk runs per page and variant, alternating Birga and bare")
    args = parser.parse_args()
    common.require_wrk()
    engines = common.select_engines(args.engines)
    results: dict[str, Any] = {}
    today = date.today()
    with common.scratch("birga-bench-documents-") as (workdir, targets):
        data, users, loaded = common.load_data_set(workdir, targets, engines, args.contacts,
                                                   ["documents"], prepare)
        products: list[dict[str, Any]] = []
        for target in targets:
            products = load_products(target, data, today)
        offers, lines = offer_rows(data, products, users, loaded["companies"], args.offers,
                                   today)
        load_offers(targets, offers, lines)
        print(f"  {loaded['companies']} companies, {loaded['people']} people, "
              f"{len(products)} products, {len(offers)} offers (current and earlier "
              f"revisions), {len(lines)} lines", flush=True)
        for target in targets:
            print(f"[{target.engine}] measuring (wrk {args.rounds} x {args.duration} s per "
                  f"page and variant, {args.connections} connections) ...", flush=True)
            results[target.engine] = measure(target, args.duration, args.connections,
                                             args.rounds)
            report(target.engine, results[target.engine])
    first = results[engines[0]]
    common.print_result(
        "documents_lists", first["offers"]["birga"]["rps"], "req/s",
        first["offers"]["bare"]["rps"], first["offers"]["ratio"],
        products_ratio=first["products"]["ratio"],
        min_ratio=min(r[p]["ratio"] for r in results.values() for p in PAGES),
        queries=first["queries"], contacts=args.contacts, offers=args.offers, engines=results)


if __name__ == "__main__":
    main()
