"""What the benchmarks in this folder share: data set, throw-away databases, serving, `wrk`.

Each benchmark compares Birga with a bare baseline measured in the same run, so everything
around the two (how the data set is generated and loaded, how a database is made and dropped,
how a page is served, signed into and loaded with `wrk`) must be the same for every benchmark
and every variant: kept here once, a fix or a change of method reaches all of them alike. What a
benchmark measures, its baseline and its output stay in its own script.

Scripts run as `python bench/NAME.py` (this folder is then on `sys.path`); gunicorn gets
`--pythonpath bench,<project root>`. Importing this module puts the project root on `sys.path`
so `core` and `addons` import either way.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import http.cookiejar
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

GENERATOR = Path("/work/shared/bench/gen_dataset.py")
#: Private schemas are made (and dropped) on this server; `BIRGA_BENCH_PG_URL` moves it.
PG_URL = os.environ.get("BIRGA_BENCH_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench-password-123"  # noqa: S105 - a throw-away benchmark user
USER_AGENT = "birga-bench"
#: The data set's roles (users.csv) as Birga's seeded role codes.
ROLES = {"admin": "administrator", "manager": "sales_manager", "support": "support_agent",
         "sales": "salesperson"}
#: The data set's deal stages and lost reasons as the names `seed_defaults()` gives them.
STAGES = {"new": "New", "qualified": "Qualified", "proposal": "Proposal",
          "negotiation": "Negotiation", "won": "Won", "lost": "Lost"}
REASONS = {"too expensive": "Too expensive", "chose competitor": "Chose a competitor",
           "no budget": "No budget", "no answer": "No answer", "timing": "Bad timing"}
COUNTRIES = {"lv": "LV", "ru": "RU", "uz": "UZ", "kk": "KZ", "ro": "MD"}
STATUSES = ("client", "lead", "prospect", "client", "inactive")
#: Rows per `executemany`: big enough to be fast, small enough to bound memory.
CHUNK = 5000
#: Settings of an app served over plain HTTP on loopback (cookies without `Secure`), with
#: the data set's Latvian numbers read as the firm's own.
SERVED = {"SESSION_COOKIE_SECURE": False, "REMEMBER_COOKIE_SECURE": False,
          "BIRGA_PHONE_REGION": "LV"}
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


# -- data set ----------------------------------------------------------------------------------
def generate(out: Path, contacts: int) -> None:
    """The shared deterministic data set (users, companies, contacts, deals, ...) into `out`."""
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), "--contacts",
                    str(contacts)], check=True)


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a data set file, streamed (the big files need not fit in memory twice)."""
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def moment(text: str) -> datetime | None:
    """A data set timestamp (naive, UTC) as an aware datetime; None for an empty cell."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None


# -- engines and databases -------------------------------------------------------------------
def pg_reachable(url: str = PG_URL) -> bool:
    """Whether a PostgreSQL server answers at `url` (within seconds, not a TCP timeout)."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False


def select_engines(text: str) -> list[str]:
    """`--engines` as a list (`pg` is short for `postgresql`), without PostgreSQL when it
    does not answer: a benchmark still runs on a machine without it."""
    engines = []
    for name in (e.strip() for e in text.split(",")):
        name = "postgresql" if name == "pg" else name
        if name and name not in engines:
            engines.append(name)
    if "postgresql" in engines and not pg_reachable():
        from sqlalchemy.engine import make_url

        url = make_url(PG_URL)
        print(f"PostgreSQL at {url.host}:{url.port or 5432} does not answer: SQLite only.")
        engines.remove("postgresql")
    return engines


def _pg_admin(statement: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(statement))
    admin.dispose()


