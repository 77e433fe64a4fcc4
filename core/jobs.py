"""Background and periodic jobs on a real queue (Huey), and the `once()` idempotency guard.

Design, and why:

- **Declaring a job is app-independent.** `@task()` and `@periodic_task(crontab(...))` (from
  `core.api`) only record a `Job` in a process-wide catalogue when the addon's module is
  imported; they touch no queue. Several apps can live in one process (tests, the reloader that
  rebuilds the app when the addon set changes), so nothing about a job may belong to one app.
- **Each app owns its queue.** `init_app(app)` puts a `Jobs` in `app.extensions["birga.jobs"]`;
  its Huey instance is created on first use from the app's configuration: Redis when
  `BIRGA_REDIS_URL` is set (firms with several servers), otherwise SQLite in the instance folder
  (`instance/jobs.sqlite`). The same job code runs on both. Jobs are bound to an app's Huey
  lazily, and a job whose module belongs to an addon that is available but not enabled in that
  app is never bound, so it can neither be queued nor run there.
- **A job always runs inside an app context** of the app that owns the queue: in `birga worker`
  that is an app the worker built with the kernel's factory, exactly as a web server does.
  Arguments travel pickled through the queue: pass ids and plain data, never ORM objects.
- **Calling a job runs it inline; `.delay()` queues it.** `send_digest(user_id)` is a plain call
  (easy to test and compose); `send_digest.delay(user_id)` and `.schedule(..., delay=60)` go
  through the current app's queue and return Huey's `Result`.
- **Idempotency lives in the database** (`core_job_run`, unique on job name and key), not in the
  queue: with `with once(key) as first:` the body's side effect happens once per key even when a
  job is enqueued twice, retried, or run by two workers, and even across storages. The claim is
  committed before the side effect (at-most-once: a crash right after the claim loses that one
  run rather than sending twice); an exception in the body releases the claim so a retry can
  try again.
- **Periodic jobs** are enqueued by every running consumer's scheduler; with several workers,
  run one with periodic jobs (`birga worker`) and the rest with `--no-periodic`, and keep the
  job itself idempotent with `once()` anyway.
- `birga worker` rebuilds nothing in place: when the enabled addon set changes (the registry
  sequence moves) it finishes running tasks and re-executes itself, so new addons' jobs appear
  without a manual restart.
"""
from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_app_context
from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.api import Result, TaskWrapper
from huey.consumer import Consumer, ConsumerStopped
from sqlalchemy import DateTime, Integer, String, UniqueConstraint, delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .models import utcnow

__all__ = [
    "Job", "JobRun", "Jobs", "crontab", "current_job", "get_jobs", "init_app", "once",
    "periodic_task", "run_worker", "running_consumer", "task",
]

log = logging.getLogger("birga.jobs")
EXTENSION = "birga.jobs"
#: Core modules that declare jobs; imported before binding so a worker knows them.
CORE_JOB_MODULES = ["core.mail", "core.dbstats"]

_current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "birga_current_job", default=None)


