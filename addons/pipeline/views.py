"""Web pages of the pipeline addon: the board, the deal list and its export, the deal page.

One blueprint for the whole addon; colleagues' modules add routes to it (`from .views import bp`)
and are imported at the bottom of this file.

Every deal is read through `core.security` (`scoped`, `get_or_404`): a deal outside the user's
record rules is a 404 on the board, the page, the move endpoint and the export alike. Every
stage change goes through `state.move_deal`, whichever way it arrives (card form, drag and
drop, deal form, JSON API), so the same move gives the same result.

Template hooks this addon offers (other addons contribute with `addon.hook(name, template)`):
- `pipeline.deal.main` (deal): panels in the deal page's main column (offers, documents);
- `pipeline.deal.sidebar` (deal): panels in its side column.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, literal, null, select, union_all

from addons.contacts import picker
from core.api import (
    User,
    audit,
    db,
    formatters,
    get_or_404,
    permission_required,
    read,
    shared_cache,
    token_api,
)
from core.formatting import format_money
from core.locking import save_or_conflict
from core.security import Team

from . import board as boardq
from .cards import CardHtml, RowHtml, stage_options
from .forms import DealForm, MoveForm, QuickCreateForm, fill_deal_form, fill_move_form
from .inbound import deal_tag
from .models import Deal, LostReason, Pipeline, Stage, Tag
from .state import (
    TransitionError,
    create_deal,
    lost_reason_label,
    move_deal,
    parse_amount,
    pipeline_label,
    seed_defaults,
    stage_label,
)

bp = Blueprint("pipeline", __name__, static_folder="static")

MODEL = "pipeline.deal"
#: Spreadsheet formula starters: a cell beginning with one is prefixed with a quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FilterOption(NamedTuple):
    """A user, team or tag in a filter's list (`display_name` for users, `name` for all)."""

    id: int
    name: str

    @property
    def display_name(self) -> str:
        return self.name


def _helpers() -> dict[str, Any]:
    return {"stage_label": stage_label, "pipeline_label": pipeline_label,
            "reason_label": lost_reason_label}


def _pipelines() -> list[Pipeline]:
    return list(db.session.scalars(select(Pipeline).where(Pipeline.active.is_(True))
                                   .order_by(Pipeline.sequence, Pipeline.id)))


def deal_money(money: Callable[[Any, str], str]) -> Callable[[Any, str], str]:
    """`money` for a deal's own amount: a deal saved without one (stored as 0, e.g. a lead
    converted before anyone knew the budget) shows "—", not "0,00 €" as if it were free."""
    def formatted(amount: Any, currency: str) -> str:
        return money(amount, currency) if amount else "—"
    return formatted


def _default_pipeline() -> Pipeline:
    pipelines = _pipelines()
    if pipelines:
        return pipelines[0]
    pipeline = seed_defaults()  # a fresh installation: the seeded funnel, once
    db.session.commit()
    return pipeline


@cache
def _filter_lists() -> Any:
    """Built once: a fresh statement would cost SQLAlchemy its cache key on every page, more
    than running it."""
    person = func.coalesce(func.nullif(User.name, ""), User.login)
    return union_all(
        select(literal(0).label("kind"), User.id, person.label("name"),
               User.name.label("k1"), User.login.label("k2")).where(User.active.is_(True)),
        select(literal(1), Team.id, Team.name, Team.name, null()),
        select(literal(2), Tag.id, Tag.name, Tag.name, null()),
    ).order_by("kind", "k1", "k2")


def _filter_options() -> dict[str, Any]:
    """The filters' lists (active users, teams, tags) as plain (id, name) rows."""
    return dict(zip(("owners", "teams", "tags"), _filter_rows(), strict=True))


@shared_cache(User, Team, Tag)
def _filter_rows() -> tuple[tuple[FilterOption, ...], ...]:
    """Read with ONE query (three small ones cost three round trips on every board and list
    page), then kept by the worker until a user, team or tag changes (`core.cache`)."""
    found: dict[int, list[FilterOption]] = {0: [], 1: [], 2: []}
    for kind, ident, name, _k1, _k2 in read(_filter_lists()).all():
        found[kind].append(FilterOption(ident, name))
    return tuple(tuple(found[kind]) for kind in (0, 1, 2))