class Target:
    """One throw-away database and the app on it: a SQLite file in the work folder, or a
    private schema on PostgreSQL (dropped by `close`), so a run never touches real data and
    several runs can share one server."""

    def __init__(self, engine: str, workdir: Path, addons: list[str], *,
                 label: str | None = None, config: Mapping[str, Any] = SERVED) -> None:
        self.engine = engine
        self.instance = workdir / f"instance-{label or engine}"
        self.instance.mkdir(parents=True, exist_ok=True)
        self.schema: str | None = None
        # No pre-ping (Birga's production default pings on every checkout): the bare
        # baselines do not ping either.
        options: dict[str, Any] = {"pool_pre_ping": False}
        if engine == "sqlite":
            url = f"sqlite:///{self.instance / 'birga.sqlite'}"
        else:
            self.schema = "bench_" + uuid.uuid4().hex[:10]
            _pg_admin(f'CREATE SCHEMA "{self.schema}"')
            url = PG_URL
            options["connect_args"] = {"options": f"-csearch_path={self.schema}"}
        self.config: dict[str, Any] = {
            "INSTANCE_PATH": str(self.instance), "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": options, "SECRET_KEY": "bench",
            "BIRGA_ADDONS": list(addons), **config,
        }
        self.app: Any = None
        #: Who signs in, by data set role (see `load_users`); `login` and `owner_id` are the
        #: first of them, whose pages are measured.
        self.logins: dict[str, str] = {}
        self.login: str | None = None
        self.owner_id: int | None = None

    def build(self) -> Any:
        """The app and its schema (tables from the models, as the test fixtures make them)."""
        from core import create_app
        from core.testing import create_schema

        self.app = create_app(self.config, addons=self.config["BIRGA_ADDONS"])
        create_schema(self.app)
        return self.app

    def close(self) -> None:
        """Release the app's connections, then drop the schema (safe to call twice)."""
        if self.app is not None:
            with self.app.app_context():
                from core.api import db

                db.session.remove()
                db.engine.dispose()
            self.app = None
        if self.schema:
            _pg_admin(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self.schema = None


def analyze(target: Target) -> None:
    """Planner statistics after a bulk load, and on PostgreSQL the visibility map autovacuum
    would set in a running installation (index-only scans depend on it)."""
    from sqlalchemy import text

    from core.api import db

    statement = "ANALYZE" if target.engine == "sqlite" else "VACUUM ANALYZE"
    with target.app.app_context(), db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(statement))


def arguments(doc: str, *, wrk: bool = False) -> argparse.ArgumentParser:
    """The options every data set benchmark has (and those of the `wrk` ones); the script
    adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100000)
    parser.add_argument("--engines", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (skipped when unreachable)")
    if wrk:
        parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
        parser.add_argument("--connections", type=int, default=8)
    return parser


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[tuple[Path, list[Target]]]:
    """A work folder and a list for the targets made in it; on the way out, even after a
    failure, every target is closed (no schema left behind) and the folder removed."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    targets: list[Target] = []
    try:
        yield workdir, targets
    finally:
        for target in targets:
            target.close()
        shutil.rmtree(workdir, ignore_errors=True)


# -- loading -----------------------------------------------------------------------------------
def load_users(target: Target, data: Path, *, sign_in: tuple[str, ...] = ("sales",),
               roles: bool = True, locale: bool = False) -> dict[str, int]:
    """The users of `users.csv` (with their roles unless `roles` is false, with their language
    as locale when `locale` is true, which changes the pages they see); the first user of each
    data set role in `sign_in` gets `PASSWORD` (see `Target.logins`). Returns id by login."""
    from core.api import User, assign_roles, db

    ids: dict[str, int] = {}
    with target.app.app_context():
        for row in read_csv(data / "users.csv"):
            extra = {"locale": row["language"]} if locale else {}
            user = User(login=row["login"], name=row["name"], **extra)
            if row["role"] in sign_in and row["role"] not in target.logins:
                user.set_password(PASSWORD)
                target.logins[row["role"]] = row["login"]
            db.session.add(user)
            db.session.flush()
            ids[row["login"]] = user.id
            if roles:
                assign_roles(user, ROLES[row["role"]])
        db.session.commit()
    if sign_in:
        target.login = target.logins[sign_in[0]]
        target.owner_id = ids[target.login]
    return ids


def _derived(name: str, first: str | None, last: str | None, company_name: str | None,
             phone: str, email: str, vat: str | None, city: str) -> tuple[dict[str, Any],
                                                                       str | None, str | None,
                                                                       list[str]]:
    """Columns and tokens exactly as `services.refresh_search` derives them."""
    from addons.contacts.folding import sort_keys
    from addons.contacts.services import (
        indexed_tokens,
        normalize_email,
        normalize_phone,
        search_tokens,
    )

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
    found = indexed_tokens(search_tokens(partner))  # type: ignore[arg-type]
    columns = {"search_text": " ".join(found), **sort_keys(name)}
    return columns, number, address, found