class JobRun(db.Model):
    """One (job, key) whose side effect has happened: the idempotency ledger of `once()`."""

    __tablename__ = "core_job_run"
    __table_args__ = (UniqueConstraint("job", "key", name="uq_core_job_run_job_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- declaring jobs -----------------------------------------------------------------------
@dataclass
class Job:
    """A job declared with `@task` or `@periodic_task`; independent of any app."""

    func: Callable[..., Any]
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    schedule_rule: Callable[[datetime], bool] | None = None

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.func)  # type: ignore[arg-type]

    @property
    def periodic(self) -> bool:
        return self.schedule_rule is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run inline, in the caller's context (no queue)."""
        return self.func(*args, **kwargs)

    def bound(self, app: Flask | None = None) -> TaskWrapper:
        """This job's Huey task on `app`'s queue (the current app by default)."""
        return get_jobs(app).task_for(self)

    def delay(self, *args: Any, **kwargs: Any) -> Result:
        """Queue a run on the current app's queue; a worker executes it."""
        return self.bound()(*args, **kwargs)

    def schedule(self, args: tuple = (), kwargs: dict | None = None, *,
                 delay: float | None = None, eta: datetime | None = None) -> Result:
        """Queue a run for later: `delay` seconds from now or at `eta` (aware datetime)."""
        return self.bound().schedule(args=tuple(args), kwargs=kwargs or {}, delay=delay,
                                     eta=eta)


_CATALOGUE: dict[str, Job] = {}
_catalogue_lock = threading.Lock()


def _declare(func: Callable[..., Any], name: str | None, options: dict[str, Any],
             rule: Callable[[datetime], bool] | None) -> Job:
    job_name = name or f"{func.__module__}.{func.__qualname__}"
    with _catalogue_lock:
        known = _CATALOGUE.get(job_name)
        same_function = known is not None and (
            known.func.__module__, known.func.__qualname__) == (
            func.__module__, func.__qualname__)
        if known is not None and not same_function:
            raise ValueError(
                f"Two jobs are named '{job_name}': {known.func.__module__}."
                f"{known.func.__qualname__} and {func.__module__}.{func.__qualname__}. "
                f"Give one of them another name=.")
        job = Job(func, job_name, options, rule)
        _CATALOGUE[job_name] = job  # a re-import replaces the older function object
        return job


def task(*, name: str | None = None, retries: int = 0, retry_delay: int = 0,
         priority: int | None = None, expires: int | None = None,
         timeout: int | None = None) -> Callable[[Callable[..., Any]], Job]:
    """Declare a background job. `name` defaults to `module.function` (keep it stable: queued
    runs refer to it)."""
    options = {"retries": retries, "retry_delay": retry_delay, "priority": priority,
               "expires": expires, "timeout": timeout}

    def decorator(func: Callable[..., Any]) -> Job:
        return _declare(func, name, options, None)

    return decorator


def periodic_task(rule: Callable[[datetime], bool], *, name: str | None = None,
                  retries: int = 0, retry_delay: int = 0,
                  timeout: int | None = None) -> Callable[[Callable[..., Any]], Job]:
    """Declare a job the worker's scheduler runs whenever `rule(now_utc)` is true, e.g.
    `crontab(minute="0", hour="7")`. The function takes no arguments."""
    options = {"retries": retries, "retry_delay": retry_delay, "timeout": timeout}

    def decorator(func: Callable[..., Any]) -> Job:
        return _declare(func, name, options, rule)

    return decorator


def declared_jobs() -> dict[str, Job]:
    """Every job declared in this process so far, by name."""
    with _catalogue_lock:
        return dict(_CATALOGUE)


def current_job() -> str | None:
    """The name of the job running in this context, or None outside a job."""
    return _current_job.get()


# -- one queue per app --------------------------------------------------------------------
def _setting(app: Flask, name: str, default: Any = None) -> Any:
    """`BIRGA_<NAME>` (config overrides) or `<NAME>` (the factory strips `BIRGA_` from
    environment variables it does not know)."""
    for key in (f"BIRGA_{name}", name):
        value = app.config.get(key)
        if value not in (None, ""):
            return value
    return default


class Jobs:
    """An app's queue: its Huey instance and the jobs bound to it."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._huey: Huey | None = None
        self._tasks: dict[str, TaskWrapper] = {}
        self._lock = threading.RLock()

    @property
    def storage_label(self) -> str:
        url = _setting(self.app, "REDIS_URL")
        return "redis" if url else "sqlite"

    @property
    def huey(self) -> Huey:
        """The Huey instance, created on first use, with every allowed job bound."""
        with self._lock:
            if self._huey is None:
                self._huey = self._create_huey()
            self.bind_all()
            return self._huey

    def _create_huey(self) -> Huey:
        app = self.app
        name = str(_setting(app, "JOBS_QUEUE", "birga"))
        immediate = bool(_setting(app, "JOBS_IMMEDIATE", False))
        url = _setting(app, "REDIS_URL")
        if url:
            return RedisHuey(name, url=str(url), immediate=immediate, utc=True)
        path = _setting(app, "JOBS_SQLITE") or os.path.join(app.instance_path, "jobs.sqlite")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), immediate=immediate, utc=True)

    def _disabled_modules(self) -> list[str]:
        state = self.app.extensions.get("birga")
        if state is None:
            return []
        enabled = {a.name for a in state.addons}
        return [a.module for a in state.available.values() if a.name not in enabled]

    def allowed(self, job: Job) -> bool:
        """False for a job of an addon that exists but is not enabled in this app."""
        module = job.func.__module__
        return not any(module == m or module.startswith(m + ".")
                       for m in self._disabled_modules())

    def bind_all(self) -> None:
        import importlib

        for module in CORE_JOB_MODULES:
            importlib.import_module(module)
        for job in declared_jobs().values():
            if job.name not in self._tasks and self.allowed(job):
                self._bind(job)

    def task_for(self, job: Job) -> TaskWrapper:
        if not self.allowed(job):
            raise LookupError(f"Job '{job.name}' belongs to an addon that is not enabled.")
        self.huey  # noqa: B018 - creates the queue and binds every known job
        with self._lock:
            return self._tasks.get(job.name) or self._bind(job)

    def _bind(self, job: Job) -> TaskWrapper:
        app, huey = self.app, self._huey
        assert huey is not None  # noqa: S101 - bound only after creation

        def run(*args: Any, **kwargs: Any) -> Any:
            token = _current_job.set(job.name)
            try:
                with _app_context(app):
                    # The newest function of that name (a re-import replaces the old one).
                    func = declared_jobs().get(job.name, job).func
                    return func(*args, **kwargs)
            finally:
                _current_job.reset(token)

        module, _dot, short = job.name.rpartition(".")
        run.__module__ = module or "birga"  # Huey identifies a task as "<module>.<name>"
        run.__doc__ = job.func.__doc__
        with self._lock:
            old = self._tasks.pop(job.name, None)
            if old is not None:
                old.unregister()
            if job.periodic:
                rule = job.schedule_rule
                wrapper = huey.periodic_task(rule, name=short, **job.options)(run)
            else:
                wrapper = huey.task(name=short, **job.options)(run)
            self._tasks[job.name] = wrapper
            return wrapper

    def registered(self) -> list[str]:
        """Names of the jobs bound to this app's queue."""
        self.huey  # noqa: B018 - binds
        return sorted(self._tasks)

    def periodic_due(self, moment: datetime) -> list[str]:
        """Names of the periodic jobs the scheduler would queue at `moment` (UTC)."""
        due = {type(t) for t in self.huey.read_periodic(moment)}
        return sorted(name for name, w in self._tasks.items() if w.task_class in due)

    def consumer(self, *, workers: int = 1, worker_type: str = "thread",
                 periodic: bool = True, **options: Any) -> BirgaConsumer:
        huey = self.huey
        if worker_type == "process":
            app = self.app

            @huey.on_startup()
            def _fresh_connections() -> None:  # a forked child must not share the pool
                with app.app_context():
                    db.engine.dispose(close=False)

        return BirgaConsumer(self.app, huey, workers=workers, worker_type=worker_type,
                             periodic=periodic, **options)


@contextmanager
def _app_context(app: Flask) -> Iterator[None]:
    """The owning app's context; reused when already active (immediate mode, inline calls)."""
    if has_app_context() and current_app._get_current_object() is app:
        yield
        return
    with app.app_context():
        yield


def init_app(app: Flask) -> Jobs:
    jobs = Jobs(app)
    app.extensions[EXTENSION] = jobs
    return jobs


def get_jobs(app: Flask | None = None) -> Jobs:
    app = app or current_app._get_current_object()
    try:
        return app.extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("This app was not built by core.create_app (no job queue).") from None


# -- idempotency --------------------------------------------------------------------------
def _claim(job: str, key: str) -> bool:
    """Record (job, key) in its own committed transaction; False if someone already did."""
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(JobRun).values(job=job, key=key, created_at=utcnow()))
    except IntegrityError:
        return False
    return True


