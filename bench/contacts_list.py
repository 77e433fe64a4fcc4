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

import argparse
import csv
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
GENERATOR = Path("/work/shared/bench/gen_dataset.py")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench-password-123"  # noqa: S105 - a throw-away benchmark user
USER_AGENT = "birga-bench"
COUNTRIES = {"lv": "LV", "ru": "RU", "uz": "UZ", "kk": "KZ", "ro": "MD"}
STATUSES = ("client", "lead", "prospect", "client", "inactive")
ROLES = {"admin": "administrator", "manager": "sales_manager", "support": "support_agent",
         "sales": "salesperson"}
CHUNK = 5000
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
def _env_config() -> dict[str, Any]:
    return json.loads(os.environ["BENCH_BIRGA_CONFIG"])


def birga_app():  # noqa: ANN201 - gunicorn's factory
    sys.path.insert(0, str(PROJECT_ROOT))
    from core import create_app

    return create_app(_env_config())


def bare_app():  # noqa: ANN201 - gunicorn's factory
    """The floor: Flask, one SQLAlchemy Core query, one Jinja template, no auth."""
    from flask import Flask
    from sqlalchemy import create_engine, text

    config = _env_config()
    engine = create_engine(config["SQLALCHEMY_DATABASE_URI"],
                           **config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
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


# -- data ----------------------------------------------------------------------------------
def generate(out: Path, contacts: int) -> None:
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), "--contacts",
                    str(contacts)], check=True)


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            pass
        import sqlalchemy as sa

        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False


class Target:
    """One database the benchmark loads and serves: its app config and cleanup."""

    def __init__(self, engine: str, workdir: Path) -> None:
        self.engine = engine
        self.instance = workdir / f"instance-{engine}"
        self.instance.mkdir(parents=True, exist_ok=True)
        self.schema: str | None = None
        if engine == "sqlite":
            url, options = f"sqlite:///{self.instance / 'birga.sqlite'}", {}
        else:
            self.schema = "bench_" + uuid.uuid4().hex[:10]
            import sqlalchemy as sa

            admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
            url, options = PG_URL, {"connect_args": {"options": f"-csearch_path={self.schema}"}}
        self.config: dict[str, Any] = {
            "INSTANCE_PATH": str(self.instance), "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": {**options, "pool_pre_ping": False},
            "BIRGA_ADDONS": ["contacts"], "SESSION_COOKIE_SECURE": False,
            "REMEMBER_COOKIE_SECURE": False, "BIRGA_PHONE_REGION": "LV",
        }
        self.app: Any = None
        self.owner_id: int | None = None
        self.login: str | None = None

    def drop(self) -> None:
        if self.schema:
            import sqlalchemy as sa

            admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            admin.dispose()


