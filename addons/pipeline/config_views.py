"""Settings pages (pipeline.manage): pipelines, their ordered stages, the lost reasons.

A firm shapes its funnel here (seed 002: "a funnel configurable to your business"): stages have
an order, a probability, a colour, a kind (open / won / lost) and may be folded on the board;
names can be given per language (`labels`), otherwise a seeded name is shown translated. A stage
or reason that deals still use cannot be deleted (the history would lose its meaning); a reason
is deactivated instead.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from core.api import Country, User, country_name, db, permission_required
from core.i18n import LANGUAGES
from core.security import Team

from .forms import (
    KIND_LABELS,
    LostReasonForm,
    PipelineForm,
    RoutingRuleForm,
    StageForm,
    TagForm,
    team_choices,
)
from .models import (
    AssignmentRule,
    Deal,
    DealTag,
    LostReason,
    Pipeline,
    Stage,
    StageChange,
    Tag,
)
from .state import lost_reason_label, pipeline_label, seed_defaults, stage_label
from .views import bp

TRANSLATED = [code for code in LANGUAGES if code != "en"]


def _labels_from_form() -> dict[str, str]:
    """`label_<lang>` inputs -> {lang: name} without the empty ones."""
    labels = {}
    for code in TRANSLATED:
        value = " ".join((request.form.get(f"label_{code}") or "").split())[:120]
        if value:
            labels[code] = value
    return labels


def _ctx() -> dict[str, Any]:
    return {"stage_label": stage_label, "pipeline_label": pipeline_label,
            "reason_label": lost_reason_label, "kind_labels": KIND_LABELS,
            "translated": [(c, LANGUAGES[c]) for c in TRANSLATED]}


def _saved(message: str, target: str) -> ResponseReturnValue:
    """Commit, say so and go to `target` (post/redirect/get): every successful settings POST."""
    db.session.commit()
    flash(message, "success")
    return redirect(target)


def _edit_page(form: FlaskForm, save: Callable[[], str | None], saved: str, template: str,
               context: Callable[[], dict[str, Any]]) -> ResponseReturnValue:
    """The one shape of the pipeline, stage and lost reason edit pages.

    A valid POST is applied by `save`, committed, announced with `saved` and redirected to the
    URL `save` returns; `save` returns None when it refuses (after flashing why). Otherwise (a
    GET, an invalid or refused POST) the form is shown with `context()`, built only then.
    """
    if request.method == "POST" and form.validate():
        target = save()
        if target is not None:
            return _saved(saved, target)
    return render_template(template, form=form, **context(), **_ctx())


# -- pipelines -------------------------------------------------------------------------------
@bp.route("/settings/pipelines")
@permission_required("pipeline.manage")
def pipelines():
    if db.session.scalar(select(Pipeline.id).limit(1)) is None:
        seed_defaults()
        db.session.commit()
    rows = db.session.scalars(select(Pipeline).order_by(Pipeline.sequence, Pipeline.id)).all()
    counts = dict(db.session.execute(select(Deal.pipeline_id, func.count(Deal.id))
                                     .group_by(Deal.pipeline_id)).all())
    form = PipelineForm(formdata=None)
    form.team_id.choices = team_choices()
    return render_template("pipeline/settings_pipelines.html", pipelines=rows, counts=counts,
                           form=form, **_ctx())


@bp.route("/settings/pipelines/new", methods=["POST"])
@permission_required("pipeline.manage")
def pipeline_new():
    form = PipelineForm()
    form.team_id.choices = team_choices()
    if not form.validate():
        flash(_("Check the pipeline's name and currency."), "error")
        return redirect(url_for(".pipelines"))
    pipeline = Pipeline(name=form.name.data.strip(), sequence=form.sequence.data or 10,
                        currency=form.currency.data.upper(), team_id=form.team_id.data,
                        active=form.active.data, form_origins=[])
    # A new funnel starts with the same shape as the default one; rename or delete freely.
    from .state import DEFAULT_STAGES

    for index, (name, probability, kind, color) in enumerate(DEFAULT_STAGES):
        pipeline.stages.append(Stage(name=name, labels={}, sequence=10 * (index + 1),
                                     probability=probability, kind=kind, color=color))
    db.session.add(pipeline)
    db.session.flush()  # its id, for the page to go to
    return _saved(_("Pipeline created."), url_for(".pipeline_edit", pipeline_id=pipeline.id))


@bp.route("/settings/pipelines/<int:pipeline_id>", methods=["GET", "POST"])
@permission_required("pipeline.manage")
def pipeline_edit(pipeline_id: int):
    pipeline = db.get_or_404(Pipeline, pipeline_id)
    form = PipelineForm(obj=pipeline)
    form.team_id.choices = team_choices()

    def save() -> str | None:
        address = (form.inbound_address.data or "").strip().lower() or None
        if address is not None and db.session.scalar(select(Pipeline.id).where(
                func.lower(Pipeline.inbound_address) == address,
                Pipeline.id != pipeline.id)) is not None:
            form.inbound_address.errors.append(
                _("Another pipeline receives mail at this address."))
            return None
        pipeline.name = form.name.data.strip()
        pipeline.sequence = form.sequence.data or 10
        pipeline.currency = form.currency.data.upper()
        pipeline.team_id = form.team_id.data
        pipeline.active = form.active.data
        pipeline.stale_no_activity_days = form.stale_no_activity_days.data
        pipeline.stale_no_next_step_days = form.stale_no_next_step_days.data
        pipeline.inbound_address = address
        pipeline.assignment = form.assignment.data
        return url_for(".pipeline_edit", pipeline_id=pipeline.id)

    def context() -> dict[str, Any]:
        usage = dict(db.session.execute(select(Deal.stage_id, func.count(Deal.id))
                                        .where(Deal.pipeline_id == pipeline.id)
                                        .group_by(Deal.stage_id)).all())
        return {"pipeline": pipeline, "stage_form": StageForm(formdata=None), "usage": usage,
                "rules": _rules(pipeline), "rule_form": _rule_form(formdata=None)}

    return _edit_page(form, save, _("Pipeline saved."), "pipeline/settings_pipeline.html",
                      context)


# -- lead routing rules ----------------------------------------------------------------------
def _rule_form(**kwargs: Any) -> RoutingRuleForm:
    form = RoutingRuleForm(**kwargs)
    form.lang.choices = [("", _("Any"))] + [(code, name) for code, name in LANGUAGES.items()]
    form.team_id.choices = team_choices()
    form.user_id.choices = [(None, "—")] + [(u.id, u.display_name) for u in db.session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.name, User.login))]
    return form


def _rules(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The pipeline's rules in the order they are tried, with what the page shows."""
    rules = db.session.scalars(select(AssignmentRule).where(
        AssignmentRule.pipeline_id == pipeline.id).order_by(AssignmentRule.sequence,
                                                            AssignmentRule.id)).all()
    teams = {t.id: t.name for t in db.session.scalars(select(Team).where(
        Team.id.in_({r.team_id for r in rules if r.team_id})))}
    users = {u.id: u.display_name for u in db.session.scalars(select(User).where(
        User.id.in_({r.user_id for r in rules if r.user_id})))}
    return [{"rule": r, "country": country_name(r.country) if r.country else None,
             "lang": LANGUAGES.get(r.lang or "", r.lang),
             "to": users.get(r.user_id) if r.user_id else teams.get(r.team_id)}
            for r in rules]