def load_partners(targets: list[Target], data: Path, users: dict[str, int]) -> dict[str, Any]:
    """Companies, then people, with phones, e-mails and search tokens, in chunks, into every
    target at once (the derived data is computed once, by the contacts services' own
    functions, so the rows are what the app would have written)."""
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
                name, first, last, company_name, row["phone"], row["email"], vat, row["city"])
            batch[0].append({
                "id": pid, "kind": kind, "name": name, "first_name": first, "last_name": last,
                "company_id": company_id, "company_name": company_name, "phone": number,
                "email": address, "city": row["city"], "country": COUNTRIES[lang],
                "lang": lang, "vat": vat, "status": STATUSES[csv_id % len(STATUSES)],
                "owner_id": owner, "active": True, "external_id": f"{kind}:{csv_id}",
                "birthday": date.fromisoformat(row["birthday"]) if row.get("birthday")
                else None, "created_at": moment(row["created_at"]),
                "updated_at": moment(row["created_at"]), "version": 1, **columns})
            if number:
                batch[1].append({"partner_id": pid, "number": number, "kind": "mobile",
                                 "sequence": 0})
            if address:
                batch[2].append({"partner_id": pid, "email": address,
                                 "email_key": address.lower(), "kind": "work", "sequence": 0})
            batch[3].extend({"partner_id": pid, "token": t} for t in found)
            counts["companies" if kind == "company" else "people"] += 1
            counts["tokens"] += len(found)
            if len(batch[0]) >= CHUNK:
                flush(batch)
                batch = [[], [], [], []]
        flush(batch)

    with targets[0].app.app_context():
        rows_of(read_csv(data / "companies.csv"), "company")
        offset = counts["companies"]
        rows_of(read_csv(data / "contacts.csv"), "person")
    for target in targets:
        analyze(target)
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


def load_data_set(workdir: Path, targets: list[Target], engines: list[str], contacts: int,
                  addons: list[str], prepare: Callable[[Target, Path], dict[str, int]] | None
                  = None) -> tuple[Path, dict[str, int], dict[str, Any]]:
    """Generate the data set, add a target per engine to `targets`, `prepare` each (default:
    build it and load the users; returns id by login) and load the contacts into all of them.
    Returns the data folder, the users and `load_partners`' counts."""
    data = workdir / "data"
    print(f"Generating {contacts} contacts ...", flush=True)
    generate(data, contacts)
    targets.extend(Target(e, workdir, addons) for e in engines)
    users: dict[str, int] = {}
    for target in targets:
        if prepare is None:
            target.build()
            users = load_users(target, data)
        else:
            users = prepare(target, data)
    print("Loading into " + ", ".join(engines) + " ...", flush=True)
    return data, users, load_partners(targets, data, users)


def print_result(name: str, value: Any, unit: str, baseline: Any, ratio: Any,
                 **extra: Any) -> None:
    """The last line of every benchmark: one JSON object with the core keys of
    bench/README.md first, then the benchmark's own."""
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline,
                      "ratio": ratio, **extra}))


# -- measuring in process ----------------------------------------------------------------------
def signed_in_client(app: Any, login: str) -> Any:
    """A test client signed in through the real login form, as a browser would be."""
    client = app.test_client()
    with app.app_context():
        html = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"login": login, "password": PASSWORD,
                                "csrf_token": CSRF_FIELD.search(html).group(1)})
    return client


def counted(app: Any, call: Callable[[], Any]) -> tuple[int, Any]:
    """How many SQL statements `call` sends to the app's database, and what it returned."""
    from sqlalchemy import event

    from core.api import db

    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return len(statements), result