class ReasonOption(NamedTuple):
    """An active lost reason as the board's "lost" dialog offers it (`lost_reason_label`
    reads `name` and `labels`)."""

    id: int
    name: str
    labels: dict[str, str]


@shared_cache(LostReason)
def _active_reasons() -> tuple[ReasonOption, ...]:
    """Read once per worker until a reason changes (`core.cache`): every board offers them."""
    return tuple(ReasonOption(i, name, labels or {}) for i, name, labels in read(
        select(LostReason.id, LostReason.name, LostReason.labels)
        .where(LostReason.active.is_(True)).order_by(LostReason.sequence, LostReason.id)))


# -- the board -------------------------------------------------------------------------------
@bp.route("/")
@permission_required("pipeline.read")
def index():
    return redirect(url_for(".board", pipeline_id=_default_pipeline().id,
                            **request.args.to_dict()))


@bp.route("/board/<int:pipeline_id>")
@permission_required("pipeline.read")
def board(pipeline_id: int):
    pipelines = _pipelines()
    pipeline = next((p for p in pipelines if p.id == pipeline_id), None) \
        or db.session.get(Pipeline, pipeline_id)  # an inactive one still opens by address
    if pipeline is None:
        abort(404)
    filters = boardq.DealFilters.parse(request.args)
    columns = boardq.board_columns(pipeline, current_user, filters)
    stages = [c.stage for c in columns]
    reasons = _active_reasons()
    labels = {s.id: stage_label(s) for s in stages}
    can_write = current_user.has_permission("pipeline.write")
    card_html = CardHtml(
        deal_url=url_for(".deals") + "/", can_write=can_write,
        fmt_money=deal_money(formatters().money), stage_text=_("Stage"), move_text=_("Move"),
        no_next_flag=Markup('<div class="flag-no-next" title="{}">⚠ {}</div>\n').format(
            _("Plan the next step so the deal is not forgotten."), _("No next activity")),
        # Every card's move form offers the same stages: the options are built per column.
        options=stage_options(stages, labels) if can_write else {})
    return render_template(
        "pipeline/board.html", pipeline=pipeline, pipelines=pipelines, columns=columns,
        stages=stages, reasons=reasons, filters=filters, company_currency=_company_currency(),
        labels=labels, card_html=card_html, fmt_money=formatters().money,
        can_write=can_write, back=request.full_path.rstrip("?"), **_filter_options(),
        **_helpers())


@bp.route("/board/<int:pipeline_id>/sums")
@permission_required("pipeline.read")
def board_sums(pipeline_id: int):
    """Every column's count and totals (with the board's filters), as the board shows them:
    after a card moves, board.js puts them in place instead of leaving the old sums."""
    pipeline = db.session.get(Pipeline, pipeline_id) or abort(404)
    filters = boardq.DealFilters.parse(request.args)
    fmt = formatters()
    context = {"company_currency": _company_currency(), "fmt_money": fmt.money}
    columns = boardq.board_columns(pipeline, current_user, filters, cards=False)
    return jsonify({"columns": {str(col.stage.id): {
        "count": fmt.number(col.count),
        "sums": render_template("pipeline/_column_sums.html", col=col, **context)}
        for col in columns}})


def _company_currency() -> str:
    from core.api import company_currency

    return company_currency()


@bp.route("/board/<int:pipeline_id>/quick", methods=["POST"])
@permission_required("pipeline.write")
def quick_create(pipeline_id: int):
    """Quick create in a column: a title (and an amount), the rest from the pipeline."""
    pipeline = db.session.get(Pipeline, pipeline_id)
    if pipeline is None:
        abort(404)
    form = QuickCreateForm()
    target = _safe_back(url_for(".board", pipeline_id=pipeline.id))
    stage = db.session.get(Stage, int(form.stage_id.data or 0) or -1)
    if stage is None or stage.pipeline_id != pipeline.id:
        abort(404)
    if not form.validate():
        flash(_("Give the deal a title."), "error")
        return redirect(target)
    try:
        deal = create_deal(title=form.title.data, stage=stage, user=current_user, via="board",
                           amount=form.amount.data, currency=form.currency.data or None)
    except TransitionError as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(target)
    db.session.commit()
    flash(_("Deal “%(title)s” created.", title=deal.title), "success")
    return redirect(target)