@bp.route("/settings/pipelines/<int:pipeline_id>/rules", methods=["POST"])
@permission_required("pipeline.manage")
def rule_new(pipeline_id: int):
    pipeline = db.get_or_404(Pipeline, pipeline_id)
    form = _rule_form()
    back = url_for(".pipeline_edit", pipeline_id=pipeline.id, _anchor="routing")
    problems = [str(e) for errors in form.errors.values() for e in errors] \
        if not form.validate() else []
    if not problems:
        if not form.country.data and not form.lang.data:
            problems.append(_("Give a country, a language or both: a rule without either "
                              "would take every lead."))
        if (form.team_id.data is None) == (form.user_id.data is None):
            problems.append(_("Send the leads either to a salesperson or to a team."))
        if form.country.data and db.session.get(Country, form.country.data) is None:
            problems.append(_("There is no country with the code %(code)s.",
                              code=form.country.data))
        if form.user_id.data is not None and db.session.get(User, form.user_id.data) is None:
            problems.append(_("There is no such salesperson."))
        if form.team_id.data is not None and db.session.get(Team, form.team_id.data) is None:
            problems.append(_("There is no such team."))
    if problems:
        for problem in problems:
            flash(problem, "error")
        return redirect(back)
    db.session.add(AssignmentRule(
        pipeline_id=pipeline.id, sequence=form.sequence.data or 10,
        country=form.country.data or None, lang=form.lang.data or None,
        team_id=form.team_id.data, user_id=form.user_id.data))
    if pipeline.assignment != "territory":
        flash(_("Rules apply once 'Who gets a new lead' is set to the routing rules."), "info")
    return _saved(_("Rule added."), back)


