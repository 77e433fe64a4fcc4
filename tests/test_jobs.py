"""Background jobs run for real through Huey (SQLite and Redis storage), inside an app context,
by a consumer in this process and by a `birga worker` process that builds its own app."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import func, select

from core import PROJECT_ROOT
from core.api import crontab, once, periodic_task, task
from core.extensions import db
from core.jobs import JobRun, get_jobs, running_consumer
from core.models import User
from core.state import bump_sequence

REDIS_URL = os.environ.get("BIRGA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@task()
def create_user(login: str) -> str:
    """Writes through the app's session and reads the app's config: needs its context."""
    db.session.add(User(login=login, name=current_app.config["JOB_MARK"]))
    db.session.commit()
    return login


@periodic_task(crontab(minute="*/5"))
def every_five_minutes() -> None:
    db.session.add(User(login=f"tick-{uuid.uuid4().hex[:8]}"))
    db.session.commit()


@task()
def append_once(key: str, path: str) -> bool:
    """The side effect is a line in a file (like a sent e-mail: no transaction to undo)."""
    with once(key) as first:
        if first:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(key + "\n")
    return first


def redis_or_skip() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({exc}); the Redis storage test "
                    "needs a running Redis server.")
    return REDIS_URL


@pytest.fixture(params=["sqlite", "redis"])
def queue_app(request, make_app):
    """An app whose queue uses the SQLite file in its instance folder, or Redis."""
    config = {"JOB_MARK": "made-by-a-job"}
    if request.param == "redis":
        config.update(BIRGA_REDIS_URL=redis_or_skip(),
                      BIRGA_JOBS_QUEUE=f"birga-test-{uuid.uuid4().hex}")
    app = make_app(**config)
    with app.app_context():
        yield app
    get_jobs(app).huey.flush()


def users(login_prefix: str) -> int:
    return db.session.scalar(select(func.count()).select_from(User)
                             .where(User.login.like(login_prefix + "%")))


def test_a_queued_job_waits_for_a_worker_then_runs_inside_the_app(queue_app):
    jobs = get_jobs(queue_app)
    result = create_user.delay("queued-1")
    assert jobs.huey.pending_count() == 1
    assert users("queued-") == 0  # queued, not run on the spot
    if jobs.storage_label == "sqlite":
        assert (Path(queue_app.instance_path) / "jobs.sqlite").is_file()

    with running_consumer(queue_app, workers=2):
        assert result.get(blocking=True, timeout=30) == "queued-1"

    db.session.rollback()  # end the read snapshot taken before the job ran
    user = db.session.scalar(select(User).where(User.login == "queued-1"))
    assert user is not None and user.name == "made-by-a-job"


def test_a_scheduled_job_runs_once_its_time_comes(queue_app):
    jobs = get_jobs(queue_app)
    result = create_user.schedule(("scheduled-1",), delay=1)
    [queued] = jobs.huey.pending()
    assert queued.eta is not None  # the consumer holds it back until then
    with running_consumer(queue_app):
        assert result.get(blocking=True, timeout=30) == "scheduled-1"
    assert users("scheduled-") == 1


def test_a_periodic_job_is_registered_and_runs_when_its_rule_matches(make_app):
    app = make_app()
    jobs = get_jobs(app)
    name = f"{__name__}.every_five_minutes"
    assert name in jobs.registered()
    assert name in jobs.periodic_due(datetime(2026, 1, 5, 10, 5))
    assert name not in jobs.periodic_due(datetime(2026, 1, 5, 10, 3))

    huey = jobs.huey
    for due in huey.read_periodic(datetime(2026, 1, 5, 10, 5)):
        huey.enqueue(due)
    with app.app_context():
        assert users("tick-") == 0
    while (queued := huey.dequeue()) is not None:
        huey.execute(queued)
    with app.app_context():
        assert users("tick-") == 1


def test_an_idempotent_job_run_twice_does_its_side_effect_once(make_app, tmp_path):
    app = make_app()
    effects = tmp_path / "effects.txt"
    with app.app_context():
        first = append_once.delay("digest:user-7:2026-01-05", str(effects))
        again = append_once.delay("digest:user-7:2026-01-05", str(effects))
        other = append_once.delay("digest:user-8:2026-01-05", str(effects))
    with running_consumer(app, workers=2):
        outcomes = sorted([first.get(blocking=True, timeout=30),
                           again.get(blocking=True, timeout=30)])
        assert other.get(blocking=True, timeout=30) is True
    assert outcomes == [False, True]
    assert sorted(effects.read_text().splitlines()) == ["digest:user-7:2026-01-05",
                                                        "digest:user-8:2026-01-05"]
    with app.app_context():
        rows = db.session.execute(select(JobRun.job, JobRun.key).order_by(JobRun.key)).all()
    job = f"{__name__}.append_once"
    assert rows == [(job, "digest:user-7:2026-01-05"), (job, "digest:user-8:2026-01-05")]


def test_a_failure_inside_once_releases_the_claim_so_a_retry_does_the_work(app):
    done = []

    def attempt(fail: bool) -> None:
        with once("greeting:42", job="greetings") as first:
            if first:
                if fail:
                    raise ConnectionError("SMTP down")
                done.append("sent")

    with pytest.raises(ConnectionError):
        attempt(fail=True)
    attempt(fail=False)
    attempt(fail=False)
    assert done == ["sent"]


def test_once_outside_a_job_must_be_told_the_job_name(app):
    with pytest.raises(ValueError, match="job="), once("k"):
        pass


def test_immediate_mode_runs_a_job_when_it_is_queued(make_app):
    app = make_app(BIRGA_JOBS_IMMEDIATE=True, JOB_MARK="immediate")
    with app.app_context():
        assert create_user.delay("now-1").get() == "now-1"
        assert users("now-") == 1


def _write_addon(root: Path, name: str, body: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__manifest__.py").write_text(repr({
        "name": name.title(), "version": "1.0.0", "license": "LGPL-3", "summary": "test",
        "author": "Birga tests", "depends": [], "installable": True}), encoding="utf-8")
    (folder / "__init__.py").write_text(body, encoding="utf-8")


JOB_ADDON = '''
import os

from core.api import User, db, task


@task()
def stamp(login):
    db.session.add(User(login=login, name=str(os.getpid())))
    db.session.commit()
'''


def test_jobs_of_an_addon_not_enabled_in_an_app_are_not_bound_to_its_queue(make_app, tmp_path):
    root = tmp_path / "addons"
    name = f"jobs_{uuid.uuid4().hex[:8]}"
    _write_addon(root, name, JOB_ADDON)
    paths = [str(PROJECT_ROOT / "addons"), str(root)]
    with_addon = make_app([name], BIRGA_ADDONS_PATHS=paths)
    without = make_app([], BIRGA_ADDONS_PATHS=paths)  # same process, addon already imported
    stamp = sys.modules[f"addons.{name}"].stamp

    assert stamp.name in get_jobs(with_addon).registered()
    assert stamp.name not in get_jobs(without).registered()
    with without.app_context(), pytest.raises(LookupError, match="not enabled"):
        stamp.delay("nope")


def test_birga_worker_builds_its_own_app_and_runs_queued_jobs(make_app, tmp_path):
    root = tmp_path / "addons"
    name = f"jobs_{uuid.uuid4().hex[:8]}"
    _write_addon(root, name, JOB_ADDON)
    paths = [str(PROJECT_ROOT / "addons"), str(root)]
    app = make_app([name], BIRGA_ADDONS_PATHS=paths)
    stamp = sys.modules[f"addons.{name}"].stamp
    with app.app_context():
        stamp.delay("from-worker")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIRGA_", "DATABASE_URL"))}
    env.update(BIRGA_INSTANCE_PATH=app.instance_path,
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               BIRGA_ADDONS_PATHS=json.dumps(paths),
               BIRGA_SQLALCHEMY_ENGINE_OPTIONS=json.dumps(
                   app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})))
    worker = subprocess.Popen([str(Path(sys.executable).parent / "birga"), "worker", "-w", "2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        stamped = None
        deadline = time.monotonic() + 90
        while stamped is None and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.3)
            with app.app_context():
                stamped = db.session.scalar(select(User.name).where(User.login == "from-worker"))
    finally:
        worker.send_signal(signal.SIGTERM)  # graceful: finish running jobs, then exit
        output = worker.communicate(timeout=60)[0].decode(errors="replace")
    assert stamped is not None, output
    assert stamped != str(os.getpid())  # run by the worker process, not by this one
    assert worker.returncode == 0, output
    assert stamp.name in output  # the worker lists the jobs it knows


def test_the_worker_notices_a_change_of_enabled_addons(make_app):
    app = make_app()
    consumer = get_jobs(app).consumer(periodic=False)
    assert consumer.addons_changed() is False
    with app.app_context(), db.engine.begin() as conn:
        bump_sequence(conn)
    assert consumer.addons_changed() is True


def test_old_idempotency_claims_are_pruned_by_a_daily_job(make_app):
    from datetime import timedelta

    from core.jobs import prune_job_runs
    from core.models import utcnow

    app = make_app(BIRGA_JOBS_KEEP_DAYS=30)
    assert "core.jobs.prune_job_runs" in get_jobs(app).periodic_due(datetime(2026, 1, 5, 3, 17))
    with app.app_context():
        db.session.add_all([JobRun(job="digest", key="old", created_at=utcnow() - timedelta(31)),
                            JobRun(job="digest", key="recent",
                                   created_at=utcnow() - timedelta(29))])
        db.session.commit()
        assert prune_job_runs() == 1
        assert db.session.scalars(select(JobRun.key)).all() == ["recent"]
