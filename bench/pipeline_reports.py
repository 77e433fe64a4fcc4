"""Sales reports benchmark: the forecast and funnel pages over 50k deals against a bare
`SELECT stage_id, COUNT(*) ... GROUP BY stage_id` over the same table.

Issue 5 asks that the forecast and funnel reports over 50k deals answer in under 300 ms (p50).
The ratio to the baseline is the figure to compare across machines; absolute times depend on
the machine and on whoever else uses it.

    .venv/bin/python bench/pipeline_reports.py [--contacts 100000] [--runs 15]
                                               [--engines sqlite,postgresql]

What it does, per engine (SQLite in a temporary folder; PostgreSQL at 127.0.0.1:5432/test in a
private schema when it answers):
1. generates the data set with `/work/shared/bench/gen_dataset.py --contacts N` (once; N/2
   deals) and builds the schema from the models;
2. loads the users (with their roles; the sales managers also get `pipeline.reports`, and one
   team holds every salesperson), the default pipeline, and the deals with Core `executemany`
   inserts: stage, amount, currency, expected close, owner; one deal in three keeps the data
   set's own probability (the others follow their stage); each deal's stage history
   (`StageChange`) walks from New to where it stands, lost deals from a stage they reached.
   Contacts are not loaded: the reports never read them;
3. times, in process, signed in as a sales manager (team scope: the record rules apply),
   the whole page (`GET /pipeline/reports/forecast` and `/funnel`, Flask's test client) and the
   report query alone, after warm-up runs; and the baseline query on a plain connection;
   it also counts the SQL statements of each page.
The last line is one JSON object (see bench/README.md): `value` is the slower page's p50 in ms,
`baseline` the COUNT(*) query's p50, `ratio` = value / baseline (lower is better).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = Path("/work/shared/bench/gen_dataset.py")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench-password-123"  # noqa: S105 - a throw-away benchmark user
ROLES = {"admin": "administrator", "manager": "sales_manager", "support": "support_agent",
         "sales": "salesperson"}
STAGES = {"new": "New", "qualified": "Qualified", "proposal": "Proposal",
          "negotiation": "Negotiation", "won": "Won", "lost": "Lost"}
REASONS = {"too expensive": "Too expensive", "chose competitor": "Chose a competitor",
           "no budget": "No budget", "no answer": "No answer", "timing": "Bad timing"}
OPEN_PATH = ["new", "qualified", "proposal", "negotiation"]
CHUNK = 5000
TARGET_MS = 300


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
    """One database the benchmark loads and measures."""

    def __init__(self, engine: str, workdir: Path) -> None:
        import sqlalchemy as sa

        self.engine = engine
        self.instance = workdir / f"instance-{engine}"
        self.instance.mkdir(parents=True, exist_ok=True)
        self.schema: str | None = None
        options: dict[str, Any] = {}
        if engine == "sqlite":
            url = f"sqlite:///{self.instance / 'birga.sqlite'}"
        else:
            self.schema = "bench_" + uuid.uuid4().hex[:10]
            admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
            url, options = PG_URL, {"connect_args": {"options": f"-csearch_path={self.schema}"}}
        self.config: dict[str, Any] = {
            "INSTANCE_PATH": str(self.instance), "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": options, "BIRGA_ADDONS": ["pipeline"],
            "SESSION_COOKIE_SECURE": False, "REMEMBER_COOKIE_SECURE": False,
            "SECRET_KEY": "bench-secret", "BIRGA_PHONE_REGION": "LV",
        }
        self.app: Any = None
        self.login: str | None = None

    def drop(self) -> None:
        if self.schema:
            import sqlalchemy as sa

            admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            admin.dispose()


def build(target: Target) -> None:
    sys.path.insert(0, str(PROJECT_ROOT))
    from core import create_app
    from core.testing import create_schema

    target.app = create_app(target.config, addons=["pipeline"])
    create_schema(target.app)


def load(target: Target, data: Path) -> dict[str, Any]:
    """Users, roles, one team, the default pipeline, deals and their stage history."""
    from sqlalchemy import insert, select

    from addons.pipeline.models import Deal, LostReason, StageChange
    from addons.pipeline.state import seed_defaults
    from core.api import Role, Team, User, assign_roles, db
    from core.security import TeamMember

    started = time.perf_counter()
    with target.app.app_context():
        users: dict[str, int] = {}
        managers: list[int] = []
        for row in read_csv(data / "users.csv"):
            user = User(login=row["login"], name=row["name"])
            db.session.add(user)
            db.session.flush()
            users[row["login"]] = user.id
            assign_roles(user, ROLES[row["role"]])
            if row["role"] == "manager":
                managers.append(user.id)
                if target.login is None:
                    user.set_password(PASSWORD)
                    target.login = row["login"]
        role = db.session.scalar(select(Role).where(Role.code == "sales_manager"))
        role.permissions = role.permissions | {"pipeline.reports"}
        team = Team(name="Sales", manager_id=managers[0])
        db.session.add(team)
        db.session.flush()
        for row in read_csv(data / "users.csv"):
            if row["role"] in ("sales", "manager") and users[row["login"]] != managers[0]:
                db.session.add(TeamMember(team_id=team.id, user_id=users[row["login"]]))
        pipeline = seed_defaults()
        pipeline.team_id = team.id
        db.session.commit()
        stages = {s.name: s for s in pipeline.stages}
        stage_ids = {key: stages[name].id for key, name in STAGES.items()}
        reasons = {r.name: r.id for r in db.session.scalars(select(LostReason))}
        deals: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        counts = {"deals": 0, "stage_changes": 0}

        def flush() -> None:
            with db.engine.begin() as conn:
                if deals:
                    conn.execute(insert(Deal.__table__), deals)
                if changes:
                    conn.execute(insert(StageChange.__table__), changes)
            deals.clear()
            changes.clear()

        for row in read_csv(data / "deals.csv"):
            deal_id, stage = int(row["id"]), row["stage"]
            created = _moment(row["created_at"])
            closed = datetime.combine(date.fromisoformat(row["expected_close"]),
                                      datetime.min.time(), UTC)
            if stage in ("won", "lost"):
                path = OPEN_PATH[:1 + deal_id % 4] + [stage]
            else:
                path = OPEN_PATH[:OPEN_PATH.index(stage) + 1]
            deals.append({
                "id": deal_id, "title": row["title"], "pipeline_id": pipeline.id,
                "stage_id": stage_ids[stage], "amount": Decimal(row["amount"]),
                "currency": row["currency"],
                "probability": int(row["probability"]) if deal_id % 3 == 0 else None,
                "expected_close": date.fromisoformat(row["expected_close"]),
                "owner_id": users[row["owner"]], "team_id": team.id, "source": "manual",
                "lost_reason_id": reasons[REASONS[row["lost_reason"]]]
                if stage == "lost" else None,
                "won_at": closed if stage == "won" else None,
                "lost_at": closed if stage == "lost" else None,
                "stage_changed_at": created, "created_at": created, "updated_at": created,
                "stale": False, "sequence": 0, "active": True, "version": 1})
            previous = None
            for step in path:
                changes.append({"deal_id": deal_id, "from_stage_id": previous,
                                "to_stage_id": stage_ids[step], "via": "import",
                                "at": created, "user_id": users[row["owner"]]})
                previous = stage_ids[step]
            counts["deals"] += 1
            counts["stage_changes"] += len(path)
            if len(deals) >= CHUNK:
                flush()
        flush()
        from sqlalchemy import text

        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


def _p50(func: Callable[[], Any], runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        func()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def measure(target: Target, runs: int) -> dict[str, Any]:
    from flask_login import login_user
    from sqlalchemy import event, select, text

    from addons.pipeline.reports import ReportFilter, forecast, funnel
    from core.api import User, db

    app = target.app
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    client.post("/login", data={"login": target.login, "password": PASSWORD,
                                "csrf_token": token})
    result: dict[str, Any] = {}
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    for name in ("forecast", "funnel"):
        path = f"/pipeline/reports/{name}"

        def page(path: str = path) -> None:
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"GET {path} answered {response.status_code}")

        result[f"{name}_ms"] = _p50(page, runs)
        statements.clear()
        event.listen(engine, "before_cursor_execute", seen)
        page()
        event.remove(engine, "before_cursor_execute", seen)
        result[f"{name}_queries"] = len(statements)
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.login == target.login))
        login_user(user)
        result["forecast_query_ms"] = _p50(lambda: forecast(ReportFilter(), user), runs)
        result["funnel_query_ms"] = _p50(lambda: funnel(ReportFilter(), user), runs)
    baseline_sql = text("SELECT stage_id, COUNT(*) FROM pipeline_deal GROUP BY stage_id")

    def baseline() -> None:
        with engine.connect() as conn:
            conn.execute(baseline_sql).all()

    result["baseline_ms"] = _p50(baseline, runs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--engines", default="sqlite,postgresql",
                        help="comma-separated; PostgreSQL is skipped when it does not answer")
    parser.add_argument("--data", help="a folder with the generated CSV files (kept)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="birga-bench-reports-"))
    data = Path(args.data) if args.data else workdir / "data"
    if not (data / "deals.csv").exists():
        subprocess.run([sys.executable, str(GENERATOR), "--out", str(data), "--contacts",
                        str(args.contacts)], check=True)
    engines = [e for e in args.engines.split(",") if e]
    if "postgresql" in engines and not pg_reachable():
        print("PostgreSQL does not answer at 127.0.0.1:5432: skipped.")
        engines.remove("postgresql")
    results: dict[str, dict[str, Any]] = {}
    for engine in engines:
        target = Target(engine, workdir)
        try:
            build(target)
            counts = load(target, data)
            print(f"[{engine}] loaded {counts['deals']} deals, {counts['stage_changes']} "
                  f"stage changes in {counts['seconds']} s")
            results[engine] = {**measure(target, args.runs), "deals": counts["deals"]}
        finally:
            if target.app is not None:
                with target.app.app_context():
                    from core.api import db

                    db.session.remove()
                    db.engine.dispose()
            target.drop()
    print(f"{'engine':<11}{'forecast':>10}{'funnel':>10}{'fc query':>10}{'fn query':>10}"
          f"{'baseline':>10}  (p50 ms; queries per page: forecast/funnel)")
    for engine, r in results.items():
        print(f"{engine:<11}{r['forecast_ms']:>10}{r['funnel_ms']:>10}"
              f"{r['forecast_query_ms']:>10}{r['funnel_query_ms']:>10}{r['baseline_ms']:>10}"
              f"  {r['forecast_queries']}/{r['funnel_queries']}")
    main_engine = "sqlite" if "sqlite" in results else next(iter(results))
    first = results[main_engine]
    value = max(first["forecast_ms"], first["funnel_ms"])
    print(json.dumps({
        "name": "pipeline_reports", "value": value, "unit": "ms",
        "baseline": first["baseline_ms"],
        "ratio": round(value / first["baseline_ms"], 2) if first["baseline_ms"] else None,
        "engine": main_engine, "target_ms": TARGET_MS, "under_target": value < TARGET_MS,
        "runs": args.runs, "contacts": args.contacts,
        "engines": results,
    }))


if __name__ == "__main__":
    main()