@bp.route("/settings/rules/<int:rule_id>/delete", methods=["POST"])
@permission_required("pipeline.manage")
def rule_delete(rule_id: int):
    rule = db.get_or_404(AssignmentRule, rule_id)
    pipeline_id = rule.pipeline_id
    db.session.delete(rule)
    return _saved(_("Rule deleted."), url_for(".pipeline_edit", pipeline_id=pipeline_id,
                                              _anchor="routing"))


# -- stages ----------------------------------------------------------------------------------
def _apply_stage(stage: Stage, form: StageForm) -> None:
    stage.name = form.name.data.strip()
    stage.sequence = form.sequence.data if form.sequence.data is not None else 10
    stage.probability = form.probability.data
    stage.color = form.color.data or None
    stage.folded = bool(form.folded.data)
    stage.kind = form.kind.data
    stage.labels = _labels_from_form()


@bp.route("/settings/pipelines/<int:pipeline_id>/stages", methods=["POST"])
@permission_required("pipeline.manage")
def stage_new(pipeline_id: int):
    pipeline = db.get_or_404(Pipeline, pipeline_id)
    form = StageForm()
    if not form.validate():
        for errors in form.errors.values():
            for error in errors:
                flash(str(error), "error")
        return redirect(url_for(".pipeline_edit", pipeline_id=pipeline.id))
    stage = Stage(pipeline_id=pipeline.id)
    _apply_stage(stage, form)
    db.session.add(stage)
    return _saved(_("Stage added."), url_for(".pipeline_edit", pipeline_id=pipeline.id))


@bp.route("/settings/stages/<int:stage_id>", methods=["GET", "POST"])
@permission_required("pipeline.manage")
def stage_edit(stage_id: int):
    stage = db.get_or_404(Stage, stage_id)
    form = StageForm(obj=stage)

    def save() -> str:
        _apply_stage(stage, form)
        return url_for(".pipeline_edit", pipeline_id=stage.pipeline_id)

    return _edit_page(form, save, _("Stage saved."), "pipeline/settings_stage.html",
                      lambda: {"stage": stage})


@bp.route("/settings/stages/<int:stage_id>/delete", methods=["POST"])
@permission_required("pipeline.manage")
def stage_delete(stage_id: int):
    stage = db.get_or_404(Stage, stage_id)
    pipeline_id = stage.pipeline_id
    used = db.session.scalar(select(func.count(Deal.id)).where(Deal.stage_id == stage.id))
    if used:
        flash(_("Deals are in this stage; move them before deleting it."), "error")
    else:
        db.session.execute(StageChange.__table__.update()
                           .where(StageChange.from_stage_id == stage.id)
                           .values(from_stage_id=None))
        db.session.delete(stage)
        db.session.commit()
        flash(_("Stage deleted."), "success")
    return redirect(url_for(".pipeline_edit", pipeline_id=pipeline_id))


