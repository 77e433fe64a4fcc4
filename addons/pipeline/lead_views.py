"""Pages of the leads inbox: list with filters, manual create, the lead page, conversion.

Every lead is fetched through the record gateway (`visible`, `get_or_404`), so a lead outside
the user's rules is a 404 here as everywhere; the one widening is the pool of new leads nobody
was given (`leads.visible_leads`), which whoever may work leads sees and can take. Conversion
shows the contacts and companies the lead may already be and makes the user choose (see
`leads.convert_lead`).
"""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional, ValidationError

from addons.contacts.models import Partner
from addons.contacts.services import display_phone, normalize_email
from core.api import User, db
from core.forms import ActionForm
from core.i18n import LANGUAGES
from core.security import get_or_404, permission_required, visible

from . import phone as _phone  # noqa: F401 - registers the PBX, import and report routes
from . import webform as _webform  # noqa: F401 - registers the public form routes
from .leads import (
    NEW,
    ConversionChoiceNeeded,
    LeadError,
    convert_lead,
    create_lead,
    dismiss_lead,
    lead_matches,
    take_lead,
    visible_leads,
)
from .models import CHANNEL_LABELS, CHANNELS, LEAD_STATUSES, Lead, Pipeline
from .views import _safe_back, bp

MODEL = "pipeline.lead"
PER_PAGE = 50
STATUS_LABELS = {"new": _l("New"), "converted": _l("Converted"), "dismissed": _l("Dismissed")}


def _pipelines() -> list[Pipeline]:
    return list(db.session.scalars(select(Pipeline).where(Pipeline.active.is_(True))
                                   .order_by(Pipeline.sequence, Pipeline.id)))


def _pipeline_label(pipeline: Pipeline | None) -> str:
    from .state import pipeline_label

    return pipeline_label(pipeline) if pipeline is not None else ""


def _helpers() -> dict[str, Any]:
    return {"channel_labels": CHANNEL_LABELS, "status_labels": STATUS_LABELS,
            "display_phone": display_phone, "pipeline_label": _pipeline_label}


# -- the inbox -------------------------------------------------------------------------------
@bp.route("/leads")
@permission_required("pipeline.read")
def leads():
    status = request.args.get("status", "new")
    channel = request.args.get("channel", "")
    pipeline_id = request.args.get("pipeline", type=int)
    owner = request.args.get("owner", "")
    text = (request.args.get("q") or "").strip()[:100]
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = visible_leads(current_user)
    if status in LEAD_STATUSES:
        query = query.where(Lead.status == status)
    if channel in CHANNELS:
        query = query.where(Lead.channel == channel)
    if pipeline_id:
        query = query.where(Lead.pipeline_id == pipeline_id)
    if owner == "me":
        query = query.where(Lead.owner_id == current_user.id)
    elif owner == "none":
        query = query.where(Lead.owner_id.is_(None))
    elif owner.isdigit():
        query = query.where(Lead.owner_id == int(owner))
    if text:
        pattern = "%" + text.lower().replace("%", "").replace("_", "") + "%"
        query = query.where(or_(*(func.lower(column).like(pattern) for column in (
            Lead.name, Lead.email, Lead.phone, Lead.company_name, Lead.subject))))
    rows = list(db.session.scalars(query.order_by(Lead.created_at.desc(), Lead.id.desc())
                                   .offset((page - 1) * PER_PAGE).limit(PER_PAGE + 1)))
    owner_ids = {r.owner_id for r in rows if r.owner_id}
    owners = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(owner_ids)))}
    pipelines = _pipelines()
    unassigned = db.session.scalar(
        visible_leads(current_user).with_only_columns(func.count(Lead.id)).where(
            Lead.owner_id.is_(None), Lead.status == "new"))
    return render_template(
        "pipeline/leads.html", unassigned=unassigned,
        can_take=current_user.has_permission("pipeline.write"),
        back=request.full_path.rstrip("?"), leads=rows[:PER_PAGE], more=len(rows) > PER_PAGE,
        page=page,
        owners=owners, pipelines=pipelines, pipelines_by_id={p.id: p for p in pipelines},
        filters={"status": status, "channel": channel, "pipeline": pipeline_id,
                 "owner": owner, "q": text},
        statuses=LEAD_STATUSES, channels=CHANNELS, **_helpers())


# -- manual create ---------------------------------------------------------------------------
class LeadForm(FlaskForm):
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    company = StringField(_l("Company"), validators=[Optional(), Length(max=300)])
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    subject = StringField(_l("Subject"), validators=[Optional(), Length(max=300)])
    message = TextAreaField(_l("Message"), validators=[Optional(), Length(max=20000)])
    pipeline = SelectField(_l("Pipeline"), coerce=int)
    lang = SelectField(_l("Language"), choices=[("", "—")] + list(LANGUAGES.items()),
                       validators=[Optional()])
    channel = SelectField(_l("Channel"), default="manual")

    def validate_email(self, field: Any) -> None:
        try:
            normalize_email(field.data)
        except ValueError:
            raise ValidationError(_("This is not an e-mail address.")) from None

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if not any((self.name.data, self.company.data, self.email.data, self.phone.data)):
            self.name.errors = list(self.name.errors) + [
                _("Give at least a name, a company, an e-mail or a phone.")]
            return False
        return ok