def _safe_back(default: str) -> str:
    from core.auth import _safe_next

    return _safe_next(request.form.get("next") or default)


# -- moves -----------------------------------------------------------------------------------
def _move_payload() -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(400)
        return data
    return request.form.to_dict()


def _move(deal_id: int, via: str, data: dict[str, Any] | None = None):
    deal = get_or_404(Deal, deal_id)
    data = _move_payload() if data is None else data
    wants_json = (via == "api" or request.is_json
                  or request.accept_mimetypes.best == "application/json")
    try:
        move_deal(deal, data.get("stage_id"), user=current_user, via=via,
                  lost_reason=data.get("lost_reason_id"), lost_note=data.get("lost_note"),
                  amount=data.get("amount"), version=data.get("version"))
        db.session.flush()
        # Read before the commit expires the deal (no reload just to answer).
        moved = {"id": deal.id, "version": deal.version, "stage_id": deal.stage_id,
                 "stage": stage_label(deal.stage), "kind": deal.stage.kind,
                 "title": deal.title,
                 "amount": str(deal.amount) if deal.amount else None,
                 "amount_text": deal_money(formatters().money)(deal.amount, deal.currency)}
        db.session.commit()
    except TransitionError as error:
        db.session.rollback()
        return _move_refused(deal_id, error, wants_json, data)
    except Exception as error:  # a concurrent save between our read and our write
        from sqlalchemy.orm.exc import StaleDataError

        db.session.rollback()
        if not isinstance(error, StaleDataError):
            raise
        from .state import StaleDealError

        return _move_refused(deal_id, StaleDealError(
            _("Someone else changed this deal meanwhile; nothing was overwritten. Reload the "
              "page and try again."), code="conflict"), wants_json, data)
    if wants_json:
        return jsonify({"ok": True, "id": moved["id"], "version": moved["version"],
                        "stage_id": moved["stage_id"], "stage": moved["stage"],
                        "kind": moved["kind"], "amount": moved["amount"],
                        "amount_text": moved["amount_text"],
                        "message": _("Moved to %(stage)s.", stage=moved["stage"])})
    flash(_("“%(title)s” moved to %(stage)s.", title=moved["title"], stage=moved["stage"]),
          "success")
    return redirect(_safe_back(url_for(".deal", deal_id=moved["id"])))


def _move_refused(deal_id: int, error: TransitionError, wants_json: bool,
                  data: dict[str, Any]):
    if wants_json:
        current = db.session.get(Deal, deal_id)
        return jsonify({"ok": False, "error": str(error), "code": error.code,
                        "version": current.version if current else None,
                        "stage_id": current.stage_id if current else None}), error.status
    flash(str(error), "error")
    if error.code in ("lost_reason", "amount"):  # the deal page asks for the reason, amount
        return redirect(url_for(".deal", deal_id=deal_id, move_to=data.get("stage_id"))
                        + "#move")
    return redirect(_safe_back(url_for(".deal", deal_id=deal_id)))


@bp.route("/deals/<int:deal_id>/move", methods=["POST"])
@permission_required("pipeline.write")
def move(deal_id: int):
    """The board's drag and drop (JSON) and every card's small form (no JavaScript)."""
    via = "board" if request.is_json or request.form.get("via") == "board" else "form"
    return _move(deal_id, via)


@bp.route("/board/<int:pipeline_id>/move", methods=["POST"])
@permission_required("pipeline.write")
def board_move(pipeline_id: int):
    """The board without JavaScript: ONE form (CSRF token, return address) that every card's
    stage list and button belong to through the `form` attribute, so a card carries no hidden
    fields of its own. The button says which deal (and the version shown): `move=12:3`."""
    deal_id, _sep, version = (request.form.get("move") or "").partition(":")
    if not deal_id.isdigit():
        abort(400)
    data = {"stage_id": request.form.get(f"stage_{deal_id}"), "version": version}
    return _move(int(deal_id), "board", data)