def median_ms(call: Callable[[], Any], runs: int, warmup: int = 3) -> float:
    """Median milliseconds of `runs` calls after `warmup` unmeasured ones (caches, plans)."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


# -- serving -----------------------------------------------------------------------------------
def bench_env(target: Target, **extra: Any) -> dict[str, str]:
    """What the served factories read: gunicorn imports them in fresh processes, so the
    target's config (and the bare pages' parameters, `extra`) go through the environment."""
    return {"BENCH_BIRGA_CONFIG": json.dumps(target.config),
            **{key: str(value) for key, value in extra.items()}}


def birga_app() -> Any:
    """Gunicorn's factory for Birga (each script re-exports it for `NAME:birga_app()`)."""
    from core import create_app

    return create_app(json.loads(os.environ["BENCH_BIRGA_CONFIG"]))


def bare_engine() -> Any:
    """The bare pages' engine, on the same database with the same options as Birga's."""
    from sqlalchemy import create_engine

    config = json.loads(os.environ["BENCH_BIRGA_CONFIG"])
    return create_engine(config["SQLALCHEMY_DATABASE_URI"],
                         **config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))


def require_wrk() -> None:
    """Stop before loading anything when the load generator is missing."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def served(module: str, factory: str, env: Mapping[str, str],
           probe: str = "/") -> Iterator[tuple[subprocess.Popen, int]]:
    """`module:factory()` under gunicorn (2 workers, loopback only) on a free port, once
    `probe` answers; yields the master process and the port, and stops it on the way out."""
    port = _free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "--pythonpath",
         f"{BENCH_DIR},{PROJECT_ROOT}", "--log-level", "warning", f"{module}:{factory}()"],
        cwd=str(PROJECT_ROOT), env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=5)  # noqa: S310
                break
            except urllib.error.HTTPError:
                break  # it answers (a redirect to sign in is an answer)
            except OSError:
                if process.poll() is not None:
                    raise SystemExit(f"gunicorn ({factory}) exited with "
                                     f"{process.returncode}") from None
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn ({factory}) did not answer within 60 s") \
                        from None
                time.sleep(0.3)
        yield process, port
    finally:
        _stop(process)


def http_session(port: int, login: str, path: str) -> tuple[str, str]:
    """Sign in over HTTP as a browser would; the Cookie header value and the HTML of `path`
    (fetched signed in, which proves the sign-in worked)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    html = opener.open(f"http://127.0.0.1:{port}/login").read().decode()
    body = urllib.parse.urlencode({"login": login, "password": PASSWORD,
                                   "csrf_token": CSRF_FIELD.search(html).group(1)}).encode()
    opener.open(f"http://127.0.0.1:{port}/login", data=body)
    page = opener.open(f"http://127.0.0.1:{port}{path}")
    if "/login" in page.geturl():
        raise SystemExit("signing in for the benchmark failed")
    return "; ".join(f"{c.name}={c.value}" for c in jar), page.read().decode()


def workers_cpu_seconds(master: int) -> float | None:
    """CPU seconds (user + system) the gunicorn workers under `master` have used so far; None
    where /proc cannot tell (not Linux). Per request, a cost other load barely moves."""
    total, found = 0.0, False
    try:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == master:  # ppid
                total += int(fields[11]) + int(fields[12])  # utime, stime (ticks)
                found = True
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK") if found else None


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, seconds: int, connections: int, cookie: str | None = None, *,
            extra: list[str] | None = None, master: int | None = None) -> dict[str, Any]:
    """One `wrk` run (2 threads): requests/s, p99 and the count of non-2xx/3xx answers;
    `extra` adds wrk options (a script, headers); with `master`, also `cpu_s`, the CPU
    time its gunicorn workers spent meanwhile (None where unknown)."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-H", f"User-Agent: {USER_AGENT}"]
    if cookie:
        args += ["-H", f"Cookie: {cookie}"]
    before = workers_cpu_seconds(master) if master else None
    out = subprocess.run([*args, *(extra or []), url], check=True, capture_output=True,
                         text=True).stdout
    after = workers_cpu_seconds(master) if master else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    run: dict[str, Any] = {"rps": round(rps, 1),
                           "p99_ms": round(_ms(*p99.groups()), 2) if p99 else None,
                           "non_2xx": int(bad.group(1)) if bad else 0}
    if master:
        run["cpu_s"] = None if before is None or after is None else after - before
    return run
