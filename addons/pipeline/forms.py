"""Forms of the deal pages and the pipeline settings (Flask-WTF: each carries its CSRF token).

Choices (stages, reasons, owners, teams, tags) come from the database per request, so the
views fill them with the `fill_*` helpers below.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from core.api import User, db
from core.security import Team

from .models import CHANNEL_LABELS, CHANNELS, STAGE_KINDS, LostReason, Pipeline, Stage, Tag
from .state import lost_reason_label, pipeline_label, stage_label

KIND_LABELS = {"open": _l("Open"), "won": _l("Won"), "lost": _l("Lost")}


def _coerce_int(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "", "None") else None
    except (TypeError, ValueError):
        return None


class MoveForm(FlaskForm):
    """The small form on each card (works without JavaScript) and on the deal page."""

    stage_id = SelectField(_l("Stage"), coerce=_coerce_int, validators=[DataRequired()])
    version = HiddenField()
    lost_reason_id = SelectField(_l("Lost reason"), coerce=_coerce_int, validators=[Optional()])
    lost_note = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=2000)])
    amount = StringField(_l("Amount"), validators=[Optional(), Length(max=30)])


class QuickCreateForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=300)])
    stage_id = HiddenField()
    amount = StringField(_l("Amount"), validators=[Optional(), Length(max=30)])
    currency = StringField(_l("Currency"), validators=[Optional(), Length(min=3, max=3)])


class DealForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=300)])
    pipeline_id = SelectField(_l("Pipeline"), coerce=_coerce_int, validators=[Optional()])
    stage_id = SelectField(_l("Stage"), coerce=_coerce_int, validators=[Optional()])
    lost_reason_id = SelectField(_l("Lost reason"), coerce=_coerce_int, validators=[Optional()])
    lost_note = TextAreaField(_l("Comment on the loss"),
                              validators=[Optional(), Length(max=2000)])
    #: The client: a name typed or picked from suggestions (see `picker`), and its id.
    partner_name = StringField(_l("Contact person"), validators=[Optional(), Length(max=200)])
    partner_id = HiddenField()
    company_name = StringField(_l("Company"), validators=[Optional(), Length(max=200)])
    company_id = HiddenField()
    amount = StringField(_l("Amount"), validators=[Optional(), Length(max=30)])
    currency = StringField(_l("Currency"), validators=[
        DataRequired(), Regexp(r"^[A-Za-z]{3}$", message=_l("Three letters, e.g. EUR."))])
    probability = IntegerField(_l("Probability (%)"),
                               validators=[Optional(), NumberRange(min=0, max=100)])
    expected_close = DateField(_l("Expected close"), validators=[Optional()])
    owner_id = SelectField(_l("Salesperson"), coerce=_coerce_int, validators=[Optional()])
    team_id = SelectField(_l("Team"), coerce=_coerce_int, validators=[Optional()])
    source = SelectField(_l("Source"), validators=[Optional()])
    tags = SelectMultipleField(_l("Tags"), coerce=int, validators=[Optional()])
    version = HiddenField()


class PipelineForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    sequence = IntegerField(_l("Order"), default=10, validators=[Optional()])
    currency = StringField(_l("Currency"), default="EUR", validators=[
        DataRequired(), Regexp(r"^[A-Za-z]{3}$", message=_l("Three letters, e.g. EUR."))])
    team_id = SelectField(_l("Team"), coerce=_coerce_int, validators=[Optional()])
    active = BooleanField(_l("Active"), default=True)
    #: Stale-deal rotation (empty: off); the nightly job and the workload board read them.
    stale_no_activity_days = IntegerField(
        _l("Reclaim deals without activity for (days)"), validators=[
            Optional(), NumberRange(min=1, max=365)],
        description=_l("Empty: never. The deal goes back to the team's pool."))
    stale_no_next_step_days = IntegerField(
        _l("Reclaim deals without a next step for (days)"), validators=[
            Optional(), NumberRange(min=1, max=365)],
        description=_l("Empty: never."))
    assignment = SelectField(_l("Who gets a new lead"), choices=[
        ("round_robin", _l("Round robin in the pipeline's team")),
        ("territory", _l("The routing rules below first, then round robin"))],
        default="round_robin")
    inbound_address = StringField(_l("Inbound e-mail address"), validators=[
        Optional(), Length(max=254),
        Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("Enter a valid e-mail address."))],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        description=_l("Mail sent to this address becomes a lead of this pipeline."))


class RoutingRuleForm(FlaskForm):
    """A territory/language rule: leads from `country` and/or in `lang` go to a person or a
    team (round robin inside it). The view fills the choices and checks the combination."""

    sequence = IntegerField(_l("Order"), default=10, validators=[Optional()])
    country = StringField(_l("Country (code)"), validators=[
        Optional(), Regexp(r"^[A-Za-z]{2}$", message=_l("Two letters, e.g. LV."))],
        filters=[lambda value: value.strip().upper() if isinstance(value, str) else value])
    lang = SelectField(_l("Language"), choices=[], validate_choice=True)
    team_id = SelectField(_l("Team"), coerce=_coerce_int, validate_choice=False)
    user_id = SelectField(_l("Salesperson"), coerce=_coerce_int, validate_choice=False)


class StageForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    sequence = IntegerField(_l("Order"), default=10, validators=[Optional()])
    probability = IntegerField(_l("Probability (%)"), default=10,
                               validators=[DataRequired(message=_l("Give a percentage.")),
                                           NumberRange(min=0, max=100)])
    color = StringField(_l("Colour"), validators=[
        Optional(), Regexp(r"^#[0-9A-Fa-f]{6}$", message=_l("A colour like #4caf7a."))])
    folded = BooleanField(_l("Folded on the board"))
    kind = SelectField(_l("Kind"), choices=[(k, KIND_LABELS[k]) for k in STAGE_KINDS],
                       default="open")


class TagForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    color = StringField(_l("Colour"), validators=[
        Optional(), Regexp(r"^#[0-9A-Fa-f]{6}$", message=_l("A colour like #4caf7a."))])


class LostReasonForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    sequence = IntegerField(_l("Order"), default=10, validators=[Optional()])
    active = BooleanField(_l("Active"), default=True)


# -- choices ---------------------------------------------------------------------------------
def stage_choices(pipeline_id: int) -> list[tuple[int, str]]:
    stages = db.session.scalars(select(Stage).where(Stage.pipeline_id == pipeline_id)
                                .order_by(Stage.sequence, Stage.id))
    return [(s.id, stage_label(s)) for s in stages]


def reason_choices() -> list[tuple[int | None, str]]:
    reasons = db.session.scalars(select(LostReason).where(LostReason.active.is_(True))
                                 .order_by(LostReason.sequence, LostReason.id))
    return [(None, "—")] + [(r.id, lost_reason_label(r)) for r in reasons]


def pipeline_choices() -> list[tuple[int, str]]:
    rows = db.session.scalars(select(Pipeline).where(Pipeline.active.is_(True))
                              .order_by(Pipeline.sequence, Pipeline.id))
    return [(p.id, pipeline_label(p)) for p in rows]


def owner_choices() -> list[tuple[int | None, str]]:
    users = db.session.scalars(select(User).where(User.active.is_(True))
                               .order_by(User.name, User.login))
    return [(None, "—")] + [(u.id, u.display_name) for u in users]


def team_choices() -> list[tuple[int | None, str]]:
    return [(None, "—")] + [(t.id, t.name) for t in db.session.scalars(
        select(Team).order_by(Team.name))]


def tag_choices() -> list[tuple[int, str]]:
    return [(t.id, t.name) for t in db.session.scalars(select(Tag).order_by(Tag.name))]


def source_choices() -> list[tuple[str, str]]:
    return [("", "—")] + [(c, str(CHANNEL_LABELS[c])) for c in CHANNELS]


def fill_deal_form(form: DealForm, pipeline_id: int) -> None:
    form.pipeline_id.choices = pipeline_choices()
    form.stage_id.choices = stage_choices(pipeline_id)
    form.lost_reason_id.choices = reason_choices()
    form.owner_id.choices = owner_choices()
    form.team_id.choices = team_choices()
    form.source.choices = source_choices()
    form.tags.choices = tag_choices()


def fill_move_form(form: MoveForm, pipeline_id: int) -> None:
    form.stage_id.choices = stage_choices(pipeline_id)
    form.lost_reason_id.choices = reason_choices()