@bp.route("/api/deals/<int:deal_id>/move", methods=["POST"])
@token_api
@permission_required("pipeline.write")
def api_move(deal_id: int):
    """The same move for integrations: JSON in, JSON out (409 stale, 422 refused)."""
    return _move(deal_id, "api")


@bp.route("/api/deals/<int:deal_id>")
@token_api
@permission_required("pipeline.read")
def api_deal(deal_id: int):
    deal = get_or_404(Deal, deal_id)
    return jsonify(_deal_json(deal))


def _deal_json(deal: Deal) -> dict[str, Any]:
    return {"id": deal.id, "title": deal.title, "pipeline_id": deal.pipeline_id,
            "stage_id": deal.stage_id, "stage_kind": deal.stage.kind,
            "amount": str(deal.amount), "currency": deal.currency,
            "probability": deal.effective_probability, "version": deal.version,
            "won_at": deal.won_at.isoformat() if deal.won_at else None,
            "lost_at": deal.lost_at.isoformat() if deal.lost_at else None,
            "lost_reason_id": deal.lost_reason_id, "owner_id": deal.owner_id,
            "partner_id": deal.partner_id, "company_id": deal.company_id}


# -- the list and its export -----------------------------------------------------------------
@bp.route("/deals")
@permission_required("pipeline.read")
def deals():
    filters = boardq.DealFilters.parse(request.args)
    pipeline_id = request.args.get("pipeline", type=int)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    cards, more = boardq.deal_list(current_user, filters, pipeline_id=pipeline_id, page=page)
    stages = {c.deal.stage_id: c.deal.stage for c in cards}
    fmt = formatters()
    rows = RowHtml(
        deal_url=url_for(".deals") + "/", fmt_money=deal_money(fmt.money), fmt_date=fmt.date,
        stage_names={sid: stage_label(stage) for sid, stage in stages.items()},
        none_planned=Markup('<span class="flag-no-next">⚠ {}</span>').format(
            _("None planned")))
    return render_template("pipeline/deals.html", cards=cards, more=more, page=page,
                           rows=rows, filters=filters, pipeline_id=pipeline_id,
                           can_export=current_user.has_permission("pipeline.export"),
                           can_import=current_user.has_permission("pipeline.import"),
                           **_filter_options(), **_helpers())


def _cell(value: Any) -> str:
    """Text a spreadsheet shows as text: a leading formula character gets a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


@bp.route("/deals.csv")
@permission_required("pipeline.export")
def export():
    filters = boardq.DealFilters.parse(request.args)
    pipeline_id = request.args.get("pipeline", type=int)
    audit("export", model=MODEL, details={"filters": filters.args(), "format": "csv",
                                          "pipeline": pipeline_id})
    db.session.commit()
    header = [_("Number"), _("Title"), _("Stage"), _("Contact"), _("Company"), _("Amount"),
              _("Currency"), _("Probability"), _("Expected close"), _("Salesperson"),
              _("Tags"), _("Next activity"), _("Won on"), _("Lost reason")]
    reasons = {r.id: lost_reason_label(r) for r in db.session.scalars(select(LostReason))}

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for card in boardq.export_rows(current_user, filters, pipeline_id=pipeline_id):
            deal = card.deal
            writer.writerow([_cell(v) for v in (
                deal.id, deal.title, stage_label(deal.stage), card.partner_name,
                card.company_name, deal.amount, deal.currency, deal.effective_probability,
                deal.expected_close.isoformat() if deal.expected_close else "",
                card.owner_name, ", ".join(t.name for t in card.tags),
                deal.next_activity_at.isoformat() if deal.next_activity_at else "",
                deal.won_at.date().isoformat() if deal.won_at else "",
                reasons.get(deal.lost_reason_id, ""))])
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    # Built in full (a few MB for 50k deals): a streamed body would outlive the request's
    # database session and its record rules.
    return Response("".join(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=deals.csv"})


# -- the deal page ---------------------------------------------------------------------------
def _key_facts(deal: Deal) -> dict[str, Any]:
    """The client card's key facts, for contacts the user may see."""
    person = picker.visible_partner(deal.partner_id)
    company = picker.visible_partner(deal.company_id) or (
        picker.visible_partner(person.company_id) if person is not None else None)
    return {"person": person, "company": company}


