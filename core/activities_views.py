"""Pages for activities: the `record.activities` hook, "My activities", the calendar, the
feed settings and the secret feed, and the admin list of activity types.

Everything works without JavaScript: forms post and redirect back (`next`), "done" opens in a
`<details>` element. Every POST carries the CSRF token (Flask-WTF checks it app-wide). An
activity the user may not see is a 404, as any record outside the rules (`core.security`).
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale, format_time, get_locale, get_timezone, to_utc
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from markupsafe import Markup

from . import activities as act
from . import calendar_feed as feed
from .activities import Activity, ActivityError, ActivityType
from .extensions import db
from .models import User
from .records import can_read, record_ref
from .timeline import record_link

bp = Blueprint("activities", __name__, url_prefix="/activities")


def _next(default: str) -> str:
    from .auth import _safe_next

    return _safe_next(request.form.get("next") or default)


def _get_or_404(activity_id: int) -> Activity:
    activity = db.session.scalar(act.visible_activities(current_user).where(
        Activity.id == activity_id))
    if activity is None:
        abort(404)
    return activity


def _today() -> date:
    return act.now().astimezone(get_timezone()).date()


def form_defaults() -> dict[str, Any]:
    """What the schedule form needs: types, people, today's date in the user's zone."""
    return {"types": act.activity_types(), "assignees": act.assignable_users(current_user),
            "today": _today().isoformat(),
            "default_time": current_app.config.get("BIRGA_ACTIVITY_DEFAULT_TIME", "09:00")}


def _parse_due(day: str, moment: str) -> datetime:
    """The user's local date and time as an aware UTC datetime."""
    try:
        local = datetime.combine(date.fromisoformat(day.strip()), datetime.strptime(
            (moment or "").strip() or "09:00", "%H:%M").time())
    except ValueError:
        raise ActivityError(_("Give the due date as a date and the time as hours:minutes."))\
            from None
    return to_utc(local).replace(tzinfo=UTC)


# -- the record hook -----------------------------------------------------------------------
def render_record_activities(model: str | None = None, record_id: int | None = None, *,
                             record: Any = None, **_ctx: Any) -> Markup:
    """`{{ hook("record.activities", model=..., record_id=...) }}`: planned activities and a
    form to schedule one; nothing at all for a record the user may not read."""
    if record is not None:
        model, record_id = record_ref(record)
    if model is None or record_id is None or not current_user.is_authenticated \
            or not can_read(model, int(record_id)):
        return Markup("")
    rows = act.open_activities_for_record(model, int(record_id), current_user)
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "core/activities/_record.html", model=model, record_id=int(record_id),
        activities=rows, next_url=request.full_path.rstrip("?"), **form_defaults(),
        **_row_helpers()))


def _row_helpers() -> dict[str, Any]:
    me = current_user._get_current_object()
    overdue_before = act.day_bounds(get_timezone(), act.now())[0]
    return {"can_act": lambda a: act.can_act(a, me),
            "can_reassign": lambda a: act.can_reassign(a, me),
            "is_overdue": lambda a: a.done_at is None and a.due_utc < overdue_before,
            "record_url": _record_url}


def _record_url(activity: Activity) -> str | None:
    if not activity.model or activity.record_id is None:
        return None
    try:
        return record_link(activity.model, activity.record_id)
    except Exception:  # a record whose addon is gone: show the activity without a link
        return None


# -- the dashboard panel -------------------------------------------------------------------
#: How many of the overdue and today's activities the start page lists by name.
DASHBOARD_ITEMS = 5


def _record_links(refs: set[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str]]:
    """(label, URL) of each linked record, with one query per kind of record (not per row):
    what `record_link` and `Activity.record_label` give one record at a time."""
    from .records import record_model
    from .timeline import plain

    by_model: dict[str, set[int]] = {}
    for model, record_id in refs:
        by_model.setdefault(model, set()).add(record_id)
    found: dict[tuple[str, int], tuple[str, str]] = {}
    for model, ids in sorted(by_model.items()):
        cls = record_model(model)
        if cls is None:  # its addon is gone: the activity is shown without a link
            continue
        key = cls.__mapper__.primary_key[0]
        for record in db.session.scalars(db.select(cls).where(key.in_(sorted(ids)))):
            record_id = int(getattr(record, key.key))
            url = getattr(record, "get_url", None)
            if callable(url):
                link = str(url())
            elif isinstance(getattr(record, "url", None), str):
                link = record.url
            else:
                link = url_for("timeline.show", model=model, record_id=record_id)
            found[(model, record_id)] = (str(plain(record)), link)
    return found


