"""Contacts import benchmark: rows/s through the real import path beside a raw Core insert.

Issue 4 asks that importing 100k people through the real import path (parsing, validation,
phone normalisation, duplicate matching, search columns) runs at least 15,000 rows/s on SQLite
and on PostgreSQL, printed beside a raw SQLAlchemy Core `executemany` of the same rows measured
in the same run.

    .venv/bin/python bench/contacts_import.py [--contacts 100000] [--engines sqlite,pg]

Per engine (SQLite in a temporary folder; PostgreSQL in a private schema of
`BIRGA_BENCH_PG_URL`, or of 127.0.0.1:5432/test when it answers):
1. generates the data set with `/work/shared/bench/gen_dataset.py` (once, into a temp dir);
2. builds an app with the contacts addon on an empty schema and adds the 25 users of
   `users.csv` (the contacts' owners);
3. imports `companies.csv`, then `contacts.csv`, each through the same door as the page:
   `create_batch()` (format and encoding detection, the guessed mapping, untouched) and
   `runner.execute()` (parsing, checks, phone normalisation, owner and company resolution,
   duplicate matching, search tokens and ICU sort keys, bulk writes, one transaction);
4. inserts the same contacts rows (as they come from the CSV, plus the columns the table
   requires) into an empty partner table with one Core `insert()` `executemany`: the
   baseline, which does none of the work above.
The contacts file's rows/s is the figure (companies are printed too). The last line is one
JSON object; `ratio` is import / raw insert throughput (higher is better, 1.0 would mean the
import costs no more than a bare insert of the same rows).

Phases (seconds, wall clock): `upload` (create_batch: read and store the file), `read` (parse
and check every row), `match`, `write` (up to, not including, the final commit), `other`
(starting the run, the final commit); within `write`: `insert` (the bulk statements, with
`index_build`, the indexes SQLite builds after a big import), and `rows` (computing the rows,
on a helper thread alongside the inserts). `cpu_seconds` is this process's CPU time (both
threads, not PostgreSQL's): on a shared machine wall time well above it means waiting.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = Path("/work/shared/bench/gen_dataset.py")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET = 15_000

sys.path.insert(0, str(PROJECT_ROOT))


def pg_url() -> str | None:
    """The PostgreSQL URL to use, or None when no server answers."""
    import sqlalchemy as sa

    url = os.environ.get("BIRGA_BENCH_PG_URL") or PG_URL
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return None
    return url


class Database:
    """An empty database for one app: a SQLite file or a private PostgreSQL schema."""

    def __init__(self, engine: str, workdir: Path, label: str) -> None:
        import sqlalchemy as sa

        self.engine = engine
        self.schema = None
        if engine == "sqlite":
            self.url = f"sqlite:///{workdir / (label + '.sqlite')}"
            self.options: dict[str, Any] = {}
        else:
            base = pg_url()
            assert base  # noqa: S101 - checked by the caller
            self.schema = f"bench_import_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
            self.url = base
            self.options = {"connect_args": {"options": f"-csearch_path={self.schema}"}}
        self.instance = workdir / f"instance-{label}"
        self.instance.mkdir(exist_ok=True)

    def app(self) -> Any:
        from core import create_app
        from core.testing import create_schema

        app = create_app({
            "SECRET_KEY": "bench", "INSTANCE_PATH": str(self.instance),
            "SQLALCHEMY_DATABASE_URI": self.url, "SQLALCHEMY_ENGINE_OPTIONS": self.options,
            "BIRGA_ADDONS": ["contacts"], "BIRGA_IMPORT_INLINE_ROWS": 10**9,
        }, addons=["contacts"])
        create_schema(app)
        return app

    def drop(self) -> None:
        if self.schema:
            import sqlalchemy as sa

            admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            admin.dispose()


def import_file(path: Path, kind: str, user_id: int) -> dict[str, Any]:
    from addons.contacts.importing import runner
    from addons.contacts.importing.models import ImportBatch
    from addons.contacts.importing.uploads import create_batch
    from core.api import db

    started, cpu = time.perf_counter(), time.process_time()
    batch = create_batch(path.read_bytes(), path.name, user_id=user_id, kind=kind)
    db.session.commit()
    uploaded = time.perf_counter() - started
    runner.execute(batch.id)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    if batch.state != "done":
        raise SystemExit(f"{path.name}: import {batch.state}: {batch.failure}")
    result = {k: v for k, v in batch.result.items() if k != "preview"}
    phases = result.get("seconds") or {}
    # What the run's own clock does not cover: the upload (reading the file, storing it),
    # starting the run, and the final commit.
    phases["upload"] = round(uploaded, 3)
    phases["other"] = round(elapsed - uploaded - sum(
        phases.get(k, 0) for k in ("read", "match", "write")), 3)
    return {"rows": batch.total_rows, "seconds": round(elapsed, 3),
            "rows_per_s": round(batch.total_rows / elapsed), "result": result,
            # This process's CPU (both threads; not PostgreSQL's): beside the wall-clock
            # seconds it shows how much of a run went to waiting for a shared machine.
            "cpu_seconds": round(cpu, 3)}


def raw_insert(path: Path, db_: Database) -> dict[str, Any]:
    """The baseline: the contacts rows into an empty partner table, one Core executemany."""
    from sqlalchemy import insert

    from addons.contacts.models import Partner
    from core.api import db

    app = db_.app()
    now = datetime.now(UTC)
    with open(path, encoding="utf-8", newline="") as f:
        source = list(csv.DictReader(f))
    with app.app_context():
        started = time.perf_counter()
        rows = [{
            "kind": "person", "name": f"{r['first_name']} {r['last_name']}",
            "first_name": r["first_name"], "last_name": r["last_name"], "phone": r["phone"],
            "email": r["email"], "city": r["city"], "lang": r["language"],
            "external_id": r["id"], "birthday": datetime.fromisoformat(r["birthday"]).date(),
            "status": "lead", "active": True, "search_text": "", "version": 1,
            "created_at": datetime.fromisoformat(r["created_at"]).replace(tzinfo=UTC),
            "updated_at": now,
        } for r in source]
        with db.engine.begin() as conn:
            conn.execute(insert(Partner.__table__), rows)
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return {"rows": len(rows), "seconds": round(elapsed, 3),
            "rows_per_s": round(len(rows) / elapsed)}


def run_engine(engine: str, data: Path, workdir: Path) -> dict[str, Any]:
    from core.api import User, db

    target = Database(engine, workdir, f"{engine}-import")
    baseline_db = Database(engine, workdir, f"{engine}-raw")
    try:
        app = target.app()
        with app.app_context():
            with open(data / "users.csv", encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f):
                    db.session.add(User(login=row["login"], name=row["name"]))
            db.session.commit()
            owner = db.session.scalar(db.select(User).order_by(User.id))
            companies = import_file(data / "companies.csv", "company", owner.id)
            contacts = import_file(data / "contacts.csv", "person", owner.id)
            db.session.remove()
            db.engine.dispose()
        baseline = raw_insert(data / "contacts.csv", baseline_db)
    finally:
        target.drop()
        baseline_db.drop()
    return {"companies": companies, "contacts": contacts, "baseline": baseline,
            "ratio": round(contacts["rows_per_s"] / baseline["rows_per_s"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,pg")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="birga-import-bench-") as tmp:
        workdir = Path(tmp)
        data = workdir / "data"
        print(f"generating {args.contacts} contacts ...", flush=True)
        subprocess.run([sys.executable, str(GENERATOR), "--out", str(data), "--contacts",
                        str(args.contacts)], check=True)
        for engine in engines:
            name = "postgresql" if engine in ("pg", "postgresql") else "sqlite"
            if name == "postgresql" and pg_url() is None:
                print("postgresql: not reachable, skipped")
                continue
            print(f"{name}: importing ...", flush=True)
            results[name] = found = run_engine(name, data, workdir)
            c, b = found["contacts"], found["baseline"]
            print(f"{name}: contacts {c['rows']} rows in {c['seconds']} s "
                  f"(CPU {c['cpu_seconds']} s) = "
                  f"{c['rows_per_s']} rows/s (phases {c['result'].get('seconds')}); "
                  f"companies {found['companies']['rows_per_s']} rows/s; "
                  f"raw Core executemany {b['rows_per_s']} rows/s; ratio {found['ratio']}",
                  flush=True)
    first = next(iter(results.values()), None)
    line = {
        "name": "contacts_import", "unit": "rows/s",
        "value": first["contacts"]["rows_per_s"] if first else None,
        "baseline": first["baseline"]["rows_per_s"] if first else None,
        "ratio": first["ratio"] if first else None,
        "engine": next(iter(results), None), "target": TARGET, "contacts": args.contacts,
        "engines": {name: {"value": r["contacts"]["rows_per_s"],
                           "baseline": r["baseline"]["rows_per_s"], "ratio": r["ratio"],
                           "companies_rows_per_s": r["companies"]["rows_per_s"],
                           "phases": r["contacts"]["result"].get("seconds"),
                           "cpu_seconds": r["contacts"]["cpu_seconds"],
                           "meets_target": r["contacts"]["rows_per_s"] >= TARGET}
                    for name, r in results.items()},
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
