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

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common as common

TARGET = 15_000
#: Every row imported inline, in this process, where it is timed; and, unlike `common.SERVED`,
#: no `BIRGA_PHONE_REGION`: the figure has always been taken without one.
IMPORT_CONFIG = {"BIRGA_IMPORT_INLINE_ROWS": 10**9}


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


def raw_insert(path: Path, target: common.Target) -> dict[str, Any]:
    """The baseline: the contacts rows into an empty partner table, one Core executemany."""
    from sqlalchemy import insert

    from addons.contacts.models import Partner
    from addons.contacts.totals import drop_triggers
    from core.api import db

    app = target.build()
    now = datetime.now(UTC)
    source = list(common.read_csv(path))
    with app.app_context():
        # The bare table, as the baseline has always measured it: without the triggers that
        # keep the list's totals (`contacts/totals.py`), which the real import pays.
        with db.engine.begin() as conn:
            drop_triggers(conn)
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
    from core.api import db

    target, baseline_db = (common.Target(engine, workdir, ["contacts"], label=f"{engine}-{kind}",
                                         config=IMPORT_CONFIG) for kind in ("import", "raw"))
    try:
        app = target.build()
        # The data set's users (the contacts' owners, no roles); the first one imports.
        owner = min(common.load_users(target, data, sign_in=(), roles=False).values())
        with app.app_context():
            companies = import_file(data / "companies.csv", "company", owner)
            contacts = import_file(data / "contacts.csv", "person", owner)
            db.session.remove()
            db.engine.dispose()
        baseline = raw_insert(data / "contacts.csv", baseline_db)
    finally:
        target.close()
        baseline_db.close()
    return {"companies": companies, "contacts": contacts, "baseline": baseline,
            "ratio": round(contacts["rows_per_s"] / baseline["rows_per_s"], 3)}


def main() -> None:
    args = common.arguments(__doc__).parse_args()
    results: dict[str, Any] = {}
    with common.scratch("birga-import-bench-") as (workdir, _targets):
        data = workdir / "data"
        print(f"generating {args.contacts} contacts ...", flush=True)
        common.generate(data, args.contacts)
        for name in common.select_engines(args.engines):
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
    common.print_result(
        "contacts_import", first["contacts"]["rows_per_s"] if first else None, "rows/s",
        first["baseline"]["rows_per_s"] if first else None, first["ratio"] if first else None,
        engine=next(iter(results), None), target=TARGET, contacts=args.contacts,
        engines={name: {"value": r["contacts"]["rows_per_s"],
                        "baseline": r["baseline"]["rows_per_s"], "ratio": r["ratio"],
                        "companies_rows_per_s": r["companies"]["rows_per_s"],
                        "phases": r["contacts"]["result"].get("seconds"),
                        "cpu_seconds": r["contacts"]["cpu_seconds"],
                        "meets_target": r["contacts"]["rows_per_s"] >= TARGET}
                 for name, r in results.items()})


if __name__ == "__main__":
    main()