def _release(job: str, key: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(JobRun).where(JobRun.job == job, JobRun.key == key))


@contextmanager
def once(key: str, *, job: str | None = None) -> Iterator[bool]:
    """Do a side effect once per (job, key), whoever runs the job and however often.

        with once(f"digest:{user_id}:{day.isoformat()}") as first:
            if first:
                send_digest(...)

    `job` defaults to the running job's name. The claim commits on its own connection before
    the body runs (so every worker sees it at once); enter `once()` before writing through the
    session, or on SQLite the claim waits for your own open write. An exception in the body
    releases the claim, so a retry can do the work.
    """
    job_name = job or current_job()
    if not job_name:
        raise ValueError("once() outside a job needs job='<name>'.")
    if not key or len(key) > 255:
        raise ValueError("once() needs a key of 1 to 255 characters.")
    first = _claim(job_name, key)
    try:
        yield first
    except BaseException:
        if first:
            _release(job_name, key)
        raise


@periodic_task(crontab(minute="17", hour="3"), name="core.jobs.prune_job_runs")
def prune_job_runs() -> int:
    """Forget claims older than `BIRGA_JOBS_KEEP_DAYS` (90): keys name days and messages, so
    old ones never come back, and the ledger stays small. Returns how many were removed."""
    from datetime import timedelta

    days = int(_setting(current_app, "JOBS_KEEP_DAYS", 90))
    with db.engine.begin() as conn:
        result = conn.execute(delete(JobRun).where(
            JobRun.created_at < utcnow() - timedelta(days=days)))
    return int(result.rowcount or 0)