def build(target: Target) -> None:
    """The app and its schema (tables from the models, as the test fixtures make them)."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from core import create_app
    from core.testing import create_schema

    target.app = create_app(target.config, addons=["contacts"])
    create_schema(target.app)


def load_users(target: Target, data: Path) -> dict[str, int]:
    from core.api import User, assign_roles, db

    ids: dict[str, int] = {}
    with target.app.app_context():
        for row in read_csv(data / "users.csv"):
            user = User(login=row["login"], name=row["name"])
            if row["role"] == "sales" and target.login is None:
                user.set_password(PASSWORD)
                target.login = row["login"]
            db.session.add(user)
            db.session.flush()
            ids[row["login"]] = user.id
            assign_roles(user, ROLES[row["role"]])
        target.owner_id = ids[target.login]
    return ids


def _derived(kind: str, name: str, first: str | None, last: str | None, company_name: str | None,
             phone: str, email: str, vat: str | None, city: str) -> tuple[dict[str, Any],
                                                                       str | None, str | None,
                                                                       set[str]]:
    """Columns and tokens exactly as `services.refresh_search` derives them."""
    from addons.contacts.folding import sort_keys
    from addons.contacts.services import normalize_email, normalize_phone, search_tokens

    number = normalize_phone(phone)
    try:
        address = normalize_email(email)
    except ValueError:
        address = None
    partner = SimpleNamespace(  # id None: no custom values yet (no query for them)
        id=None, name=name, first_name=first, last_name=last, middle_name=None,
        company_name=company_name, vat=vat, registration_no=None, city=city,
        phones=[SimpleNamespace(number=number)] if number else [], phone=number,
        emails=[SimpleNamespace(email=address)] if address else [], email=address)
    found = search_tokens(partner)  # type: ignore[arg-type]
    columns = {"search_text": " ".join(sorted(found)), **sort_keys(name)}
    return columns, number, address, found


def load_partners(targets: list[Target], data: Path, users: dict[str, int]) -> dict[str, Any]:
    """Companies, then people, with phones, e-mails and search tokens, in chunks, into every
    target at once (the derived data is computed once)."""
    from sqlalchemy import insert

    from addons.contacts.models import Partner, PartnerEmail, PartnerPhone, SearchToken
    from addons.contacts.services import person_name

    tables = [Partner.__table__, PartnerPhone.__table__, PartnerEmail.__table__,
              SearchToken.__table__]
    sales = sorted(uid for login, uid in users.items())
    company_names: dict[int, str] = {}
    started = time.perf_counter()
    counts = {"companies": 0, "people": 0, "tokens": 0}
    offset = 0

    def flush(rows: list[list[dict[str, Any]]]) -> None:
        for target in targets:
            with target.app.app_context():
                from core.api import db

                with db.engine.begin() as conn:
                    for table, batch in zip(tables, rows, strict=True):
                        if batch:
                            conn.execute(insert(table), batch)

    def rows_of(source: Iterator[dict[str, str]], kind: str) -> None:
        nonlocal offset
        batch: list[list[dict[str, Any]]] = [[], [], [], []]
        for row in source:
            csv_id = int(row["id"])
            pid = csv_id if kind == "company" else offset + csv_id
            lang = row["language"]
            if kind == "company":
                name, first, last = row["name"], None, None
                company_id, company_name, vat = None, None, row["vat_no"]
                owner = sales[csv_id % len(sales)]
                company_names[pid] = name
            else:
                first, last = row["first_name"], row["last_name"]
                name = person_name(first, last, locale="en")
                company_id = int(row["company_id"]) if row["company_id"] else None
                company_name = company_names.get(company_id) if company_id else None
                vat, owner = None, users[row["owner"]]
            columns, number, address, found = _derived(
                kind, name, first, last, company_name, row["phone"], row["email"], vat,
                row["city"])
            batch[0].append({
                "id": pid, "kind": kind, "name": name, "first_name": first, "last_name": last,
                "company_id": company_id, "company_name": company_name, "phone": number,
                "email": address, "city": row["city"], "country": COUNTRIES[lang],
                "lang": lang, "vat": vat, "status": STATUSES[csv_id % len(STATUSES)],
                "owner_id": owner, "active": True, "external_id": f"{kind}:{csv_id}",
                "birthday": date.fromisoformat(row["birthday"]) if row.get("birthday")
                else None, "created_at": _moment(row["created_at"]),
                "updated_at": _moment(row["created_at"]), "version": 1, **columns})
            if number:
                batch[1].append({"partner_id": pid, "number": number, "kind": "mobile",
                                 "sequence": 0})
            if address:
                batch[2].append({"partner_id": pid, "email": address,
                                 "email_key": address.lower(), "kind": "work", "sequence": 0})
            batch[3].extend({"partner_id": pid, "token": t} for t in sorted(found))
            counts["companies" if kind == "company" else "people"] += 1
            counts["tokens"] += len(found)
            if len(batch[0]) >= CHUNK:
                flush(batch)
                batch = [[], [], [], []]
        flush(batch)

    rows_of(read_csv(data / "companies.csv"), "company")
    offset = counts["companies"]
    rows_of(read_csv(data / "contacts.csv"), "person")
    for target in targets:
        with target.app.app_context():
            from sqlalchemy import text

            from core.api import db

            # Planner statistics, and on PostgreSQL the visibility map autovacuum would set in
            # a running installation (index-only scans depend on it).
            statement = "ANALYZE" if target.engine == "sqlite" else "VACUUM ANALYZE"
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(statement))
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


# -- measuring -----------------------------------------------------------------------------
def count_queries(target: Target) -> dict[str, int]:
    """SQL statements of one list page and one card page (after a warm-up request)."""
    from sqlalchemy import event, select

    from addons.contacts.models import Partner
    from core.api import db

    app = target.app
    client = app.test_client()
    with app.app_context():
        html = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
        client.post("/login", data={"login": target.login, "password": PASSWORD,
                                    "csrf_token": token})
        card_id = db.session.scalar(select(Partner.id).where(
            Partner.owner_id == target.owner_id).order_by(Partner.id).limit(1))
        engine = db.engine
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    result = {}
    for name, path in (("list", "/contacts/"), ("card", f"/contacts/{card_id}")):
        client.get(path)  # warm-up: caches, first connection
        statements.clear()
        event.listen(engine, "before_cursor_execute", seen)
        response = client.get(path)
        event.remove(engine, "before_cursor_execute", seen)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        result[name] = len(statements)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(factory: str, target: Target, port: int) -> subprocess.Popen:
    env = {**os.environ, "BENCH_BIRGA_CONFIG": json.dumps(target.config),
           "BENCH_OWNER_ID": str(target.owner_id)}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "--pythonpath", str(BENCH_DIR),
         "--log-level", "warning", f"contacts_list:{factory}()"],
        cwd=str(PROJECT_ROOT), env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)  # noqa: S310
            return process
        except urllib.error.HTTPError:
            return process  # it answers (a redirect to sign in is an answer)
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn ({factory}) exited with {process.returncode}") from None
            time.sleep(0.3)
    process.terminate()
    raise SystemExit(f"gunicorn ({factory}) did not answer within 60 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def session_cookie(port: int, login: str) -> str:
    """Sign in over HTTP as a browser would and return the Cookie header value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    html = opener.open(f"http://127.0.0.1:{port}/login").read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    body = urllib.parse.urlencode({"login": login, "password": PASSWORD,
                                   "csrf_token": token}).encode()
    opener.open(f"http://127.0.0.1:{port}/login", data=body)
    page = opener.open(f"http://127.0.0.1:{port}/contacts/")
    if "/login" in page.geturl():
        raise SystemExit("signing in for the benchmark failed")
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, seconds: int, connections: int, cookie: str | None) -> dict[str, Any]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-H", f"User-Agent: {USER_AGENT}"]
    if cookie:
        args += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": round(rps, 1), "p99_ms": round(_ms(*p99.groups()), 2) if p99 else None,
            "non_2xx": int(bad.group(1)) if bad else 0}


