"""Start-up benchmark: how much a Birga worker costs before it serves its first page.

Every gunicorn worker, every reload after an admin enables an addon and every test builds the
app, so start-up time and resident memory are what the modular design must keep in check. The
figure alone means little on a shared machine, so the same run measures a bare Flask app that
renders one Jinja template, and the ratio between the two is what to compare across commits.

Run `python bench/startup.py [--runs N]` from the project's venv. It builds a throw-away
instance (SQLite in a temporary folder, migrated like `birga init`, with every built-in addon
enabled), then starts a fresh interpreter per measurement, alternating Birga and the baseline,
and reports medians. The last line of output is one JSON object (see bench/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PHASES = ("import_ms", "build_ms", "request_ms", "total_ms", "rss_mib")
BASELINE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><main><h1>{{ title }}</h1>
<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>
</main></body></html>
"""


def rss_mib() -> float:
    """This process's resident set size (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS missing from /proc/self/status (Linux only)")


def instance_config(instance: Path) -> dict[str, Any]:
    """The benchmark instance's settings; everything else is Birga's production default."""
    return {
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'birga.sqlite'}",
    }


# -- children: one measurement each, in a fresh interpreter ------------------------------
def measure_birga(instance: Path) -> dict[str, Any]:
    """Import the kernel, build the app from the instance's database, GET /login."""
    start = time.perf_counter()
    sys.path.insert(0, str(PROJECT_ROOT))
    from core import create_app

    imported = time.perf_counter()
    app = create_app(instance_config(instance))
    built = time.perf_counter()
    response = app.test_client().get("/login")
    done = time.perf_counter()
    if response.status_code != 200:
        raise SystemExit(f"GET /login answered {response.status_code}, expected 200")
    return {
        "import_ms": (imported - start) * 1000, "build_ms": (built - imported) * 1000,
        "request_ms": (done - built) * 1000, "total_ms": (done - start) * 1000,
        "rss_mib": rss_mib(), "addons": [a.name for a in app.extensions["birga"].addons],
    }


def measure_baseline(templates: Path) -> dict[str, Any]:
    """The floor: import Flask, build an app with one route, render one Jinja template."""
    start = time.perf_counter()
    from flask import Flask, render_template

    imported = time.perf_counter()
    app = Flask("baseline", template_folder=str(templates))

    @app.route("/login")
    def login() -> str:
        return render_template("page.html", title="Sign in", items=["one", "two", "three"])

    built = time.perf_counter()
    response = app.test_client().get("/login")
    done = time.perf_counter()
    if response.status_code != 200:
        raise SystemExit(f"baseline GET /login answered {response.status_code}")
    return {
        "import_ms": (imported - start) * 1000, "build_ms": (built - imported) * 1000,
        "request_ms": (done - built) * 1000, "total_ms": (done - start) * 1000,
        "rss_mib": rss_mib(),
    }


# -- parent: prepare, repeat, report -----------------------------------------------------
def clean_env() -> dict[str, str]:
    """The caller's environment minus settings that would point Birga elsewhere."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("BIRGA_") and k != "DATABASE_URL"}


def init_instance(instance: Path) -> dict[str, Any]:
    """`birga init` without the admin: migrate core and the built-in addons, record them."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from core import create_app, migrate
    from core.extensions import db
    from core.state import read_enabled, write_enabled

    app = create_app(instance_config(instance))
    migrate.upgrade(app)
    with app.app_context():
        with db.engine.begin() as conn:
            if read_enabled(conn) is None:
                write_enabled(conn, {a.name: a.version for a in app.extensions["birga"].addons})
        db.engine.dispose()
    return {"addons": [a.name for a in app.extensions["birga"].addons]}


def run_child(kind: str, path: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "--child", kind, "--path", str(path)],
                            env=clean_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {kind} measurement failed:\n{result.stderr}{result.stdout}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def medians(samples: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in PHASES}


def report(runs: int, birga: dict[str, float], base: dict[str, float],
           addons: list[str]) -> dict[str, Any]:
    print(f"Birga start-up benchmark: median of {runs} fresh processes each, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"Instance: SQLite in a temporary folder; addons enabled ({len(addons)}): "
          f"{', '.join(addons) or 'none (kernel only)'}")
    print()
    header = f"{'':26}{'import':>10}{'build':>10}{'1st request':>13}{'total':>10}{'RSS':>12}"
    print(header)
    for label, row in (("Birga (create_app)", birga), ("bare Flask + 1 template", base)):
        print(f"{label:26}{row['import_ms']:>7.0f} ms{row['build_ms']:>7.0f} ms"
              f"{row['request_ms']:>10.0f} ms{row['total_ms']:>7.0f} ms"
              f"{row['rss_mib']:>8.1f} MiB")
    ratio = birga["total_ms"] / base["total_ms"]
    rss_ratio = birga["rss_mib"] / base["rss_mib"]
    print(f"{'Birga / baseline':26}{'':33}{ratio:>9.2f}x{rss_ratio:>11.2f}x")
    print("(each column is its own median, so the columns need not add up to the total)")
    return {
        "name": "startup", "value": round(birga["total_ms"], 1), "unit": "ms",
        "baseline": round(base["total_ms"], 1), "ratio": round(ratio, 2),
        "rss_mib": round(birga["rss_mib"], 1), "baseline_rss_mib": round(base["rss_mib"], 1),
        "rss_ratio": round(rss_ratio, 2), "runs": runs, "addons": len(addons),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per variant (default 7)")
    parser.add_argument("--child", choices=("init", "birga", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        measure = {"init": init_instance, "birga": measure_birga,
                   "baseline": measure_baseline}[args.child]
        print(json.dumps(measure(args.path)))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    with tempfile.TemporaryDirectory(prefix="birga-bench-") as tmp:
        instance, templates = Path(tmp) / "instance", Path(tmp) / "templates"
        instance.mkdir()
        templates.mkdir()
        (templates / "page.html").write_text(BASELINE_TEMPLATE, encoding="utf-8")
        run_child("init", instance)
        # One unmeasured run each fills the OS file cache and writes the bytecode caches.
        addons = run_child("birga", instance)["addons"]
        run_child("baseline", templates)
        birga, base = [], []
        for _ in range(args.runs):  # alternate, so drift on a shared machine hits both alike
            birga.append(run_child("birga", instance))
            base.append(run_child("baseline", templates))
    summary = report(args.runs, medians(birga), medians(base), addons)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