def _deal_form(deal: Deal | None, pipeline: Pipeline) -> DealForm:
    form = DealForm(obj=deal) if deal is not None else DealForm()
    fill_deal_form(form, pipeline.id)
    form.client_choices = {}
    if request.method == "GET":
        if deal is not None:
            form.tags.data = [t.id for t in deal.tags]
            form.version.data = str(deal.version)
            form.amount.data = str(deal.amount) if deal.amount else ""
            form.source.data = deal.source or ""
            partner_id, company_id = deal.partner_id, deal.company_id
        else:
            form.pipeline_id.data = pipeline.id
            form.currency.data = pipeline.currency or _company_currency()
            form.owner_id.data = current_user.id
            form.stage_id.data = request.args.get("stage_id", type=int)
            partner_id = request.args.get("partner_id", type=int)
            company_id = request.args.get("company_id", type=int)
            # A link from a card names only contacts the user may see.
            partner_id = partner_id if picker.visible_partner(partner_id) else None
            company_id = company_id if picker.visible_partner(company_id) else None
        # A linked contact the user may not see keeps its id but shows no name.
        for id_field, name_field, value in ((form.partner_id, form.partner_name, partner_id),
                                            (form.company_id, form.company_name, company_id)):
            id_field.data = str(value) if value else ""
            shown = picker.visible_partner(value)
            name_field.data = shown.name if shown is not None else ""
    return form


def _mail_query(subject: str, inbound: str | None) -> str:
    """The `?subject=…&cc=…` of the deal page's mail links: the subject quotes the deal's
    reference and the pipeline's inbound address is copied, so a reply to all lands on the
    deal's timeline (`inbound.handle_mail`)."""
    params = {"subject": subject}
    if inbound:
        params["cc"] = inbound
    return "?" + urlencode(params, quote_via=quote)


def _lost_stage_ids(pipeline: Pipeline) -> list[int]:
    """The stages whose choice asks for a lost reason (the form shows those fields then)."""
    return [s.id for s in pipeline.stages if s.kind == "lost"]


def _check_partners(form: DealForm, deal: Deal | None = None) -> bool:
    """Resolve the client fields to contacts the user may see (see `picker.resolve`)."""
    ok = True
    form.resolved_ids = {}
    for key, kind in (("partner", "person"), ("company", "company")):
        id_field, name_field = form[f"{key}_id"], form[f"{key}_name"]
        typed = request.form.get(name_field.name) if name_field.name in request.form else None
        result = picker.resolve(typed, request.form.get(id_field.name), kind,
                                current_id=getattr(deal, f"{key}_id", None))
        if result.error:
            name_field.errors = [*name_field.errors, result.error]
            form.client_choices[key] = result.candidates
            id_field.data = ""
            ok = False
        else:
            form.resolved_ids[f"{key}_id"] = result.partner.id if result.partner else None
            id_field.data = str(result.partner.id) if result.partner else ""
    return ok


def _field_values(form: DealForm) -> dict[str, Any]:
    return {"title": " ".join(form.title.data.split()),
            "partner_id": form.resolved_ids["partner_id"],
            "company_id": form.resolved_ids["company_id"],
            "amount": parse_amount(form.amount.data) or 0,
            "currency": form.currency.data.upper(), "probability": form.probability.data,
            "expected_close": form.expected_close.data, "owner_id": form.owner_id.data,
            "team_id": form.team_id.data, "source": form.source.data or None}


def _field_error(form: DealForm, error: TransitionError) -> None:
    """Show a refused move's message at the field to fill (the amount Won needs, the lost
    reason), so the user sees where to type and not only a banner."""
    target = {"amount": form.amount, "lost_reason": form.lost_reason_id}.get(error.code)
    if target is not None:
        target.errors = [*target.errors, str(error)]


def _amount_ok(form: DealForm) -> bool:
    try:
        parse_amount(form.amount.data)
    except TransitionError as error:
        form.amount.errors = [*form.amount.errors, str(error)]
        return False
    return True