@bp.route("/leads/new", methods=["GET", "POST"])
@permission_required("pipeline.write")
def lead_new():
    form = LeadForm()
    pipelines = _pipelines()
    form.pipeline.choices = [(p.id, _pipeline_label(p)) for p in pipelines]
    form.channel.choices = [(c, str(CHANNEL_LABELS[c])) for c in ("manual", "phone", "email")]
    if form.validate_on_submit():
        pipeline = db.session.get(Pipeline, form.pipeline.data)
        lead = create_lead(channel=form.channel.data, pipeline=pipeline, name=form.name.data,
                           company_name=form.company.data, email=form.email.data,
                           phone=form.phone.data, subject=form.subject.data,
                           message=form.message.data, lang=form.lang.data or None,
                           owner=current_user, author=current_user)
        db.session.commit()
        flash(_("Lead created."), "success")
        return redirect(url_for("pipeline.lead", lead_id=lead.id))
    return render_template("pipeline/lead_form.html", form=form)


# -- one lead --------------------------------------------------------------------------------
def _lead_or_404(lead_id: int) -> Lead:
    """The lead if the user may see it, the pool included (`visible_leads`); else 404."""
    record = db.session.scalar(visible_leads(current_user).where(Lead.id == lead_id))
    if record is None:
        abort(404)
    return record


@bp.route("/leads/<int:lead_id>")
@permission_required("pipeline.read")
def lead(lead_id: int):
    record = _lead_or_404(lead_id)
    # Converting or dismissing needs the record rules; a lead seen only in the pool is taken
    # first.
    can_handle = db.session.scalar(visible(Lead).where(Lead.id == record.id)) is not None
    owner = db.session.get(User, record.owner_id) if record.owner_id else None
    pipeline = db.session.get(Pipeline, record.pipeline_id) if record.pipeline_id else None
    partner = db.session.scalar(visible(Partner).where(Partner.id == record.partner_id)) \
        if record.partner_id else None
    return render_template("pipeline/lead.html", lead=record, owner=owner, pipeline=pipeline,
                           partner=partner, model=MODEL, can_handle=can_handle,
                           **_helpers())


@bp.route("/leads/<int:lead_id>/take", methods=["POST"])
@permission_required("pipeline.write")
def lead_take(lead_id: int):
    """Take an unassigned lead: the user becomes its owner, unless someone was quicker."""
    record = _lead_or_404(lead_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        take_lead(record, current_user)
    except LeadError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(_("The lead is yours now."), "success")
    return redirect(_safe_back(url_for("pipeline.lead", lead_id=lead_id)))


@bp.route("/leads/<int:lead_id>/dismiss", methods=["POST"])
@permission_required("pipeline.write")
def lead_dismiss(lead_id: int):
    record = get_or_404(Lead, lead_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        dismiss_lead(record, user=current_user, note=request.form.get("note", "")[:2000])
    except LeadError as exc:
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(_("Lead dismissed."), "success")
    return redirect(url_for("pipeline.lead", lead_id=record.id))


@bp.route("/leads/<int:lead_id>/convert", methods=["GET", "POST"])
@permission_required("pipeline.write")
def lead_convert(lead_id: int):
    """Pick (or create) the contact and company, then create the deal."""
    record = get_or_404(Lead, lead_id)
    if record.status != "new":
        flash(_("This lead was already handled."), "error")
        return redirect(url_for("pipeline.lead", lead_id=record.id))
    matches = lead_matches(record)
    pipelines = _pipelines()
    values = {"person": request.form.get("person", ""), "company": request.form.get("company",
                                                                                      ""),
              "title": request.form.get("title") or record.subject or "",
              "amount": request.form.get("amount", ""),
              "pipeline": request.form.get("pipeline", type=int) or record.pipeline_id}
    error = None
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            abort(400)
        try:
            deal = convert_lead(record, user=current_user, person=values["person"] or None,
                                company=values["company"] or None,
                                title=values["title"] or None, pipeline=values["pipeline"],
                                amount=values["amount"] or None)
        except ConversionChoiceNeeded as exc:
            error = str(exc)
        except LeadError as exc:
            error = str(exc)
        else:
            db.session.commit()
            flash(_("Deal created from the lead."), "success")
            return redirect(url_for("pipeline.deal", deal_id=deal.id))
    return render_template("pipeline/lead_convert.html", lead=record, matches=matches,
                           values=values, pipelines=pipelines, error=error, new=NEW,
                           **_helpers()), 422 if error else 200