def render_dashboard(**_ctx: Any) -> Markup:
    """`core.dashboard`: the user's overdue activities and today's, counted in one query and
    the first few listed in another (plus one per kind of linked record), whatever their
    number. Days are the user's (`get_timezone()`), as on "My activities"."""
    if not current_user.is_authenticated:
        return Markup("")
    from sqlalchemy import case, func

    me = current_user._get_current_object()
    start, end, _day = act.day_bounds(get_timezone(), act.now())
    mine = act.visible_activities(me).where(
        Activity.assignee_id == me.id, Activity.done_at.is_(None), Activity.due_at < end)
    overdue, today = db.session.execute(mine.with_only_columns(
        func.coalesce(func.sum(case((Activity.due_at < start, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Activity.due_at >= start, 1), else_=0)), 0))).one()
    items = db.session.execute(mine.with_only_columns(
        Activity.id, Activity.summary, Activity.due_at, Activity.model, Activity.record_id,
        ActivityType.icon).join(ActivityType, ActivityType.id == Activity.type_id)
        .order_by(Activity.due_at, Activity.id).limit(DASHBOARD_ITEMS)).all() \
        if overdue or today else []
    links = _record_links({(row.model, row.record_id) for row in items
                           if row.model and row.record_id is not None})
    rows = []
    for row in items:
        due = act.as_utc(row.due_at)
        rows.append({"id": row.id, "summary": row.summary, "icon": row.icon,
                     "overdue": due < start, "due": due,
                     "record": links.get((row.model, row.record_id))})
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "core/activities/_dashboard.html", overdue=int(overdue), today=int(today), rows=rows,
        time_of=lambda moment: format_time(moment, "short")))


# -- writing -------------------------------------------------------------------------------
@bp.route("/schedule", methods=["POST"])
@login_required
def schedule():
    target = _next(url_for(".index"))
    model = (request.form.get("model") or "").strip() or None
    record_id = request.form.get("record_id", type=int)
    if model is not None and (record_id is None or not can_read(model, record_id)):
        abort(404)
    assignee_id = request.form.get("assignee_id", type=int) or current_user.id
    assignee = next((u for u in act.assignable_users(current_user) if u.id == assignee_id),
                    None)
    if assignee is None:
        abort(404)
    try:
        due = _parse_due(request.form.get("due_date", ""), request.form.get("due_time", ""))
        act.schedule_activity(type_id=request.form.get("type_id", type=int) or 0,
                              summary=request.form.get("summary", ""), due_at=due,
                              assignee=assignee, creator=current_user, model=model,
                              record_id=record_id, note=request.form.get("note", ""))
    except ActivityError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(target)
    db.session.commit()
    flash(_("Activity scheduled."), "success")
    return redirect(target)


@bp.route("/<int:activity_id>/done", methods=["POST"])
@login_required
def done(activity_id: int):
    activity = _get_or_404(activity_id)
    if not act.can_act(activity, current_user):
        abort(403)
    target = _next(url_for(".detail", activity_id=activity.id))
    try:
        act.mark_done(activity, by=current_user, outcome=request.form.get("outcome", ""))
    except ActivityError as exc:
        flash(str(exc), "error")
        return redirect(target)
    db.session.commit()
    flash(_("Marked as done."), "success")
    return redirect(target)


@bp.route("/<int:activity_id>/reassign", methods=["POST"])
@login_required
def reassign(activity_id: int):
    activity = _get_or_404(activity_id)
    new = db.session.get(User, request.form.get("assignee_id", type=int) or 0)
    if new is None or not act.can_reassign(activity, current_user, new):
        abort(404)
    act.reassign(activity, new, by=current_user)
    db.session.commit()
    flash(_("Given to %(name)s.", name=new.display_name), "success")
    return redirect(_next(url_for(".detail", activity_id=activity.id)))


# -- reading -------------------------------------------------------------------------------
@bp.route("/")
@login_required
def index():
    """My open activities by day (or, for a manager, the team's: `?who=team`)."""
    who = request.args.get("who", "mine")
    manager = act.is_manager(current_user)
    query = act.visible_activities(current_user).where(Activity.done_at.is_(None))
    if who == "team":
        if not manager:
            abort(404)
        if not current_user.has_permission("core.admin"):
            query = query.where(Activity.assignee_id.in_(
                act.managed_member_ids(current_user.id)))
    else:
        who = "mine"
        query = query.where(Activity.assignee_id == current_user.id)
    rows = db.session.scalars(query.order_by(Activity.due_at, Activity.id)).unique().all()
    buckets = act.bucket(rows, get_timezone())
    sections = [("overdue", _("Overdue"), buckets.overdue), ("today", _("Today"), buckets.today),
                ("upcoming", _("Upcoming"), buckets.upcoming)]
    return render_template("core/activities/index.html", sections=sections, who=who,
                           manager=manager, next_url=request.full_path.rstrip("?"),
                           **form_defaults(), **_row_helpers())


@bp.route("/<int:activity_id>")
@login_required
def detail(activity_id: int):
    activity = _get_or_404(activity_id)
    return render_template("core/activities/detail.html", activity=activity,
                           next_url=request.full_path.rstrip("?"),
                           assignees=act.assignable_users(current_user), **_row_helpers())