@bp.route("/deals/new", methods=["GET", "POST"])
@permission_required("pipeline.write")
def new_deal():
    pipeline = db.session.get(Pipeline, request.values.get("pipeline_id", type=int) or -1) \
        or _default_pipeline()
    form = _deal_form(None, pipeline)
    if request.method == "POST" and form.validate() and _amount_ok(form) \
            and _check_partners(form):
        values = _field_values(form)
        tags = db.session.scalars(select(Tag).where(Tag.id.in_(form.tags.data or []))).all()
        try:
            deal = create_deal(pipeline=pipeline, stage=form.stage_id.data, user=current_user,
                               via="form", tags=list(tags),
                               lost_reason=form.lost_reason_id.data,
                               lost_note=form.lost_note.data, **values)
        except TransitionError as error:
            db.session.rollback()
            flash(str(error), "error")
            _field_error(form, error)
        else:
            db.session.commit()
            flash(_("Deal “%(title)s” created.", title=deal.title), "success")
            return redirect(url_for(".deal", deal_id=deal.id))
    return render_template("pipeline/deal_form.html", form=form, deal=None, pipeline=pipeline,
                           lost_stage_ids=_lost_stage_ids(pipeline), **_helpers())


@bp.route("/deals/<int:deal_id>", methods=["GET", "POST"])
@permission_required("pipeline.read")
def deal(deal_id: int):
    deal = get_or_404(Deal, deal_id)
    pipeline = deal.pipeline
    form = _deal_form(deal, pipeline)
    status = 200
    if request.method == "POST":
        if not current_user.has_permission("pipeline.write"):
            abort(404)
        if form.validate() and _amount_ok(form) and _check_partners(form, deal):
            values = _field_values(form)
            submitted = form.version.data or 0
            conflict = None
            try:
                if form.stage_id.data and form.stage_id.data != deal.stage_id:
                    # The move first (it checks the version), so a save is one new version.
                    move_deal(deal, form.stage_id.data, user=current_user, via="form",
                              lost_reason=form.lost_reason_id.data,
                              lost_note=form.lost_note.data, amount=values["amount"],
                              version=submitted)
                    submitted = deal.version
                conflict = save_or_conflict(deal, submitted, values)
                if conflict is None:
                    deal.tags = list(db.session.scalars(
                        select(Tag).where(Tag.id.in_(form.tags.data or []))))
                    db.session.commit()
            except TransitionError as error:
                db.session.rollback()
                flash(str(error), "error")
                _field_error(form, error)
                status = error.status
            else:
                if conflict is not None:
                    flash(conflict.message, "error")
                    status = 409
                    form.version.data = str(deal.version)
                else:
                    flash(_("Deal saved."), "success")
                    return redirect(url_for(".deal", deal_id=deal.id))
        else:
            status = 422
    move_form = MoveForm(formdata=None)
    fill_move_form(move_form, pipeline.id)
    move_form.version.data = str(deal.version)
    move_form.stage_id.data = request.args.get("move_to", type=int) or deal.stage_id
    won_stage_ids = [s.id for s in pipeline.stages if s.kind == "won"]
    reference = deal_tag(deal.id)
    return render_template(
        "pipeline/deal.html", deal=deal, form=form, move_form=move_form, pipeline=pipeline,
        stages=list(pipeline.stages), model=MODEL, money=format_money,
        lost_stage_ids=_lost_stage_ids(pipeline), won_stage_ids=won_stage_ids,
        reference=reference, mail_query=_mail_query(f"{reference} {deal.title}",
                                                    pipeline.inbound_address),
        amount_needed=not deal.amount and move_form.stage_id.data in won_stage_ids,
        can_write=current_user.has_permission("pipeline.write"),
        owner=db.session.get(User, deal.owner_id) if deal.owner_id else None,
        **_key_facts(deal), **_helpers()), status


# Colleagues' route modules register on `bp` here (one line each).
from . import config_views  # noqa: E402,F401,I001
from . import deal_import  # noqa: E402,F401
from . import lead_views  # noqa: E402,F401
from . import lead_api  # noqa: E402,F401
from . import report_views  # noqa: E402,F401