# -- running a consumer -------------------------------------------------------------------
class BirgaConsumer(Consumer):
    """Huey's consumer, plus: notices a change of the enabled addons and asks to restart."""

    def __init__(self, app: Flask, huey: Huey, **options: Any) -> None:
        self.app = app
        self.addon_check_seconds = float(_setting(app, "JOBS_ADDON_CHECK_SECONDS", 30.0))
        self._next_addon_check = time.monotonic() + self.addon_check_seconds
        super().__init__(huey, **options)

    def addons_changed(self) -> bool:
        """True when the database's registry sequence moved since this app was built."""
        from .state import read_sequence

        state = self.app.extensions.get("birga")
        if state is None:
            return False
        with self.app.app_context():
            return read_sequence(db.engine) != state.sequence

    def loop(self, health_check_ts: float | None = None) -> float | None:
        ts = super().loop(health_check_ts)
        now = time.monotonic()
        if self.addon_check_seconds and now >= self._next_addon_check:
            self._next_addon_check = now + self.addon_check_seconds
            if self.addons_changed():
                self._logger.info("Enabled addons changed: restarting to load their jobs.")
                self._restart = True
                self.stop(graceful=True)
                raise ConsumerStopped
        return ts


def run_worker(app: Flask, *, workers: int = 1, worker_type: str = "thread",
               periodic: bool = True) -> None:
    """Run a consumer in the foreground until SIGTERM (graceful: running jobs finish, as
    systemd, Docker and `make run` stop it) or SIGINT (immediate)."""
    jobs = get_jobs(app)
    log.info("Birga worker: %s storage, jobs: %s", jobs.storage_label,
             ", ".join(jobs.registered()) or "-")
    jobs.consumer(workers=workers, worker_type=worker_type, periodic=periodic,
                  graceful_signal="TERM").run()


class _QuietConsumer(BirgaConsumer):
    def _set_signal_handlers(self) -> None:  # signals belong to the host process
        pass


@contextmanager
def running_consumer(app: Flask, *, workers: int = 1, periodic: bool = False
                     ) -> Iterator[Consumer]:
    """A real consumer in background threads of this process (tests, embedding)."""
    consumer = _QuietConsumer(app, get_jobs(app).huey, workers=workers, periodic=periodic,
                              worker_type="thread", initial_delay=0.05, max_delay=0.2,
                              check_worker_health=False)
    consumer.addon_check_seconds = 0
    consumer.start()
    try:
        yield consumer
    finally:
        consumer.stop(graceful=True)
