"""The segments page: ABC settings and an on-demand run, and named static/dynamic segments.

Routes live on the contacts blueprint (`views.bp`), imported from the bottom of `views.py`.
Reading needs `contacts.read`, changing anything `contacts.manage`; member lists go through
the record rules (`scoped`), so a salesperson sees only their own contacts in any segment.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlencode

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.api import (
    _,
    abort,
    current_user,
    db,
    flash,
    permission_required,
    redirect,
    render_template,
    request,
    scoped,
    url_for,
)

from .merge_views import card_url
from .models import SEGMENTS, Partner
from .segment_models import SEGMENT_KIND_LABELS, SEGMENT_KINDS, Segment, SegmentMember
from .segments import (
    add_members,
    recompute_segments,
    remove_members,
    segment_members,
    settings,
)
from .views import bp

PAGE_SIZE = 50


def _count(stmt) -> int:  # noqa: ANN001 - a Select of Partner
    sub = scoped(stmt, model=Partner).with_only_columns(Partner.id).subquery()
    return int(db.session.scalar(select(func.count()).select_from(sub)) or 0)


@bp.route("/segments")
@permission_required("contacts.read")
def segments():
    config = settings()
    db.session.commit()  # the settings row, created on first use
    abc = {cls: _count(segment_members(cls)) for cls in SEGMENTS}
    named = db.session.scalars(select(Segment).order_by(Segment.name)).all()
    sizes = {s.id: _count(segment_members(s)) for s in named}
    return render_template("contacts/segments.html", config=config, abc=abc, named=named,
                           sizes=sizes, kinds=SEGMENT_KIND_LABELS,
                           can_manage=current_user.has_permission("contacts.manage"))


def _decimal(name: str) -> Decimal | None:
    try:
        value = Decimal((request.form.get(name) or "").replace(",", ".").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.form.get(name) or "")
    except ValueError:
        return None


@bp.route("/segments/settings", methods=["POST"])
@permission_required("contacts.manage")
def segment_settings():
    a_share, b_share = _decimal("a_share"), _decimal("b_share")
    days = request.form.get("period_days", type=int)
    start, end = _day("period_start"), _day("period_end")
    if a_share is None or b_share is None or a_share <= 0 or b_share < 0 \
            or a_share + b_share > 100:
        flash(_("Shares must be positive and add up to 100 % at most."), "error")
    elif days is None or not 1 <= days <= 3660:
        flash(_("The period must be between 1 and 3660 days."), "error")
    elif (start is None) != (end is None) or (start and end and start > end):
        flash(_("Give both dates of a fixed period, the first before the second."), "error")
    else:
        config = settings()
        config.a_share, config.b_share, config.period_days = a_share, b_share, days
        config.period_start, config.period_end = start, end
        db.session.commit()
        flash(_("Segment settings saved."), "success")
    return redirect(url_for("contacts.segments"))


@bp.route("/segments/recompute", methods=["POST"])
@permission_required("contacts.manage")
def segment_recompute():
    result = recompute_segments()
    db.session.commit()
    flash(_("Segments recomputed: %(a)s in A, %(b)s in B, %(c)s in C.",
            a=result["A"], b=result["B"], c=result["C"]), "success")
    if result["missing_rates"]:
        flash(_("No exchange rate for %(codes)s: that revenue was left out.",
                codes=", ".join(result["missing_rates"])), "error")
    return redirect(url_for("contacts.segments"))


@bp.route("/segments/new", methods=["POST"])
@permission_required("contacts.manage")
def segment_new():
    name = " ".join((request.form.get("name") or "").split())[:120]
    kind = request.form.get("kind", "static")
    if not name or kind not in SEGMENT_KINDS:
        flash(_("Give the segment a name and a type."), "error")
        return redirect(url_for("contacts.segments"))
    raw = (request.form.get("query") or "").lstrip("?")
    query = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(raw).items()
             if k not in ("page", "sort")}
    segment = Segment(name=name, kind=kind, query=query if kind == "dynamic" else {},
                      created_by_id=current_user.id)
    db.session.add(segment)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        flash(_("A segment with this name exists already."), "error")
        return redirect(url_for("contacts.segments"))
    return redirect(url_for("contacts.segment", segment_id=segment.id))


def _members_page(stmt, page: int) -> tuple[list[Partner], bool]:  # noqa: ANN001
    rows = db.session.scalars(scoped(stmt, model=Partner).order_by(Partner.sort_en, Partner.id)
                              .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return list(rows[:PAGE_SIZE]), len(rows) > PAGE_SIZE


@bp.route("/segments/abc/<letter>")
@permission_required("contacts.read")
def segment_class(letter: str):
    if letter not in SEGMENTS:
        abort(404)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    members, more = _members_page(segment_members(letter), page)
    return render_template("contacts/segment.html", segment=None, letter=letter,
                           members=members, more=more, page=page, card_url=card_url,
                           query_text="", can_manage=False)


@bp.route("/segments/<int:segment_id>")
@permission_required("contacts.read")
def segment(segment_id: int):
    found = db.session.get(Segment, segment_id) or abort(404)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    members, more = _members_page(segment_members(found), page)
    return render_template("contacts/segment.html", segment=found, letter=None,
                           members=members, more=more, page=page, card_url=card_url,
                           query_text=urlencode(found.query or {}, doseq=True),
                           can_manage=current_user.has_permission("contacts.manage"))


@bp.route("/segments/<int:segment_id>/members", methods=["POST"])
@permission_required("contacts.manage")
def segment_members_edit(segment_id: int):
    found = db.session.get(Segment, segment_id) or abort(404)
    if found.kind != "static":
        abort(404)
    wanted = [int(v) for v in request.form.get("add", "").replace(",", " ").split()
              if v.isdigit()]
    # Only contacts the manager may see can be added (the gateway decides, as everywhere).
    visible = set(db.session.scalars(scoped(select(Partner.id).where(Partner.id.in_(wanted)),
                                            model=Partner))) if wanted else set()
    added = add_members(found, sorted(visible))
    removed = remove_members(found, [int(v) for v in request.form.getlist("remove")
                                     if v.isdigit()])
    db.session.commit()
    flash(_("%(added)s added, %(removed)s removed.", added=added, removed=removed), "success")
    return redirect(url_for("contacts.segment", segment_id=found.id))


@bp.route("/segments/<int:segment_id>/delete", methods=["POST"])
@permission_required("contacts.manage")
def segment_delete(segment_id: int):
    found = db.session.get(Segment, segment_id) or abort(404)
    db.session.execute(SegmentMember.__table__.delete().where(
        SegmentMember.segment_id == found.id))
    db.session.delete(found)
    db.session.commit()
    flash(_("Segment deleted."), "success")
    return redirect(url_for("contacts.segments"))