# -- lost reasons ----------------------------------------------------------------------------
@bp.route("/settings/lost-reasons", methods=["GET", "POST"])
@permission_required("pipeline.manage")
def lost_reasons():
    if db.session.scalar(select(LostReason.id).limit(1)) is None:
        seed_defaults()
        db.session.commit()
    form = LostReasonForm()
    if request.method == "POST":
        if form.validate():
            name = " ".join(form.name.data.split())
            if db.session.scalar(select(LostReason.id).where(LostReason.name == name)):
                flash(_("This reason is already on the list."), "error")
            else:
                db.session.add(LostReason(name=name, sequence=form.sequence.data or 10,
                                          active=form.active.data,
                                          labels=_labels_from_form()))
                return _saved(_("Lost reason added."), url_for(".lost_reasons"))
        else:
            flash(_("Give the reason a name."), "error")
    rows = db.session.scalars(select(LostReason).order_by(LostReason.sequence,
                                                          LostReason.id)).all()
    usage = dict(db.session.execute(select(Deal.lost_reason_id, func.count(Deal.id))
                                    .where(Deal.lost_reason_id.is_not(None))
                                    .group_by(Deal.lost_reason_id)).all())
    return render_template("pipeline/settings_reasons.html", reasons=rows, form=form,
                           usage=usage, **_ctx())


@bp.route("/settings/lost-reasons/<int:reason_id>", methods=["GET", "POST"])
@permission_required("pipeline.manage")
def lost_reason_edit(reason_id: int):
    reason = db.get_or_404(LostReason, reason_id)
    form = LostReasonForm(obj=reason)

    def save() -> str | None:
        name = " ".join(form.name.data.split())
        clash = db.session.scalar(select(LostReason.id).where(LostReason.name == name,
                                                              LostReason.id != reason.id))
        if clash:
            flash(_("This reason is already on the list."), "error")
            return None
        reason.name = name
        reason.sequence = form.sequence.data or 10
        reason.active = form.active.data
        reason.labels = _labels_from_form()
        return url_for(".lost_reasons")

    return _edit_page(form, save, _("Lost reason saved."), "pipeline/settings_reason.html",
                      lambda: {"reason": reason})


# -- tags ------------------------------------------------------------------------------------
def _tag_clash(name: str, tag_id: int | None = None) -> bool:
    query = select(Tag.id).where(func.lower(Tag.name) == name.lower())
    if tag_id is not None:
        query = query.where(Tag.id != tag_id)
    return db.session.scalar(query) is not None


@bp.route("/settings/tags", methods=["GET", "POST"])
@permission_required("pipeline.manage")
def tags():
    """The deal tags the form and the filters offer: added, renamed and recoloured here; a
    tag leaves the list only when no deal carries it."""
    form = TagForm()
    if request.method == "POST":
        if not form.validate():
            flash(_("Give the tag a name (and a colour like #4caf7a, or none)."), "error")
        else:
            name = " ".join(form.name.data.split())
            if _tag_clash(name):
                flash(_("This tag is already on the list."), "error")
            else:
                db.session.add(Tag(name=name, color=form.color.data or None))
                return _saved(_("Tag added."), url_for(".tags"))
    rows = db.session.scalars(select(Tag).order_by(func.lower(Tag.name))).all()
    usage = dict(db.session.execute(select(DealTag.tag_id, func.count(DealTag.deal_id))
                                    .group_by(DealTag.tag_id)).all())
    return render_template("pipeline/settings_tags.html", tags=rows, form=form, usage=usage,
                           **_ctx())


@bp.route("/settings/tags/<int:tag_id>", methods=["POST"])
@permission_required("pipeline.manage")
def tag_edit(tag_id: int):
    tag = db.get_or_404(Tag, tag_id)
    form = TagForm()
    if not form.validate():
        flash(_("Give the tag a name (and a colour like #4caf7a, or none)."), "error")
        return redirect(url_for(".tags"))
    name = " ".join(form.name.data.split())
    if _tag_clash(name, tag.id):
        flash(_("This tag is already on the list."), "error")
        return redirect(url_for(".tags"))
    tag.name, tag.color = name, form.color.data or None
    return _saved(_("Tag saved."), url_for(".tags"))


@bp.route("/settings/tags/<int:tag_id>/delete", methods=["POST"])
@permission_required("pipeline.manage")
def tag_delete(tag_id: int):
    tag = db.get_or_404(Tag, tag_id)  # CSRF: checked for every POST by CSRFProtect
    if db.session.scalar(select(DealTag.deal_id).where(DealTag.tag_id == tag.id).limit(1)):
        flash(_("Deals carry this tag; take it off them first."), "error")
        return redirect(url_for(".tags"))
    db.session.delete(tag)
    return _saved(_("Tag deleted."), url_for(".tags"))