def in_process(target: Target, runs: int = 30) -> dict[str, float]:
    """Median milliseconds per page through the WSGI test client, no server in between: less
    sensitive than `wrk` to other processes competing for the CPU."""
    import statistics

    os.environ["BENCH_BIRGA_CONFIG"] = json.dumps(target.config)
    os.environ["BENCH_OWNER_ID"] = str(target.owner_id)
    bare = bare_app().test_client()
    birga = target.app.test_client()
    with target.app.app_context():
        html = birga.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    birga.post("/login", data={"login": target.login, "password": PASSWORD,
                               "csrf_token": token})
    result = {}
    for name, client, path in (("bare", bare, "/"), ("birga", birga, "/contacts/")):
        for _ in range(3):
            client.get(path)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            client.get(path)
            samples.append((time.perf_counter() - start) * 1000)
        result[name] = round(statistics.median(samples), 2)
    return result


def measure(target: Target, seconds: int, connections: int) -> dict[str, Any]:
    result: dict[str, Any] = {"queries": count_queries(target),
                              "in_process_ms": in_process(target)}
    for name, factory, path in (("bare", "bare_app", "/"), ("birga", "birga_app", "/contacts/")):
        port = free_port()
        process = serve(factory, target, port)
        try:
            cookie = session_cookie(port, target.login) if name == "birga" else None
            url = f"http://127.0.0.1:{port}{path}"
            run_wrk(url, 2, connections, cookie)  # warm-up: workers' caches and pools
            result[name] = run_wrk(url, seconds, connections, cookie)
        finally:
            stop(process)
    result["ratio"] = round(result["birga"]["rps"] / result["bare"]["rps"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--engines", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (skipped when unreachable)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "postgresql" in engines and not pg_reachable():
        print("PostgreSQL at 127.0.0.1:5432 does not answer: SQLite only.")
        engines.remove("postgresql")
    workdir = Path(tempfile.mkdtemp(prefix="birga-bench-list-"))
    targets: list[Target] = []
    try:
        data = workdir / "data"
        print(f"Generating {args.contacts} contacts ...", flush=True)
        generate(data, args.contacts)
        targets = [Target(e, workdir) for e in engines]
        for target in targets:
            build(target)
        users = {}
        for target in targets:
            users = load_users(target, data)
        print("Loading into " + ", ".join(engines) + " ...", flush=True)
        with targets[0].app.app_context():
            loaded = load_partners(targets, data, users)
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
    finally:
        for target in targets:
            if target.app is not None:
                with target.app.app_context():
                    from core.api import db

                    db.engine.dispose()
            target.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    first = results[engines[0]]
    print(json.dumps({
        "name": "contacts_list", "value": first["birga"]["rps"], "unit": "req/s",
        "baseline": first["bare"]["rps"], "ratio": first["ratio"],
        "contacts": args.contacts, "engines": results}))


if __name__ == "__main__":
    main()