@bp.route("/calendar")
@login_required
def calendar():
    """A week or month of the user's activities, in the user's zone, without JavaScript."""
    view = "week" if request.args.get("view") == "week" else "month"
    try:
        anchor = date.fromisoformat(request.args.get("day", ""))
    except ValueError:
        anchor = _today()
    tz = get_timezone()
    first_weekday = getattr(get_locale(), "first_week_day", 0) or 0
    weeks = feed.grid(view, anchor, first_weekday)
    start, end = feed.span(weeks, tz)
    rows = db.session.scalars(act.visible_activities(current_user).where(
        Activity.assignee_id == current_user.id, Activity.due_at >= start,
        Activity.due_at < end).order_by(Activity.due_at, Activity.id)).unique().all()
    if view == "week":
        previous, following = anchor - timedelta(days=7), anchor + timedelta(days=7)
    else:
        previous = (anchor.replace(day=1) - timedelta(days=1)).replace(day=1)
        following = (anchor.replace(day=1) + timedelta(days=32)).replace(day=1)
    return render_template("core/activities/calendar.html", view=view, anchor=anchor,
                           weeks=weeks, days=feed.by_day(rows, tz), today=_today(),
                           previous=previous, following=following,
                           time_of=lambda a: format_time(a.due_utc, "short"))


# -- the feed ------------------------------------------------------------------------------
@bp.route("/feed", methods=["GET", "POST"])
@login_required
def feed_settings():
    """GET: whether a feed exists. POST: a new secret URL (the old one stops working)."""
    url = None
    if request.method == "POST":
        token = feed.issue_token(current_user)
        db.session.commit()
        url = url_for(".ical", token=token, _external=True)
        flash(_("A new calendar address was made; the previous one no longer works."),
              "success")
    return render_template("core/activities/feed.html", url=url,
                           active=feed.has_token(current_user))


@bp.route("/feed/revoke", methods=["POST"])
@login_required
def feed_revoke():
    feed.revoke_token(current_user)
    db.session.commit()
    flash(_("The calendar address no longer works."), "success")
    return redirect(url_for(".feed_settings"))


@bp.route("/ical/<token>.ics")
def ical(token: str):
    """The secret feed: no session (calendar apps cannot sign in), 404 for a wrong token."""
    user = feed.user_for_token(token)
    if user is None:
        abort(404)
    with force_locale(user.locale or current_app.config.get("BABEL_DEFAULT_LOCALE", "en")):
        body = feed.build_feed(
            user, feed.feed_activities(user, act.now()), domain=request.host.split(":")[0],
            link=lambda a: url_for(".detail", activity_id=a.id, _external=True))
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = "inline; filename=activities.ics"
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# -- activity types (admin) ----------------------------------------------------------------
@bp.route("/types", methods=["GET", "POST"])
@login_required
def types():
    if not current_user.has_permission("core.admin"):
        abort(404)
    if request.method == "POST":
        type_id = request.form.get("type_id", type=int)
        kind = db.session.get(ActivityType, type_id) if type_id else ActivityType(code=None)
        if kind is None:
            abort(404)
        name = " ".join(request.form.get("name", "").split())[:120]
        if kind.code is None and not name:
            flash(_("Give the type a name."), "error")
            return redirect(url_for(".types"))
        kind.name = name
        kind.icon = request.form.get("icon", "").strip()[:16]
        kind.sequence = request.form.get("sequence", type=int) or 100
        kind.active = request.form.get("active") == "1"
        db.session.add(kind)
        db.session.commit()
        flash(_("Activity type saved."), "success")
        return redirect(url_for(".types"))
    return render_template("core/activities/types.html",
                           types=act.activity_types(include_inactive=True))


def init_app(app: Flask) -> None:
    """Blueprint, the `record.activities` hook, menus and the record rule."""
    registry = app.extensions["birga"].registry
    app.register_blueprint(bp)
    act.init_app(app)
    registry.add_hook("record.activities", render_record_activities)
    registry.add_hook("core.dashboard", render_dashboard, sequence=10)
    registry.add_menu("activities", _l("My activities"), "activities.index", sequence=20)
    registry.add_menu("activities.list", _l("My activities"), "activities.index",
                      parent="activities", sequence=10)
    registry.add_menu("activities.calendar", _l("Calendar"), "activities.calendar",
                      parent="activities", sequence=20)
    registry.add_menu("activities.feed", _l("Calendar subscription"),
                      "activities.feed_settings", parent="activities", sequence=30)
    registry.add_menu("settings.activity_types", _l("Activity types"), "activities.types",
                      parent="settings", sequence=40, permission="core.admin")


__all__ = ["bp", "init_app", "render_dashboard", "render_record_activities"]
